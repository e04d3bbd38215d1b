"""Hostile requests get a 4xx with the error envelope, never a 500 (found by an outside probe with schemathesis)."""

from __future__ import annotations

import asyncio
import base64
import socket

import httpx
import orjson
import pytest

import api.protocol as protocol_module
from ingest.service import IngestService
from parkwatch.settings import Settings
from tests.helpers import count_readings, eventually, message, publish, recent

NUL_REQUESTS = [
    ("GET", "/api/v1/readings", {"station_id": "p1-out\x00"}),
    ("GET", "/api/v1/readings", {"station_id": "p1-out", "parameter": "cod\x00"}),
    ("GET", "/api/v1/compliance", {"park_id": "p1\x00"}),
    ("GET", "/api/v1/aqi", {"station_id": "p1-air\x00"}),
    ("GET", "/api/v1/stations", {"park_id": "\x00"}),
    ("GET", "/api/v1/parks", {"city": "长沙\x00"}),
    ("GET", "/api/v1/dead-letters", {"reason": "schema\x00"}),
    ("GET", "/api/v1/alerts", {"rule": "exceedance\x00"}),
    ("GET", "/api/v1/standards/GB4915%00", None),
    ("GET", "/api/v1/stations/p1-out%00", None),
    ("GET", "/api/v1/stations/p1-out/hj212-packets", {"start": "2026-01-01\x00"}),
    ("GET", "/api/v1/readings/revisions", {"station_id": "p1-out\x00"}),
]


@pytest.mark.parametrize(("method", "path", "params"), NUL_REQUESTS, ids=[f"{p}?{q}" for _, p, q in NUL_REQUESTS])
async def test_a_nul_anywhere_is_a_400(
    api: httpx.AsyncClient, method: str, path: str, params: dict[str, str] | None
) -> None:
    resp = await api.request(method, path, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "bad_parameter"


async def test_a_nul_in_a_body_is_a_400(api: httpx.AsyncClient) -> None:
    resp = await api.post(
        "/api/v1/silences",
        content=b'{"by": "x\\u0000", "reason": "r", "rule": "exceedance", "minutes": 5}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"] == "bad_parameter"


async def test_numbers_and_dates_out_of_range_are_4xx(api: httpx.AsyncClient) -> None:
    huge = "99999999999999999999"
    for path, params in (
        ("/api/v1/dead-letters", {"after_id": huge}),
        ("/api/v1/stations/p1-out/hj212-packets", {"after_id": huge}),
        (f"/api/v1/alerts/{huge}", None),
        (f"/api/v1/dead-letters/{huge}", None),
    ):
        resp = await api.get(path, params=params)
        assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.text)
        assert "error" in resp.json() or "detail" in resp.json()
    for start in ("0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00"):
        resp = await api.get("/api/v1/readings", params={"station_id": "p1-out", "start": start})
        assert resp.status_code == 422 and resp.json()["error"] == "bad_time", (start, resp.text)
    resp = await api.get("/api/v1/readings", params={"station_id": "p1-out", "end": "0001-01-01"})
    assert resp.status_code == 422


async def test_tampered_cursors_are_refused(settings: Settings, ingest: IngestService, api: httpx.AsyncClient) -> None:
    """Every edit of a cursor is a 400 bad_cursor: its filters are signed, not only written down."""
    for minute in range(4):
        await publish(settings, "p1", "p1-out", message("p1-out", recent(60 * (minute + 2)), {"cod": 10.0 + minute}))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 4)
    page = (await api.get("/api/v1/readings", params={"station_id": "p1-out", "limit": 1})).json()
    cursor = page["next_cursor"]
    assert cursor and "." in cursor
    ok = await api.get("/api/v1/readings", params={"station_id": "p1-out", "limit": 1, "cursor": cursor})
    assert ok.status_code == 200
    body, signature = cursor.split(".")
    doc = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged_doc = [*doc[:3], doc[3] + 1, *doc[4:]]  # fingerprint, window, then the key: another station
    forged = base64.urlsafe_b64encode(orjson.dumps(forged_doc)).decode().rstrip("=")
    variants = [
        body,  # no signature
        f"{body}.",
        f"{forged}.{signature}",  # another key, the old signature
        f"{body}.{signature[:-1]}{'B' if signature.endswith('A') else 'A'}",  # one character off
        f"{body}.{'A' * len(signature)}" if signature != "A" * len(signature) else "A",
        cursor + "x",
        "not-a-cursor",
        "%00",
        "." * 3,
    ]
    for variant in variants:
        resp = await api.get("/api/v1/readings", params={"station_id": "p1-out", "limit": 1, "cursor": variant})
        assert resp.status_code == 400, (variant, resp.status_code)
        assert resp.json()["error"] in ("bad_cursor", "bad_parameter"), variant
    other = await api.get("/api/v1/readings", params={"station_id": "p1-out", "limit": 2, "cursor": cursor})
    assert other.status_code == 200  # the limit is not a filter
    wrong = await api.get("/api/v1/readings", params={"station_id": "p1-out", "parameter": "cod", "cursor": cursor})
    assert wrong.status_code == 400 and "other filters" in wrong.json()["detail"]


async def test_large_bodies_are_refused_before_parsing(api: httpx.AsyncClient) -> None:
    """A 20 MB /evaluate is a 413 at once, by Content-Length or chunk by chunk."""
    big = b"[" + b'{"standard": "GB4915-2013"},' * 700_000 + b"{}]"
    resp = await api.post("/api/v1/evaluate", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    resp = await api.post("/api/v1/evaluate", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


async def test_request_headers_have_a_deadline(
    settings: Settings, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client trickling its headers (slowloris) is disconnected; a normal one is served meanwhile."""
    monkeypatch.setattr(protocol_module, "HEADER_TIMEOUT", 0.5)
    loop = asyncio.get_running_loop()
    slow = socket.create_connection(("127.0.0.1", settings.API_PORT))
    slow.setblocking(False)
    await loop.sock_sendall(slow, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert (await api.get("/api/v1/standards")).status_code == 200
    await asyncio.sleep(1.0)
    data = await asyncio.wait_for(loop.sock_recv(slow, 1024), 5)
    assert data == b""  # closed by the server, nothing answered
    slow.close()


async def test_openapi_declares_the_errors(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    responses = schema["paths"]["/api/v1/readings"]["get"]["responses"]
    assert {"200", "400", "404", "408", "413", "422", "503"} <= set(responses)
    for status in ("400", "404", "422"):
        assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


async def test_every_error_has_the_one_envelope(api: httpx.AsyncClient) -> None:
    """Parameters of the wrong type, unknown routes and methods, bodies that are not JSON: the
    same {"error", "detail"} body, the parameter's problem named, the hostile value not echoed."""
    hostile = "x" * 5000
    bad = await api.get("/api/v1/readings", params={"station_id": "p1-out", "limit": hostile})
    body = bad.json()
    assert bad.status_code == 422 and body["error"] == "invalid_request"
    assert body["problems"][0]["at"] == "query.limit" and hostile not in bad.text
    for resp, status, code in [
        (await api.get("/api/v1/nowhere"), 404, "not_found"),
        (await api.delete("/api/v1/standards"), 405, "method_not_allowed"),
        (
            await api.post("/api/v1/evaluate", content=b"{not json", headers={"content-type": "application/json"}),
            422,
            "invalid_request",
        ),
    ]:
        assert resp.status_code == status, resp.text
        assert resp.json()["error"] == code and isinstance(resp.json()["detail"], str)
