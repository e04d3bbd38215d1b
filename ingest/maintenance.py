"""Partition housekeeping (a periodic job, parkwatch/jobs.py): month partitions ahead of need, stray rows reported."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from ingest.store import ENSURE_PARTITION

logger = logging.getLogger(__name__)

# Partitions exist this many months ahead, so the writer's on-demand creation (a DDL lock on
# the parent table) is the exception for back-fill, not something every month begins with.
MONTHS_AHEAD = 2

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


async def ensure_partitions(conn: asyncpg.Connection, *, now: datetime | None = None) -> None:
    """Create this month's and the next MONTHS_AHEAD months' partitions; warn on stray rows."""
    if await conn.fetchval("SELECT value FROM parkwatch_meta WHERE key = 'storage'") != "native":
        return
    for start in _month_starts(now or datetime.now(UTC), MONTHS_AHEAD):
        await conn.fetchval(ENSURE_PARTITION, start)
    stray = await conn.fetchval(COUNT_DEFAULT_PARTITION)
    if stray:
        logger.warning("%d readings sit in readings_default (a month whose partition could not be created)", stray)
