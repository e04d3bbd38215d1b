"""Who may see what: every role × every endpoint × objects in and out of scope (docs/access.md).

Two parks in two cities are seeded with readings, verdicts, alerts, HJ 212 packets and refused
messages. For each role the test walks every GET route of the API (a census keeps the table
complete: a new route fails here until it is added) naming objects of both parks, and asserts that
nothing of a station or park outside the scope comes back — in lists, details, cursors and errors —
while what is in scope does. Then the changes each role may make, credentials that no longer
hold, sessions with CSRF, the audit log and rate limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from api.app import create_app
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from tests.helpers import eventually, fetch, fetchval, make_key, read_until_end, seed_two_parks

T0 = datetime(2026, 10, 1, tzinfo=UTC)
STATIONS = {"p1-out": "p1", "p1-air": "p1", "p1-stack": "p1", "p2-out": "p2"}
PASSWORD = "s3cret-pw-77"


@dataclass(frozen=True)
class Who:
    """A role with its scope, and the stations and parks it must see exactly."""

    role: str
    scope: dict[str, Any]
    stations: frozenset[str]
    parks: frozenset[str]


ALL = frozenset(STATIONS)
P1 = frozenset(s for s, p in STATIONS.items() if p == "p1")
P2 = frozenset({"p2-out"})
WHO = {
    "admin": Who("admin", {}, ALL, frozenset({"p1", "p2"})),
    "bureau-province": Who("bureau", {"province": True}, ALL, frozenset({"p1", "p2"})),
    "bureau-city": Who("bureau", {"cities": ["长沙"]}, P1, frozenset({"p1"})),
    "operator": Who("operator", {"parks": ["p1"]}, P1, frozenset({"p1"})),
    "enterprise": Who("enterprise", {"stations": ["p1-out"]}, frozenset({"p1-out"}), frozenset({"p1"})),
    "inspector": Who("inspector", {"cities": ["株洲"]}, P2, frozenset({"p2"})),
}


@pytest.fixture
async def world(settings: Settings, registry: None) -> AsyncIterator[tuple[str, dict[str, str], dict[str, int]]]:
    """The API served, one key per role of WHO, and the seeded ids."""
    seeded = await seed_two_parks(settings.DATABASE_URL, password=PASSWORD)
    keys = {name: await make_key(settings.DATABASE_URL, who.role, name=name, **who.scope) for name, who in WHO.items()}
    async with serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT):
        yield f"http://127.0.0.1:{settings.API_PORT}", keys, seeded


async def _p1_operator(settings: Settings, name: str, password: str) -> None:
    """A user account: p1's operator."""
    from api.principals import Role, Scope, create_user  # noqa: PLC0415

    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await create_user(
            conn, name=name, password=password, role=Role.OPERATOR, scopes=[Scope("park", "p1")], created_by="tests"
        )
    finally:
        await conn.close()


def _walk(value: Any, found: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in {"station_id", "station"} and isinstance(v, str):
                found["stations"].add(v)
            elif k in {"park_id", "park"} and isinstance(v, str):
                found["parks"].add(v)
            elif k == "id" and isinstance(v, str) and v in STATIONS:
                found["stations"].add(v)
            _walk(v, found)
    elif isinstance(value, list):
        for v in value:
            _walk(v, found)


def _seen(body: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"stations": set(), "parks": set()}
    _walk(body, found)
    return found


# Every GET route of the API with the calls that exercise it: {station}/{park}/{alert}/{dl} are
# filled with objects of p1 and of p2 in turn. Routes that answer for the caller alone
# (session, keys, users, audit) are checked in their own tests below.
CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "/api/v1/parks": [("/api/v1/parks", {})],
    "/api/v1/parks/{park_id}": [("/api/v1/parks/{park}", {})],
    "/api/v1/stations": [("/api/v1/stations", {}), ("/api/v1/stations", {"park_id": "{park}"})],
    "/api/v1/stations/{station_id}": [("/api/v1/stations/{station}", {})],
    "/api/v1/readings": [
        ("/api/v1/readings", {"start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z", "limit": 50}),
        (
            "/api/v1/readings",
            {"station_id": "{station}", "start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"},
        ),
        (
            "/api/v1/readings",
            {"park_id": "{park}", "interval": "hour", "start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"},
        ),
    ],
    "/api/v1/readings/revisions": [("/api/v1/readings/revisions", {"station_id": "{station}"})],
    "/api/v1/compliance": [("/api/v1/compliance", {}), ("/api/v1/compliance", {"park_id": "{park}"})],
    "/api/v1/aqi": [("/api/v1/aqi", {"park_id": "{park}"})],
    "/api/v1/standards": [("/api/v1/standards", {})],
    "/api/v1/standards/{ident}": [("/api/v1/standards/GB18918-2002", {})],
    "/api/v1/kpis": [
        ("/api/v1/kpis", {"period": "month", "date": "2026-10-01"}),
        ("/api/v1/kpis", {"period": "month", "date": "2026-10-01", "level": "station", "park_id": "{park}"}),
    ],
    "/api/v1/volumes": [("/api/v1/volumes", {})],
    "/api/v1/loads": [("/api/v1/loads", {"year": 2026})],
    "/api/v1/assessment": [("/api/v1/assessment", {"period": "month", "date": "2026-10-01"})],
    "/api/v1/reports/daily": [("/api/v1/reports/daily", {"date": "2026-10-01", "park_id": "{park}"})],
    "/api/v1/reports/monthly": [("/api/v1/reports/monthly", {"date": "2026-10", "park_id": "{park}"})],
    "/api/v1/reports": [("/api/v1/reports", {})],
    "/api/v1/solid-waste": [("/api/v1/solid-waste", {})],
    "/api/v1/solid-waste/history": [("/api/v1/solid-waste/history", {"park_id": "{park}"})],
    "/api/v1/solid-waste/rates": [("/api/v1/solid-waste/rates", {})],
    "/api/v1/statistics/ambient-annual": [("/api/v1/statistics/ambient-annual", {"year": 2026})],
    "/api/v1/statistics/ultra-low": [("/api/v1/statistics/ultra-low", {"month": "2026-10"})],
    "/api/v1/statistics/cems-substitution": [
        ("/api/v1/statistics/cems-substitution", {"station_id": "{station}", "parameter": "cod", "quarter": "2026Q4"})
    ],
    "/api/v1/alerts": [
        ("/api/v1/alerts", {"status": ["active", "cleared"]}),
        ("/api/v1/alerts", {"park_id": "{park}"}),
    ],
    "/api/v1/alerts/{alert_id}": [("/api/v1/alerts/{alert}", {})],
    "/api/v1/silences": [("/api/v1/silences", {"include_ended": True})],
    "/api/v1/alert-routing": [("/api/v1/alert-routing", {})],
    "/api/v1/stations/{station_id}/hj212-packets": [("/api/v1/stations/{station}/hj212-packets", {})],
    "/api/v1/stations/{station_id}/events": [("/api/v1/stations/{station}/events", {})],
    "/api/v1/stations/{station_id}/logger-requests": [("/api/v1/stations/{station}/logger-requests", {})],
    "/api/v1/dead-letters": [("/api/v1/dead-letters", {"all": True})],
    "/api/v1/dead-letters/summary": [("/api/v1/dead-letters/summary", {})],
    "/api/v1/dead-letters/{dead_letter_id}": [("/api/v1/dead-letters/{dl}", {})],
    "/api/v1/exports/{kind}": [
        (f"/api/v1/exports/{kind}", {"start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z", "lang": "en"})
        for kind in ("readings", "hourly", "daily", "verdicts", "alerts")
    ]
    + [
        (
            "/api/v1/exports/readings",
            {"station_id": "{station}", "start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"},
        ),
        (
            "/api/v1/exports/alerts",
            {"park_id": "{park}", "start": "2026-09-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
        ),
    ],
}
CALLS |= {
    "/api/v1/dashboard/overview": [
        ("/api/v1/dashboard/overview", {}),
        ("/api/v1/dashboard/overview", {"city": "长沙"}),
    ],
    "/api/v1/dashboard/parks/{park_id}": [("/api/v1/dashboard/parks/{park}", {})],
}
SELF_ROUTES = {"/api/v1/session", "/api/v1/keys", "/api/v1/users", "/api/v1/audit"}
# The live stream is checked by its own test below.
OWN_TESTS = {"/api/v1/events", "/api/v1/dashboard/stream"}
PUBLIC = {"/healthz", "/metrics"}


def test_every_get_route_is_in_the_matrix(settings: Settings) -> None:
    """A route added without a row here fails: its scope would go unchecked."""
    spec = create_app(settings).openapi()
    gets = {p for p, ops in spec["paths"].items() if "get" in ops}
    missing = gets - set(CALLS) - SELF_ROUTES - OWN_TESTS - PUBLIC
    assert not missing, f"add these routes to CALLS: {sorted(missing)}"


# Changes open to every authenticated role: a pure what-if, and signing out.
OPEN_CHANGES = {("POST", "/api/v1/evaluate"), ("DELETE", "/api/v1/session"), ("POST", "/api/v1/session")}
# Changes whose route checks the role itself (administrators only).
ADMIN_CHANGES = {("POST", "/api/v1/keys"), ("POST", "/api/v1/keys/{key_id}/revoke")}


def _permissions(dependant: Any) -> list[Any]:
    found = []
    for dep in dependant.dependencies:
        if hasattr(dep.call, "permission"):
            found.append(dep.call.permission)
        found += _permissions(dep)
    return found


def test_every_change_declares_its_permission(settings: Settings) -> None:
    """Each POST/PUT/PATCH/DELETE route requires a permission (api/deps.py require), so that a new
    change cannot be open to every role by omission."""
    from fastapi.routing import APIRoute, iter_route_contexts  # noqa: PLC0415

    checked, undeclared = 0, []
    for context in iter_route_contexts(create_app(settings).routes):
        route = context.route
        if not isinstance(route, APIRoute):
            continue
        for method in set(route.methods) - {"GET", "HEAD"}:
            checked += 1
            if not _permissions(route.dependant) and (method, context.path) not in OPEN_CHANGES | ADMIN_CHANGES:
                undeclared.append(f"{method} {context.path}")
    assert checked >= 15, f"only {checked} changes found: the route walk is broken"
    assert not undeclared, f"declare a permission: {undeclared}"


def _fill(template: str, objects: dict[str, str]) -> str:
    for name, value in objects.items():
        template = template.replace("{" + name + "}", value)
    return template


async def _dead_letter_ids(settings: Settings) -> dict[str, str]:
    rows = await fetch(settings.DATABASE_URL, "SELECT id, station_id FROM dead_letters WHERE station_id IS NOT NULL")
    return {r["station_id"]: str(r["id"]) for r in rows}


@pytest.mark.parametrize("name", list(WHO))
async def test_each_role_sees_its_scope_and_nothing_else(
    name: str, world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    base, keys, seeded = world
    who = WHO[name]
    letters = await _dead_letter_ids(settings)
    sides = {
        "p1": {"station": "p1-out", "park": "p1", "alert": str(seeded["alert:p1-out"]), "dl": letters["p1-out"]},
        "p2": {"station": "p2-out", "park": "p2", "alert": str(seeded["alert:p2-out"]), "dl": letters["p2-out"]},
    }
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": keys[name]}, timeout=60) as api:
        for route, calls in CALLS.items():
            for template, params in calls:
                for objects in sides.values():
                    path = _fill(template, objects)
                    query = {k: _fill(v, objects) if isinstance(v, str) else v for k, v in params.items()}  # type: ignore[misc]
                    r = await api.get(path, params=query)
                    where = f"{name} GET {path} {query}"
                    assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:300]}"
                    if r.status_code in (401, 429):
                        pytest.fail(f"{where}: {r.status_code} {r.text[:200]}")
                    if r.headers.get("content-type", "").startswith("text/csv"):
                        # an export: no station outside the scope in any row
                        hidden = {s for s in STATIONS if s not in who.stations and s in r.text}
                        assert not hidden, f"{where} exported {hidden}"
                        seeded = template.endswith(("/readings", "/verdicts", "/alerts"))  # no rollups are seeded
                        if template.endswith("/alerts") and r.status_code == 200 and not params.get("park_id"):
                            # one seeded alert a station: as many rows as stations seen (an
                            # inspector's export once ran unscoped after its audit row)
                            rows = [line for line in r.text.lstrip("\ufeff").splitlines()[1:] if line]
                            assert len(rows) == len(who.stations & {"p1-out", "p2-out"}), f"{where}: {rows}"
                        unfiltered = not any("{" in str(v) for v in params.values())
                        if r.status_code == 200 and unfiltered and seeded:
                            shown = {s for s in ("p1-out", "p2-out") if s in r.text}
                            assert shown == who.stations & {"p1-out", "p2-out"}, f"{where}: {shown}"
                    if r.headers.get("content-type", "").startswith("application/json"):
                        seen = _seen(r.json())
                        assert seen["stations"] <= who.stations, (
                            f"{where} leaked stations {seen['stations'] - who.stations}"
                        )
                        assert seen["parks"] <= who.parks, f"{where} leaked parks {seen['parks'] - who.parks}"
                    in_scope = objects["station"] in who.stations
                    detail = route.endswith(
                        ("{station_id}", "{alert_id}", "{dead_letter_id}", "/dashboard/parks/{park_id}")
                    )
                    if detail and not in_scope and r.status_code == 200:
                        pytest.fail(f"{where}: a detail outside the scope answered 200")
                    if route == "/api/v1/dead-letters/{dead_letter_id}" and who.role not in ("admin", "bureau"):
                        assert r.status_code == 403, where
        # positive: what is in scope is there
        found: set[str] = set()
        for park in ("p1", "p2"):
            window = {"park_id": park, "start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z", "limit": 1000}
            page = (await api.get("/api/v1/readings", params=window)).json()
            found |= {r["station_id"] for r in page.get("results", [])}
        assert found == who.stations & {"p1-out", "p2-out"}
        listed = (await api.get("/api/v1/stations")).json()
        assert _seen(listed)["stations"] == who.stations
        alerts = (await api.get("/api/v1/alerts", params={"status": ["pending", "active", "cleared"]})).json()[
            "results"
        ]
        assert {a["station_id"] for a in alerts} == who.stations & {"p1-out", "p2-out"}


async def test_cursor_of_a_wider_scope_reads_nothing_more(
    world: tuple[str, dict[str, str], dict[str, int]],
) -> None:
    """A cursor issued to the province bureau for park p2, replayed by p1's operator, yields none of p2's rows."""
    base, keys, _ = world
    window = {"park_id": "p2", "start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z", "limit": 10}
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        wide = (await api.get("/api/v1/readings", params=window, headers={"X-API-Key": keys["bureau-province"]})).json()
        cursor = wide["next_cursor"] if "next_cursor" in wide else wide["meta"]["next"]
        seen: set[str] = set()
        while cursor:
            r = await api.get(
                "/api/v1/readings", params={**window, "cursor": cursor}, headers={"X-API-Key": keys["operator"]}
            )
            # refused (the park is not the operator's: 404), or read with the operator's scope
            assert r.status_code in (200, 400, 404), r.text
            if r.status_code != 200:
                break
            body = r.json()
            seen |= {x["station_id"] for x in body["results"]}
            cursor = body.get("next_cursor") or body.get("meta", {}).get("next")
        assert not seen


async def test_changes_each_role_may_make(
    world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    base, keys, seeded = world
    mine, theirs = seeded["alert:p1-out"], seeded["alert:p2-out"]
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:

        async def post(who: str, path: str, body: dict[str, Any]) -> httpx.Response:
            return await api.post(path, json=body, headers={"X-API-Key": keys[who]})

        # an inspector reads only: refused by the role before the database would refuse it too
        r = await post("inspector", f"/api/v1/alerts/{theirs}/ack", {"comment": "seen"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        # out of scope: not found, and nothing changes
        r = await post("operator", f"/api/v1/alerts/{theirs}/ack", {"comment": "seen"})
        assert r.status_code == 404, r.text
        assert await fetchval(settings.DATABASE_URL, "SELECT acked_at FROM alerts WHERE id = $1", theirs) is None
        # in scope: done, and recorded as the key (and the person it names)
        r = await post("operator", f"/api/v1/alerts/{mine}/ack", {"by": "张工", "comment": "on it"})
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged"]["by"] == "张工 [key:operator]"
        # the bureau verifies (核实); an operator may not
        r = await post("operator", f"/api/v1/alerts/{mine}/verify", {"verification": "genuine_exceedance"})
        assert r.status_code == 403
        r = await post("bureau-city", f"/api/v1/alerts/{mine}/verify", {"verification": "genuine_exceedance"})
        assert r.status_code == 200, r.text
        # a volume for a station outside the scope is refused as unknown, and none is stored
        volume = {"first_day": "2026-10-01", "last_day": "2026-10-01", "volume_m3": 100}
        r = await post("enterprise", "/api/v1/volumes", {**volume, "station_id": "p2-out"})
        assert r.status_code == 404, r.text
        r = await post("enterprise", "/api/v1/volumes", {**volume, "station_id": "p1-out"})
        assert r.status_code == 201, r.text
        assert r.json()["reported_by"] == "key:enterprise"
        # a name as long as a request may give, then the key: stored, answered and listed
        long = {**volume, "first_day": "2026-10-02", "last_day": "2026-10-02", "station_id": "p1-out"}
        r = await post("enterprise", "/api/v1/volumes", {**long, "reported_by": "漢字" * 100})
        assert r.status_code == 201 and r.json()["reported_by"] == "漢字" * 100 + " [key:enterprise]", r.text
        listed = await api.get("/api/v1/volumes", headers={"X-API-Key": keys["enterprise"]})
        assert listed.status_code == 200 and len(listed.json()["results"]) == 2, listed.text
        # reported indicators are the bureau's
        body = {
            "park_id": "p1",
            "period": "month",
            "date": "2026-10-01",
            "indicator": "facility_coverage",
            "value": 0.9,
        }
        assert (await post("operator", "/api/v1/assessment/inputs", body)).status_code == 403
        assert (await post("bureau-city", "/api/v1/assessment/inputs", body)).status_code == 201
        r = await post("bureau-city", "/api/v1/assessment/inputs", {**body, "park_id": "p2"})
        assert r.status_code == 404, r.text
        # a silence for the whole province is beyond a park's operator (the database refuses the row)
        silence = {"rule": "exceedance", "minutes": 30, "reason": "maintenance"}
        r = await post("operator", "/api/v1/silences", silence)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden"), r.text
        r = await post("operator", "/api/v1/silences", {**silence, "park_id": "p1"})
        assert r.status_code == 201, r.text
        r = await post("operator", "/api/v1/silences", {**silence, "park_id": "p2"})
        assert (r.status_code, r.json()["error"]) == (404, "unknown_park"), r.text
        # an explanation of its own alert, as the operator
        r = await post("operator", f"/api/v1/alerts/{mine}/explanation", {"text": "脱硫塔检修"})
        assert r.status_code == 200 and r.json()["supervision"]["text"] == "脱硫塔检修", r.text
        # remaking a stored report replaces it: the bureau's, not an inspector's
        day = {"date": "2026-10-01", "park_id": "p2", "refresh": "true"}
        r = await api.get("/api/v1/reports/daily", params=day, headers={"X-API-Key": keys["inspector"]})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden"), r.text
        r = await api.get("/api/v1/reports/daily", params=day, headers={"X-API-Key": keys["bureau-province"]})
        assert r.status_code == 200, r.text
        # keys are an administrator's
        new = {"name": "x", "role": "inspector", "cities": ["长沙"]}
        assert (await post("bureau-province", "/api/v1/keys", new)).status_code == 403
        made = await post("admin", "/api/v1/keys", new)
        assert made.status_code == 201 and made.json()["key"].startswith("pwk_")
        assert "key_hash" not in made.text
        # the audit log names who did each, from where, and how it ended
        audit = (await api.get("/api/v1/audit", headers={"X-API-Key": keys["admin"]})).json()["results"]
        acts = {(a["principal"], a["action"], a["status"]) for a in audit}
        assert ("key:operator", "POST /api/v1/alerts/{alert_id}/ack", 200) in acts
        assert ("key:operator", "POST /api/v1/alerts/{alert_id}/ack", 404) in acts
        assert ("key:inspector", "POST /api/v1/alerts/{alert_id}/ack", 403) in acts
        assert ("key:admin", "POST /api/v1/keys", 200) in acts
        assert ("key:inspector", "GET /api/v1/reports/daily", 403) in acts
        assert ("key:bureau-province", "GET /api/v1/reports/daily", 200) in acts
        assert all(a["address"] == "127.0.0.1" for a in audit)
        assert (await api.get("/api/v1/audit", headers={"X-API-Key": keys["operator"]})).status_code == 403


async def test_inspector_reads_are_audited(
    world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    base, keys, _ = world
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"X-API-Key": keys["inspector"]}) as api:
        assert (await api.get("/api/v1/readings", params={"station_id": "p2-out"})).status_code == 200
        assert (await api.get("/api/v1/alerts")).status_code == 200  # not a read of readings: not audited
    rows = await fetch(settings.DATABASE_URL, "SELECT principal, action, target, detail FROM audit_log")
    reads = [r for r in rows if r["principal"] == "key:inspector"]
    assert [(r["action"], r["target"]) for r in reads] == [("GET /api/v1/readings", "/api/v1/readings")]
    assert orjson.loads(reads[0]["detail"])["query"] == "station_id=p2-out"


async def test_credentials_that_do_not_hold(
    world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    base, keys, _ = world
    expired = await make_key(settings.DATABASE_URL, "operator", parks=["p1"])
    await fetchval(settings.DATABASE_URL, "UPDATE principals SET expires_at = now() - interval '1 s' WHERE key_prefix = $1 RETURNING id", expired[:12])  # fmt: skip
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        for path in [p for p in CALLS if "{" not in p]:
            r = await api.get(path)
            assert (r.status_code, r.json()["error"]) == (401, "unauthenticated"), path
            assert r.headers["www-authenticate"].startswith("ApiKey")
        r = await api.get("/api/v1/alerts", headers={"X-API-Key": "pwk_" + "x" * 43})
        assert (r.status_code, r.json()["error"]) == (401, "invalid_credentials")
        r = await api.get("/api/v1/alerts", headers={"X-API-Key": expired})
        assert (r.status_code, r.json()["error"]) == (401, "credentials_expired")
        revoked = await api.post("/api/v1/keys/1/revoke", headers={"X-API-Key": keys["admin"]})
        assert revoked.status_code == 200
        r = await api.get("/api/v1/alerts", headers={"X-API-Key": keys["admin"]})
        assert (r.status_code, r.json()["error"]) == (401, "credentials_revoked")
        # the same key as a bearer token (what Prometheus sends)
        r = await api.get("/api/v1/alerts", headers={"Authorization": f"Bearer {keys['operator']}"})
        assert r.status_code == 200
        # anonymous: health, docs; /metrics needs an administrator unless configured
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/metrics")).status_code == 401
        r = await api.get("/metrics", headers={"X-API-Key": keys["operator"]})
        assert r.status_code == 403


async def test_sessions_need_csrf_for_changes(
    world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    base, _, seeded = world
    await _p1_operator(settings, "li.wei", "correct horse 9")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        wrong = await api.post("/api/v1/session", json={"username": "li.wei", "password": "nope"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_credentials")
        nobody = await api.post("/api/v1/session", json={"username": "nobody", "password": "nope"})
        assert nobody.json() == wrong.json()  # no hint which of the two was wrong
        signed = await api.post("/api/v1/session", json={"username": "li.wei", "password": "correct horse 9"})
        assert signed.status_code == 201, signed.text
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        csrf = signed.json()["csrf_token"]
        me = (await api.get("/api/v1/session")).json()
        assert (me["name"], me["role"], me["sees_secrets"]) == ("li.wei", "operator", False)
        alert = seeded["alert:p1-out"]
        r = await api.post(f"/api/v1/alerts/{alert}/ack", json={})
        assert (r.status_code, r.json()["error"]) == (403, "csrf_failed")
        r = await api.post(f"/api/v1/alerts/{alert}/ack", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged"]["by"] == "li.wei"
        assert (await api.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await api.get("/api/v1/alerts")).status_code == 401
    audit = await fetch(settings.DATABASE_URL, "SELECT principal, action, status FROM audit_log ORDER BY id")
    assert ("user:li.wei", "sign-in failed", 401) in [tuple(a) for a in audit]
    assert ("user:li.wei", "sign-in", 201) in [tuple(a) for a in audit]


async def test_rate_limit_per_key(settings: Settings, registry: None) -> None:
    key = await make_key(settings.DATABASE_URL, "operator", parks=["p1"])
    other = await make_key(settings.DATABASE_URL, "operator", parks=["p1"])
    app = create_app(settings.model_copy(update={"API_RATE_LIMIT": 3}))
    async with (
        serving_asgi(app, "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=30) as api,
    ):
        answers = [await api.get("/api/v1/parks", headers={"X-API-Key": key}) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["x-ratelimit-limit"] == "3"
        assert answers[3].json()["error"] == "rate_limited" and int(answers[3].headers["retry-after"]) >= 1
        # another key has its own bucket
        assert (await api.get("/api/v1/parks", headers={"X-API-Key": other})).status_code == 200


def _frames(text: str) -> Iterator[dict[str, Any]]:
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                yield orjson.loads(line[6:])


async def test_live_events_stay_in_scope(world: tuple[str, dict[str, str], dict[str, int]]) -> None:
    base, keys, _ = world
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"X-API-Key": keys["operator"]}) as api:
        chunks: list[str] = []
        async with api.stream("GET", "/api/v1/events", params={"after": 0}) as response:
            assert response.status_code == 200

            async def read() -> None:
                async for chunk in response.aiter_text():
                    chunks.append(chunk)
                    if "p1-out" in "".join(chunks):
                        return

            await asyncio.wait_for(read(), 10)
    events = list(_frames("".join(chunks)))
    assert events and {e["alert"]["station_id"] for e in events} == {"p1-out"}


async def test_the_access_log_names_the_key_and_never_the_query(
    world: tuple[str, dict[str, str], dict[str, int]], caplog: pytest.LogCaptureFixture
) -> None:
    base, keys, _ = world
    caplog.set_level("INFO", logger="api.access")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        await api.get("/api/v1/readings", params={"station_id": "p2-out"}, headers={"X-API-Key": keys["inspector"]})
        await api.get("/api/v1/alerts", headers={"X-API-Key": "pwk_not-a-key"})

    async def logged() -> list[str]:
        # the line is written once the response is sent, a moment after the client has it
        return [r.getMessage() for r in caplog.records if r.name == "api.access"]

    lines = await eventually(logged, lambda found: len(found) >= 2)
    assert any(line.startswith("GET /api/v1/readings 200 ") and " key:inspector 127.0.0.1" in line for line in lines)
    assert any(line.startswith("GET /api/v1/alerts 401 ") and line.endswith(" - 127.0.0.1") for line in lines)
    assert not any("p2-out" in line or "pwk_" in line for line in lines)


async def test_guessing_keys_is_slowed(settings: Settings, registry: None) -> None:
    """Wrong keys from one address: after FAILED_AUTH_PER_MINUTE of them, 429; a right key still passes."""
    from api.app import FAILED_AUTH_PER_MINUTE  # noqa: PLC0415

    key = await make_key(settings.DATABASE_URL, "operator", parks=["p1"])
    async with (
        serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=30) as api,
    ):
        codes = [
            (await api.get("/api/v1/parks", headers={"X-API-Key": f"pwk_guess{i}"})).status_code
            for i in range(FAILED_AUTH_PER_MINUTE + 1)
        ]
        assert codes[:FAILED_AUTH_PER_MINUTE] == [401] * FAILED_AUTH_PER_MINUTE and codes[-1] == 429
        # a right key still works: only failures spend the address's allowance
        assert (await api.get("/api/v1/parks", headers={"X-API-Key": key})).status_code == 200
        # no key at all is not a guess
        assert (await api.get("/api/v1/parks")).status_code == 401
        # nor is /metrics a way round the limit
        assert (await api.get("/metrics", headers={"X-API-Key": "pwk_guess-metrics"})).status_code == 429


async def test_revoking_by_id_touches_no_other_key(settings: Settings, registry: None) -> None:
    """POST /keys/{id}/revoke revokes that id only: not a key whose name or prefix reads the same."""
    admin = await make_key(settings.DATABASE_URL, "admin")
    other = await make_key(settings.DATABASE_URL, "operator", name="999", parks=["p1"])
    async with (
        serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", headers={"X-API-Key": admin}) as api,
    ):
        r = await api.post("/api/v1/keys/999/revoke")
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await api.get("/api/v1/parks", headers={"X-API-Key": other})
        assert r.status_code == 200


async def test_a_query_that_forgets_the_filter_still_sees_only_the_scope(
    world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    """In SQL, on a connection entered as p1's operator: unfiltered queries return p1's rows only,
    the readings table itself is out of reach (its scoped view stands in), and the plan of a
    station's readings is still an index scan."""
    from api.access import enter_scope  # noqa: PLC0415
    from api.principals import Principal, Role  # noqa: PLC0415

    [row] = await fetch(settings.DATABASE_URL, "SELECT id FROM principals WHERE name = 'operator'")
    operator = Principal(id=row["id"], kind="key", name="operator", role=Role.OPERATOR)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await enter_scope(conn, operator)
        sids = {r["sid"] for r in await conn.fetch("SELECT DISTINCT sid FROM readings")}
        assert sids == {await conn.fetchval("SELECT sid FROM stations WHERE id = 'p1-out'")}  # p2-out's are hidden
        assert {r["id"] for r in await conn.fetch("SELECT id FROM stations")} == P1
        assert len(await conn.fetch("SELECT * FROM alerts")) == 1
        assert {
            r["park_id"] for r in await conn.fetch("SELECT s.park_id FROM verdicts v JOIN stations s USING (sid)")
        } == {"p1"}
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT count(*) FROM public.readings")
        partitions = [r["p"] for r in await conn.fetch("SELECT inhrelid::regclass::text AS p FROM pg_inherits "
                                                         "WHERE inhparent = 'public.readings'::regclass")]  # fmt: skip
        assert partitions  # the native storage: a default partition at least, and the months'
        for partition in partitions:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT count(*) FROM {partition}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT pw FROM stations")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM principals")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # a reader: GETs cannot write
            await conn.execute("DELETE FROM alerts")
        sid = min(sids)
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN SELECT ts, value FROM readings WHERE sid = {sid} AND pid = 1 AND iv = 1 "
                "AND ts >= '2026-10-01' AND ts < '2026-10-02'"
            )
        )
        assert "Index" in plan and "Seq Scan on readings" not in plan, plan
    finally:
        await conn.close()


async def test_a_locked_address_cannot_sign_in_even_with_the_right_password(settings: Settings, registry: None) -> None:
    """After ten failed sign-ins a minute, every sign-in from the address is 429 until it waits:
    a right guess must not answer differently from a wrong one."""
    from api.routes.access import SIGN_IN_PER_MINUTE  # noqa: PLC0415

    await _p1_operator(settings, "alice", "right password 1")
    async with (
        serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=30) as api,
    ):
        codes = [
            (await api.post("/api/v1/session", json={"username": "alice", "password": f"wrong {i}"})).status_code
            for i in range(SIGN_IN_PER_MINUTE + 2)
        ]
        assert codes == [401] * SIGN_IN_PER_MINUTE + [429, 429]
        right = await api.post("/api/v1/session", json={"username": "alice", "password": "right password 1"})
        assert right.status_code == 429 and "set-cookie" not in right.headers
    failed = await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM audit_log WHERE action = 'sign-in failed'")
    assert failed == SIGN_IN_PER_MINUTE  # the refused ones cost neither a hash nor a row


async def test_signing_out_ends_the_live_stream(
    world: tuple[str, dict[str, str], dict[str, int]], settings: Settings
) -> None:
    """A stream opened with a session stops when the session does, as a revoked key's does."""

    base, _, seeded = world
    await _p1_operator(settings, "li.na", "correct horse 10")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        signed = await api.post("/api/v1/session", json={"username": "li.na", "password": "correct horse 10"})
        csrf = signed.json()["csrf_token"]
        chunks: list[str] = []
        async with api.stream("GET", "/api/v1/events") as response:
            assert response.status_code == 200

            reader = asyncio.create_task(read_until_end(response, chunks))
            await asyncio.sleep(0.3)
            assert (await api.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})).status_code == 204
            await fetchval(
                settings.DATABASE_URL,
                "INSERT INTO alert_events (alert_id, kind, actor) VALUES ($1, 'commented', 'tests') RETURNING id",
                seeded["alert:p1-out"],
            )
            await asyncio.wait_for(reader, 20)
    text = "".join(chunks)
    assert "event: end" in text and "credentials_revoked" in text and '"actor": "tests"' not in text


async def test_one_key_holds_one_export_at_a_time(settings: Settings, registry: None) -> None:
    """While a key's export runs, its next one is 429 (another key's is served): one slow client
    cannot take every export slot of the process."""
    busy = await make_key(settings.DATABASE_URL, "operator", name="busy", parks=["p1"])
    other = await make_key(settings.DATABASE_URL, "operator", name="other", parks=["p1"])
    app = create_app(settings)
    [row] = await fetch(settings.DATABASE_URL, "SELECT id FROM principals WHERE name = 'busy'")
    app.state.exports_by_principal = {row["id"]: 1}  # as if its first export were still streaming
    async with (
        serving_asgi(app, "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=30) as api,
    ):
        path = "/api/v1/exports/alerts"
        r = await api.get(path, headers={"X-API-Key": busy})
        assert (r.status_code, r.json()["error"]) == (429, "exports_busy") and r.headers["retry-after"]
        assert (await api.get(path, headers={"X-API-Key": other})).status_code == 200
    assert app.state.exports_by_principal == {row["id"]: 1}  # the other's count went with its export
