"""Group envelopes into batches that close on size or after a short delay."""

from __future__ import annotations

import asyncio
import time

from ingest.batch import Batch, Envelope

# A batch closes at this many rows: large enough for COPY to run near its ceiling (the
# ceilings were measured with batches of 5,000), small enough to commit in tens of ms.
BATCH_MAX_ROWS = 5000
# ... or when its first message has waited this long, which bounds the latency added by
# batching at low rates (publish → commit p99 must stay well under a second).
BATCH_MAX_DELAY = 0.1


class Batcher:
    """Collects envelopes; hands closed batches to the writer queue in arrival order."""

    def __init__(
        self,
        out: asyncio.Queue[Batch],
        *,
        max_rows: int | None = None,
        max_delay: float | None = None,
    ) -> None:
        self._out = out
        # Read at construction, not at import, so tests can set the module constants.
        self._max_rows = max_rows or BATCH_MAX_ROWS
        self._max_delay = BATCH_MAX_DELAY if max_delay is None else max_delay
        self._batch: Batch | None = None
        self._opened = asyncio.Event()
        # Closing is serialised so batches reach the queue in the order they closed; a waiting
        # put() could otherwise be overtaken by a later one (asyncio.Queue re-checks fullness).
        self._ship_lock = asyncio.Lock()

    async def add(self, env: Envelope) -> None:
        """Add one envelope; waits (back-pressure) while the writer is behind."""
        batch = self._batch
        if batch is None:
            batch = self._batch = Batch(opened=time.monotonic())
            self._opened.set()
        batch.add(env)
        if len(batch.rows) >= self._max_rows or len(batch.envelopes) >= self._max_rows:
            await self._ship()

    async def _ship(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        async with self._ship_lock:
            await self._out.put(batch)

    async def flush(self) -> None:
        """Close the open batch now (shutdown)."""
        await self._ship()

    async def run(self) -> None:
        """Close batches that have waited max_delay; runs until cancelled."""
        while True:
            batch = self._batch
            if batch is None:
                self._opened.clear()
                await self._opened.wait()
                continue
            wait = batch.opened + self._max_delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if batch is self._batch:
                await self._ship()
