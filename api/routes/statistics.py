"""Statistics the KPIs rest on: ambient annual figures, the ultra-low monthly test, HJ 75 substitutes (docs/kpis.md)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api import paging, params
from api.deps import ConnDep, PagerDep
from api.errors import ApiError
from api.pagemodels import Page, page
from compliance.statistics import StatisticsError, ambient_annual, ultra_low
from compliance.substitution import RULES, Capture, HourLoad, SubstitutionError, substituted_loads

router = APIRouter(prefix="/api/v1", tags=["statistics"])

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# Years a statistic may name: monitoring data begin in 2000 (schemas/readings.py).
FIRST_YEAR, LAST_YEAR = 2000, 2100
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")

SELECT_STATION = "SELECT kind FROM stations WHERE id = $1"
SELECT_PARK = "SELECT 1 FROM parks WHERE id = $1"


class Judged(BaseModel):
    """A figure judged against its limit: the verdict, the limit and the clause that decided."""

    verdict: str
    parameter: str | None = None
    period: str | None = None
    limit: float | list[float] | None = None
    unit: str | None = None
    value: float | None = None
    value_judged: float | None = None
    exceedance_multiple: float | None = None
    rule: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)


class MonthCapture(BaseModel):
    """One month's valid daily values against GB 3095 Table 4 (null: the month runs and may still pass)."""

    month: str
    valid_days: int
    required: int
    passes: bool | None


class YearCapture(BaseModel):
    """GB 3095 Table 4's data-capture test of a year (year_passes null for the year to date)."""

    valid_days: int
    required_days: int
    year_passes: bool | None
    months: list[MonthCapture]
    failing_months: list[str]
    met: bool


class PercentileOut(BaseModel):
    """HJ 663's percentile of the valid daily values."""

    p: int
    value: float | None
    period: str = Field(description="the limit it is judged against: 24h, or 8h for O3's daily maximum 8 h")
    method: str


class AmbientPollutant(BaseModel):
    """One pollutant's year: valid daily values, annual mean (SO2, NO2, PM10, PM2.5), percentile, capture."""

    parameter: str
    unit: str | None
    valid_days: int
    annual_mean: float | None
    percentile: PercentileOut
    capture: YearCapture
    annual_mean_verdict: Judged | None
    percentile_verdict: Judged | None


class DaySpan(BaseModel):
    """The local days covered."""

    first_day: date
    last_day: date


class AmbientStation(BaseModel):
    """An ambient station's annual (or year-to-date) statistics."""

    model_config = ConfigDict(populate_by_name=True)

    station_id: str
    park_id: str
    city: str
    year: int
    span: DaySpan
    complete_year: bool
    standard: str | None
    class_: str | None = Field(alias="class")
    pollutants: list[AmbientPollutant]


class AmbientPage(Page):
    """A page of stations, by station id."""

    results: list[AmbientStation]


class UltraLowPollutant(BaseModel):
    """A pollutant's month: judged hours, those within the ultra-low limit, the share against the programme's."""

    parameter: str
    limit: float
    unit: str
    hours_in_month: int = Field(description="hours of the month so far")
    valid_hours: int = Field(description="hours judged compliant or exceedance (O2-corrected)")
    hours_within: int
    share: float | None
    required_share: float
    passes: bool | None


class UltraLowStation(BaseModel):
    """A stack judged by an ultra-low programme, for one local month."""

    model_config = ConfigDict(populate_by_name=True)

    station_id: str
    park_id: str
    month: str
    final: bool = Field(description="false while the month runs")
    standard: str
    class_: str = Field(alias="class")
    rule: dict[str, Any]
    pollutants: list[UltraLowPollutant]


class UltraLowPage(Page):
    """A page of stacks, by station id."""

    results: list[UltraLowStation]


class HourLoadOut(BaseModel):
    """One hour's load; `substituted` marks an HJ 75 substitute and `rule` names it."""

    start: datetime
    status: str = Field(description="measured, substituted, shutdown (0 kg) or unknown (no reference)")
    substituted: bool
    load_kg: float | None
    concentration: float | None
    flow_m3_h: float | None
    rule: str | None
    gap_hours: int | None
    reference_hours: int | None


class QuarterCapture(BaseModel):
    """The quarter's capture rate α = (hours − shut-down − invalid) / (hours − shut-down)."""

    start: datetime
    end: datetime
    hours: int
    shutdown_hours: int
    invalid_hours: int
    alpha: float | None


class Substitution(BaseModel):
    """A stack pollutant's hourly loads over a quarter, with HJ 75 substitutes and the totals."""

    station_id: str
    parameter: str
    quarter: str
    capture: QuarterCapture | None
    rules: dict[str, str]
    totals: dict[str, Any]
    hours: list[HourLoadOut]


async def _check_filters(
    conn: asyncpg.Connection, station_id: str | None, park_id: str | None, kind: str, cursor: str | None
) -> None:
    """404/422 for a station or park that is not there, or a station of the wrong kind."""
    if station_id is not None and cursor is None:
        found = await conn.fetchval(SELECT_STATION, station_id)
        if found is None:
            raise ApiError(404, "unknown_station", f"station {station_id!r} is not registered")
        if found != kind:
            raise ApiError(422, "wrong_station_kind", f"station {station_id!r} is a {found}, not a {kind}")
    if park_id is not None and cursor is None and not await conn.fetchval(SELECT_PARK, park_id):
        raise ApiError(404, "unknown_park", f"park {park_id!r} is not registered")


@router.get("/statistics/ambient-annual", response_model=AmbientPage)
async def get_ambient_annual(
    conn: ConnDep,
    pager: PagerDep,
    year: Annotated[int, Query(ge=FIRST_YEAR, le=LAST_YEAR, description="calendar year; the current one to date")],
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    city: Annotated[str | None, Query(max_length=64)] = None,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="stations per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Annual mean, HJ 663 percentile and GB 3095 data capture per ambient station and pollutant, judged."""
    if date(year, 1, 1) > datetime.now(UTC).date() + timedelta(days=1):
        raise ApiError(422, "future_year", f"no day of {year} has ended yet")
    await _check_filters(conn, station_id, park_id, "ambient_air", cursor)
    fp = paging.fingerprint("ambient-annual", year, station_id, city, park_id)
    after = pager.decode(cursor, fp, (str,))[0] if cursor else ""
    try:
        rows = await ambient_annual(
            conn, year=year, station_id=station_id, park_id=park_id, city=city, after=after, limit=limit + 1
        )
    except StatisticsError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    more = len(rows) > limit
    rows = rows[:limit]
    return page(rows, limit, pager.encode(fp, (rows[-1]["station_id"],)) if more else None)


@router.get("/statistics/ultra-low", response_model=UltraLowPage)
async def get_ultra_low(
    conn: ConnDep,
    pager: PagerDep,
    month: Annotated[str, Query(max_length=7, description="local month, YYYY-MM")],
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="stations per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """The share of a month's judged hours within the ultra-low hourly limits, per stack and pollutant, against 95 %."""
    match = MONTH.match(month)
    if match is None or not 1 <= int(match[2]) <= 12 or not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
        raise ApiError(422, "bad_month", f"month {month!r} is not YYYY-MM (years {FIRST_YEAR}-{LAST_YEAR})")
    first = date(int(match[1]), int(match[2]), 1)
    if first > datetime.now(UTC).date() + timedelta(days=1):
        raise ApiError(422, "future_month", f"{month} has not begun")
    await _check_filters(conn, station_id, park_id, "stack", cursor)
    fp = paging.fingerprint("ultra-low", month, station_id, park_id)
    after = pager.decode(cursor, fp, (str,))[0] if cursor else ""
    try:
        rows = await ultra_low(conn, month=first, station_id=station_id, park_id=park_id, after=after, limit=limit + 1)
    except StatisticsError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    if station_id is not None and not rows and cursor is None:
        raise ApiError(422, "not_ultra_low", f"station {station_id!r} is not judged by a programme with a monthly test")
    more = len(rows) > limit
    rows = rows[:limit]
    return page(rows, limit, pager.encode(fp, (rows[-1]["station_id"],)) if more else None)


@router.get("/statistics/cems-substitution", response_model=Substitution)
async def get_cems_substitution(
    conn: ConnDep,
    station_id: Annotated[str, Query(max_length=64)],
    parameter: Annotated[str, Query(max_length=64, description="HJ 212 code or alias")],
    quarter: Annotated[str, Query(max_length=7, description="local quarter, YYYY-Qn")],
) -> dict[str, Any]:
    """Every hour's load of a stack pollutant over a quarter, invalid hours substituted per HJ 75-2017."""
    match = QUARTER.match(quarter)
    if match is None or not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
        raise ApiError(422, "bad_quarter", f"quarter {quarter!r} is not YYYY-Qn (years {FIRST_YEAR}-{LAST_YEAR})")
    [code] = params.codes([parameter]) or [parameter]
    first = date(int(match[1]), (int(match[2]) - 1) * 3 + 1, 1)
    try:
        loads = await substituted_loads(conn, station_id=station_id, code=code, quarter_start=first)
    except SubstitutionError as exc:
        raise ApiError(404 if exc.code == "unknown_station" else 422, exc.code, str(exc)) from None
    q = loads.quarters[0] if loads.quarters else None
    return {
        "station_id": station_id,
        "parameter": code,
        "quarter": quarter,
        "capture": None if q is None else _capture(q),
        "rules": RULES,
        "totals": loads.totals(),
        "hours": [_hour(h) for h in loads.hours],
    }


def _capture(q: Capture) -> dict[str, Any]:
    return {
        "start": q.start,
        "end": q.end,
        "hours": q.hours,
        "shutdown_hours": q.shutdown_hours,
        "invalid_hours": q.invalid_hours,
        "alpha": None if q.alpha is None else round(float(q.alpha), 6),
    }


def _hour(h: HourLoad) -> dict[str, Any]:
    return {
        "start": h.start,
        "status": h.status,
        "substituted": h.status == "substituted",
        "load_kg": h.load_kg,
        "concentration": h.concentration,
        "flow_m3_h": h.flow_m3_h,
        "rule": h.rule,
        "gap_hours": h.gap_hours,
        "reference_hours": h.reference_hours,
    }
