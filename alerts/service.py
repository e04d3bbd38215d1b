"""The alerts component: the engine and the dispatcher, one TaskGroup, stopped with the process."""

from __future__ import annotations

import asyncio

from alerts.dispatcher import Dispatcher
from alerts.engine import AlertEngine
from parkwatch.settings import Settings


class AlertService:
    """Runs the engine (verdicts → alerts) and the dispatcher (outbox → channels) until stopped."""

    def __init__(self, settings: Settings) -> None:
        self.engine = AlertEngine(settings)
        self.dispatcher = Dispatcher(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Both loops until `stop` is set."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.engine.run(stop), name="alerts.engine")
            tg.create_task(self.dispatcher.run(stop), name="alerts.dispatcher")
