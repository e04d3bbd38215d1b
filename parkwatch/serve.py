"""Run the service: ingest, compliance worker and API in one process, each optional, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from api.app import create_app
from compliance.worker import ComplianceWorker
from ingest.service import IngestService
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process-wide stop event drives shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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


async def serve(
    settings: Settings,
    *,
    ingest: bool = True,
    api: bool = True,
    compliance: bool = True,
    stats_file: Path | None = None,
    stop: asyncio.Event | None = None,
    extra: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Run the chosen components until stopped; `extra` runs beside them (the demo publisher)."""
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    service = IngestService(settings) if ingest else None
    worker = ComplianceWorker(settings.DATABASE_URL) if compliance else None
    server = None
    if api:
        app = create_app(settings, ingest=service)
        config = uvicorn.Config(app, host=settings.API_HOST, port=settings.API_PORT, log_config=None, lifespan="on")
        server = _Server(config)
    try:
        async with asyncio.TaskGroup() as tg:
            if service is not None:
                tg.create_task(service.run(stop), name="serve.ingest")
            if worker is not None:
                tg.create_task(worker.run(stop), name="serve.compliance")
            if server is not None:
                tg.create_task(server.serve(), name="serve.api")
                logger.info("API on http://%s:%d (docs at /docs)", settings.API_HOST, settings.API_PORT)
            if extra is not None:
                tg.create_task(_after_subscribed(service, extra, stop), name="serve.extra")
            await stop.wait()
            if server is not None:
                server.should_exit = True
    finally:
        if service is not None and stats_file is not None:
            service.write_stats(stats_file)
