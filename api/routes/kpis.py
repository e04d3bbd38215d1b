"""The figures parks are assessed by: today the data-delivery rates (docs/kpis.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ConnDep
from api.errors import ApiError
from compliance.delivery import Level, Period, delivery

router = APIRouter(prefix="/api/v1", tags=["kpis"])


@router.get("/kpis")
async def get_kpis(
    conn: ConnDep,
    period: Period = "day",
    on: Annotated[
        str | None,
        Query(alias="date", description="a day of the period, YYYY-MM-DD in local time (default: today)"),
    ] = None,
    level: Annotated[Level, Query(description="rows per station, park or city")] = "park",
    park_id: Annotated[str | None, Query(max_length=64)] = None,
    city: Annotated[str | None, Query(max_length=64)] = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Transmission, validity and effective transmission rates, with the minutes behind each."""
    try:
        day = date.fromisoformat(on) if on is not None else date.today()
    except ValueError:
        raise ApiError(422, "bad_date", f"date {(on or '')[:40]!r} is not YYYY-MM-DD") from None
    if not date(2000, 1, 1) <= day <= date(2100, 1, 1):
        raise ApiError(422, "bad_date", "date must fall between 2000-01-01 and 2100-01-01")
    rows = await delivery(conn, period=period, on=day, level=level, park_id=park_id, city=city, station_id=station_id)
    return {"results": [r.as_json() for r in rows]}
