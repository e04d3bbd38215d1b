"""Industrial solid waste: monthly reports in, their history and the parks' rates out (docs/kpis.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api import paging
from api.access import actor
from api.deps import ConnDep, PagerDep, PrincipalDep, SettingsDep, require
from api.errors import ApiError
from api.pagemodels import Page, page
from api.principals import Permission
from compliance import solidwaste
from compliance.delivery import local_today
from compliance.solidwaste import SolidWasteError
from compliance.solidwaste_rates import solid_waste_rates

router = APIRouter(prefix="/api/v1", tags=["solid-waste"])

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
PARK_EXISTS = "SELECT 1 FROM parks WHERE id = $1"


class ReportBody(BaseModel):
    """One month's report of a park, or of one of its enterprises.

    The report is recorded as the caller's key or user; `reported_by` names the person when a
    shared key reports.
    """

    park_id: str = Field(max_length=64)
    enterprise: str | None = Field(default=None, description="an enterprise of the park; omit for the park as a whole")
    month: str = Field(description="YYYY-MM", examples=["2025-01"])
    category: str = Field(description="general or hazardous")
    unit: str = Field(default="t", description="t, kg or 万t; every quantity is in this unit")
    generated: float
    utilised: float = Field(description="utilised this month, from this month's waste or from earlier stock")
    disposed: float = Field(description="disposed this month, from this month's waste or from earlier stock")
    stored: float = Field(description="put into storage this month")
    utilised_from_stock: float = Field(default=0.0, description="earlier stock utilised this month (part of utilised)")
    disposed_from_stock: float = Field(default=0.0, description="earlier stock disposed this month (part of disposed)")
    dumped: float = Field(default=0.0, description="discharged (丢弃/排放), normally 0")
    reported_by: str | None = Field(default=None, min_length=1, max_length=200)
    note: str | None = None


class StoredFields(BaseModel):
    """What a stored version of a report says, quantities in tonnes."""

    id: int
    park_id: str
    enterprise: str | None
    month: date
    category: str
    unit: Literal["t"]
    generated: float
    utilised: float
    disposed: float
    stored: float
    utilised_from_stock: float
    disposed_from_stock: float
    dumped: float
    reported_by: str
    reported_at: datetime
    note: str | None


class ReportOut(StoredFields):
    """A report as stored, quantities in tonnes."""

    replaced: bool = Field(description="this report replaced an earlier version, now in the history")


class SolidWastePage(Page):
    """A page of current reports, by month."""

    results: list[ReportOut]


class ReplacedOut(StoredFields):
    """A version that a correction replaced: what it said, who reported it, who replaced it and when."""

    replaced_by: str
    replaced_at: datetime


class HistoryPage(Page):
    """Replaced versions, newest replacement first."""

    results: list[ReplacedOut]


class CategoryRates(BaseModel):
    """The rates of one category of a park."""

    disposal_utilisation_rate: float | None
    comprehensive_utilisation_rate: float | None
    reasons: dict[str, str]
    inputs: dict[str, float]


class Rates(BaseModel):
    """A park's rates over a period, as fractions, with the summed tonnes behind them."""

    park_id: str
    city: str
    period: str
    period_start: date
    disposal_utilisation_rate: float | None = Field(description="处置利用率; null: see reasons")
    comprehensive_utilisation_rate: float | None = Field(description="综合利用率; null: see reasons")
    reasons: dict[str, str] = Field(description="why a rate is null, by its name")
    hazardous_dumped: bool | None = Field(description="hazardous waste dumped in the period; null: none reported")
    inputs: dict[str, float]
    categories: dict[str, CategoryRates]


class RatesList(BaseModel):
    """One row per park selected."""

    results: list[Rates]


def _refused(exc: SolidWasteError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.detail)


async def _known_park(conn: asyncpg.Connection, park_id: str | None) -> None:
    if park_id is not None and await conn.fetchval(PARK_EXISTS, park_id) is None:
        raise ApiError(404, "unknown_park", f"park {park_id[:64]!r} is not registered")


@router.post("/solid-waste", response_model=ReportOut, status_code=201, dependencies=[require(Permission.SOLID_WASTE)])
async def submit(conn: ConnDep, principal: PrincipalDep, settings: SettingsDep, body: ReportBody) -> dict[str, Any]:
    """Report one month; a second report of the same month replaces the first, which is kept in the history.

    422 with `unknown_unit`, `negative_quantity`, `identity_broken`, `stock_negative`, ... and nothing stored.
    """
    try:
        report = solidwaste.make_report(**{**body.model_dump(), "reported_by": actor(principal, body.reported_by)})
        stored = await solidwaste.submit_report(conn, report, today=local_today(settings.DEFAULT_TIMEZONE))
    except SolidWasteError as exc:
        raise _refused(exc) from None
    return stored.as_json()


def _month(text: str | None, name: str) -> date | None:
    try:
        return solidwaste.parse_month(text, name) if text is not None else None
    except SolidWasteError as exc:
        raise _refused(exc) from None


@router.get("/solid-waste", response_model=SolidWastePage)
async def list_reports(
    conn: ConnDep,
    pager: PagerDep,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    month_from: Annotated[str | None, Query(description="YYYY-MM, inclusive")] = None,
    month_to: Annotated[str | None, Query(description="YYYY-MM, inclusive")] = None,
    enterprise: Annotated[str | None, Query(max_length=64, description="an enterprise, or - for park-level")] = None,
    category: Annotated[Literal["general", "hazardous"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """The current reports, by month, paged by cursor."""
    await _known_park(conn, park_id)
    lo, hi = _month(month_from, "month_from"), _month(month_to, "month_to")
    fp = paging.fingerprint(park_id, lo, hi, enterprise, category)
    after = None
    if cursor:
        month, report_id = pager.decode(cursor, fp, (str, int))
        after = (date.fromisoformat(month), report_id)  # signed by us: a date we wrote
    rows = await solidwaste.list_reports(
        conn,
        park_id=park_id,
        month_from=lo,
        month_to=hi,
        enterprise=enterprise,
        category=category,
        after=after,
        limit=limit + 1,
    )
    shown = rows[:limit]
    next_cursor = pager.encode(fp, (shown[-1].report.month.isoformat(), shown[-1].id)) if len(rows) > limit else None
    return page([r.as_json() for r in shown], limit, next_cursor)


@router.get("/solid-waste/history", response_model=HistoryPage)
async def history(
    conn: ConnDep,
    pager: PagerDep,
    park_id: Annotated[str, Query(max_length=64)],
    month: Annotated[str | None, Query(description="YYYY-MM; omit for every month")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Versions that corrections replaced, newest replacement first: what each said and who replaced it when."""
    await _known_park(conn, park_id)
    first = _month(month, "month")
    fp = paging.fingerprint(park_id, first)
    (before,) = pager.decode(cursor, fp, (int,)) if cursor else (None,)
    rows = await solidwaste.report_history(conn, park_id=park_id, month=first, before=before, limit=limit + 1)
    shown = rows[:limit]
    next_cursor = pager.encode(fp, (shown[-1].id,)) if len(rows) > limit else None
    return page([r.as_json() for r in shown], limit, next_cursor)


@router.get("/solid-waste/rates", response_model=RatesList)
async def rates(
    conn: ConnDep,
    settings: SettingsDep,
    period: Literal["month", "quarter", "year"] = "month",
    on: Annotated[
        str | None,
        Query(alias="date", description="a day of the period, YYYY-MM-DD (default: today)"),
    ] = None,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    city: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Disposal-and-utilisation and comprehensive utilisation rates per park, with the tonnes behind them."""
    today = local_today(settings.DEFAULT_TIMEZONE)
    try:
        day = date.fromisoformat(on) if on is not None else today
    except ValueError:
        raise ApiError(422, "bad_date", f"date {(on or '')[:40]!r} is not YYYY-MM-DD") from None
    if not date(2000, 1, 1) <= day <= date(2100, 1, 1):
        raise ApiError(422, "bad_date", "date must fall between 2000-01-01 and 2100-01-01")
    await _known_park(conn, park_id)
    rows = await solid_waste_rates(conn, period=period, on=day, park_id=park_id, city=city, today=today)
    return {"results": [r.as_json() for r in rows]}
