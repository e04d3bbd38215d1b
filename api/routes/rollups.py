"""Hourly and daily rollups as readings (`/api/v1/readings?interval=hour|day`), coverage on every row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from api.paging import Pager
from api.timeparams import iso_utc
from compliance.windows import HOUR_MIN_MINUTES, SOURCE_NAMES
from schemas.parameters import catalog
from schemas.stations import StationKind

# Keyset paging over the primary keys: (sid, pid, hour) and (sid, pid, day).
SELECT_HOURS = """
SELECT sid, pid, hour AS t, source_iv, n_observed, n_valid, n_over_range, observed_minutes, valid_minutes,
       avg, vmin, vmax
FROM rollup_hour
WHERE sid = any($1::integer[]) AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND hour >= $3 AND hour < $4 AND (sid, pid, hour) > ($5, $6, $7)
ORDER BY sid, pid, hour
LIMIT $8
"""
SELECT_DAYS = """
SELECT sid, pid, day_start AS t, day, hours_expected, hours_observed, hours_valid, n_observed, n_valid, avg,
       avg_flow_weighted, vmin, vmax
FROM rollup_day
WHERE sid = any($1::integer[]) AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND day_start >= $3 AND day_start < $4 AND (sid, pid, day_start) > ($5, $6, $7)
ORDER BY sid, pid, day_start
LIMIT $8
"""
SELECT_CODES = "SELECT pid, code FROM parameters WHERE pid = any($1::smallint[])"
FIRST = (-1, -1, datetime(1, 1, 2, tzinfo=UTC))


class Station(Protocol):
    """What the readings route knows of a station."""

    @property
    def sid(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> StationKind: ...
    @property
    def tz(self) -> Any: ...


async def rollup_page(
    conn: asyncpg.Connection,
    *,
    stations: list[Station],
    pids: list[int] | None,
    interval: str,
    lo: datetime,
    hi: datetime,
    limit: int,
    cursor: str | None,
    fp: str,
    pager: Pager,
) -> dict[str, Any]:
    """One page of hourly or daily rollups, ordered by station, parameter and time."""
    by_sid = {s.sid: s for s in stations}
    position = pager.decode(cursor, fp, (int, int, datetime)) if cursor else FIRST
    query = SELECT_HOURS if interval == "hour" else SELECT_DAYS
    rows = await conn.fetch(query, list(by_sid), pids, lo, hi, *position, limit + 1)
    codes = {r["pid"]: r["code"] for r in await conn.fetch(SELECT_CODES, list({r["pid"] for r in rows}))}
    page = rows[:limit]
    results = []
    units: dict[tuple[int, int], str | None] = {}
    # A station's parameters share their hours: each hour is formatted once, not once a parameter.
    stamps: dict[tuple[int, datetime], tuple[str, str]] = {}
    for r in page:
        station = by_sid[r["sid"]]
        code = codes[r["pid"]]
        unit_key = (r["sid"], r["pid"])
        if unit_key not in units:
            param = catalog().by_code.get(code)
            units[unit_key] = (param.unit_for(station.kind) or None) if param else None
        t = r["t"]
        stamp = stamps.get((station.sid, t))
        if stamp is None:
            stamp = stamps[(station.sid, t)] = (iso_utc(t), t.astimezone(station.tz).isoformat())
        common: dict[str, Any] = {
            "station_id": station.id,
            "parameter": code,
            "interval": interval,
            "ts": stamp[0],
            "ts_local": stamp[1],
            "value": r["avg"],
            "unit": units[unit_key],
            "min": r["vmin"],
            "max": r["vmax"],
            "count": r["n_observed"],
            "valid_count": r["n_valid"],
        }
        common.update(_hour(r, station) if interval == "hour" else _day(r))
        results.append(common)
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = pager.encode(fp, (last["sid"], last["pid"], last["t"]), (lo, hi))
    return {"results": results, "next_cursor": next_cursor}


def _hour(r: asyncpg.Record, station: Station) -> dict[str, Any]:
    water = station.kind in (StationKind.WASTEWATER_OUTLET, StationKind.WASTEWATER_INLET)
    valid = r["n_valid"] > 0 if water else r["valid_minutes"] >= HOUR_MIN_MINUTES
    return {
        "over_range_count": r["n_over_range"],
        "source": SOURCE_NAMES.get(r["source_iv"], str(r["source_iv"])),
        "coverage": {
            "expected_minutes": 60,
            "observed_minutes": r["observed_minutes"],
            "valid_minutes": r["valid_minutes"],
            # the hour counts as a valid hourly value: ≥ 45 valid minutes (HJ 75, GB 3095 Table 4),
            # or, at a water outlet, one valid analyser value
            "valid": valid,
        },
    }


def _day(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "date": r["day"].isoformat(),
        "value_flow_weighted": r["avg_flow_weighted"],
        "coverage": {
            "expected_hours": r["hours_expected"],
            "observed_hours": r["hours_observed"],
            "valid_hours": r["hours_valid"],
        },
    }
