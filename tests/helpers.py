"""Small helpers the tests share: publishing, waiting, reading the database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiomqtt
import asyncpg
import httpx
import orjson

from api.app import create_app
from api.principals import Role, Scope, create_key
from ingest.batch import Batch
from ingest.hj212.gateway import Gateway
from ingest.service import IngestService
from ingest.store import Store
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from schemas.readings import readings_topic
from tests.services import unique

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Poll probe() until check(result) holds; fail with the last result after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


def message(
    station_id: str, ts: datetime | str, readings: list[tuple[str, Any]] | dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A readings message in the MQTT contract's shape."""
    items = readings.items() if isinstance(readings, dict) else readings
    return {
        "station_id": station_id,
        "ts": ts if isinstance(ts, str) else ts.isoformat(),
        "readings": [{"parameter": p, "value": v} for p, v in items],
        **extra,
    }


async def publish(settings: Settings, park: str, station: str, payload: Any, *, qos: int = 1) -> None:
    """Publish one payload (bytes as is, anything else as JSON) on a station's topic."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    target = settings.mqtt
    async with aiomqtt.Client(target.host, target.port) as client:
        await client.publish(readings_topic(settings.TOPIC_PREFIX, park, station), body, qos=qos)


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one query on a fresh connection."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def fetchval(url: str, query: str, *args: Any) -> Any:
    """One value from one query."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def count_readings(url: str) -> int:
    """Rows in readings."""
    return int(await fetchval(url, "SELECT count(*) FROM readings"))


def recent(seconds: float = 0) -> datetime:
    """Now (UTC, whole milliseconds) minus some seconds."""
    now = datetime.now(UTC).replace(microsecond=(datetime.now(UTC).microsecond // 1000) * 1000)
    return now - timedelta(seconds=seconds)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `parkwatch ARGS` in a subprocess with only the given PARKWATCH_* variables set."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "parkwatch.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    """The PARKWATCH_* variables that point a subprocess at this test's database, broker and prefix."""
    return {
        "PARKWATCH_DATABASE_URL": settings.DATABASE_URL,
        "PARKWATCH_TOPIC_PREFIX": settings.TOPIC_PREFIX,
        "PARKWATCH_MQTT_URL": settings.MQTT_URL,
        "PARKWATCH_MQTT_CLIENT_ID": settings.MQTT_CLIENT_ID,
        "PARKWATCH_SPOOL_DIR": str(settings.SPOOL_DIR),
    }


@asynccontextmanager
async def running(service: IngestService, *, connected: bool = True) -> AsyncIterator[IngestService]:
    """Run an ingest in this event loop for the block (waiting until it has subscribed), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name="test.ingest")
    try:
        if connected:
            async with asyncio.timeout(15):
                while not service.receiver.connected.is_set():
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.02)
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 40)


@asynccontextmanager
async def running_gateway(settings: Settings, *, idle_timeout: float = 60, **changes: Any) -> AsyncIterator[Gateway]:
    """An HJ 212 gateway on a free port (settings `changes` applied) for the block, connected to the broker."""
    gw = Gateway(settings.model_copy(update=changes), host="127.0.0.1", port=0, idle_timeout=idle_timeout)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop), name="test.gateway")
    try:
        await asyncio.wait_for(gw.listening.wait(), 10)
        await asyncio.wait_for(gw.link._ready.wait(), 10)
        yield gw
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def make_key(database_url: str, role: str = "admin", name: str | None = None, **scope: Any) -> str:
    """A new API key of `role` in the database; scope as `parks=[...]`, `cities=[...]`, `stations=[...]`,
    `province=True` (what `parkwatch keys create` takes)."""
    conn = await asyncpg.connect(database_url)
    try:
        scopes = [Scope("province")] if scope.pop("province", False) else []
        for kind in ("city", "park", "station"):
            scopes += [Scope(kind, v) for v in scope.pop(f"{kind}s" if kind != "city" else "cities", [])]
        assert not scope, f"unknown scope kinds {scope}"
        _, key = await create_key(conn, name=name or unique(role), role=Role(role), scopes=scopes, created_by="tests")
    finally:
        await conn.close()
    return key


@asynccontextmanager
async def serving_api(
    settings: Settings, ingest: IngestService | None, *, role: str = "admin", **scope: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The API served over real HTTP by uvicorn in this event loop, for the block; yields a client
    for it that sends a key of `role` (an administrator's unless told)."""
    key = await make_key(settings.DATABASE_URL, role, **scope)
    async with (
        serving_asgi(create_app(settings, ingest=ingest), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=10, headers={"X-API-Key": key}
        ) as client,
    ):
        yield client


async def read_until_end(response: httpx.Response, chunks: list[str]) -> None:
    """Collect a server-sent-event stream's text into `chunks` until it says `event: end`."""
    async for chunk in response.aiter_text():
        chunks.append(chunk)
        if "event: end" in "".join(chunks):
            return


# The time the seeded data of seed_two_parks start at.
SEED_T0 = datetime(2026, 10, 1, tzinfo=UTC)


async def seed_two_parks(
    url: str, *, password: str, readings: tuple[tuple[str, str], ...] = (("p1-out", "w01018"), ("p2-out", "w01018"))
) -> dict[str, int]:
    """Of the test registry's two parks: two hours of minute and hourly readings of each (station,
    code) given, and for p1-out and p2-out an exceedance verdict, an active alert with its raised
    event, an HJ 212 packet sent with `password` and a refused message naming it; a refused message
    naming no station. Returns the alerts' ids as `alert:STATION`."""
    ids = {r["id"]: r["sid"] for r in await fetch(url, "SELECT id, sid FROM stations")}
    pids = {r["code"]: r["pid"] for r in await fetch(url, "SELECT code, pid FROM parameters")}
    now = datetime.now(UTC)
    rows: list[Any] = []
    for station, code in readings:
        for m in range(120):
            rows.append((ids[station], pids[code], 1, SEED_T0 + timedelta(minutes=m), 30.0, "N", now) + (None,) * 4)
        for h in range(2):
            rows.append((ids[station], pids[code], 2, SEED_T0 + timedelta(hours=h), 30.0, "N", now) + (None,) * 4)
    store = Store(url)
    try:
        await store.write(Batch(rows=rows))
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    alerts: dict[str, int] = {}
    try:
        async with conn.transaction():
            for station in ("p1-out", "p2-out"):
                sid = ids[station]
                await conn.execute(
                    """INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                       rule, coverage, closed) VALUES ($1, $2, 'hour', $3::timestamptz, $3::timestamptz + interval '1 hour', 'GB18918-2002', '1A',
                       'exceedance', '{}', '{}', true)""",
                    sid, pids["w01018"], SEED_T0,
                )  # fmt: skip
                alerts[station] = await conn.fetchval(
                    """INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen)
                       VALUES ($1, $2, 'exceedance.hour', 'exceedance', 'active', 'major', $3, $3) RETURNING id""",
                    sid, pids["w01018"], SEED_T0,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO alert_events (alert_id, kind, actor) VALUES ($1, 'raised', 'parkwatch')",
                    alerts[station],
                )
                packet = f"QN=20261001080000000;ST=32;CN=2011;PW={password};MN=4301;CP=&&DataTime=20261001080000&&"
                await conn.execute(
                    """INSERT INTO hj212_packets (received_at, topic, sid, mn, cn, qn, raw)
                       VALUES (now(), 't/' || $1::integer, $1, '4301', '2011', '20261001080000000', $2)""",
                    sid, packet.encode(),
                )  # fmt: skip
                await conn.execute(
                    """INSERT INTO dead_letters (received_at, topic, payload, reason, message, station_id)
                       VALUES (now(), 't', $1, 'invalid', 'a refused message', $2)""",
                    f'{{"station_id": "{station}", "secret": "{password}"}}'.encode(), station,
                )  # fmt: skip
            await conn.execute(
                """INSERT INTO dead_letters (received_at, topic, payload, reason, message)
                   VALUES (now(), 't', 'garbage', 'unreadable', 'no station named')"""
            )
    finally:
        await conn.close()
    return {f"alert:{k}": v for k, v in alerts.items()}
