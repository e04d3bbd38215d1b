"""Readings partition periods in UTC (a day, an ISO week from Monday, a month), as migration 0020 cuts them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import asyncpg

Width = Literal["day", "week", "month"]

SELECT_WIDTH = "SELECT value FROM parkwatch_meta WHERE key = 'readings_partition'"
# A database not yet migrated to 0020 was partitioned by month.
LEGACY_WIDTH: Width = "month"
# The shortest period of each width: two instants less than this apart are in the same period
# or in two neighbouring ones, never further apart (a month is 28 days at least).
SHORTEST = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=28)}


def period_start(ts: datetime, width: Width) -> datetime:
    """The start (UTC) of the period of `width` that holds ts."""
    day = ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if width == "day":
        return day
    if width == "week":
        return day - timedelta(days=day.weekday())  # ISO 8601: weeks begin on Monday
    return day.replace(day=1)


def next_period(start: datetime, width: Width) -> datetime:
    """The start of the period after the one that begins at `start`."""
    if width == "day":
        return start + timedelta(days=1)
    if width == "week":
        return start + timedelta(days=7)
    return (start.replace(day=1) + timedelta(days=32)).replace(day=1)


def period_starts(stamps: set[datetime], width: Width) -> set[datetime]:
    """The starts of every period that holds one of the stamps."""
    if not stamps:
        return set()
    lo, hi = min(stamps), max(stamps)
    if hi - lo < SHORTEST[width]:
        # No whole period lies between the two ends: their periods are all there are.
        return {period_start(lo, width), period_start(hi, width)}
    return {period_start(ts, width) for ts in stamps}


async def partition_width(conn: asyncpg.Connection) -> Width:
    """The width the database's readings are partitioned by."""
    value = await conn.fetchval(SELECT_WIDTH)
    return cast(Width, value) if value in SHORTEST else LEGACY_WIDTH
