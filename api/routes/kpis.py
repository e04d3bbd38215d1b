"""The figures parks are assessed by: data delivery, compliance and treatment rates (docs/kpis.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api import paging
from api.access import actor
from api.deps import ConnDep, PagerDep, PrincipalDep, require
from api.errors import ApiError
from api.pagemodels import Page, page
from api.principals import Permission
from compliance.delivery import Level, Period, local_today
from compliance.kpis import kpis
from compliance.loads import cap_positions
from compliance.targets import province_targets
from compliance.treatment import LIST_VOLUMES, VolumeReportError, report_volume

router = APIRouter(prefix="/api/v1", tags=["kpis"])

Fraction = Annotated[float | None, Field(description="a fraction (0.95 is 95 %); null when it cannot be computed")]


class KpiRow(BaseModel):
    """One station's, park's, city's or the province's figures over a period."""

    level: Level
    id: str
    park_id: str | None
    city: str | None
    period: Period
    period_start: date
    transmission_rate: Fraction = None
    validity_rate: Fraction = None
    effective_transmission_rate: Fraction = None
    compliance_rate: Fraction = None
    treated_water_compliance_rate: Fraction = None
    treatment_rate: Fraction = None
    solid_waste_rate: Fraction = Field(default=None, description="处置利用率 (parks, cities; month or longer)")
    solid_waste_utilisation_rate: Fraction = Field(default=None, description="综合利用率 (parks)")
    hazardous_waste_dumped: bool | None = Field(default=None, description="null: no hazardous-waste report")
    water_balance: float | None = Field(default=None, description="plant outlets' volume / inlet volume")
    removal_efficiency: dict[str, float | None] | None = Field(
        default=None, description="(C_in − C_out) / C_in per pollutant code, flow-weighted"
    )
    inputs: dict[str, Any] = Field(description="the counts and volumes behind each figure, by figure group")
    reasons: dict[str, list[str]] = Field(description="why a figure is null, by figure")
    targets: dict[str, float] | None = Field(default=None, description="the park's targets (park rows)")
    shortfalls: dict[str, dict[str, float]] | None = Field(default=None, description="figures below their target")


class KpiPage(BaseModel):
    """The rows selected."""

    results: list[KpiRow]


def parse_day(on: str | None, zone: str) -> date:
    """A YYYY-MM-DD query parameter (default today in `zone`), refused with bad_date outside 2000-2100."""
    try:
        day = date.fromisoformat(on) if on is not None else local_today(zone)
    except ValueError:
        raise ApiError(422, "bad_date", f"date {(on or '')[:40]!r} is not YYYY-MM-DD") from None
    if not date(2000, 1, 1) <= day <= date(2100, 1, 1):
        raise ApiError(422, "bad_date", "date must fall between 2000-01-01 and 2100-01-01")
    return day


@router.get("/kpis", response_model=KpiPage)
async def get_kpis(
    conn: ConnDep,
    request: Request,
    period: Period = "day",
    on: Annotated[
        str | None,
        Query(alias="date", description="a day of the period, YYYY-MM-DD in local time (default: today)"),
    ] = None,
    level: Annotated[Level, Query(description="rows per station, park, city or for the province")] = "park",
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    city: Annotated[str | None, Query(max_length=64)] = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Data-delivery, compliance and treatment figures with the inputs behind each."""
    rows = await kpis(
        conn,
        period=period,
        on=parse_day(on, request.app.state.settings.DEFAULT_TIMEZONE),
        level=level,
        park_id=park_id,
        city=city,
        station_id=station_id,
        now=datetime.now(UTC),
        targets=province_targets(request.app.state.settings),
    )
    return {"results": rows}


class VolumeReport(BaseModel):
    """A wastewater volume reported for a station without a working flow meter (docs/kpis.md#treatment)."""

    station_id: str = Field(max_length=64)
    first_day: date
    last_day: date = Field(description="inclusive; the volume is spread evenly over the days")
    volume_m3: float = Field(ge=0, lt=1e12)
    reported_by: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the person, when a shared key reports; the record names the key or user in any case",
    )  # fmt: skip
    note: str | None = Field(default=None, max_length=2000)


class StoredVolume(VolumeReport):
    """A reported volume as stored."""

    # as recorded: the person named and the key that vouched (docs/access.md#who-acted), longer
    # than the 200 characters a request may name
    reported_by: str
    reported_at: datetime


class VolumePage(Page):
    """Reported volumes, by station and first day."""

    results: list[StoredVolume]


@router.post("/volumes", response_model=StoredVolume, status_code=201, dependencies=[require(Permission.VOLUMES)])
async def post_volume(conn: ConnDep, principal: PrincipalDep, body: VolumeReport) -> dict[str, Any]:
    """Report a station's wastewater volume over a span of local days; a report for the same first day replaces it."""
    try:
        row = await report_volume(conn, **{**body.model_dump(), "reported_by": actor(principal, body.reported_by)})
    except VolumeReportError as exc:
        raise ApiError(404 if exc.code == "unknown_station" else 422, exc.code, exc.detail) from None
    return {"station_id": body.station_id, **dict(row)}


@router.get("/volumes", response_model=VolumePage)
async def get_volumes(
    conn: ConnDep,
    pager: PagerDep,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Reported volumes, by station and first day, paged by cursor."""
    fp = paging.fingerprint("volumes", station_id, park_id)
    after = pager.decode(cursor, fp, (str, str)) if cursor else ("", date.min.isoformat())
    fetched = await conn.fetch(LIST_VOLUMES, station_id, park_id, after[0], date.fromisoformat(after[1]), limit + 1)
    rows = [dict(r) for r in fetched]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = pager.encode(fp, (rows[-1]["station_id"], rows[-1]["first_day"].isoformat())) if more else None
    return page(rows, limit, next_cursor)


class CapRow(BaseModel):
    """A capped station's emissions of one pollutant in a calendar year against its cap (docs/kpis.md#loads)."""

    station_id: str
    park_id: str
    parameter: str
    year: int
    cap_kg: float
    cumulative_kg: float
    substituted_kg: float = Field(description="of which HJ 75-2017 substitutes for invalid stack hours")
    share_of_cap: float
    projected_kg: float | None = Field(description="at the run rate so far; null in the year's first week")
    projected_share: float | None
    elapsed_days: float
    counted_days: float = Field(description="of the elapsed time, what has a load (the projection's base)")
    missing_hours: int | None = None
    missing_days: int | None = None
    over_cap: bool
    projected_over_cap: bool


class CapPage(BaseModel):
    """The capped stations and pollutants selected."""

    results: list[CapRow]


@router.get("/loads", response_model=CapPage)
async def get_loads(
    conn: ConnDep,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="calendar year (default: this year)")] = None,
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Total-quantity control: each capped station's emissions of the year, its cap and the projection to year end."""
    now = datetime.now(UTC)
    positions = await cap_positions(conn, year=year or now.year, now=now, park_id=park_id, station_id=station_id)
    return {"results": [p.as_json() for p in positions]}
