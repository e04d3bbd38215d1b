"""Daily and monthly reports (日报, 月报) of a park or the province, as JSON, printable HTML or XLSX (docs/kpis.md)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, cast

import asyncpg
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api import paging
from api.access import require_whole
from api.deps import ConnDep, PagerDep, PoolDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.pagemodels import Page, page
from api.principals import Permission, Principal
from api.routes.kpis import CapRow
from compliance.delivery import local_today
from compliance.report_labels import Lang
from compliance.report_render import MEDIA_TYPES, Format, filename, render
from compliance.report_store import list_reports, obtain, parse_period
from compliance.reports import Kind, ReportError, Scope
from parkwatch.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["reports"])

MAX_LIMIT = 1_000
# A page that only ever shows itself: no script, no request elsewhere, its own inline styles.
HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
FORMATS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPES["html"].split(";")[0]: {}, MEDIA_TYPES["xlsx"]: {}}, "description": "the report"}
}


class ParkRef(BaseModel):
    """A park the report covers."""

    id: str
    name: str
    city: str


class KpiLine(BaseModel):
    """A park's headline figures (fractions) with its targets and shortfalls; or the province's (no targets)."""

    level: Literal["park", "province"]
    park_id: str | None
    park_name: str | None
    city: str | None
    figures: dict[str, float | None] = Field(description="transmission_rate … solid_waste_utilisation_rate")
    removal_efficiency: dict[str, float | None] | None
    reasons: dict[str, list[str]] = Field(description="why a figure is null")
    targets: dict[str, float] | None
    shortfalls: dict[str, dict[str, float]]


class ExceedanceLine(BaseModel):
    """A closed window judged in exceedance, in its station's local time."""

    model_config = ConfigDict(populate_by_name=True)

    park_id: str
    station_id: str
    station_name: str | None
    parameter: str
    parameter_name: str | None
    window_kind: str
    window_start: datetime
    window_end: datetime
    value: float | None = Field(description="the value judged (after O2 correction), in the limit's unit")
    measured: float | None
    limit: float | list[float] | None = Field(description="a number, or [low, high] for a range (pH)")
    unit: str | None
    multiple: float | None = Field(description="(value − limit) / limit")
    standard: str
    class_: str = Field(alias="class")


class AlertLine(BaseModel):
    """An alert whose condition began in the period, with its handling."""

    id: int
    park_id: str | None
    station_id: str | None
    station_name: str | None
    parameter: str | None
    parameter_name: str | None
    rule: str
    family: str
    severity: str
    status: str
    first_seen: datetime
    raised_at: datetime
    late: bool
    occurrences: int
    value: float | None
    limit: float | None
    unit: str | None
    multiple: float | None
    acked_at: datetime | None
    acked_by: str | None
    ack_minutes: float | None = Field(description="raised → acknowledged")
    cleared_at: datetime | None
    clear_reason: str | None
    clear_minutes: float | None = Field(description="raised → cleared")
    verification: str | None
    verified_by: str | None
    explanation_state: Literal["given", "overdue", "due"] | None = Field(description="null: none is asked for")
    explanation_due_at: datetime | None
    explanation: str | None
    explained_at: datetime | None
    review: str | None


class AlertCount(BaseModel):
    """Alerts of one family and severity."""

    family: str
    severity: str
    count: int
    acknowledged: int
    cleared: int
    explanations_overdue: int


class Indicator(BaseModel):
    """One assessment indicator of a park."""

    value: float | None
    target: float | None
    score: float | None
    weight: float
    source: str


class RankLine(BaseModel):
    """A park's place in the assessment."""

    park_id: str
    park_name: str
    city: str
    status: str
    score: float | None
    rank: int | None
    city_rank: int | None
    yellow_card: bool
    card_reasons: list[str]
    missing: list[str]
    indicators: dict[str, Indicator]


class Ranking(BaseModel):
    """The month's assessment: the rules, how many parks, and the report's parks."""

    period_start: date
    weights: dict[str, float]
    tie_break: list[str]
    parks: int
    ranked: int
    results: list[RankLine]


class Report(BaseModel):
    """A report's content: what the HTML and XLSX forms show."""

    version: int
    kind: Kind
    park_id: str | None = Field(description="null: the province")
    park: ParkRef | None
    parks: list[ParkRef]
    period_start: date
    period_end: date = Field(description="the period's last day")
    timezone: str
    generated_at: datetime
    complete: bool = Field(description="false: the period is under way and its figures partial (not stored)")
    data_changed_since: bool | None = Field(
        default=None, description="a stored report: its period's data changed after it was issued (refresh for current)"
    )
    kpis: list[KpiLine]
    exceedances: list[ExceedanceLine]
    alerts: list[AlertLine]
    alert_counts: list[AlertCount]
    caps: list[CapRow]
    caps_as_of: datetime
    assessment: Ranking | None = Field(description="monthly reports")


class StoredReport(BaseModel):
    """A stored report, with links to each of its forms."""

    id: int
    kind: Kind
    scope: Literal["park", "province"]
    park_id: str | None
    park_name: str | None
    period_start: date
    generated_at: datetime
    generated_by: Literal["schedule", "request"]
    exceedances: int
    alerts: int
    links: dict[str, str]


class StoredReportPage(Page):
    """Stored reports, newest period first."""

    results: list[StoredReport]


def _answer(content: dict[str, Any], fmt: Format, lang: Lang) -> Any:
    if fmt == "json":
        return content
    data = render(content, fmt, lang)
    if fmt == "html":
        return Response(data, media_type=MEDIA_TYPES["html"], headers={"Content-Security-Policy": HTML_POLICY})
    disposition = f'attachment; filename="{filename(content, fmt)}"'
    return Response(data, media_type=MEDIA_TYPES["xlsx"], headers={"Content-Disposition": disposition})


async def _report(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    principal: Principal,
    settings: Settings,
    kind: Kind,
    on: date,
    park_id: str | None,
    refresh: bool,
) -> dict[str, Any]:
    await require_whole(conn, principal, park_id)
    if refresh and not principal.may(Permission.REPORTS_REFRESH):
        # remaking an issued report replaces it: a change, the bureau's to make (and audited, with who)
        raise ApiError(403, "forbidden", f"the role {principal.role} may not remake a stored report (refresh)")
    try:
        # Made from every station of the park or province (the caller sees it whole; checked above).
        async with pool.acquire() as owner:
            return await obtain(
                cast("asyncpg.Connection", owner),
                settings,
                Scope.of(kind, on, park_id),
                refresh=refresh,
            )
    except ReportError as exc:
        raise ApiError(404 if exc.code == "unknown_park" else 422, exc.code, exc.detail) from None


FormatQuery = Annotated[Format, Query(alias="format", description="json, html (printable) or xlsx")]
LangQuery = Annotated[Lang, Query(description="headings in Chinese (zh) or English (en)")]
RefreshQuery = Annotated[bool, Query(description="make it again from the current data, replacing the stored one")]
ParkQuery = Annotated[str | None, Query(max_length=64, description="a park; omit for the province")]


@router.get("/reports/daily", response_model=Report, responses=FORMATS_DOC)
async def get_daily(
    conn: ConnDep,
    pool: PoolDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    on: Annotated[str | None, Query(alias="date", description="YYYY-MM-DD, local (default: yesterday)")] = None,
    park_id: ParkQuery = None,
    fmt: FormatQuery = "json",
    lang: LangQuery = "zh",
    refresh: RefreshQuery = False,
) -> Any:
    """A park's (or the province's) daily report: stored once the day is over, made on demand until then."""
    if on is None:
        day = local_today(settings.DEFAULT_TIMEZONE) - timedelta(days=1)
    else:
        try:
            day = parse_period("daily", on)
        except ValueError as exc:
            raise ApiError(422, "bad_date", f"date {exc}") from None
    return _answer(await _report(conn, pool, principal, settings, "daily", day, park_id, refresh), fmt, lang)


@router.get("/reports/monthly", response_model=Report, responses=FORMATS_DOC)
async def get_monthly(
    conn: ConnDep,
    pool: PoolDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    month: Annotated[str | None, Query(description="YYYY-MM (default: last month)")] = None,
    park_id: ParkQuery = None,
    fmt: FormatQuery = "json",
    lang: LangQuery = "zh",
    refresh: RefreshQuery = False,
) -> Any:
    """A park's (or the province's) monthly report, with the month's assessment and yellow cards."""
    if month is None:
        first = local_today(settings.DEFAULT_TIMEZONE).replace(day=1) - timedelta(days=1)
    elif len(month) != 7:
        raise ApiError(422, "bad_month", f"month {month[:40]!r} is not YYYY-MM")
    else:
        try:
            first = parse_period("monthly", month)
        except ValueError as exc:
            raise ApiError(422, "bad_month", f"month {exc}") from None
    return _answer(await _report(conn, pool, principal, settings, "monthly", first, park_id, refresh), fmt, lang)


@router.get("/reports", response_model=StoredReportPage)
async def get_reports(
    conn: ConnDep,
    pager: PagerDep,
    kind: Kind | None = None,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    scope: Annotated[Literal["park", "province"] | None, Query(description="park reports, or the province's")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """The stored reports, newest period first, paged by cursor."""
    fp = paging.fingerprint("reports", kind, park_id, scope)
    before = pager.decode(cursor, fp, (str, int)) if cursor else None
    position = (date.fromisoformat(before[0]), before[1]) if before else None
    rows = await list_reports(conn, kind=kind, park_id=park_id, scope=scope, before=position, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    for r in rows:
        r["scope"] = "province" if r["park_id"] is None else "park"
        r["links"] = _links(r)
    next_cursor = pager.encode(fp, (rows[-1]["period_start"].isoformat(), rows[-1]["id"])) if more else None
    return page(rows, limit, next_cursor)


def _links(r: dict[str, Any]) -> dict[str, str]:
    start: date = r["period_start"]
    query = f"date={start.isoformat()}" if r["kind"] == "daily" else f"month={start.isoformat()[:7]}"
    if r["park_id"] is not None:
        query += f"&park_id={r['park_id']}"
    return {fmt: f"/api/v1/reports/{r['kind']}?{query}&format={fmt}" for fmt in ("json", "html", "xlsx")}
