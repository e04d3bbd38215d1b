"""Verdicts, AQI, the catalogue of standards and what-if evaluation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from fastapi import APIRouter, Body, Query

from api import paging, params
from api.deps import ConnDep, PagerDep, SettingsDep
from api.errors import ApiError
from api.timeparams import bounds, iso_utc
from compliance.evaluate import evaluate
from schemas.catalogue import CatalogError, catalogue

router = APIRouter(prefix="/api/v1", tags=["compliance"])

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
# One POST /evaluate answers at most this many questions (a day of hourly what-ifs is 24).
MAX_EVALUATE = 1_000

SELECT_STATIONS = """
SELECT sid, id, park_id, timezone FROM stations
WHERE id = any($1::text[]) OR park_id = $2 ORDER BY sid
"""
SELECT_VERDICTS = """
SELECT v.*, p.code FROM verdicts v JOIN parameters p USING (pid)
WHERE v.sid = any($1::integer[])
  AND v.window_start >= $2 AND v.window_start < $3
  AND ($4::text[] IS NULL OR p.code = any($4::text[]))
  AND ($5::text[] IS NULL OR v.verdict = any($5::text[]))
  AND ($6::text[] IS NULL OR v.window_kind = any($6::text[]))
  AND (v.window_start, v.sid, v.pid, v.window_kind, v.standard) > ($7, $8, $9, $10, $11)
ORDER BY v.window_start, v.sid, v.pid, v.window_kind, v.standard
LIMIT $12
"""
SELECT_AQI = """
SELECT * FROM aqi
WHERE sid = any($1::integer[]) AND period = $2 AND window_start >= $3 AND window_start < $4
ORDER BY window_start, sid
LIMIT $5
"""
FIRST = (datetime(1, 1, 2, tzinfo=UTC), -1, -1, "", "")


async def _stations(conn: asyncpg.Connection, station_ids: list[str], park_id: str | None) -> dict[int, asyncpg.Record]:
    if not station_ids and park_id is None:
        raise ApiError(422, "missing_filter", "give station_id (one or more) or park_id")
    rows = await conn.fetch(SELECT_STATIONS, station_ids, park_id)
    missing = sorted(set(station_ids) - {r["id"] for r in rows})
    if missing:
        raise ApiError(404, "unknown_station", f"not registered: {', '.join(missing)}")
    if park_id is not None and not rows and not await conn.fetchval("SELECT 1 FROM parks WHERE id = $1", park_id):
        raise ApiError(404, "unknown_park", f"park {park_id!r} is not registered")
    return {r["sid"]: r for r in rows}


def _zone(stations: dict[int, asyncpg.Record], default: str) -> ZoneInfo:
    """Times without an offset are read in the station's zone, or the default for several stations."""
    only = next(iter(stations.values())) if len(stations) == 1 else None
    return ZoneInfo(only["timezone"] if only is not None else default)


@router.get("/compliance")
async def get_compliance(
    conn: ConnDep,
    settings: SettingsDep,
    pager: PagerDep,
    station_id: Annotated[list[str] | None, Query(description="station ids (repeat or comma-separate)")] = None,
    park_id: Annotated[str | None, Query(description="every station of this park")] = None,
    parameter: Annotated[list[str] | None, Query(description="HJ 212 codes or aliases")] = None,
    verdict: Annotated[
        list[Literal["compliant", "exceedance", "insufficient_data"]] | None, Query(description="only these verdicts")
    ] = None,
    window: Annotated[
        list[Literal["hour", "day", "1h", "8h", "24h"]] | None,
        Query(description="only these windows: hour (stacks), day (water), 1h, 8h, 24h (ambient air)"),
    ] = None,
    start: Annotated[
        str | None, Query(description="windows starting at or after; ISO 8601 (local if no offset)")
    ] = None,
    end: Annotated[str | None, Query(description="windows starting before; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Judged windows, oldest first: the value judged, the limit, the clause that decided, the coverage.

    A window is re-judged when late data change it (`revision` counts the changes); `closed` is
    false while the window is still running.
    """
    stations = await _stations(conn, params.split(station_id) or [], park_id)
    zone = _zone(stations, settings.DEFAULT_TIMEZONE)
    codes = params.codes(params.split(parameter))
    verdicts = list(verdict) if verdict else None
    windows = list(window) if window else None
    fp = paging.fingerprint(sorted(stations), codes, verdicts, windows, start, end, zone.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, zone)
    position = pager.decode(cursor, fp, (datetime, int, int, str, str)) if cursor else FIRST
    rows = await conn.fetch(SELECT_VERDICTS, list(stations), lo, hi, codes, verdicts, windows, *position, limit + 1)
    page = rows[:limit]
    results = []
    for r in page:
        station = stations[r["sid"]]
        local = ZoneInfo(station["timezone"])
        results.append(
            {
                "station_id": station["id"],
                "park_id": station["park_id"],
                "parameter": r["code"],
                "window": r["window_kind"],
                "window_start": iso_utc(r["window_start"]),
                "window_end": iso_utc(r["window_end"]),
                "window_start_local": r["window_start"].astimezone(local).isoformat(),
                "verdict": r["verdict"],
                "value": r["value"],
                "value_judged": r["value_judged"],
                "limit": orjson.loads(r["limit_value"]) if r["limit_value"] is not None else None,
                "unit": r["unit"],
                "exceedance_multiple": r["exceedance_multiple"],
                "standard": r["standard"],
                "class": r["class"],
                "rule": orjson.loads(r["rule"]),
                "coverage": orjson.loads(r["coverage"]),
                "notes": orjson.loads(r["notes"]),
                "closed": r["closed"],
                "revision": r["revision"],
                "judged_at": iso_utc(r["judged_at"]),
                "verdict_since": iso_utc(r["verdict_since"]),
            }
        )
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = pager.encode(
            fp, (last["window_start"], last["sid"], last["pid"], last["window_kind"], last["standard"]), (lo, hi)
        )
    return {"results": results, "next_cursor": next_cursor}


@router.get("/aqi")
async def get_aqi(
    conn: ConnDep,
    settings: SettingsDep,
    station_id: Annotated[list[str] | None, Query()] = None,
    park_id: str | None = None,
    period: Annotated[
        Literal["1h", "24h"], Query(description="1h: the real-time (hourly) report; 24h: the daily report")
    ] = "24h",
    start: str | None = None,
    end: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """HJ 633 AQI of ambient stations: AQI, IAQI per pollutant, level, category, colour, primary pollutants."""
    stations = await _stations(conn, params.split(station_id) or [], park_id)
    lo, hi = bounds(start, end, _zone(stations, settings.DEFAULT_TIMEZONE))
    rows = await conn.fetch(SELECT_AQI, list(stations), period, lo, hi, limit)
    return {
        "results": [
            {
                "station_id": stations[r["sid"]]["id"],
                "park_id": stations[r["sid"]]["park_id"],
                "period": r["period"],
                "window_start": iso_utc(r["window_start"]),
                "window_end": iso_utc(r["window_end"]),
                "window_start_local": r["window_start"]
                .astimezone(ZoneInfo(stations[r["sid"]]["timezone"]))
                .isoformat(),
                "standard": r["standard"],
                "aqi": r["aqi"],
                "level": r["level"],
                "category": r["category"],
                "color": r["color"],
                "primary": list(r["primary_pollutants"]),
                "iaqi": orjson.loads(r["iaqi"]),
                "concentrations": orjson.loads(r["concentrations"]),
                "notes": orjson.loads(r["notes"]),
                "closed": r["closed"],
            }
            for r in rows
        ]
    }


@router.get("/standards")
async def list_standards() -> dict[str, Any]:
    """Every standard edition in the catalogue."""
    return {"results": [s.summary() for s in sorted(catalogue().by_id.values(), key=lambda s: s.id)]}


@router.get("/standards/{ident}")
async def show_standard(ident: str) -> dict[str, Any]:
    """One edition in full (an id without its year gives the edition in force today)."""
    try:
        standard = catalogue().resolve(ident, datetime.now(UTC).date())
    except CatalogError as exc:
        raise ApiError(404, "unknown_standard", str(exc)) from None
    return standard.model_dump(mode="json", exclude_none=True)


@router.post("/evaluate")
async def post_evaluate(
    body: Annotated[
        dict[str, Any] | list[Any],
        Body(
            description="one question, or a list of them; the same keys as `parkwatch evaluate`",
            examples=[
                {
                    "standard": "GB4915-2013",
                    "class": "kiln",
                    "parameter": "a21026",
                    "period": "hour",
                    "value": 180,
                    "date": "2026-06-01",
                    "context": {"o2_pct": 12},
                }
            ],
        ),
    ],
) -> Any:
    """What-if evaluation: each question gets a verdict with its rule, or an error naming the problem."""
    if isinstance(body, list):
        if len(body) > MAX_EVALUATE:
            raise ApiError(413, "too_many", f"at most {MAX_EVALUATE} questions per request")
        return {"results": [evaluate(doc) for doc in body]}
    return evaluate(body)
