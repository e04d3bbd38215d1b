"""Parks and stations."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ConnDep
from api.errors import ApiError
from api.pagemodels import Named, errors, names, unit_of
from schemas.stations import StationKind

router = APIRouter(prefix="/api/v1", tags=["registry"])

SELECT_PARKS = """
SELECT p.id, p.name, p.city, p.attrs, count(s.sid) AS stations
FROM parks p LEFT JOIN stations s ON s.park_id = p.id
WHERE ($1::text IS NULL OR p.city = $1)
GROUP BY p.id ORDER BY p.id
"""
SELECT_PARK = "SELECT id, name, city, attrs FROM parks WHERE id = $1"
# Named columns only: a station's HJ 212 password (pw) and SM4 key are never selected here (the
# scoped database roles cannot even read them; an administrator's connection could).
SELECT_STATIONS = """
SELECT s.id, s.park_id, s.kind, s.name, s.mn, s.timezone, s.attrs,
       coalesce(array_agg(p.code ORDER BY p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS parameters
FROM stations s
LEFT JOIN station_parameters sp ON sp.sid = s.sid
LEFT JOIN parameters p ON p.pid = sp.pid
WHERE ($1::text IS NULL OR s.park_id = $1) AND ($2::text IS NULL OR s.kind = $2)
  AND ($3::text IS NULL OR s.id = $3)
GROUP BY s.sid ORDER BY s.id
"""


class DeclaredParameter(Named):
    """A parameter a station declares, with its names and the unit it is stored in there."""

    unit: str | None


class Station(BaseModel):
    """A station: its registry attributes and declared parameters (never its HJ 212 password or SM4 key)."""

    id: str
    park_id: str
    kind: StationKind
    name: str | None
    mn: str | None = Field(description="the HJ 212 data logger's MN")
    timezone: str
    parameters: list[str] = Field(description="the declared parameters' codes")
    parameter_details: list[DeclaredParameter] = Field(description="the same, with names and units")
    attrs: dict[str, Any] = Field(description="registry attributes: the compliance profile and extra keys")


class StationList(BaseModel):
    """Stations, by id."""

    results: list[Station]


class ParkSummary(BaseModel):
    """A park and its number of stations."""

    id: str
    name: str
    city: str
    stations: int
    attrs: dict[str, Any]


class ParkList(BaseModel):
    """Parks, by id."""

    results: list[ParkSummary]


class Park(BaseModel):
    """A park with its stations."""

    id: str
    name: str
    city: str
    attrs: dict[str, Any]
    stations: list[Station]


def _attrs(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _station(r: Any) -> dict[str, Any]:
    kind = StationKind(r["kind"])
    return {
        "id": r["id"],
        "park_id": r["park_id"],
        "kind": r["kind"],
        "name": r["name"],
        "mn": r["mn"],
        "timezone": r["timezone"],
        "parameters": list(r["parameters"]),
        "parameter_details": [{**names(code), "unit": unit_of(code, kind)} for code in r["parameters"]],
        "attrs": _attrs(r["attrs"]),
    }


@router.get("/parks", response_model=ParkList)
async def list_parks(conn: ConnDep, city: str | None = None) -> dict[str, Any]:
    """List parks (optionally of one city), each with its number of stations."""
    rows = await conn.fetch(SELECT_PARKS, city)
    return {
        "results": [
            {
                "id": r["id"],
                "name": r["name"],
                "city": r["city"],
                "stations": r["stations"],
                "attrs": _attrs(r["attrs"]),
            }
            for r in rows
        ]
    }


@router.get("/parks/{park_id}", response_model=Park, responses=errors({404: "unknown_park (or outside the scope)"}))
async def get_park(conn: ConnDep, park_id: str) -> dict[str, Any]:
    """One park and its stations."""
    park = await conn.fetchrow(SELECT_PARK, park_id)
    if park is None:
        raise ApiError(404, "unknown_park", f"park {park_id!r} is not registered")
    stations = await conn.fetch(SELECT_STATIONS, park_id, None, None)
    return {
        "id": park["id"],
        "name": park["name"],
        "city": park["city"],
        "attrs": _attrs(park["attrs"]),
        "stations": [_station(r) for r in stations],
    }


@router.get("/stations", response_model=StationList)
async def list_stations(
    conn: ConnDep,
    park_id: str | None = None,
    kind: StationKind | None = None,
) -> dict[str, Any]:
    """List stations, optionally of one park or one kind."""
    rows = await conn.fetch(SELECT_STATIONS, park_id, kind.value if kind else None, None)
    return {"results": [_station(r) for r in rows]}


@router.get(
    "/stations/{station_id}", response_model=Station, responses=errors({404: "unknown_station (or outside the scope)"})
)
async def get_station(conn: ConnDep, station_id: str) -> dict[str, Any]:
    """One station with its declared parameters."""
    rows = await conn.fetch(SELECT_STATIONS, None, None, station_id)
    if not rows:
        raise ApiError(404, "unknown_station", f"station {station_id!r} is not registered")
    return _station(rows[0])
