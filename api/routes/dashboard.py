"""What the dashboard's pages read in one round trip each: the province's state, a park's, and a change stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.access import scoped_connection
from api.deps import ConnDep, PoolDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.livefeed import LiveFeed
from api.pagemodels import errors, names, unit_of
from schemas.catalogue import catalogue
from schemas.stations import StationKind

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])

# A burst of commits (the worker judges in batches) becomes one refresh a page makes, not many:
# at most one change event this often per stream, well inside the 2 s a page has to show a change.
CHANGE_EVERY_S = 0.5
# A ping this often keeps proxies from closing a quiet stream and lets the page notice a silent
# break (no ping for a while: it reconnects); the stream also checks then that its key or session
# still holds. An event, not a comment: a page's script never sees comments.
KEEPALIVE_S = 15.0

State = Literal["compliant", "exceedance", "data_problem", "offline", "no_stations"]
# Families of open alerts that mean the data cannot be trusted or is missing, not that a limit was broken.
DATA_FAMILIES = frozenset({"data_quality", "watchdog", "suspicious"})
SEVERITIES = ("advisory", "warning", "major", "critical")

# Every statement runs on the caller's scoped connection: row-level security keeps each one to the
# parks and stations the caller may see (docs/access.md), so none of them filters by principal.
# A station is online when it sent within its offline_after (minutes) or the setting's.
ONLINE = "a.last_received_at > now() - make_interval(secs => 60 * coalesce((s.attrs->>'offline_after')::float8, $2))"
SELECT_PARKS = f"""
SELECT p.id, p.name, p.city, p.attrs->'location' AS location,
       count(s.sid) AS stations,
       count(a.sid) FILTER (WHERE {ONLINE}) AS online,
       max(a.last_received_at) AS last_received_at
FROM parks p
LEFT JOIN stations s ON s.park_id = p.id
LEFT JOIN station_activity a ON a.sid = s.sid
WHERE ($1::text IS NULL OR p.city = $1)
GROUP BY p.id
ORDER BY p.city, p.id
"""
# A park's own alerts (a KPI below its target) have no station, and count with its park.
SELECT_OPEN_ALERTS = """
SELECT p.id AS park_id, x.family, x.severity, count(*) AS n
FROM alerts x LEFT JOIN stations s ON s.sid = x.sid JOIN parks p ON p.id = coalesce(s.park_id, x.park)
WHERE x.status <> 'cleared' AND ($1::text IS NULL OR p.city = $1)
GROUP BY 1, 2, 3
"""
# Closed windows that started today (local): what was judged, and how much of it broke a limit.
# Counted per station first, then summed per park: joining each of the day's windows (266,400 at
# midnight with 2,100 stations) to its station and park cost twice as much (docs/benchmarks.md).
SELECT_JUDGED_TODAY = """
SELECT s.park_id, sum(v.judged)::bigint AS judged, sum(v.exceedances)::bigint AS exceedances
FROM (SELECT sid, count(*) AS judged, count(*) FILTER (WHERE verdict = 'exceedance') AS exceedances
      FROM verdicts WHERE window_start >= $1 AND closed GROUP BY sid) v
JOIN stations s ON s.sid = v.sid JOIN parks p ON p.id = s.park_id
WHERE $2::text IS NULL OR p.city = $2
GROUP BY 1
"""
# Each ambient station's latest hourly AQI of the last day (HJ 633).
SELECT_AQI = """
SELECT p.city, s.id AS station_id, s.name AS station_name, s.park_id, q.window_start, q.standard, q.aqi, q.level,
       q.category, q.color, q.primary_pollutants
FROM stations s
JOIN parks p ON p.id = s.park_id
CROSS JOIN LATERAL (
    SELECT * FROM aqi q WHERE q.sid = s.sid AND q.period = '1h' AND q.window_start >= now() - interval '1 day'
    ORDER BY q.window_start DESC LIMIT 1
) q
WHERE s.kind = 'ambient_air' AND ($1::text IS NULL OR p.city = $1)
ORDER BY p.city, s.id
"""
SELECT_PARK = "SELECT id, name, city, attrs->'location' AS location FROM parks WHERE id = $1"
# A park's stations, each with its latest value per parameter (within the hour before its latest
# data) and its latest closed verdict per parameter, the limit that verdict applied.
SELECT_PARK_STATIONS = f"""
SELECT s.id, s.sid, s.kind, s.name, s.timezone, a.last_received_at, a.last_ts, coalesce({ONLINE}, false) AS online
FROM stations s LEFT JOIN station_activity a ON a.sid = s.sid
WHERE s.park_id = $1
ORDER BY s.kind, s.id
"""
SELECT_LATEST_VALUES = """
SELECT DISTINCT ON (r.sid, r.pid) r.sid, p.code, r.ts, r.value, r.flag
FROM readings r JOIN parameters p ON p.pid = r.pid JOIN station_activity a ON a.sid = r.sid
WHERE r.sid = ANY ($1::integer[]) AND r.ts > a.last_ts - interval '1 hour' AND r.ts <= a.last_ts
ORDER BY r.sid, r.pid, r.ts DESC, r.iv
"""
SELECT_LATEST_VERDICTS = """
SELECT DISTINCT ON (v.sid, v.pid) v.sid, p.code, v.window_kind, v.window_start, v.window_end, v.verdict,
       v.value_judged, v.limit_value, v.unit, v.exceedance_multiple, v.standard
FROM verdicts v JOIN parameters p ON p.pid = v.pid LEFT JOIN station_activity a ON a.sid = v.sid
WHERE v.sid = ANY ($1::integer[]) AND v.closed AND v.window_start > coalesce(a.last_ts, now()) - interval '2 days'
ORDER BY v.sid, v.pid, v.window_end DESC, v.window_kind
"""
SELECT_PARK_TODAY = """
SELECT v.verdict, count(*) AS n
FROM verdicts v JOIN stations s ON s.sid = v.sid
WHERE s.park_id = $1 AND v.window_start >= $2 AND v.closed
GROUP BY 1
"""


class Location(BaseModel):
    """Where a park is drawn: longitude and latitude (degrees), from its registry entry."""

    lon: float
    lat: float


class AlertCounts(BaseModel):
    """Open (pending or active) alerts by severity."""

    advisory: int = 0
    warning: int = 0
    major: int = 0
    critical: int = 0


class ParkState(BaseModel):
    """A park on the map: its state now and what it is made of."""

    id: str
    name: str
    city: str
    location: Location | None = Field(description="null: the page places it at its city's centre")
    state: State = Field(
        description="exceedance: an exceedance alert is open; offline: no station sent within its offline time; "
        "data_problem: a data-quality or watchdog alert is open, or some station is offline; else compliant"
    )
    stations: int
    stations_online: int
    last_received_at: datetime | None
    alerts_open: AlertCounts
    exceedance_alerts_open: int
    windows_judged_today: int
    exceedances_today: int


class StationAqi(BaseModel):
    """An ambient station's latest hourly AQI."""

    station_id: str
    station_name: str | None
    park_id: str
    window_start: datetime
    aqi: int | None
    level: str | None
    category: str | None
    color: str | None = Field(description="HJ 633's colour name (黄色)")
    color_rgb: str | None = Field(description="the same as #rrggbb")
    primary_pollutants: list[str]


class CityState(BaseModel):
    """A city: its parks' states and the AQI of its ambient stations."""

    name: str
    parks: int
    states: dict[str, int] = Field(description="parks per state")
    aqi: int | None = Field(description="the highest latest hourly AQI among its ambient stations")
    aqi_color: str | None = Field(description="its HJ 633 colour as #rrggbb")
    aqi_category: str | None
    aqi_stations: list[StationAqi]


class Totals(BaseModel):
    """The headline figures of the view."""

    parks: int
    stations: int
    stations_online: int
    windows_judged_today: int
    exceedances_today: int
    alerts_open: AlertCounts


class Overview(BaseModel):
    """The province (or one city) as the map shows it."""

    generated_at: datetime
    timezone: str
    day_start: datetime = Field(description="the start of today in the province's time zone: 'today' counts from it")
    city: str | None
    totals: Totals
    parks: list[ParkState]
    cities: list[CityState]


def _location(value: Any) -> Location | None:
    data = json.loads(value) if isinstance(value, str) else value
    if isinstance(data, list) and len(data) == 2 and all(isinstance(x, int | float) for x in data):
        return Location(lon=float(data[0]), lat=float(data[1]))
    return None


def _rgb(standard: str, color: str | None) -> str | None:
    """HJ 633's colour of a category (stored by its name, 黄色) as #rrggbb, from the edition's table."""
    edition = catalogue().by_id.get(standard)
    table = edition.aqi if edition is not None else None
    for c in table.categories if table is not None and color else ():
        if c.color == color:
            return "#{:02x}{:02x}{:02x}".format(*c.rgb)
    return None


def _today(timezone: str) -> datetime:
    now = datetime.now(ZoneInfo(timezone))
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _city(name: str) -> CityState:
    return CityState(name=name, parks=0, states={}, aqi=None, aqi_color=None, aqi_category=None, aqi_stations=[])


def _state(stations: int, online: int, exceedance: int, data: int) -> State:
    if stations == 0:
        return "no_stations"
    if exceedance:
        return "exceedance"
    if online == 0:
        return "offline"
    if data or online < stations:
        return "data_problem"
    return "compliant"


@router.get("/overview", response_model=Overview)
async def overview(
    conn: ConnDep,
    settings: SettingsDep,
    city: Annotated[str | None, Query(max_length=64, description="narrow to one city")] = None,
) -> Overview:
    """Every park the caller sees with its state, the headline counts and each city's AQI."""
    day_start = _today(settings.DEFAULT_TIMEZONE)
    parks = await conn.fetch(SELECT_PARKS, city, settings.ALERT_OFFLINE_AFTER)
    open_alerts: dict[str, dict[tuple[str, str], int]] = {}
    for r in await conn.fetch(SELECT_OPEN_ALERTS, city):
        open_alerts.setdefault(r["park_id"], {})[(r["family"], r["severity"])] = r["n"]
    judged = {r["park_id"]: r for r in await conn.fetch(SELECT_JUDGED_TODAY, day_start, city)}
    aqi_rows = await conn.fetch(SELECT_AQI, city)

    states: list[ParkState] = []
    totals = Totals(
        parks=0, stations=0, stations_online=0, windows_judged_today=0, exceedances_today=0, alerts_open=AlertCounts()
    )
    for p in parks:
        alerts = open_alerts.get(p["id"], {})
        by_severity = AlertCounts(**{sev: sum(n for (_, s), n in alerts.items() if s == sev) for sev in SEVERITIES})
        exceedance = sum(n for (fam, _), n in alerts.items() if fam == "exceedance")
        data = sum(n for (fam, _), n in alerts.items() if fam in DATA_FAMILIES)
        j = judged.get(p["id"])
        state = ParkState(
            id=p["id"], name=p["name"], city=p["city"], location=_location(p["location"]),
            state=_state(p["stations"], p["online"], exceedance, data),
            stations=p["stations"], stations_online=p["online"], last_received_at=p["last_received_at"],
            alerts_open=by_severity, exceedance_alerts_open=exceedance,
            windows_judged_today=j["judged"] if j else 0, exceedances_today=j["exceedances"] if j else 0,
        )  # fmt: skip
        states.append(state)
        totals.parks += 1
        totals.stations += state.stations
        totals.stations_online += state.stations_online
        totals.windows_judged_today += state.windows_judged_today
        totals.exceedances_today += state.exceedances_today
        for sev in SEVERITIES:
            setattr(totals.alerts_open, sev, getattr(totals.alerts_open, sev) + getattr(by_severity, sev))

    cities: dict[str, CityState] = {}
    for s in states:
        city_state = cities.get(s.city) or cities.setdefault(s.city, _city(s.city))
        city_state.parks += 1
        city_state.states[s.state] = city_state.states.get(s.state, 0) + 1
    for r in aqi_rows:
        if (c := cities.get(r["city"])) is None:
            continue
        c.aqi_stations.append(
            StationAqi(**{k: r[k] for k in StationAqi.model_fields if k not in ("primary_pollutants", "color_rgb")},
                       primary_pollutants=list(r["primary_pollutants"]), color_rgb=_rgb(r["standard"], r["color"]))
        )  # fmt: skip
        if r["aqi"] is not None and (c.aqi is None or r["aqi"] > c.aqi):
            c.aqi, c.aqi_color, c.aqi_category = r["aqi"], _rgb(r["standard"], r["color"]), r["category"]
    return Overview(
        generated_at=datetime.now(ZoneInfo(settings.DEFAULT_TIMEZONE)),
        timezone=settings.DEFAULT_TIMEZONE,
        day_start=day_start,
        city=city,
        totals=totals,
        parks=states,
        cities=sorted(cities.values(), key=lambda c: c.name),
    )


class LatestValue(BaseModel):
    """A parameter's latest reading at a station, and its latest closed verdict with the limit it applied."""

    parameter: str
    parameter_name: str | None
    parameter_name_zh: str | None
    unit: str | None
    ts: datetime | None
    value: float | None
    flag: str | None
    verdict: str | None
    window_kind: str | None
    window_start: datetime | None
    value_judged: float | None
    limit: Any = Field(description="a number, a [low, high] range, or null, in the verdict's unit")
    verdict_unit: str | None
    exceedance_multiple: float | None
    standard: str | None


class ParkStation(BaseModel):
    """A station of the park and its latest values."""

    id: str
    kind: str
    name: str | None
    timezone: str
    online: bool
    last_received_at: datetime | None
    last_ts: datetime | None
    latest: list[LatestValue]


class ParkView(BaseModel):
    """A park as its page shows it: stations with their latest values against limits, today's verdicts."""

    id: str
    name: str
    city: str
    location: Location | None
    timezone: str
    day_start: datetime
    verdicts_today: dict[str, int] = Field(description="closed windows that started today, per verdict")
    stations: list[ParkStation]


@router.get("/parks/{park_id}", response_model=ParkView, responses=errors({404: "no such park in the caller's scope"}))
async def park_view(conn: ConnDep, settings: SettingsDep, park_id: str) -> ParkView:
    """A park's stations with their latest values against the limits of their latest verdicts."""
    park = await conn.fetchrow(SELECT_PARK, park_id)
    if park is None:
        raise ApiError(404, "unknown_park", f"park {park_id[:64]!r} is not registered")
    day_start = _today(settings.DEFAULT_TIMEZONE)
    stations = await conn.fetch(SELECT_PARK_STATIONS, park_id, settings.ALERT_OFFLINE_AFTER)
    sids = [s["sid"] for s in stations]
    values: dict[tuple[int, str], Any] = {
        (r["sid"], r["code"]): r for r in await conn.fetch(SELECT_LATEST_VALUES, sids)
    }
    verdicts: dict[tuple[int, str], Any] = {
        (r["sid"], r["code"]): r for r in await conn.fetch(SELECT_LATEST_VERDICTS, sids)
    }
    today = {r["verdict"]: r["n"] for r in await conn.fetch(SELECT_PARK_TODAY, park_id, day_start)}
    out: list[ParkStation] = []
    for s in stations:
        codes = sorted({code for sid, code in (*values, *verdicts) if sid == s["sid"]})
        latest = []
        for code in codes:
            r = values.get((s["sid"], code))
            v = verdicts.get((s["sid"], code))
            named = names(code)
            limit = v["limit_value"] if v else None
            latest.append(
                LatestValue(
                    parameter=code, parameter_name=named.get("parameter_name"),
                    parameter_name_zh=named.get("parameter_name_zh"), unit=unit_of(code, StationKind(s["kind"])),
                    ts=r["ts"] if r else None, value=r["value"] if r else None, flag=r["flag"] if r else None,
                    verdict=v["verdict"] if v else None, window_kind=v["window_kind"] if v else None,
                    window_start=v["window_start"] if v else None, value_judged=v["value_judged"] if v else None,
                    limit=json.loads(limit) if isinstance(limit, str) else limit,
                    verdict_unit=v["unit"] if v else None,
                    exceedance_multiple=v["exceedance_multiple"] if v else None, standard=v["standard"] if v else None,
                )
            )  # fmt: skip
        out.append(
            ParkStation(
                id=s["id"], kind=s["kind"], name=s["name"], timezone=s["timezone"], online=bool(s["online"]),
                last_received_at=s["last_received_at"], last_ts=s["last_ts"], latest=latest,
            )
        )  # fmt: skip
    return ParkView(
        id=park["id"], name=park["name"], city=park["city"], location=_location(park["location"]),
        timezone=settings.DEFAULT_TIMEZONE, day_start=day_start, verdicts_today=today, stations=out,
    )  # fmt: skip


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "change signals: `event: change`"}},
)
async def stream(request: Request, pool: PoolDep, principal: PrincipalDep) -> StreamingResponse:
    """A signal each time verdicts or alert events commit (at most one per half second); the page refetches.

    The data itself comes from the scoped routes, so the stream carries no row of anyone's: only
    `{"alerts": n, "verdicts": n}`, counters that move.
    """
    feed: LiveFeed = request.app.state.livefeed
    feed.start()

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        versions = (feed.version, feed.verdicts_version)
        yield _change(versions)
        checked = time.monotonic()
        while not await request.is_disconnected():
            moved = await feed.wait_any(versions, KEEPALIVE_S)
            if time.monotonic() - checked >= KEEPALIVE_S:
                # the key or session still holds? (signing out ends the stream, busy or quiet)
                checked = time.monotonic()
                try:
                    async with scoped_connection(pool, principal):
                        pass
                except ApiError:
                    yield 'event: end\ndata: {"error": "credentials_revoked"}\n\n'
                    return
            if moved == versions:
                yield "event: ping\ndata: {}\n\n"
                continue
            versions = moved
            yield _change(versions)
            await asyncio.sleep(CHANGE_EVERY_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _change(versions: tuple[int, int]) -> str:
    return f'event: change\ndata: {{"alerts": {versions[0]}, "verdicts": {versions[1]}}}\n\n'
