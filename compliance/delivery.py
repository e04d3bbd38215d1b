"""Data-delivery rates per station, park and city: transmission, validity and effective transmission.

The figures regulators rank stations by (传输率, 有效率, 有效传输率; docs/kpis.md):

- transmission rate = received / expected;
- validity rate = valid / received;
- effective transmission rate = valid / expected (their product).

Counted in minutes of each declared parameter, from the rollups the compliance worker keeps
current (whole days from rollup_day, which sums its hours' minutes; the day under way from
rollup_hour): a minute record covers its MinInterval, a station's hourly record its hour, a
real-time value its minute; valid means flagged N (compliance/store.py AGGREGATE_HOURS). The
expected minutes run from the period's start (local time) to its end, or to the last complete
hour of a period still under way; minutes flagged M or C (maintenance, calibration) are taken
out of both expected and received. A park or a city adds its stations' minutes before dividing,
so a station counts by how much it should deliver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import asyncpg

Period = Literal["day", "month", "quarter", "year"]
Level = Literal["station", "park", "city", "province"]
# Called as progress(stage, done, total) by the long computations, for a command line's bar.
Progress = Callable[[str, int, int], None]
PERIOD_INTERVAL: dict[str, str] = {"day": "1 day", "month": "1 month", "quarter": "3 months", "year": "1 year"}

# Per station: its declared parameters, the period's local bounds (cut at the last complete hour
# for a period under way), and the minutes its rollups cover there.
# Per station: its declared parameters, the period's local bounds (cut at the last complete hour
# for a period under way), and the minutes its rollups cover there: whole days from rollup_day,
# the hours of the day the cut falls in from rollup_hour.
STATION_MINUTES = """
WITH st AS (
    SELECT s.sid, s.id, s.park_id, p.city, s.timezone, array_agg(sp.pid) AS pids,
           ($1::date)::timestamp AT TIME ZONE s.timezone AS lo,
           least((($1::date) + $2::text::interval)::timestamp AT TIME ZONE s.timezone, date_trunc('hour', now())) AS hi
    FROM stations s
    JOIN parks p ON p.id = s.park_id
    JOIN station_parameters sp ON sp.sid = s.sid
    WHERE ($3::text IS NULL OR s.park_id = $3) AND ($4::text IS NULL OR p.city = $4)
      AND ($5::text IS NULL OR s.id = $5)
    GROUP BY s.sid, p.city
), cut AS (
    SELECT st.*, greatest(lo, date_trunc('day', hi AT TIME ZONE timezone) AT TIME ZONE timezone) AS hi_day FROM st
)
SELECT c.id AS station_id, c.park_id, c.city, c.lo AS period_start, cardinality(c.pids) AS parameters,
       (cardinality(c.pids) * greatest(0, extract(epoch FROM c.hi - c.lo) / 60))::bigint AS expected,
       (d.received + h.received)::bigint AS received,
       (d.valid + h.valid)::bigint AS valid,
       (d.maintenance + h.maintenance)::bigint AS maintenance
FROM cut c
CROSS JOIN LATERAL (
    SELECT coalesce(sum(r.observed_minutes), 0) AS received, coalesce(sum(r.valid_minutes), 0) AS valid,
           coalesce(sum(r.maintenance_minutes), 0) AS maintenance
    FROM rollup_day r
    WHERE r.sid = c.sid AND r.pid = any(c.pids) AND r.day >= $1::date AND r.day_start < c.hi_day
) d
CROSS JOIN LATERAL (
    SELECT coalesce(sum(r.observed_minutes), 0) AS received, coalesce(sum(r.valid_minutes), 0) AS valid,
           coalesce(sum(r.maintenance_minutes), 0) AS maintenance
    FROM rollup_hour r
    WHERE r.sid = c.sid AND r.pid = any(c.pids) AND r.hour >= c.hi_day AND r.hour < c.hi
) h
ORDER BY c.park_id, c.id
"""


@dataclass
class Delivery:
    """One row: whose figures, over which period, and the minutes behind them."""

    level: Level
    id: str
    park_id: str | None
    city: str | None
    period: Period
    period_start: str
    expected: int = 0
    received: int = 0
    valid: int = 0
    maintenance: int = 0
    stations: int = 0
    parameters: int = 0

    def figures(self) -> dict[str, float | None]:
        """The three rates as fractions; None when nothing was expected (or received)."""
        return {
            "transmission_rate": _ratio(min(self.received, self.expected), self.expected),
            "validity_rate": _ratio(self.valid, self.received),
            "effective_transmission_rate": _ratio(min(self.valid, self.expected), self.expected),
        }

    def inputs(self) -> dict[str, int]:
        """The minutes behind the rates."""
        return {
            "expected_minutes": self.expected,
            "received_minutes": self.received,
            "valid_minutes": self.valid,
            "maintenance_minutes": self.maintenance,
            "stations": self.stations,
            "parameters": self.parameters,
        }


def local_today(zone: str) -> date:
    """Today in a time zone: the day a period "under way" is counted to (not the host's date)."""
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


def period_start(period: Period, on: date) -> date:
    """The first day of the period that holds `on`."""
    if period == "day":
        return on
    if period == "month":
        return on.replace(day=1)
    if period == "quarter":
        return on.replace(month=(on.month - 1) // 3 * 3 + 1, day=1)
    return on.replace(month=1, day=1)


def period_end(period: Period, start: date) -> date:
    """The first day after the period that starts on `start`."""
    months = {"day": 0, "month": 1, "quarter": 3, "year": 12}[period]
    if not months:
        return date.fromordinal(start.toordinal() + 1)
    month = start.month - 1 + months
    return start.replace(year=start.year + month // 12, month=month % 12 + 1)


async def delivery(
    conn: asyncpg.Connection,
    *,
    period: Period,
    on: date,
    level: Level = "park",
    park_id: str | None = None,
    city: str | None = None,
    station_id: str | None = None,
) -> list[Delivery]:
    """The rates of every station, park or city selected, for the period that holds `on`."""
    start = period_start(period, on)
    rows = await conn.fetch(STATION_MINUTES, start, PERIOD_INTERVAL[period], park_id, city, station_id)
    groups: dict[str, Delivery] = {}
    for r in rows:
        key = {"station": r["station_id"], "park": r["park_id"], "city": r["city"], "province": "province"}[level]
        row = groups.get(key)
        if row is None:
            row = groups[key] = Delivery(
                level=level,
                id=key,
                park_id=r["park_id"] if level in ("station", "park") else None,
                city=r["city"] if level != "province" else None,
                period=period,
                period_start=start.isoformat(),
            )
        # Maintenance and calibration (flags M, C) is neither expected nor delivered.
        row.expected += max(0, r["expected"] - r["maintenance"])
        row.received += max(0, r["received"] - r["maintenance"])
        row.valid += r["valid"]
        row.maintenance += r["maintenance"]
        row.stations += 1
        row.parameters += r["parameters"]
    return list(groups.values())


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
