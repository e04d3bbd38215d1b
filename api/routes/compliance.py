"""Verdicts, AQI, the catalogue of standards and what-if evaluation."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from api import paging, params
from api.deps import ConnDep, PagerDep, SettingsDep
from api.errors import ApiError
from api.pagemodels import BAD_CURSOR, INVALID, Instant, Named, Page, errors, names, page, unit_of
from api.responses import ORJSONResponse
from api.timeparams import bounds, iso_utc
from compliance.aqi import LABELS as AQI_LABELS
from compliance.aqi_reports import AQI_CODES
from compliance.evaluate import evaluate
from schemas.catalogue import CatalogError, Limit, Standard, catalogue
from schemas.stations import StationKind

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
# Keyset paging over (window_start, sid): with the period, the table's primary key.
SELECT_AQI = """
SELECT * FROM aqi
WHERE sid = any($1::integer[]) AND period = $2 AND window_start >= $3 AND window_start < $4
  AND (window_start, sid) > ($5, $6)
ORDER BY window_start, sid
LIMIT $7
"""
FIRST = (datetime(1, 1, 2, tzinfo=UTC), -1, -1, "", "")
FIRST_AQI = (datetime(1, 1, 2, tzinfo=UTC), -1)

# Verdict coverage as /readings names it: the worker stores `minutes_valid`, `hours_expected`, ...
# (compliance/windows.py, compliance/assess.py); the API says `valid_minutes`, `expected_hours`, as
# the rollups do, and `count`/`valid_count` for the values as the rollup rows do. Keys not listed
# (source, o2_valid, flow_weighted) pass as they are.
COVERAGE_NAMES = {
    "minutes_expected": "expected_minutes",
    "minutes_observed": "observed_minutes",
    "minutes_valid": "valid_minutes",
    "minutes_required": "required_minutes",
    "values": "count",
    "values_valid": "valid_count",
    "values_over_range": "over_range_count",
    "hours_expected": "expected_hours",
    "hours_observed": "observed_hours",
    "hours_valid": "valid_hours",
    "hours_required": "required_hours",
    "windows_expected": "expected_windows",
    "windows_valid": "valid_windows",
    "windows_required": "required_windows",
    "hours_required_per_window": "required_hours_per_window",
}

Limits = float | tuple[float, float] | None


class VerdictCoverage(BaseModel):
    """What the window held against what it needed; the names are those of /readings' coverage.

    Which keys appear depends on the window: an hour (minutes), a day or 24 h (hours), O3's 8 h
    (windows).
    """

    model_config = ConfigDict(extra="allow")

    source: str | None = Field(default=None, description="hours: the interval the hour was made of (rtd, min)")
    expected_minutes: int | None = None
    observed_minutes: int | None = None
    valid_minutes: int | None = None
    required_minutes: int | None = Field(default=None, description="valid minutes an hour needs (45)")
    count: int | None = Field(default=None, description="values observed")
    valid_count: int | None = Field(default=None, description="valid values")
    over_range_count: int | None = Field(default=None, description="over-range values (T)")
    o2_valid: bool | None = Field(default=None, description="stacks: a valid hourly O2 for the correction")
    expected_hours: int | None = None
    observed_hours: int | None = None
    valid_hours: int | None = None
    required_hours: int | None = Field(default=None, description="valid hours the window needs")
    flow_weighted: bool | None = Field(default=None, description="water: the day's value is flow-weighted")
    expected_windows: int | None = None
    valid_windows: int | None = None
    required_windows: int | None = None
    required_hours_per_window: int | None = None


class Verdict(Named):
    """One judged window of one station's parameter."""

    station_id: str
    park_id: str
    window: str = Field(description="hour (stacks), day (water), 1h, 8h, 24h (ambient air)")
    window_start: Instant
    window_end: Instant
    window_start_local: Instant
    verdict: Literal["compliant", "exceedance", "insufficient_data"]
    value: float | None
    value_judged: float | None = Field(description="after corrections (O2), in the limit's unit")
    limit: Limits = Field(description="a maximum, or a [low, high] range (pH)")
    unit: str | None = Field(description="the unit of value_judged and limit")
    exceedance_multiple: float | None = Field(description="(C − limit)/limit")
    standard: str | None
    class_: str | None = Field(alias="class")
    rule: dict[str, Any] = Field(description="the clause that decided: table, item, note, confidence")
    coverage: VerdictCoverage
    notes: list[str]
    closed: bool = Field(description="false while the window is still running")
    revision: int = Field(description="how many times late data changed the window")
    judged_at: Instant
    verdict_since: Instant = Field(description="when the window took its current verdict: when parkwatch knew")


class VerdictPage(Page):
    """A page of verdicts, oldest window first."""

    results: list[Verdict]


class AqiPollutant(Named):
    """One pollutant an AQI indexes: its HJ 633 name, the parameter measured, the concentration and IAQI."""

    pollutant: str = Field(description="HJ 633 input: so2, so2_24h, no2, co, pm10, pm25, o3_1h, o3_8h")
    label: str = Field(description="as HJ 633 names it in primary pollutant lists (PM2.5, O3, ...)")
    unit: str | None = Field(description="the concentration's unit (µg/m³; CO mg/m³)")
    concentration: float | None
    iaqi: int | None


class AqiRow(BaseModel):
    """One station's HJ 633 AQI report of an hour (1h) or a day (24h)."""

    station_id: str
    park_id: str
    period: Literal["1h", "24h"]
    window_start: Instant
    window_end: Instant
    window_start_local: Instant
    standard: str
    aqi: int | None
    level: str | None
    category: str | None
    color: str | None
    primary: list[str] = Field(description="primary pollutants (首要污染物)")
    iaqi: dict[str, int | None] = Field(description="IAQI by pollutant (null: not available)")
    concentrations: dict[str, float | None] = Field(description="the concentrations indexed, by pollutant")
    pollutants: list[AqiPollutant] = Field(description="the same, each with its parameter's names and unit")
    notes: list[str]
    closed: bool


class AqiPage(Page):
    """A page of AQI reports, oldest first."""

    results: list[AqiRow]


class StandardSummary(BaseModel):
    """The catalogue line of an edition."""

    id: str
    family: str
    number: str
    title: str
    title_en: str
    medium: str
    effective_from: str = Field(json_schema_extra={"format": "date"})
    effective_to: str | None = Field(json_schema_extra={"format": "date"})
    classes: list[str]


class StandardList(BaseModel):
    """Every edition in the catalogue."""

    results: list[StandardSummary]


class NamedLimit(Limit):
    """A limit row with its parameter's names (`unit` is the limit's)."""

    parameter_name: str | None = Field(description="English name; null for a code outside the HJ 212 tables")
    parameter_name_zh: str | None = Field(description="Chinese name (中文名称)")


class StandardOut(Standard):
    """One edition in full."""

    limits: list[NamedLimit] = Field(default_factory=list)  # type: ignore[assignment]


class LimitAnswer(BaseModel):
    """A what-if judged against a limit."""

    model_config = ConfigDict(extra="allow")

    verdict: str
    parameter: str
    parameter_name: str | None
    parameter_name_zh: str | None
    period: str
    limit: Limits
    unit: str | None
    value: float | None
    value_judged: float | None
    exceedance_multiple: float | None
    rule: dict[str, Any]
    notes: list[str]
    date: str = Field(json_schema_extra={"format": "date"})


class AqiAnswer(BaseModel):
    """A what-if AQI."""

    model_config = ConfigDict(extra="allow")

    standard: str
    period: str
    aqi: int | None
    iaqi: dict[str, int | None]
    level: str | None
    level_roman: str | None
    category: str | None
    category_en: str | None
    color: str | None
    color_en: str | None
    rgb: list[int] | None
    primary: list[str]
    exceeding: list[str]
    notes: list[str]
    date: str = Field(json_schema_extra={"format": "date"})


class AnswerError(BaseModel):
    """A question that cannot be answered as asked."""

    error: str = Field(description="bad_request, bad_period, bad_date, bad_value, unknown_standard, ...")
    message: str


Answer = LimitAnswer | AqiAnswer | AnswerError


class Answers(BaseModel):
    """One answer per question, in order."""

    results: list[Answer]


PAGE_ERRORS = errors(
    {
        400: BAD_CURSOR,
        404: "unknown_station, unknown_park (also one outside the caller's scope)",
        422: f"missing_filter (neither station_id nor park_id), unknown_parameter, bad_time; {INVALID}",
    }
)


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


def _coverage(stored: str) -> dict[str, Any]:
    return {COVERAGE_NAMES.get(k, k): v for k, v in orjson.loads(stored).items()}


@lru_cache(maxsize=64)
def _pollutant(key: str) -> tuple[tuple[str, Any], ...]:
    """What does not change of an AQI input: its label, the parameter it is measured as, names, unit."""
    code = AQI_CODES.get(key)
    named = names(code) if code else {"parameter": None, "parameter_name": None, "parameter_name_zh": None}
    unit = unit_of(code, StationKind.AMBIENT_AIR) if code else None
    return (("pollutant", key), ("label", AQI_LABELS.get(key, key)), *named.items(), ("unit", unit))


def _pollutants(iaqi: dict[str, int | None], concentrations: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each pollutant indexed, with the parameter it is measured as, its names and unit."""
    return [
        {**dict(_pollutant(key)), "concentration": concentrations.get(key), "iaqi": iaqi.get(key)}
        for key in [*iaqi, *(k for k in concentrations if k not in iaqi)]
    ]


# /compliance and /aqi answer an ORJSONResponse of plain dicts, as /readings does: through their
# models, 10,000 verdicts took 290 ms to validate and render instead of 10 ms, 10,000 AQI reports
# 990 ms instead of 12 ms. VerdictPage and AqiPage document the bodies (responses=), and
# tests/test_api_contract.py validates real pages against them.
@router.get("/compliance", response_class=ORJSONResponse, responses={200: {"model": VerdictPage}, **PAGE_ERRORS})
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
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> ORJSONResponse:
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
    page_rows = rows[:limit]
    results = []
    for r in page_rows:
        station = stations[r["sid"]]
        local = ZoneInfo(station["timezone"])
        results.append(
            {
                "station_id": station["id"],
                "park_id": station["park_id"],
                **names(r["code"]),
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
                "coverage": _coverage(r["coverage"]),
                "notes": orjson.loads(r["notes"]),
                "closed": r["closed"],
                "revision": r["revision"],
                "judged_at": iso_utc(r["judged_at"]),
                "verdict_since": iso_utc(r["verdict_since"]),
            }
        )
    next_cursor = None
    if len(rows) > limit:
        last = page_rows[-1]
        next_cursor = pager.encode(
            fp, (last["window_start"], last["sid"], last["pid"], last["window_kind"], last["standard"]), (lo, hi)
        )
    return ORJSONResponse(page(results, limit, next_cursor))


@router.get("/aqi", response_class=ORJSONResponse, responses={200: {"model": AqiPage}, **PAGE_ERRORS})
async def get_aqi(
    conn: ConnDep,
    settings: SettingsDep,
    pager: PagerDep,
    station_id: Annotated[list[str] | None, Query(description="station ids (repeat or comma-separate)")] = None,
    park_id: Annotated[str | None, Query(description="every station of this park")] = None,
    period: Annotated[
        Literal["1h", "24h"], Query(description="1h: the real-time (hourly) report; 24h: the daily report")
    ] = "24h",
    start: Annotated[
        str | None, Query(description="reports starting at or after; ISO 8601 (local if no offset)")
    ] = None,
    end: Annotated[str | None, Query(description="reports starting before; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> ORJSONResponse:
    """HJ 633 AQI of ambient stations, oldest first: AQI, IAQI per pollutant, level, category, colour, primary."""
    stations = await _stations(conn, params.split(station_id) or [], park_id)
    zone = _zone(stations, settings.DEFAULT_TIMEZONE)
    fp = paging.fingerprint("aqi", sorted(stations), period, start, end, zone.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, zone)
    position = pager.decode(cursor, fp, (datetime, int)) if cursor else FIRST_AQI
    rows = await conn.fetch(SELECT_AQI, list(stations), period, lo, hi, *position, limit + 1)
    page_rows = rows[:limit]
    results = []
    for r in page_rows:
        station = stations[r["sid"]]
        iaqi = orjson.loads(r["iaqi"])
        concentrations = orjson.loads(r["concentrations"])
        results.append(
            {
                "station_id": station["id"],
                "park_id": station["park_id"],
                "period": r["period"],
                "window_start": iso_utc(r["window_start"]),
                "window_end": iso_utc(r["window_end"]),
                "window_start_local": r["window_start"].astimezone(ZoneInfo(station["timezone"])).isoformat(),
                "standard": r["standard"],
                "aqi": r["aqi"],
                "level": r["level"],
                "category": r["category"],
                "color": r["color"],
                "primary": list(r["primary_pollutants"]),
                "iaqi": iaqi,
                "concentrations": concentrations,
                "pollutants": _pollutants(iaqi, concentrations),
                "notes": orjson.loads(r["notes"]),
                "closed": r["closed"],
            }
        )
    next_cursor = None
    if len(rows) > limit:
        last = page_rows[-1]
        next_cursor = pager.encode(fp, (last["window_start"], last["sid"]), (lo, hi))
    return ORJSONResponse(page(results, limit, next_cursor))


@router.get("/standards", response_model=StandardList)
async def list_standards() -> dict[str, Any]:
    """Every standard edition in the catalogue."""
    return {"results": [s.summary() for s in sorted(catalogue().by_id.values(), key=lambda s: s.id)]}


@router.get("/standards/{ident}", response_model=StandardOut, responses=errors({404: "unknown_standard"}))
async def show_standard(ident: str) -> StandardOut:
    """One edition in full, each limit with its parameter's names (an id without its year: the one in force)."""
    try:
        standard = catalogue().resolve(ident, datetime.now(UTC).date())
    except CatalogError as exc:
        raise ApiError(404, "unknown_standard", str(exc)) from None
    doc = standard.model_dump(by_alias=True)
    doc["limits"] = [{**limit, **names(limit["parameter"])} for limit in doc["limits"]]
    return StandardOut.model_validate(doc)


def _named_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A limit answer with its parameter's names (AQI answers and errors have no parameter)."""
    code = answer.get("parameter")
    return {**answer, **names(code)} if isinstance(code, str) and "verdict" in answer else answer


@router.post(
    "/evaluate",
    response_model=Answer | Answers,
    responses=errors({413: f"too_large (a body over 1 MiB); too_many (over {MAX_EVALUATE:,} questions)"}),
)
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
        return {"results": [_named_answer(evaluate(doc)) for doc in body]}
    return _named_answer(evaluate(body))
