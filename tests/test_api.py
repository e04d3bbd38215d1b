"""The query API: readings with keyset paging, filters and errors; dead letters; health; docs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from ingest.batch import Batch, DeadLetter
from ingest.store import Store
from parkwatch.settings import Settings
from tests.helpers import eventually, fetch, fetchval, publish

T0 = datetime(2026, 10, 1, tzinfo=UTC)


async def _seed(settings: Settings, minutes: int = 300) -> None:
    """p1-out: COD and TP each minute (iv=min) plus hourly COD; p1-air: PM2.5 each minute."""
    ids = {r["id"]: r["sid"] for r in await fetch(settings.DATABASE_URL, "SELECT id, sid FROM stations")}
    pids = {r["code"]: r["pid"] for r in await fetch(settings.DATABASE_URL, "SELECT code, pid FROM parameters")}
    now = datetime.now(UTC)
    rows: list[Any] = []
    for m in range(minutes):
        ts = T0 + timedelta(minutes=m)
        rows.append((ids["p1-out"], pids["w01018"], 1, ts, 30.0 + m, "N", now, None, None, None, None))
        rows.append(
            (ids["p1-out"], pids["w21011"], 1, ts, 0.2, "C" if m % 60 == 0 else "N", now, None, None, None, None)
        )
        rows.append((ids["p1-air"], pids["a34004"], 1, ts, 35.0, "N", now, None, None, None, None))
    for h in range(minutes // 60):
        rows.append((ids["p1-out"], pids["w01018"], 2, T0 + timedelta(hours=h), 31.0, "N", now, None, None, None, None))
    store = Store(settings.DATABASE_URL)
    try:
        await store.write(Batch(rows=rows))
    finally:
        await store.close()


async def _all_pages(api: httpx.AsyncClient, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    results: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        resp = await api.get("/api/v1/readings", params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        results += body["results"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return results, pages


async def test_keyset_paging_walks_every_series_once(settings: Settings, api: httpx.AsyncClient) -> None:
    """Paging with next_cursor returns every row once, ordered by station, parameter, interval, time."""
    await _seed(settings)
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()}
    results, pages = await _all_pages(api, {"park_id": "p1", "limit": 170, **window})
    assert len(results) == 300 * 3 + 5
    assert pages == -(-len(results) // 170)
    keys = [(r["station_id"], r["parameter"], r["interval"], r["ts"]) for r in results]
    assert len(set(keys)) == len(keys)
    stations_order = [r["station_id"] for r in results]
    assert stations_order == sorted(stations_order, key=["p1-out", "p1-air"].index)  # by station key (sid)
    cod_min = [r for r in results if r["parameter"] == "w01018" and r["interval"] == "min"]
    assert [r["value"] for r in cod_min] == [30.0 + m for m in range(300)]
    assert cod_min[0]["ts"] == "2026-10-01T00:00:00Z"
    assert cod_min[0]["ts_local"] == "2026-10-01T08:00:00+08:00"
    assert {r["unit"] for r in results if r["parameter"] == "a34004"} == {"µg/m³"}


async def test_filters(settings: Settings, api: httpx.AsyncClient) -> None:
    """Parameter (alias or code, several), interval and local-time bounds narrow the answer."""
    await _seed(settings)
    # naive bounds are the station's local time: 08:00-09:00 Shanghai is 00:00-01:00 UTC
    resp = await api.get(
        "/api/v1/readings",
        params={
            "station_id": "p1-out",
            "parameter": "cod",
            "interval": "min",
            "start": "2026-10-01T08:00",
            "end": "2026-10-01T09:00",
        },
    )
    body = resp.json()["results"]
    assert len(body) == 60
    assert body[0]["ts"] == "2026-10-01T00:00:00Z" and body[-1]["ts"] == "2026-10-01T00:59:00Z"
    resp = await api.get(
        "/api/v1/readings",
        params=[
            ("station_id", "p1-out"),
            ("station_id", "p1-air"),
            ("parameter", "tp,pm25"),
            ("start", "2026-10-01"),
            ("end", "2026-10-02"),
            ("limit", "10000"),
        ],
    )
    got = resp.json()["results"]
    assert {(r["station_id"], r["parameter"]) for r in got} == {("p1-out", "w21011"), ("p1-air", "a34004")}
    assert sum(1 for r in got if r["flag"] == "C") == 5
    hourly = (
        await api.get(
            "/api/v1/readings",
            params={
                "station_id": "p1-out",
                "interval": "hour",
                "source": "reported",
                "start": "2026-10-01",
                "end": "2026-10-02",
            },
        )
    ).json()
    assert [r["ts"] for r in hourly["results"]] == [f"2026-10-01T0{h}:00:00Z" for h in range(5)]


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({}, 422, "missing_filter"),
        ({"station_id": "nope"}, 404, "unknown_station"),
        ({"park_id": "nope"}, 404, "unknown_park"),
        ({"station_id": "p1-out", "parameter": "unobtainium"}, 422, "unknown_parameter"),
        ({"station_id": "p1-out", "start": "yesterday"}, 422, "bad_time"),
        ({"station_id": "p1-out", "start": "2026-10-02", "end": "2026-10-01"}, 422, "bad_time"),
        ({"station_id": "p1-out", "cursor": "garbage!"}, 400, "bad_cursor"),
        ({"station_id": "p1-out", "limit": "10001"}, 422, "invalid_request"),
        ({"station_id": "p1-out", "interval": "week"}, 422, "invalid_request"),
    ],
)
async def test_errors_are_clear(api: httpx.AsyncClient, params: dict[str, str], status: int, error: str | None) -> None:
    """Bad queries get a status and a machine-readable error code."""
    resp = await api.get("/api/v1/readings", params=params)
    assert resp.status_code == status, resp.text
    if error is not None:
        assert resp.json()["error"] == error


async def test_cursor_is_bound_to_its_query(settings: Settings, api: httpx.AsyncClient) -> None:
    """A cursor replayed with other filters is refused rather than silently skipping rows."""
    await _seed(settings, minutes=30)
    params = {"station_id": "p1-out", "start": "2026-10-01", "end": "2026-10-02", "limit": "10"}
    cursor = (await api.get("/api/v1/readings", params=params)).json()["next_cursor"]
    assert cursor
    resp = await api.get("/api/v1/readings", params={**params, "parameter": "tp", "cursor": cursor})
    assert resp.status_code == 400
    assert resp.json()["error"] == "bad_cursor"


async def test_dead_letter_endpoints(settings: Settings, api: httpx.AsyncClient) -> None:
    """List, summary and one dead letter with its raw payload."""
    store = Store(settings.DATABASE_URL)
    now = datetime.now(UTC)
    try:
        await store.write(
            Batch(
                dead=[
                    DeadLetter(now, "t/p1/x/readings", b"{bad", "invalid_json", "not valid JSON", [], "x"),
                    DeadLetter(
                        now + timedelta(seconds=1),
                        "t/p1/x/readings",
                        b"\xff",
                        "invalid_json",
                        "not valid JSON",
                        [],
                        "x",
                    ),
                    DeadLetter(
                        now + timedelta(seconds=2),
                        "t/p1/y/readings",
                        b"{}",
                        "schema",
                        "station_id is required",
                        [],
                        "y",
                    ),
                ]
            )
        )
    finally:
        await store.close()
    listed = (await api.get("/api/v1/dead-letters", params={"reason": "invalid_json"})).json()
    assert [d["topic"] for d in listed["results"]] == ["t/p1/x/readings"] * 2
    summary = (await api.get("/api/v1/dead-letters/summary")).json()["results"]
    assert summary == [
        {"reason": "invalid_json", "total": 2, "open": 2},
        {"reason": "schema", "total": 1, "open": 1},
    ]
    first = listed["results"][0]["id"]
    one = (await api.get(f"/api/v1/dead-letters/{first}")).json()
    assert one["payload_text"] == "{bad" and one["payload_base64"] == "e2JhZA=="
    second = (await api.get(f"/api/v1/dead-letters/{first + 1}")).json()
    assert second["payload_text"] is None
    assert (await api.get("/api/v1/dead-letters/999999")).status_code == 404


async def test_health_docs_and_metrics(api: httpx.AsyncClient) -> None:
    """/healthz reports both services; /docs and the OpenAPI schema are served; /metrics counts."""
    health = await api.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database"]["ok"] and body["broker"]["ok"]
    assert body["ingest"]["mqtt_connected"] is True
    assert (await api.get("/docs")).status_code == 200
    schema = (await api.get("/openapi.json")).json()
    assert "/api/v1/readings" in schema["paths"]
    metrics = (await api.get("/metrics")).text
    assert "parkwatch_ingest_messages_total 0" in metrics


async def test_health_degraded_when_services_are_unreachable(settings: Settings) -> None:
    """With the database and broker out of reach, /healthz answers 503 and says which."""
    bad = settings.model_copy(
        update={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none", "MQTT_URL": "mqtt://127.0.0.1:1"}
    )
    app = create_app(bad)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        resp = await client.get("/healthz")
        readings = await client.get("/api/v1/readings", params={"station_id": "x"})
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "down"
    assert body["database"]["ok"] is False and body["broker"]["ok"] is False
    assert readings.status_code == 503
    assert readings.json()["error"] == "database_unavailable"


async def test_metrics_are_what_prometheus_reads(settings: Settings, ingest: Any, api: httpx.AsyncClient) -> None:
    """/metrics parsed by the Prometheus client's own text parser: HELP and TYPE for every family,
    the ingest latency as a histogram in seconds (a published message lands in a bucket), HTTP
    requests by route template (never the raw path) and status, the process's own metrics."""
    now = datetime.now(UTC).replace(microsecond=0)
    await publish(settings, "p1", "p1-stack", {"station_id": "p1-stack", "ts": now.isoformat(), "interval": "rtd",
                                               "readings": [{"parameter": "a21026", "value": 12}]})  # fmt: skip
    await eventually(lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings"), lambda n: n == 1)
    assert (await api.get("/api/v1/alerts/424242")).status_code == 404
    answer = await api.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert all(f.documentation for f in families.values())
    assert families["parkwatch_ingest_messages"].type == "counter"
    assert families["parkwatch_ingest_messages"].samples[0].value == 1
    latency = families["parkwatch_ingest_latency_seconds"]
    assert latency.type == "histogram"
    count = [s.value for s in latency.samples if s.name.endswith("_count")]
    infinite = [s.value for s in latency.samples if s.labels.get("le") == "+Inf"]
    assert count == infinite == [1.0]
    requests = {(s.labels["route"], s.labels["status"]): s.value
                for s in families["parkwatch_http_requests"].samples if s.name.endswith("_total")}  # fmt: skip
    assert requests[("/api/v1/alerts/{alert_id}", "404")] == 1
    assert not any("424242" in route for route, _ in requests)
    assert families["parkwatch_http_request_duration_seconds"].type == "histogram"
    assert families["process_resident_memory_bytes"].samples[0].value > 0
