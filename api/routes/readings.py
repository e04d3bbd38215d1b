"""Readings as stored, with keyset paging; and the revisions kept beside them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import paging, params
from api.deps import ConnDep, PagerDep, SettingsDep
from api.errors import ApiError
from api.pagemodels import BAD_CURSOR, INVALID, Instant, Named, Page, errors, page, parameter_names, unit_of
from api.responses import ORJSONResponse
from api.routes.rollups import rollup_page
from api.timeparams import bounds, iso_utc
from schemas.parameters import catalog
from schemas.readings import INTERVAL_NAMES, INTERVALS
from schemas.stations import StationKind

router = APIRouter(prefix="/api/v1", tags=["readings"])

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000

SELECT_STATIONS = """
SELECT sid, id, park_id, kind, timezone FROM stations
WHERE id = any($1::text[]) OR park_id = $2 ORDER BY sid
"""
SELECT_PARAMETER_IDS = "SELECT code, pid FROM parameters WHERE code = any($1::text[])"
SELECT_PARAMETER_CODES = "SELECT pid, code FROM parameters WHERE pid = any($1::smallint[])"
SELECT_SERIES = """
SELECT sid, pid, iv FROM series
WHERE sid = any($1::integer[])
  AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND ($3::smallint IS NULL OR iv = $3)
ORDER BY sid, pid, iv
"""
# One series at a time walks the primary key (sid, pid, iv, ts) as a single range scan.
SELECT_SERIES_PAGE = """
SELECT ts, value, flag, vmin, vmax, cou, zs FROM readings
WHERE sid = $1 AND pid = $2 AND iv = $3 AND ts >= $4 AND ts < $5 AND ts > $6
ORDER BY ts
LIMIT $7
"""
SELECT_REVISED_TS = """
SELECT DISTINCT ts FROM reading_revisions
WHERE sid = $1 AND pid = $2 AND iv = $3 AND ts >= $4 AND ts <= $5
"""
# Keyset paging by the revision's id: the order it was received in.
SELECT_REVISIONS = """
SELECT v.id, v.sid, v.pid, v.iv, v.ts, v.value, v.flag, v.received_at, v.recorded_at,
       r.value AS stored_value, r.flag AS stored_flag, r.received_at AS stored_received_at
FROM reading_revisions v
LEFT JOIN readings r USING (sid, pid, iv, ts)
WHERE v.sid = any($1::integer[]) AND v.ts >= $2 AND v.ts < $3
  AND ($4::smallint[] IS NULL OR v.pid = any($4::smallint[]))
  AND v.id > $5
ORDER BY v.id
LIMIT $6
"""

NEG_INF = datetime(1, 1, 2, tzinfo=UTC)

Interval = Literal["rtd", "min", "hour", "day"]


class Reading(Named):
    """One stored value of a station's parameter at one time."""

    station_id: str
    interval: Interval
    ts: Instant = Field(description="UTC")
    ts_local: Instant = Field(description="the station's local time")
    value: float | None
    unit: str | None
    flag: str | None = Field(description="HJ 212 data flag (N, C, M, ...)")
    min: float | None = Field(description="HJ 212 interval data: the period's minimum; null otherwise")
    max: float | None = Field(description="HJ 212 interval data: the period's maximum; null otherwise")
    cou: float | None = Field(description="HJ 212 interval data: the cumulative amount (Cou); null otherwise")
    zs: float | None = Field(description="HJ 212: the converted (折算) value the logger reported; null otherwise")
    revised: bool = Field(description="a different value or flag was received later (see /readings/revisions)")


class HourCoverage(BaseModel):
    """What a clock hour held against what it should."""

    expected_minutes: int
    observed_minutes: int
    valid_minutes: int
    valid: bool = Field(description="the hour counts as a valid hourly value (≥ 45 valid minutes, or water: one)")


class DayCoverage(BaseModel):
    """What a local day held against what it should."""

    expected_hours: int
    observed_hours: int
    valid_hours: int


class _Rollup(Named):
    station_id: str
    ts: Instant = Field(description="UTC start")
    ts_local: Instant = Field(description="local start")
    value: float | None = Field(description="the mean of the valid values")
    unit: str | None
    min: float | None
    max: float | None
    count: int = Field(description="values observed")
    valid_count: int = Field(description="valid values")


class HourRollup(_Rollup):
    """A local clock hour of a parameter (interval=hour, source=rollup)."""

    interval: Literal["hour"]
    over_range_count: int
    source: str = Field(description="the interval the hour was made of (rtd, min)")
    coverage: HourCoverage


class DayRollup(_Rollup):
    """A local day of a parameter (interval=day, source=rollup)."""

    interval: Literal["day"]
    date: str = Field(json_schema_extra={"format": "date"})
    value_flow_weighted: float | None = Field(description="water: Σ(C·Q)/ΣQ of the valid hours")
    coverage: DayCoverage


class ReadingPage(Page):
    """A page of readings, or of hourly or daily rollups."""

    results: list[Reading | HourRollup | DayRollup]


class RevisionValue(BaseModel):
    """A value as received."""

    value: float | None
    flag: str | None
    received_at: Instant | None


class Revision(Named):
    """A later, different value of a stored key, beside the stored one."""

    station_id: str
    interval: Interval
    ts: Instant
    ts_local: Instant
    unit: str | None
    stored: RevisionValue
    revision: RevisionValue


class RevisionPage(Page):
    """A page of revisions, in the order they were received."""

    results: list[Revision]


ERRORS = errors(
    {
        400: BAD_CURSOR,
        404: "unknown_station, unknown_park (also one outside the caller's scope)",
        422: f"missing_filter (neither station_id nor park_id), unknown_parameter, bad_time; {INVALID}",
    }
)


@dataclass(frozen=True)
class _Station:
    sid: int
    id: str
    kind: StationKind
    tz: ZoneInfo


async def _stations(conn: asyncpg.Connection, station_ids: list[str], park_id: str | None) -> list[_Station]:
    if not station_ids and park_id is None:
        raise ApiError(422, "missing_filter", "give station_id (one or more) or park_id")
    rows = await conn.fetch(SELECT_STATIONS, station_ids, park_id)
    found = {r["id"] for r in rows}
    missing = [s for s in station_ids if s not in found]
    if missing:
        raise ApiError(404, "unknown_station", f"not registered: {', '.join(missing)}")
    if park_id is not None and not rows:
        exists = await conn.fetchval("SELECT 1 FROM parks WHERE id = $1", park_id)
        if not exists:
            raise ApiError(404, "unknown_park", f"park {park_id!r} is not registered")
    return [_Station(r["sid"], r["id"], StationKind(r["kind"]), ZoneInfo(r["timezone"])) for r in rows]


async def _parameter_ids(conn: asyncpg.Connection, names: list[str]) -> list[int] | None:
    if not names:
        return None
    codes = []
    for name in names:
        code = catalog().resolve_any(name)
        codes.append(code or name)
    rows = {r["code"]: r["pid"] for r in await conn.fetch(SELECT_PARAMETER_IDS, codes)}
    unknown = [n for n, c in zip(names, codes, strict=True) if c not in rows]
    if unknown:
        raise ApiError(422, "unknown_parameter", f"unknown parameter code or alias: {', '.join(unknown)}")
    return [rows[c] for c in codes]


def _named_rollups(body: dict[str, Any]) -> dict[str, Any]:
    """Rollup rows with the parameter's names beside its code, from the catalogue in memory.

    About 1 ms a 1,000 rows: the two leading keys fix the order, the row's own values follow.
    """
    rows = []
    for row in body["results"]:
        english, chinese = parameter_names(row["parameter"])
        rows.append(
            {"station_id": None, "parameter": None, "parameter_name": english, "parameter_name_zh": chinese, **row}
        )
    return {"results": rows, "next_cursor": body["next_cursor"]}


# /readings answers an ORJSONResponse built from plain dicts: FastAPI would otherwise validate every
# row through pydantic first, a fifth of the time a 10,000-row page takes. ReadingPage documents the
# body in the OpenAPI document (responses=), and tests/test_api_contract.py checks the two agree.
@router.get("/readings", response_class=ORJSONResponse, responses={200: {"model": ReadingPage}, **ERRORS})
async def get_readings(
    conn: ConnDep,
    settings: SettingsDep,
    pager: PagerDep,
    station_id: Annotated[
        list[str] | None, Query(description="one or more station ids (repeat or comma-separate)")
    ] = None,
    park_id: Annotated[str | None, Query(description="every station of this park")] = None,
    parameter: Annotated[list[str] | None, Query(description="HJ 212 codes or aliases (cod, pm25, ...)")] = None,
    interval: Interval | None = None,
    source: Annotated[
        Literal["rollup", "reported"],
        Query(
            description="interval=hour|day: parkwatch's rollups with coverage (rollup), or the values the "
            "station itself reported for that interval (reported)"
        ),
    ] = "rollup",
    start: Annotated[str | None, Query(description="ISO 8601; without an offset, the station's local time")] = None,
    end: Annotated[str | None, Query(description="exclusive; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> ORJSONResponse:
    """Stored readings, ordered by station, parameter, interval and time.

    The value of each key is the first one received; `revised` marks keys for which a different
    value or flag was received later (see /api/v1/readings/revisions). With interval=hour or day,
    the rows are the hourly and daily rollups (local clock hours and days) with their coverage:
    what was expected, observed and valid.
    """
    stations = await _stations(conn, params.split(station_id) or [], park_id)
    pids = await _parameter_ids(conn, params.split(parameter) or [])
    tz = stations[0].tz if len(stations) == 1 else ZoneInfo(settings.DEFAULT_TIMEZONE)
    iv = INTERVALS[interval] if interval else None
    fp = paging.fingerprint(sorted(s.sid for s in stations), pids, iv, source, start, end, tz.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, tz)
    if interval in ("hour", "day") and source == "rollup":
        rollups = await rollup_page(
            conn,
            stations=list(stations),
            pids=pids,
            interval=interval,
            lo=lo,
            hi=hi,
            limit=limit,
            cursor=cursor,
            fp=fp,
            pager=pager,
        )
        named = _named_rollups(rollups)
        return ORJSONResponse(page(named["results"], limit, named["next_cursor"]))
    position = pager.decode(cursor, fp, (int, int, int, datetime)) if cursor else None

    by_sid = {s.sid: s for s in stations}
    series = await conn.fetch(SELECT_SERIES, list(by_sid), pids, iv)
    codes = {r["pid"]: r["code"] for r in await conn.fetch(SELECT_PARAMETER_CODES, list({s["pid"] for s in series}))}
    results: list[dict[str, Any]] = []
    next_cursor = None
    for s in series:
        key = (s["sid"], s["pid"], s["iv"])
        after = NEG_INF
        if position is not None:
            if key < position[:3]:
                continue
            if key == position[:3]:
                after = position[3]
        want = limit - len(results)
        rows = await conn.fetch(SELECT_SERIES_PAGE, *key, lo, hi, after, want + 1)
        if not rows:
            continue
        page_rows = rows[:want]
        station = by_sid[key[0]]
        code = codes[key[1]]
        # names and unit once a series, from the catalogue in memory: nothing added per row but two keys
        english, chinese = parameter_names(code)
        unit = unit_of(code, station.kind)
        revised = {r["ts"] for r in await conn.fetch(SELECT_REVISED_TS, *key, page_rows[0]["ts"], page_rows[-1]["ts"])}
        interval_name = INTERVAL_NAMES[key[2]]
        for r in page_rows:
            ts = r["ts"]
            results.append(
                {
                    "station_id": station.id,
                    "parameter": code,
                    "parameter_name": english,
                    "parameter_name_zh": chinese,
                    "interval": interval_name,
                    "ts": iso_utc(ts),
                    "ts_local": ts.astimezone(station.tz).isoformat(),
                    "value": r["value"],
                    "unit": unit,
                    "flag": r["flag"],
                    # HJ 212 interval data: period minimum, maximum, cumulative amount (Cou), and
                    # the converted (折算) value the logger reported; null otherwise
                    "min": r["vmin"],
                    "max": r["vmax"],
                    "cou": r["cou"],
                    "zs": r["zs"],
                    "revised": ts in revised,
                }
            )
        if len(results) >= limit:
            last = page_rows[-1]["ts"]
            more_here = len(rows) > want
            more_later = any(tuple(x) > key for x in series)
            if more_here or more_later:
                next_cursor = pager.encode(fp, (*key, last.astimezone(UTC)), (lo, hi))
            break
    return ORJSONResponse(page(results, limit, next_cursor))


# As /readings: through RevisionPage, a 10,000-row page would take several times longer to render.
@router.get("/readings/revisions", response_class=ORJSONResponse, responses={200: {"model": RevisionPage}, **ERRORS})
async def get_revisions(
    conn: ConnDep,
    settings: SettingsDep,
    pager: PagerDep,
    station_id: Annotated[list[str] | None, Query(description="station ids (repeat or comma-separate)")] = None,
    park_id: Annotated[str | None, Query(description="every station of this park")] = None,
    parameter: Annotated[list[str] | None, Query(description="HJ 212 codes or aliases")] = None,
    start: Annotated[str | None, Query(description="readings at or after; ISO 8601 (local if no offset)")] = None,
    end: Annotated[str | None, Query(description="readings before; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> ORJSONResponse:
    """Values received for an already-stored key that differed from the stored one, in the order received."""
    stations = await _stations(conn, params.split(station_id) or [], park_id)
    pids = await _parameter_ids(conn, params.split(parameter) or [])
    tz = stations[0].tz if len(stations) == 1 else ZoneInfo(settings.DEFAULT_TIMEZONE)
    fp = paging.fingerprint("revisions", sorted(s.sid for s in stations), pids, start, end, tz.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, tz)
    (after,) = pager.decode(cursor, fp, (int,)) if cursor else (0,)
    by_sid = {s.sid: s for s in stations}
    rows = await conn.fetch(SELECT_REVISIONS, list(by_sid), lo, hi, pids, after, limit + 1)
    page_rows = rows[:limit]
    codes = {r["pid"]: r["code"] for r in await conn.fetch(SELECT_PARAMETER_CODES, list({r["pid"] for r in rows}))}
    results = []
    for r in page_rows:
        station = by_sid[r["sid"]]
        code = codes[r["pid"]]
        english, chinese = parameter_names(code)
        results.append(
            {
                "station_id": station.id,
                "parameter": code,
                "parameter_name": english,
                "parameter_name_zh": chinese,
                "interval": INTERVAL_NAMES[r["iv"]],
                "ts": iso_utc(r["ts"]),
                "ts_local": r["ts"].astimezone(station.tz).isoformat(),
                "unit": unit_of(code, station.kind),
                "stored": {
                    "value": r["stored_value"],
                    "flag": r["stored_flag"],
                    "received_at": iso_utc(r["stored_received_at"]) if r["stored_received_at"] else None,
                },
                "revision": {
                    "value": r["value"],
                    "flag": r["flag"],
                    "received_at": iso_utc(r["received_at"]),
                },
            }
        )
    next_cursor = pager.encode(fp, (page_rows[-1]["id"],), (lo, hi)) if len(rows) > limit else None
    return ORJSONResponse(page(results, limit, next_cursor))
