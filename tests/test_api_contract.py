"""The API's contract: one paging scheme with a meta block, a schema for every response, names beside codes, secrets kept."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from api.pagemodels import PageMeta
from api.routes.compliance import AqiPage, VerdictPage
from api.routes.dead_letters import DeadLetterOne, DeadLetterPage
from api.routes.hj212 import EventPage, PacketPage, RequestPage
from api.routes.readings import DayRollup, HourRollup, Reading, ReadingPage, RevisionPage
from compliance.worker import ComplianceWorker
from ingest.batch import Batch, DeadLetter
from ingest.registry import load_registry_file
from ingest.store import Store
from parkwatch.settings import Settings
from schemas.registry import read_registry
from tests.helpers import fetch, make_key, serving_api

DATA = Path(__file__).parent / "data"
CST = ZoneInfo("Asia/Shanghai")
DAY = datetime(2025, 6, 10, tzinfo=CST)
SPAN = {"start": "2025-06-10", "end": "2025-06-11"}
PASSWORD = "s3cr3t-pw"
SM4_KEY = "0123456789abcdef0123456789abcdef"
AIR = {"a34004": 80.0, "a34002": 100.0, "a21026": 20.0, "a21004": 40.0, "a05024": 100.0, "a21005": 0.8}


@pytest.fixture
async def api(settings: Settings, registry: None) -> AsyncIterator[httpx.AsyncClient]:
    """Both test registries loaded, a day of data judged, packets, events and dead letters stored; an admin client."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, read_registry(DATA / "compliance_registry.yaml"))
        await conn.execute("UPDATE stations SET pw = $1, sm4_key = $2 WHERE id = 'p1-out'", PASSWORD, SM4_KEY)
    finally:
        await conn.close()
    await _seed(settings)
    async with serving_api(settings, None) as client:
        yield client


async def _seed(settings: Settings) -> None:
    sids = {r["id"]: r["sid"] for r in await fetch(settings.DATABASE_URL, "SELECT id, sid FROM stations")}
    pids = {r["code"]: r["pid"] for r in await fetch(settings.DATABASE_URL, "SELECT code, pid FROM parameters")}
    received = datetime(2025, 6, 11, tzinfo=UTC)

    def row(station: str, code: str, iv: int, ts: datetime, value: float) -> tuple[Any, ...]:
        return (sids[station], pids[code], iv, ts, value, "N", received, None, None, None, None)

    # the kiln: two hours of minute data (SO2 over its limit after O2 correction); the outlet:
    # a day of real-time COD; ambient air: a day of station-reported hours (24 hourly AQI)
    kiln = [
        row("cp-kiln", code, 1, DAY.replace(hour=8) + timedelta(minutes=m), value)
        for m in range(120)
        for code, value in (("a21026", 180.0), ("a21002", 300.0), ("a19001", 12.0))
    ]
    outlet = [row("cp-out", code, 0, DAY.replace(hour=h), v) for h in range(24) for code, v in (("w01018", 30.0),)]
    air = [row("cp-air", code, 2, DAY.replace(hour=h), v) for h in range(24) for code, v in AIR.items()]
    events = [
        (sids["p1-out"], "facility_state", f"SB{i % 3}", DAY + timedelta(minutes=i), 1.0, received) for i in range(12)
    ]
    packets = [
        (received + timedelta(seconds=i), "t/hj212/OUT", sids["p1-out"], "OUT", "2051", f"2025061100000{i:04d}",
         DAY, f"##0100QN=2025061100000{i:04d};ST=32;CN=2051;PW={PASSWORD};MN=OUT;CP=&&w01018-Rtd={i}&&\r\n".encode(),
         json.dumps([{"code": "header_stray_characters", "severity": "info", "message": f"header text 'PW={PASSWORD};'"}]))
        for i in range(9)
    ]  # fmt: skip
    dead = [
        DeadLetter(received + timedelta(seconds=i), "t/hj212/OUT", f"QN=1;PW={PASSWORD};MN=OUT;{i}".encode(),
                   "bad_password", f"wrong PW={PASSWORD}; for station p1-out", [], "p1-out")
        for i in range(7)
    ]  # fmt: skip
    store = Store(settings.DATABASE_URL)
    try:
        await store.write(Batch(rows=kiln + outlet + air, events=events, packets=packets, dead=dead))
        # later, different values of the same keys: revisions
        await store.write(Batch(rows=[(*r[:4], r[4] + 1, *r[5:]) for r in outlet[:23]]))
    finally:
        await store.close()
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await ComplianceWorker(settings.DATABASE_URL).drain(conn)
        for i in range(6):
            await conn.execute(
                "INSERT INTO logger_requests (sid, kind, cn, reason, state, created_at) VALUES ($1, 'set_clock', "
                "'1012', 'clock off', 'sent', $2)",
                sids["p1-out"],
                received + timedelta(minutes=i),
            )
    finally:
        await conn.close()


def _check_shape(model: type[BaseModel], body: dict[str, Any]) -> None:
    """The body validates against its documented model, and each row has exactly the model's keys."""
    TypeAdapter(model).validate_python(body)
    assert set(body) == {f.alias or name for name, f in model.model_fields.items()} | {"results"}
    [rows_field] = [f for n, f in model.model_fields.items() if n == "results"]
    row_models = _row_models(rows_field.annotation)
    for row in body["results"]:
        keys = [{f.alias or n for n, f in m.model_fields.items()} for m in row_models]
        assert set(row) in keys, (set(row), keys)


def _row_models(annotation: Any) -> list[type[BaseModel]]:
    (inner,) = annotation.__args__  # list[X]
    return list(getattr(inner, "__args__", (inner,)))


async def _walk(
    api: httpx.AsyncClient, path: str, params: dict[str, Any], limit: int, model: type[BaseModel]
) -> list[dict[str, Any]]:
    """Every page, following meta.next until null; each page checked against the model."""
    results: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        resp = await api.get(path, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        _check_shape(model, body)
        meta = PageMeta.model_validate(body["meta"])
        assert (meta.limit, meta.returned) == (limit, len(body["results"]))
        assert body["next_cursor"] == meta.next
        if "next_after_id" in body:
            assert (body["next_after_id"] is None) == (meta.next is None)
        results += body["results"]
        pages += 1
        cursor = meta.next
        if cursor is None:
            assert pages == max(1, -(-len(results) // limit)), (path, pages, len(results))
            return results


PAGED = [
    ("/api/v1/aqi", {"station_id": "cp-air", "period": "1h", **SPAN}, 5, AqiPage, ("station_id", "window_start")),
    ("/api/v1/readings/revisions", {"station_id": "cp-out", **SPAN}, 4, RevisionPage, ("parameter", "ts")),
    ("/api/v1/readings", {"park_id": "cp", **SPAN}, 70, ReadingPage, ("station_id", "parameter", "interval", "ts")),
    ("/api/v1/readings", {"park_id": "cp", "interval": "hour", **SPAN}, 7, ReadingPage, ("station_id", "parameter", "ts")),
    ("/api/v1/readings", {"park_id": "cp", "interval": "day", **SPAN}, 2, ReadingPage, ("station_id", "parameter", "ts")),
    ("/api/v1/compliance", {"park_id": "cp", **SPAN}, 3, VerdictPage,
     ("station_id", "parameter", "window", "window_start", "standard")),
    ("/api/v1/stations/p1-out/events", SPAN, 5, EventPage, ("kind", "subject", "ts")),
    ("/api/v1/stations/p1-out/hj212-packets", {"start": "2025-06-01"}, 4, PacketPage, ("id",)),
    ("/api/v1/stations/p1-out/logger-requests", {"start": "2025-06-01"}, 4, RequestPage, ("id",)),
    ("/api/v1/dead-letters", {}, 3, DeadLetterPage, ("id",)),
]  # fmt: skip


@pytest.mark.parametrize(("path", "params", "limit", "model", "key"), PAGED, ids=[f"{p[0]}{p[1]}" for p in PAGED])
async def test_following_next_reads_every_row_once(
    api: httpx.AsyncClient, path: str, params: dict[str, Any], limit: int, model: type[BaseModel], key: tuple[str]
) -> None:
    """Every paged route: a meta block, and `next` followed until null gives each row exactly once,
    the same rows as one page holding them all."""
    walked = await _walk(api, path, params, limit, model)
    whole = (await api.get(path, params={**params, "limit": 1000})).json()
    assert whole["meta"]["next"] is None
    assert len(whole["results"]) > limit, "the test needs more rows than a page"
    keys = [tuple(r[k] for k in key) for r in walked]
    assert len(set(keys)) == len(keys)
    assert walked == whole["results"]


async def test_cursor_and_after_id_are_one_or_the_other(api: httpx.AsyncClient) -> None:
    first = (await api.get("/api/v1/dead-letters", params={"limit": 3})).json()
    assert first["next_after_id"] == first["results"][-1]["id"]
    older = (await api.get("/api/v1/dead-letters", params={"limit": 3, "after_id": first["next_after_id"]})).json()
    newer = (await api.get("/api/v1/dead-letters", params={"limit": 3, "cursor": first["meta"]["next"]})).json()
    assert older["results"] == newer["results"]
    both = await api.get("/api/v1/dead-letters", params={"after_id": 1, "cursor": first["meta"]["next"]})
    assert (both.status_code, both.json()["error"]) == (400, "bad_cursor")
    other = await api.get("/api/v1/stations/p1-out/hj212-packets", params={"cursor": first["meta"]["next"]})
    assert (other.status_code, other.json()["error"]) == (400, "bad_cursor")  # a cursor of another route


# (method, path) of the routes this contract covers: each names a response schema and its errors.
ROUTES = [
    ("get", "/api/v1/readings"), ("get", "/api/v1/readings/revisions"), ("get", "/api/v1/compliance"),
    ("get", "/api/v1/aqi"), ("get", "/api/v1/standards"), ("get", "/api/v1/standards/{ident}"),
    ("post", "/api/v1/evaluate"), ("get", "/api/v1/parks"), ("get", "/api/v1/parks/{park_id}"),
    ("get", "/api/v1/stations"), ("get", "/api/v1/stations/{station_id}"),
    ("get", "/api/v1/stations/{station_id}/hj212-packets"), ("get", "/api/v1/stations/{station_id}/events"),
    ("get", "/api/v1/stations/{station_id}/logger-requests"), ("get", "/api/v1/dead-letters"),
    ("get", "/api/v1/dead-letters/summary"), ("get", "/api/v1/dead-letters/{dead_letter_id}"),
]  # fmt: skip


async def test_openapi_names_a_schema_for_every_response(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    for method, path in ROUTES:
        responses = schema["paths"][path][method]["responses"]
        ok = responses["200"]["content"]["application/json"]["schema"]
        refs = [ok["$ref"]] if "$ref" in ok else [s["$ref"] for s in ok.get("anyOf", [])]
        assert refs, (path, ok)
        for ref in refs:
            assert ref.split("/")[-1] in components, (path, ref)
        for status in ("400", "401", "403", "404", "422", "503"):
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody"), path
        if any(p["name"] == "cursor" for p in schema["paths"][path][method].get("parameters", [])):
            page = components[refs[0].split("/")[-1]]
            meta = components[page["properties"]["meta"]["$ref"].split("/")[-1]]
            assert set(meta["properties"]) == {"limit", "returned", "next"}, path
    readings = schema["paths"]["/api/v1/readings"]["get"]["responses"]
    assert "unknown_station" in readings["404"]["description"]
    assert "missing_filter" in readings["422"]["description"]
    assert "too_many" in schema["paths"]["/api/v1/evaluate"]["post"]["responses"]["413"]["description"]


async def test_names_and_units_beside_every_code(api: httpx.AsyncClient) -> None:
    so2 = {"parameter": "a21026", "parameter_name": "sulphur dioxide (SO2)", "parameter_name_zh": "二氧化硫"}
    reading = (await api.get("/api/v1/readings", params={"station_id": "cp-kiln", "parameter": "so2", **SPAN})).json()
    assert {k: reading["results"][0][k] for k in so2} == so2
    assert reading["results"][0]["unit"] == "mg/m³"
    hour = (
        await api.get(
            "/api/v1/readings", params={"station_id": "cp-kiln", "parameter": "so2", "interval": "hour", **SPAN}
        )
    ).json()["results"][0]
    assert {k: hour[k] for k in so2} == so2
    assert list(hour).index("parameter_name") == list(hour).index("parameter") + 1
    verdict = (await api.get("/api/v1/compliance", params={"station_id": "cp-kiln", "parameter": "so2", **SPAN})).json()
    assert {k: verdict["results"][0][k] for k in so2} == so2 and verdict["results"][0]["unit"] == "mg/m³"
    revision = (await api.get("/api/v1/readings/revisions", params={"station_id": "cp-out", **SPAN})).json()
    assert revision["results"][0]["parameter_name_zh"] == "化学需氧量" and revision["results"][0]["unit"] == "mg/L"
    aqi = (await api.get("/api/v1/aqi", params={"station_id": "cp-air", "period": "1h", **SPAN})).json()["results"][0]
    pm25 = next(p for p in aqi["pollutants"] if p["pollutant"] == "pm25")
    assert pm25 | {"concentration": None, "iaqi": None} == {
        "pollutant": "pm25", "label": "PM2.5", "parameter": "a34004", "parameter_name": "PM2.5",
        "parameter_name_zh": "细颗粒物", "unit": "µg/m³", "concentration": None, "iaqi": None,
    }  # fmt: skip
    assert pm25["iaqi"] == aqi["iaqi"]["pm25"] and pm25["concentration"] == aqi["concentrations"].get("pm25")
    standard = (await api.get("/api/v1/standards/GB4915-2013")).json()
    limit = next(x for x in standard["limits"] if x["parameter"] == "a21026")
    assert (limit["parameter_name"], limit["parameter_name_zh"], limit["unit"]) == (
        "sulphur dioxide (SO2)", "二氧化硫", "mg/m³",
    )  # fmt: skip
    question = {"standard": "GB4915-2013", "class": "kiln", "parameter": "so2", "period": "hour", "value": 180}
    air = {"standard": "HJ633-2012", "period": "24h", "concentrations": {"pm25": 80}}
    answer, missing, index = (
        await api.post("/api/v1/evaluate", json=[{**question, "context": {"o2_pct": 12}}, question, air])
    ).json()["results"]
    assert missing == {"error": "missing_o2", "message": missing["message"]}  # an error answer is kept whole
    assert (index["aqi"], index["primary"]) == (107, ["PM2.5"])
    assert {k: answer[k] for k in so2} == so2
    station = (await api.get("/api/v1/stations/cp-kiln")).json()
    assert {"parameter": "a21026", "parameter_name": "sulphur dioxide (SO2)", "parameter_name_zh": "二氧化硫",
            "unit": "mg/m³"} in station["parameter_details"]  # fmt: skip


async def test_coverage_has_the_same_names_on_readings_and_compliance(api: httpx.AsyncClient) -> None:
    """An hour's and a day's coverage: the same keys, with the same values, in a rollup and its verdict."""
    kiln = {"station_id": "cp-kiln", "parameter": "so2", **SPAN}
    [hour, _] = (await api.get("/api/v1/readings", params={**kiln, "interval": "hour"})).json()["results"]
    verdicts = (await api.get("/api/v1/compliance", params={**kiln, "window": "hour"})).json()["results"]
    judged = next(v for v in verdicts if v["window_start"] == hour["ts"])["coverage"]
    for key in ("expected_minutes", "observed_minutes", "valid_minutes"):
        assert judged[key] == hour["coverage"][key], key
    assert (judged["count"], judged["valid_count"]) == (hour["count"], hour["valid_count"])
    outlet = {"station_id": "cp-out", "parameter": "cod", **SPAN}
    [day] = (await api.get("/api/v1/readings", params={**outlet, "interval": "day"})).json()["results"]
    [verdict] = (await api.get("/api/v1/compliance", params={**outlet, "window": "day"})).json()["results"]
    for key in ("expected_hours", "observed_hours", "valid_hours"):
        assert verdict["coverage"][key] == day["coverage"][key], key
    everything = (await api.get("/api/v1/compliance", params={"park_id": "cp", **SPAN})).json()["results"]
    for v in everything:
        stored_style = [k for k in v["coverage"] if k.split("_")[0] in ("minutes", "hours", "windows", "values")]
        assert not stored_style, (v["window"], stored_style)


async def test_passwords_and_payloads_are_for_administrators(settings: Settings, api: httpx.AsyncClient) -> None:
    """Others read packets with PW=****** and dead letters without their payload (an operator of the
    park, and the bureau: operators may not list dead letters at all); an administrator reads both as
    received. No registry route returns a password or SM4 key, to anyone."""
    operator = {"X-API-Key": await make_key(settings.DATABASE_URL, "operator", parks=["p1"])}
    bureau = {"X-API-Key": await make_key(settings.DATABASE_URL, "bureau", province=True)}
    for headers, sees in (({}, True), (operator, False), (bureau, False)):
        packets = await api.get(
            "/api/v1/stations/p1-out/hj212-packets", params={"start": "2025-06-01"}, headers=headers
        )
        assert packets.status_code == 200, packets.text
        _check_shape(PacketPage, packets.json())
        [raw] = {p["raw"].split("CP=")[0].split(";", 1)[1] for p in packets.json()["results"]}
        assert raw == (f"ST=32;CN=2051;PW={PASSWORD};MN=OUT;" if sees else "ST=32;CN=2051;PW=******;MN=OUT;")
        assert (PASSWORD in packets.text) is sees  # the findings' messages masked too
        for path in ("/api/v1/stations/p1-out", "/api/v1/stations", "/api/v1/parks/p1", "/api/v1/parks"):
            shown = await api.get(path, headers=headers)
            assert shown.status_code == 200, (path, shown.text)
            assert PASSWORD not in shown.text and SM4_KEY not in shown.text, path
            assert '"pw"' not in shown.text and '"sm4_key"' not in shown.text, path
    assert (await api.get("/api/v1/dead-letters", headers=operator)).status_code == 403
    for headers, sees in (({}, True), (bureau, False)):
        listed = await api.get("/api/v1/dead-letters", headers=headers)
        assert listed.status_code == 200, listed.text
        assert {d["payload_redacted"] for d in listed.json()["results"]} == {not sees}
        assert (PASSWORD in listed.text) is sees  # the refusal's message masked too
        one = await api.get(f"/api/v1/dead-letters/{listed.json()['results'][0]['id']}", headers=headers)
        body = one.json()
        DeadLetterOne.model_validate(body)
        assert body["payload_redacted"] is not sees
        if sees:
            assert f"PW={PASSWORD};" in body["payload_text"]
            assert PASSWORD.encode() in base64.b64decode(body["payload_base64"])
        else:
            assert (body["payload_text"], body["payload_base64"]) == (None, None)
            assert body["message"] == "wrong PW=******; for station p1-out" and PASSWORD not in one.text


@pytest.mark.parametrize("model", [Reading, HourRollup, DayRollup])
def test_reading_models_name_their_parameter(model: type[BaseModel]) -> None:
    assert {"parameter", "parameter_name", "parameter_name_zh", "unit"} <= set(model.model_fields)
