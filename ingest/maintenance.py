"""Readings housekeeping (periodic jobs, parkwatch/jobs.py): partitions ahead of need, old raw data dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from ingest.partitions import Width, next_period, partition_width, period_start
from ingest.store import ENSURE_PARTITION, SELECT_STORAGE

logger = logging.getLogger(__name__)

# Partitions exist this many periods ahead, so the writer's on-demand creation (a DDL lock on
# the parent table) is the exception for back-fill, not something every period begins with.
# The job runs every few hours: a week of days, or two weeks or months, is ample.
PERIODS_AHEAD: dict[Width, int] = {"day": 7, "week": 2, "month": 2}
# How long the retention job waits for readings' lock before it leaves a partition to its next
# run: while it waits, every write and read of readings queues behind it, so not long.
DROP_LOCK_TIMEOUT = "2s"

COUNT_DEFAULT_PARTITION = """
SELECT count(*) FROM readings_default
"""
# Retention (docs/storage.md#retention). Native: each partition wholly older than the limit,
# dropped in a transaction of its own that holds readings' lock from the check to the drop.
SELECT_EXPIRED_PARTITIONS = """
SELECT name, lo, hi FROM parkwatch_readings_partitions() WHERE hi <= $1 ORDER BY lo
"""
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"
LOCK_READINGS = "LOCK TABLE readings IN ACCESS EXCLUSIVE MODE"
DROP_PARTITION = "SELECT parkwatch_drop_readings_partition($1)"
# TimescaleDB: the chunks wholly older than the limit, oldest first; drop_chunks drops those
# before the first one whose hours wait for a rollup. Writers are kept out (SHARE ROW EXCLUSIVE
# lets reads through) from the check to the drop.
LOCK_READINGS_WRITES = "LOCK TABLE readings IN SHARE ROW EXCLUSIVE MODE"
SELECT_EXPIRED_CHUNKS = """
SELECT format('%I.%I', chunk_schema, chunk_name) AS name, range_start AS lo, range_end AS hi
FROM timescaledb_information.chunks
WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings' AND range_end <= $1
ORDER BY range_start
"""
ROLLED_UP = "SELECT parkwatch_rolled_up($1, $2)"
DROP_CHUNKS = "SELECT drop_chunks('readings', older_than => $1::timestamptz)::text"
DELETE_REVISIONS_IN = """
DELETE FROM reading_revisions r
USING unnest($1::timestamptz[], $2::timestamptz[]) AS d(lo, hi)
WHERE r.ts >= d.lo AND r.ts < d.hi
"""


async def ensure_partitions(conn: asyncpg.Connection, *, now: datetime | None = None) -> None:
    """Create this period's and the next PERIODS_AHEAD periods' partitions; warn on stray rows."""
    if await conn.fetchval(SELECT_STORAGE) != "native":
        return
    width = await partition_width(conn)
    start = period_start(now or datetime.now(UTC), width)
    for _ in range(PERIODS_AHEAD[width] + 1):
        await conn.fetchval(ENSURE_PARTITION, start)
        start = next_period(start, width)
    stray = await conn.fetchval(COUNT_DEFAULT_PARTITION)
    if stray:
        logger.warning("%d readings sit in readings_default (a period whose partition could not be created)", stray)


async def drop_expired_readings(
    conn: asyncpg.Connection, retention_days: int | None, *, now: datetime | None = None
) -> list[str]:
    """Drop the raw readings partitions (or chunks) wholly older than the retention, once rolled up.

    Returns the names dropped. A partition whose hours still wait in rollup_queue is kept until
    a later run finds them rolled up; rollups and verdicts are never touched.
    """
    if retention_days is None:
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    storage = await conn.fetchval(SELECT_STORAGE)
    if storage == "timescaledb":
        return await _drop_chunks(conn, cutoff, retention_days)
    dropped: list[str] = []
    for part in await conn.fetch(SELECT_EXPIRED_PARTITIONS, cutoff):
        try:
            async with conn.transaction():
                await conn.fetchval(SET_LOCK_TIMEOUT, DROP_LOCK_TIMEOUT)
                await conn.execute(LOCK_READINGS)
                gone = await conn.fetchval(DROP_PARTITION, part["name"])
        except asyncpg.LockNotAvailableError:
            logger.info("retention: readings busy; partition %s left to the next run", part["name"])
            continue
        if gone:
            dropped.append(part["name"])
            logger.info(
                "retention: dropped readings partition %s (%s to %s), raw readings older than %d days; rollups kept",
                part["name"],
                part["lo"].isoformat(),
                part["hi"].isoformat(),
                retention_days,
            )
        else:
            logger.warning(
                "retention: partition %s is past retention but hours of it wait for their rollup; kept for now",
                part["name"],
            )
    return dropped


async def _drop_chunks(conn: asyncpg.Connection, cutoff: datetime, retention_days: int) -> list[str]:
    try:
        async with conn.transaction():
            await conn.fetchval(SET_LOCK_TIMEOUT, DROP_LOCK_TIMEOUT)
            await conn.execute(LOCK_READINGS_WRITES)
            ranges: dict[str, tuple[datetime, datetime]] = {}
            for chunk in await conn.fetch(SELECT_EXPIRED_CHUNKS, cutoff):
                if not await conn.fetchval(ROLLED_UP, chunk["lo"], chunk["hi"]):
                    logger.warning(
                        "retention: chunk %s is past retention but hours of it wait for their rollup; "
                        "it and later ones kept for now",
                        chunk["name"],
                    )
                    break
                ranges[chunk["name"]] = (chunk["lo"], chunk["hi"])
            if not ranges:
                return []
            until = max(hi for _, hi in ranges.values())
            dropped = [r[0] for r in await conn.fetch(DROP_CHUNKS, until)]
            spans = [ranges[name] for name in dropped if name in ranges]
            await conn.execute(DELETE_REVISIONS_IN, [lo for lo, _ in spans], [hi for _, hi in spans])
    except asyncpg.LockNotAvailableError:
        logger.info("retention: readings busy; chunks left to the next run")
        return []
    for name in dropped:
        lo, hi = ranges.get(name, (None, None))
        logger.info(
            "retention: dropped readings chunk %s (%s to %s), raw readings older than %d days; rollups kept",
            name,
            lo.isoformat() if lo else "?",
            hi.isoformat() if hi else "?",
            retention_days,
        )
    return dropped
