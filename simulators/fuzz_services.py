"""The edges `parkwatch fuzz` attacks through the services: the HTTP API by its OpenAPI, the whole ingest pipeline.

Both run against a scratch database ({database}_fuzz_{edge}) made for the run and dropped after it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiomqtt
import asyncpg
import httpx

from api.app import create_app
from api.principals import Role, create_key
from ingest.batcher import BATCH_MAX_DELAY
from ingest.messages import decode_message
from ingest.registry import fetch_registry
from ingest.service import IngestService
from ingest.stats import IngestStats
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from schemas.readings import hj212_topic
from schemas.registry import RegistryFile
from simulators import scratch
from simulators.broker import PrivateBroker, free_port
from simulators.fuzz import EdgeReport, rss_mb, save_failure
from simulators.fuzz_inputs import HOSTILE_NUMBERS, HOSTILE_STRINGS, MAX_INPUT, Mutator, hj212_seeds, json_seeds

logger = logging.getLogger(__name__)

# An API request slower than this is a hang (the API's own statement timeout is shorter).
API_HANG_SECONDS = 10.0
# Routes that never end by design (a live event stream): fuzzed by their own tests instead.
ENDLESS = ("/api/v1/events", "/api/v1/dashboard/stream")
# How long the pipeline may take to account for every message of a round once it is published.
SETTLE_TIMEOUT = 120.0
# Messages published, then checked, at a time.
PIPELINE_ROUND = 5000
DEAD_SINCE = "SELECT id, topic, payload FROM dead_letters WHERE id > $1"
# The messages (by index) whose accepted readings are not all stored.
MISSING_KEYS = """
SELECT DISTINCT k.i FROM unnest($1::int[], $2::int[], $3::smallint[], $4::smallint[], $5::timestamptz[])
    AS k (i, sid, pid, iv, ts)
WHERE NOT EXISTS (SELECT 1 FROM readings r WHERE (r.sid, r.pid, r.iv, r.ts) = (k.sid, k.pid, k.iv, k.ts))
"""

FUZZ_REGISTRY = RegistryFile.model_validate(
    {
        "parks": [{"id": "p1", "name": "模糊测试园区", "city": "长沙"}, {"id": "p2", "name": "P2", "city": "乌鲁木齐"}],
        "stations": [
            {"id": "p1-out", "park_id": "p1", "kind": "wastewater_outlet", "mn": "43010000000101",
             "parameters": ["w01018", "w21003", "w21011", "w00000", "w01001"], "units": {"w21011": "ug/L"},
             "ranges": {"w01018": [0, 500]}, "standard": "GB18918-2002", "class": "1A"},
            {"id": "p1-air", "park_id": "p1", "kind": "ambient_air", "mn": "43010000000102", "crc": "modbus",
             "parameters": ["a34004", "a21026", "a01001"], "standard": "GB3095", "class": "2"},
            {"id": "p2-stack", "park_id": "p2", "kind": "stack", "timezone": "Asia/Urumqi",
             "parameters": ["a21026", "a19001", "a00000", "a01012"], "standard": "GB4915-2013", "class": "kiln"},
        ],
    }
)  # fmt: skip


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str]
    body: bytes | None


# A URL's query longer than this is refused by the client library before it is sent; the server's
# own limit on a request line is tested in tests/test_api_edges.py.
MAX_PARAM_CHARS = 2000


def _value_for(schema: dict[str, Any], mutator: Mutator, valid: list[str]) -> str:
    return _any_value(schema, mutator, valid)[:MAX_PARAM_CHARS]


def _any_value(schema: dict[str, Any], mutator: Mutator, valid: list[str]) -> str:
    rng = mutator.rng
    roll = rng.random()
    if roll < 0.3 and valid:
        return rng.choice(valid)
    enum = schema.get("enum") or [s.get("const") for s in schema.get("anyOf", []) if "const" in s]
    if roll < 0.5 and enum:
        return str(rng.choice(enum))
    kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    if roll < 0.75 and kinds & {"integer", "number"}:
        return str(rng.choice([*HOSTILE_NUMBERS, rng.randint(-(2**70), 2**70)]))
    return rng.choice(HOSTILE_STRINGS)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every route in the OpenAPI document, but the endless ones."""
    ops = []
    for path, item in doc["paths"].items():
        if path in ENDLESS:
            continue
        for method, op in item.items():
            ops.append((method.upper(), path, op))
    return ops


def _make(op: tuple[str, str, dict[str, Any]], mutator: Mutator, valid: dict[str, list[str]]) -> _Request:
    method, path, spec = op
    rng = mutator.rng
    params: dict[str, str] = {}
    for p in spec.get("parameters", []):
        value = _value_for(p.get("schema", {}), mutator, valid.get(p["name"], []))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(value.replace("\x00", "%00"), safe="") or "x")
        elif p["in"] == "query" and rng.random() < 0.7:
            params[p["name"]] = value
    if rng.random() < 0.1:
        params[rng.choice(HOSTILE_STRINGS[:-1]) or "x"] = rng.choice(HOSTILE_STRINGS)[:MAX_PARAM_CHARS]
    body = None
    if "requestBody" in spec:
        body = mutator.json_payload(b'{"by": "fuzz", "comment": "x", "reason": "genuine"}', [])
    return _Request(method, path, params, body)


async def _api(settings: Settings, *, inputs: int, seconds: float, seed: int, out: Path | None) -> EdgeReport:
    report = EdgeReport("api")
    port = free_port()
    # An administrator's key, not a rate limit: the hostile input is meant for the routes, which
    # without credentials would all stop at 401 (the access layer has its own tests).
    app = create_app(settings.model_copy(update={"API_PORT": port, "API_RATE_LIMIT": 1_000_000}), ingest=None)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        _, key = await create_key(conn, name=f"fuzz-{seed}", role=Role.ADMIN, scopes=[], created_by="fuzz")
    finally:
        await conn.close()
    mutator = Mutator(seed)
    valid = {
        "station_id": ["p1-out", "p1-air", "p2-stack"],
        "park_id": ["p1", "p2"],
        "parameter": ["w01018", "cod", "a21026", "so2"],
        "start": ["2026-11-01", "2026-11-30T00:00:00+08:00"],
        "end": ["2026-12-01", "2026-12-31T00:00:00Z"],
        "standard_id": ["GB18918-2002", "GB3095-2012", "GB4915-2013"],
    }
    async with (
        serving_asgi(app, "127.0.0.1", port),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=API_HANG_SECONDS, headers={"X-API-Key": key}
        ) as client,
    ):
        doc = (await client.get("/openapi.json")).json()
        ops = _operations(doc)
        started = time.monotonic()
        base: float | None = None
        while report.inputs < inputs and time.monotonic() - started < seconds:
            if base is None and report.inputs >= 0.1 * inputs:
                base = rss_mb()
            req = _make(mutator.rng.choice(ops), mutator, valid)
            report.inputs += 1
            t0 = time.perf_counter()
            try:
                resp = await client.request(
                    req.method, req.path, params=req.params, content=req.body,
                    headers={"content-type": "application/json"} if req.body is not None else None,
                )  # fmt: skip
            except httpx.TimeoutException:
                report.hangs += 1
                save_failure(out, report, req, f"no answer within {API_HANG_SECONDS:g} s")
                continue
            except httpx.HTTPError as exc:
                report.crashes += 1
                save_failure(out, report, req, f"connection failed: {exc!r}")
                continue
            finally:
                report.slowest_s = max(report.slowest_s, time.perf_counter() - t0)
            if resp.status_code >= 500:
                report.crashes += 1
                save_failure(out, report, req, f"{resp.status_code}: {resp.text[:300]}")
            elif resp.status_code >= 400:
                body = _json(resp)
                if not (isinstance(body, dict) and isinstance(body.get("error"), str) and "detail" in body):
                    report.violations += 1
                    save_failure(out, report, req, f"{resp.status_code} without the error envelope: {resp.text[:300]}")
                report.refused += 1
            else:
                report.accepted += 1
        report.seconds = time.monotonic() - started
        report.rss_growth_mb = max(0.0, rss_mb() - base) if base is not None else 0.0
    return report


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


async def _pipeline(settings: Settings, *, inputs: int, seconds: float, seed: int, out: Path | None) -> EdgeReport:
    """Mutated JSON and HJ 212 payloads through the broker to a running ingest.

    Each must end up stored (every reading the pure decoder accepts) or refused (a dead letter
    with its bytes). Checked round by round, so a million inputs are never all held at once.
    """
    # A broker from deploy/mosquitto.conf: one with Mosquitto's defaults drops QoS 1 messages
    # past 1,000 queued, which a fuzzer publishing flat out reaches (docs/storage.md).
    folder = Path(tempfile.mkdtemp(prefix="parkwatch-fuzz-broker-"))
    broker = PrivateBroker(folder)
    broker.start()
    try:
        return await _pipeline_on(broker, settings, inputs=inputs, seconds=seconds, seed=seed, out=out)
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _pipeline_on(
    broker: PrivateBroker, settings: Settings, *, inputs: int, seconds: float, seed: int, out: Path | None
) -> EdgeReport:
    report = EdgeReport("pipeline")
    prefix = f"fuzz{seed}x{free_port()}"
    mine = settings.model_copy(
        update={
            "MQTT_URL": broker.url,
            "TOPIC_PREFIX": prefix,
            "MQTT_CLIENT_ID": f"ingest-{prefix}",
            "SPOOL_DIR": settings.SPOOL_DIR / prefix,
        }
    )
    mutator = Mutator(seed)
    now = datetime.now(UTC)
    jsons, packets = json_seeds(now), hj212_seeds(now)
    json_bodies, packet_bodies = [b for _, b in jsons], [b for _, b in packets]
    started = time.monotonic()
    base: float | None = None
    last_dead = 0
    target = mine.mqtt
    async with (
        _running(IngestService(mine, stats=IngestStats())) as ingest,
        aiomqtt.Client(target.host, target.port, username=target.username, password=target.password) as client,
    ):
        while report.inputs < inputs and time.monotonic() - started < seconds:
            if base is None and report.inputs >= 0.1 * inputs:
                base = rss_mb()
            sent: list[tuple[str, bytes]] = []
            for _ in range(min(PIPELINE_ROUND, inputs - report.inputs)):
                if mutator.rng.random() < 0.5:
                    route, body = mutator.rng.choice(jsons)
                    topic, payload = f"{prefix}/{route}/readings", mutator.json_payload(body, json_bodies)
                else:
                    mn, body = mutator.rng.choice(packets)
                    topic, payload = hj212_topic(prefix, mn), mutator.bytes_(body, packet_bodies)[:MAX_INPUT]
                await client.publish(topic, payload, qos=1)
                sent.append((topic, payload))
            report.inputs += len(sent)
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while ingest.stats.messages < report.inputs and time.monotonic() < deadline:  # noqa: ASYNC110 - a counter
                await asyncio.sleep(0.1)
            # Counted as received a moment before it is batched: wait out the batcher's delay,
            # then for the writer, so the round's last message is committed.
            await asyncio.sleep(2 * BATCH_MAX_DELAY)
            await ingest.batcher.flush()
            await ingest.queue.join()
            last_dead = await _account(Round(mine.DATABASE_URL, prefix, sent, last_dead), report=report, out=out)
    report.seconds = time.monotonic() - started
    report.rss_growth_mb = max(0.0, rss_mb() - base) if base is not None else 0.0
    return report


@dataclass(frozen=True)
class Round:
    """One round of the pipeline edge: where, what was sent, and the dead letters seen before it."""

    url: str
    prefix: str
    sent: list[tuple[str, bytes]]
    last_dead: int


async def _account(rnd: Round, *, report: EdgeReport, out: Path | None) -> int:
    """Check one round: every accepted reading stored, every refused message a dead letter."""
    url, prefix, sent, last_dead = rnd.url, rnd.prefix, rnd.sent, rnd.last_dead
    conn = await asyncpg.connect(url)
    try:
        registry = await fetch_registry(conn)
        dead_rows = await conn.fetch(DEAD_SINCE, last_dead)
        dead = {(r["topic"], bytes(r["payload"])) for r in dead_rows}
        messages = [
            decode_message(topic, payload, prefix=prefix, registry=registry, received_at=datetime.now(UTC))
            for topic, payload in sent
        ]
        keys = [(i, r[0], r[1], r[2], r[3]) for i, m in enumerate(messages) for r in m.rows]
        missing = set()
        if keys:
            idx, sids, pids, ivs, tss = (list(c) for c in zip(*keys, strict=True))
            missing = {r["i"] for r in await conn.fetch(MISSING_KEYS, idx, sids, pids, ivs, tss)}
    finally:
        await conn.close()
    for i, ((topic, payload), message) in enumerate(zip(sent, messages, strict=True)):
        refused_unsaid = bool(message.problems) and (message.kept_as or (topic, payload)) not in dead
        if i in missing or refused_unsaid:
            report.lost += 1
            what = "readings not stored" if i in missing else "refused, no dead letter"
            save_failure(out, report, (topic, payload), what)
        report.accepted += bool(message.rows)
        report.refused += bool(message.problems)
    return max([last_dead, *(int(r["id"]) for r in dead_rows)])


class _running:  # noqa: N801 - used as a context manager name
    """The ingest in this event loop for the block."""

    def __init__(self, service: IngestService) -> None:
        self.service = service
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> IngestService:
        self._task = asyncio.create_task(self.service.run(self._stop), name="fuzz.ingest")
        async with asyncio.timeout(30):
            while not self.service.receiver.connected.is_set():
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.05)
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


def run_service_edge(
    name: str, settings: Settings, *, inputs: int, seconds: float, seed: int, out: Path | None
) -> EdgeReport:
    """Run the api or pipeline edge against a scratch database made for it."""
    # One database per edge: two edges may run at once, in two processes.
    url = scratch.with_db(settings.DATABASE_URL, f"{settings.database_name}_fuzz_{name}")
    mine = settings.model_copy(update={"DATABASE_URL": url})

    async def main() -> EdgeReport:
        await scratch.recreate(url, timescale="off", registry=FUZZ_REGISTRY)
        try:
            edge = _api if name == "api" else _pipeline
            return await edge(mine, inputs=inputs, seconds=seconds, seed=seed, out=out)
        finally:
            await scratch.drop(url)

    logging.disable(logging.WARNING)  # every refusal logs; the report counts them
    try:
        return asyncio.run(main())
    except Exception:
        report = EdgeReport(name, crashes=1)
        report.failures.append(traceback.format_exc().strip().splitlines()[-1])
        return report
    finally:
        logging.disable(logging.NOTSET)
