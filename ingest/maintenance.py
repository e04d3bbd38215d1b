"""Periodic housekeeping: month partitions created ahead of need, stray rows reported."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ingest.store import CONNECT_TIMEOUT, ENSURE_PARTITION

logger = logging.getLogger(__name__)

# Partitions exist this many months ahead, so the writer's on-demand creation (a DDL lock on
# the parent table) is the exception for back-fill, not something every month begins with.
MONTHS_AHEAD = 2
# Housekeeping cadence: cheap, and a missed month boundary is covered by MONTHS_AHEAD.
INTERVAL_HOURS = 6

COUNT_DEFAULT_PARTITION = """
SELECT count(*) FROM readings_default
"""


def _month_starts(now: datetime, ahead: int) -> list[datetime]:
    out = []
    year, month = now.year, now.month
    for _ in range(ahead + 1):
        out.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


async def ensure_partitions(database_url: str, *, now: datetime | None = None) -> None:
    """Create this month's and the next MONTHS_AHEAD months' partitions; warn on stray rows."""
    conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT)
    try:
        if await conn.fetchval("SELECT value FROM parkwatch_meta WHERE key = 'storage'") != "native":
            return
        for start in _month_starts(now or datetime.now(UTC), MONTHS_AHEAD):
            await conn.fetchval(ENSURE_PARTITION, start)
        stray = await conn.fetchval(COUNT_DEFAULT_PARTITION)
        if stray:
            logger.warning("%d readings sit in readings_default (a month whose partition could not be created)", stray)
    finally:
        await conn.close()


async def _job(database_url: str) -> None:
    try:
        await ensure_partitions(database_url)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        logger.warning("housekeeping skipped: %s", exc)


async def run(database_url: str) -> None:
    """Schedule housekeeping every INTERVAL_HOURS (first run now) until cancelled."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        _job,
        "interval",
        hours=INTERVAL_HOURS,
        args=[database_url],
        id="ensure-partitions",
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=1,
    )
    scheduler.start()
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)
