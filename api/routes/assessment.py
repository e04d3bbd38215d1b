"""The park assessment: scorecards, the ranking and yellow cards, and the indicators parks report (docs/kpis.md)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, cast

import asyncpg
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.access import actor, whole_parks
from api.deps import ConnDep, PoolDep, PrincipalDep, require
from api.errors import ApiError
from api.principals import Permission, Role
from api.routes.kpis import parse_day
from compliance.assessment import REPORTED, AssessedPeriod, AssessmentInputError, assessment, report_input
from compliance.targets import province_targets

router = APIRouter(prefix="/api/v1", tags=["assessment"])


class Indicator(BaseModel):
    """One indicator of a scorecard."""

    value: float | None
    target: float | None
    weight: float
    score: float | None = Field(description="0-100; null when the value is missing")
    source: Literal["measured", "reported", "not_applicable"]
    reported_by: str | None = None
    reported_at: datetime | None = None


class Scorecard(BaseModel):
    """A park's scorecard and place."""

    park_id: str
    park_name: str
    city: str
    status: Literal["ranked", "insufficient_data"]
    score: float | None
    rank: int | None = Field(description="in the province (or the city asked for)")
    city_rank: int | None
    tied: bool = Field(description="equal to a neighbour on the score and every tie-break figure")
    yellow_card: bool
    card_reasons: list[str]
    indicators: dict[str, Indicator]
    missing: list[str]


class AssessmentOut(BaseModel):
    """The assessment of a period: its rules and the parks."""

    period: AssessedPeriod
    period_start: date
    weights: dict[str, float]
    min_weight_share: float
    tie_break: list[str]
    results: list[Scorecard]


class InputIn(BaseModel):
    """An indicator no sensor measures, reported for a park and period."""

    park_id: str = Field(max_length=64)
    period: AssessedPeriod
    on: dt.date = Field(alias="date", description="a day of the period")
    indicator: str = Field(description=", ".join(f"{k}: {v}" for k, v in REPORTED.items()))
    value: float
    reported_by: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the person, when a shared key reports; the record names the key or user in any case",
    )  # fmt: skip
    note: str | None = Field(default=None, max_length=2000)


class InputOut(BaseModel):
    """A reported indicator as stored."""

    park_id: str
    period: AssessedPeriod
    period_start: date
    indicator: str
    value: float
    reported_by: str
    reported_at: datetime
    note: str | None


@router.get("/assessment", response_model=AssessmentOut)
async def get_assessment(
    conn: ConnDep,
    pool: PoolDep,
    principal: PrincipalDep,
    request: Request,
    period: AssessedPeriod = "month",
    on: Annotated[str | None, Query(alias="date", description="a day of the period (default: today)")] = None,
    city: Annotated[str | None, Query(max_length=64, description="rank this city's parks only")] = None,
) -> dict[str, Any]:
    """Every park's scorecard over the period, ranked, with the bottom three's yellow cards and why."""
    settings = request.app.state.settings
    # Parks are ranked against every park of the province (a ranking of the caller's scope alone
    # would put an operator's park first of one); the caller then gets the parks it sees, with
    # their place in the whole ranking, and nothing of the others (docs/access.md#rankings).
    seen = None if principal.role is Role.ADMIN else await whole_parks(conn)
    async with pool.acquire() as owner:
        result = await assessment(
            cast("asyncpg.Connection", owner),
            period=period,
            on=parse_day(on, settings.DEFAULT_TIMEZONE),
            now=datetime.now(UTC),
            targets=province_targets(settings),
            weights=settings.ASSESSMENT_WEIGHTS,
            city=city,
        )
    out = result.as_json()
    if seen is not None:
        out["results"] = [c for c in out["results"] if c["park_id"] in seen]
    return out


@router.post(
    "/assessment/inputs", response_model=InputOut, status_code=201, dependencies=[require(Permission.ASSESSMENT_INPUTS)]
)
async def post_input(conn: ConnDep, principal: PrincipalDep, body: InputIn) -> dict[str, Any]:
    """Report an indicator for a park and period; a later report replaces it (the earlier one is kept in history)."""
    try:
        row = await report_input(
            conn,
            park_id=body.park_id,
            period=body.period,
            on=body.on,
            indicator=body.indicator,
            value=body.value,
            reported_by=actor(principal, body.reported_by),
            note=body.note,
        )
    except AssessmentInputError as exc:
        raise ApiError(404 if exc.code == "unknown_park" else 422, exc.code, exc.detail) from None
    return dict(row)
