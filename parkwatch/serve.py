"""Run the service: ingest, compliance worker, alerts and API in one process, each optional, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from alerts.service import AlertService
from alerts.watchdog import Watchdog
from api.app import create_app
from api.protocol import DeadlineH11Protocol
from compliance.worker import ComplianceWorker
from ingest.service import IngestService
from parkwatch.jobs import Jobs, LocalJob, cluster_jobs
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# The ingest's heartbeat (ingest_heartbeats): offline detection trusts silence only while a
# heartbeat is fresh (alerts/quality.py: two minutes), so several beats fit in that time.
HEARTBEAT_EVERY = timedelta(seconds=30)
# The watchdog looks every 15 s; an alarm needs a minute of failure (alerts/watchdog.py).
WATCHDOG_EVERY = timedelta(seconds=15)
# Connections the API serves at once; past it new ones get a 503 at once rather than queueing.
API_MAX_CONNECTIONS = 1000
# An idle keep-alive connection is closed after this long.
API_KEEP_ALIVE = 5
# An in-loop ASGI server binds in milliseconds; a port taken or a startup error shows at once.
STARTUP_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process-wide stop event drives shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_asgi(app: Any, host: str, port: int) -> AsyncIterator[_Server]:
    """Serve an ASGI app in this event loop for the block (tests, the demo's notice sink)."""
    server = _Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, http=DeadlineH11Protocol)
    )
    task = asyncio.create_task(server.serve(), name=f"asgi:{port}")
    async with asyncio.timeout(STARTUP_TIMEOUT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set the stop event (a second SIGINT is left to Python)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _after_subscribed(
    service: IngestService | None,
    extra: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    """Start `extra` once the ingest has subscribed: the broker keeps nothing for a session not yet made."""
    if service is not None:
        await service.receiver.connected.wait()
    await extra(stop)


# A retired session's spool is replayed before it leaves; a database that does not take it in
# this long leaves the spool for the next start (nothing is lost: it stays on disk).
RETIRE_SPOOL_WAIT = 60.0


def _retiring(service: IngestService) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    async def retire(stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RETIRE_SPOOL_WAIT):
                while not service.spool.is_empty():  # noqa: ASYNC110 - the writer empties it
                    await asyncio.sleep(0.1)
        stop.set()

    return retire


async def serve(
    settings: Settings,
    *,
    ingest: bool = True,
    api: bool = True,
    compliance: bool = True,
    alerts: bool = True,
    stats_file: Path | None = None,
    stop: asyncio.Event | None = None,
    extra: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None,
    retire: bool = False,
) -> None:
    """Run the chosen components until stopped; `extra` runs beside them (the demo publisher).

    With `retire`, the ingest connects as its session, replays its spool, leaves its subscriptions
    and drains what the broker queued for the session, then stops (parkwatch/ingestplan.py).
    """
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    service = IngestService(settings, retire=retire) if ingest else None
    if retire and service is not None:
        extra = _retiring(service)
    worker = ComplianceWorker(settings.DATABASE_URL) if compliance else None
    alerting = AlertService(settings) if alerts else None
    roles = ",".join(
        n for n, on in (("ingest", ingest), ("compliance", compliance), ("alerts", alerts), ("api", api)) if on
    )
    watchdog = Watchdog(settings, ingest=service, role=roles)
    local = [LocalJob("watchdog", WATCHDOG_EVERY, watchdog.check)]
    if service is not None:
        local.append(LocalJob("ingest-heartbeat", HEARTBEAT_EVERY, service.heartbeat))
    jobs = Jobs(settings, cluster_jobs(settings), local)
    server = None
    if api:
        app = create_app(settings, ingest=service, alerts=alerting, watchdog=watchdog)
        config = uvicorn.Config(
            app,
            host=settings.API_HOST,
            port=settings.API_PORT,
            log_config=None,
            lifespan="on",
            http=DeadlineH11Protocol,
            limit_concurrency=API_MAX_CONNECTIONS,
            timeout_keep_alive=API_KEEP_ALIVE,
        )
        server = _Server(config)
    try:
        async with asyncio.TaskGroup() as tg:
            if service is not None:
                tg.create_task(service.run(stop), name="serve.ingest")
            if worker is not None:
                tg.create_task(worker.run(stop), name="serve.compliance")
            if alerting is not None:
                tg.create_task(alerting.run(stop), name="serve.alerts")
            tg.create_task(jobs.run(stop), name="serve.jobs")
            if server is not None:
                tg.create_task(server.serve(), name="serve.api")
                logger.info("API on http://%s:%d (docs at /docs)", settings.API_HOST, settings.API_PORT)
            if extra is not None:
                tg.create_task(_after_subscribed(service, extra, stop), name="serve.extra")
            await stop.wait()
            if server is not None:
                server.should_exit = True
    finally:
        await watchdog.close()
        if service is not None and stats_file is not None:
            service.write_stats(stats_file)
