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
from ingest.hj212.gateway import Gateway
from ingest.service import IngestService
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
