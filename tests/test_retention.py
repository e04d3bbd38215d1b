"""Retention: raw readings past the limit leave a partition (or chunk) at a time, once rolled up; rollups stay."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from compliance.worker import ComplianceWorker
from ingest.batch import Batch
from ingest.maintenance import drop_expired_readings
from ingest.store import Store
from parkwatch.jobs import cluster_jobs
from parkwatch.settings import Settings

NOW = datetime(2031, 5, 14, 9, tzinfo=UTC)
RETENTION_DAYS = 100
OLDEST = NOW - timedelta(days=400)  # past retention, rolled up: dropped
OLDER = NOW - timedelta(days=300)  # past retention, late data waiting for its rollup: kept, then dropped
RECENT = NOW - timedelta(days=10)  # within retention: kept


async def _write(store: Store, sid: int, pid: int, ts: datetime, value: float) -> None:
    await store.write(Batch(rows=[(sid, pid, 2, ts, value, "N", NOW, None, None, None, None)]))


async def test_retention_drops_only_rolled_up_periods_past_the_limit(
    settings: Settings, registry: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Natively a partition, with TimescaleDB a chunk: dropped when wholly past the limit and every
    hour of it is rolled up; rollups, verdicts and recent readings are kept."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    store = Store(settings.DATABASE_URL)
    try:
        sid = await conn.fetchval("SELECT sid FROM stations WHERE id = 'p1-out'")
        pid = await conn.fetchval("SELECT pid FROM parameters WHERE code = 'w01018'")
        for ts in (OLDEST, OLDER, RECENT):
            await _write(store, sid, pid, ts, 30.0)
        await _write(store, sid, pid, OLDEST, 31.0)  # a revision of the oldest reading
        await ComplianceWorker(settings.DATABASE_URL).drain(conn)
        rollups = await conn.fetchval("SELECT count(*) FROM rollup_hour")
        verdicts = await conn.fetchval("SELECT count(*) FROM verdicts")
        assert rollups >= 3
        await _write(store, sid, pid, OLDER + timedelta(minutes=1), 32.0)  # late, not rolled up yet

        assert await drop_expired_readings(conn, None, now=NOW) == []
        with caplog.at_level(logging.INFO, logger="ingest.maintenance"):
            first = await drop_expired_readings(conn, RETENTION_DAYS, now=NOW)
        assert first
        assert "dropped readings" in caplog.text and "wait for their rollup" in caplog.text
        left = [r[0] for r in await conn.fetch("SELECT ts FROM readings ORDER BY ts")]
        assert left == [OLDER, OLDER + timedelta(minutes=1), RECENT]
        assert await conn.fetchval("SELECT count(*) FROM reading_revisions") == 0
        assert await conn.fetchval("SELECT count(*) FROM rollup_hour") == rollups

        # once the late hour is rolled up, its period goes too
        await ComplianceWorker(settings.DATABASE_URL).drain(conn)
        second = await drop_expired_readings(conn, RETENTION_DAYS, now=NOW)
        assert second and not set(second) & set(first)
        assert [r[0] for r in await conn.fetch("SELECT ts FROM readings")] == [RECENT]
        assert await conn.fetchval("SELECT count(*) FROM rollup_hour") >= rollups
        assert await conn.fetchval("SELECT count(*) FROM verdicts") >= verdicts
        assert await drop_expired_readings(conn, RETENTION_DAYS, now=NOW) == []
    finally:
        await store.close()
        await conn.close()


def test_retention_is_a_cluster_job(settings: Settings) -> None:
    """The job runs with the others (and does nothing while no retention is set)."""
    assert "retention" in [job.name for job in cluster_jobs(settings)]
