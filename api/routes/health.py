"""Liveness of what the service depends on: /healthz, and counters at /metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiomqtt
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from alerts.processes import processes
from api.deps import SettingsDep, authenticate
from api.errors import ApiError
from api.metrics import Metrics
from api.principals import Role
from api.responses import ORJSONResponse
from compliance.store import QUEUE_STATE
from parkwatch.settings import Settings

router = APIRouter(tags=["health"])

# Probing the broker opens a connection; cache the answer briefly so a load balancer polling
# every second does not turn into a connection storm.
BROKER_PROBE_TTL = 5.0
PROBE_TIMEOUT = 2.0


async def _probe_database(pool: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _probe_broker(request: Request, settings: Any) -> dict[str, Any]:
    cache = getattr(request.app.state, "broker_probe", None)
    if cache and time.monotonic() - cache[0] < BROKER_PROBE_TTL:
        return dict(cache[1])
    target = settings.mqtt
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with aiomqtt.Client(
                target.host,
                target.port,
                identifier=f"parkwatch-health-{uuid.uuid4().hex[:8]}",
                username=target.username,
                password=target.password,
                timeout=PROBE_TIMEOUT,
            ):
                pass
        result: dict[str, Any] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    request.app.state.broker_probe = (time.monotonic(), result)
    return result


# Watchdog alarms that mean this process cannot do its job: a restart may help. The others
# (compliance behind or failing on some data, notices stuck) degrade the service but restarting
# it would not fix them, so /healthz still answers 200 with status "degraded".
DOWN_ALARMS = frozenset({"database", "broker", "ingest_stalled"})


@router.get("/healthz")
async def healthz(request: Request, settings: SettingsDep) -> ORJSONResponse:
    """Database, broker, compliance backlog and the watchdog: 503 when the service is down, "degraded" otherwise."""
    pool = request.app.state.health_pool
    database, broker = await asyncio.gather(_probe_database(pool), _probe_broker(request, settings))
    down = not (database["ok"] and broker["ok"])
    body: dict[str, Any] = {"status": "down" if down else "ok", "database": database, "broker": broker}
    backlog = await _backlog(pool)
    if backlog is not None:
        body["compliance"] = backlog
    parts = await _processes(pool)
    if parts is not None:
        # Every parkwatch process of this database, each part of a supervised `serve` and every
        # ingest instance (docs/scale.md); one that stopped beating is not running.
        body["processes"] = parts
        troubled = any(not p["running"] or p["alarms"] or p["detail"].get("writes_stalled") for p in parts)
        if troubled and body["status"] == "ok":
            body["status"] = "degraded"
    watchdog = getattr(request.app.state, "watchdog", None)
    if watchdog is not None:
        body["watchdog"] = {"alarms": watchdog.alarms, "checks": watchdog.state()}
        if DOWN_ALARMS & set(watchdog.alarms):
            body["status"] = "down"
        elif watchdog.alarms and body["status"] == "ok":
            body["status"] = "degraded"
    if backlog is not None and backlog["set_aside_stations"] and body["status"] == "ok":
        body["status"] = "degraded"
    ingest = getattr(request.app.state, "ingest", None)
    if ingest is not None:
        stalled = ingest.stalled_since
        body["ingest"] = {
            "mqtt_connected": ingest.receiver.connected.is_set(),
            "spool_pending_batches": ingest.spool.pending_records,
            # Seconds since a batch could last be made durable (database and spool both failing).
            "writes_stalled_s": None if stalled is None else round(time.monotonic() - stalled, 1),
            # How far the database server's clock is ahead of this host's (docs/faults.md#clock-jumps).
            "clock_offset_s": None if ingest.clock_offset_s is None else round(ingest.clock_offset_s, 3),
            "stats": ingest.stats.snapshot(),
        }
        if (stalled is not None or ingest.clock_off) and body["status"] == "ok":
            body["status"] = "degraded"
    return ORJSONResponse(body, status_code=503 if body["status"] == "down" else 200)


async def _processes(pool: Any) -> list[dict[str, Any]] | None:
    """The processes table (alerts/processes.py); None if the database cannot say."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with pool.acquire() as conn:
                return await processes(conn)
    except Exception:  # the database is down: /healthz says so already
        return None


async def _backlog(pool: Any) -> dict[str, Any] | None:
    """How far the compliance worker is behind, and how many stations' hours it set aside; None if unknown."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with pool.acquire() as conn:
                row = await conn.fetchrow(QUEUE_STATE)
    except Exception:  # the database is down: /healthz says so; the counters stay available
        return None
    lag = 0.0 if row["oldest"] is None else max(0.0, time.time() - row["oldest"].timestamp())
    return {"queue_hours": row["depth"], "lag_seconds": round(lag, 3), "set_aside_stations": row["failures"]}


async def _metrics_allowed(request: Request, settings: Settings) -> None:
    # Anonymous when PARKWATCH_METRICS_PUBLIC is on; else an administrator's key (Prometheus sends
    # one as `authorization: {credentials: ...}`, i.e. a Bearer header).
    if settings.METRICS_PUBLIC:
        return
    async with request.app.state.health_pool.acquire() as conn:
        principal = await authenticate(conn, request)
    request.state.principal = principal
    if principal.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "/metrics is for administrators' keys (or set PARKWATCH_METRICS_PUBLIC)")


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request, settings: SettingsDep) -> PlainTextResponse:
    """Ingest, compliance backlog, watchdog, HTTP and process metrics (Prometheus text format).

    The ingest's counters are this process's, or, when the ingest runs in other processes, each
    one's as of its last beat (labelled by MQTT client id).

    Needs an administrator's key unless PARKWATCH_METRICS_PUBLIC is set.
    """
    await _metrics_allowed(request, settings)
    collected: Metrics = request.app.state.metrics
    collected.state.backlog = await _backlog(request.app.state.health_pool)
    collected.state.processes = await _processes(request.app.state.health_pool)
    # The classic text format, which every Prometheus server (2.x included) reads.
    return PlainTextResponse(generate_latest(collected.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
