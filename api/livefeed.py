"""One LISTEN connection per API process that wakes every live stream when alert events or verdicts commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from parkwatch.aio import sleep_or_stop
from parkwatch.retry import backoff

logger = logging.getLogger(__name__)

CHANNEL = "parkwatch_alert_events"
# Verdicts changed (migration 0019): the dashboard's change stream listens for both.
VERDICTS_CHANNEL = "parkwatch_verdicts"


class LiveFeed:
    """Counts commits of alert events (and of verdicts); streams wait for a count to move (or their timeout)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._changed = asyncio.Condition()
        self.version = 0
        self.verdicts_version = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        """Begin listening in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="api.livefeed")

    async def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, version: int, seconds: float) -> int:
        """Wait until the version moves past `version`, or `seconds` pass; returns the version now."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._changed.wait_for(lambda: self.version != version)
            return self.version

    async def wait_any(self, versions: tuple[int, int], seconds: float) -> tuple[int, int]:
        """Wait until alert events or verdicts move past `versions`, or `seconds` pass; the versions now."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._changed.wait_for(lambda: (self.version, self.verdicts_version) != versions)
            return self.version, self.verdicts_version

    async def _bump(self, channel: str | None = None) -> None:
        async with self._changed:
            if channel != VERDICTS_CHANNEL:
                self.version += 1
            if channel != CHANNEL:
                self.verdicts_version += 1
            self._changed.notify_all()

    def _on_notify(self, _conn: object, _pid: object, channel: str, _payload: object) -> None:
        asyncio.get_running_loop().create_task(self._bump(channel))

    async def _listen(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                conn = await asyncpg.connect(self._url, timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                logger.warning("live feed: database unreachable (%s)", exc)
                await sleep_or_stop(self._stop, backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                await conn.add_listener(VERDICTS_CHANNEL, self._on_notify)
                await self._bump()  # events may have committed while we were not listening
                while not self._stop.is_set() and not conn.is_closed():
                    await sleep_or_stop(self._stop, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
