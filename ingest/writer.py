"""Make batches durable: the database when it answers, the spool while it does not, in order."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import asyncpg

from ingest.batch import Batch, DeadLetter
from ingest.rows import Row
from ingest.spool import Spool
from ingest.stats import STATS, IngestStats
from ingest.store import DatabaseUnavailableError, Store
from schemas.readings import Reason

logger = logging.getLogger(__name__)

# Retry the database after an outage with exponential backoff and jitter, capped so that a
# returning database is noticed within about half a minute.
RETRY_BASE = 0.5
RETRY_CAP = 30.0
# While replaying the spool, hand control back after this long so newly received batches are
# still appended (and acknowledged) promptly.
REPLAY_SLICE = 0.5


def backoff(attempt: int, *, base: float | None = None, cap: float | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)].

    Defaults are the module's RETRY_BASE and RETRY_CAP, read at call time (tests shorten them).
    """
    base = RETRY_BASE if base is None else base
    cap = RETRY_CAP if cap is None else cap
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 16)))  # noqa: S311 - jitter, not crypto


@dataclass
class Outcome:
    """Where a batch went."""

    where: str  # "db" or "spool"


class DurableWriter:
    """Writes each batch to the database, or to the spool while the database is away.

    Order is kept: once anything is spooled, later batches are spooled behind it until the
    replay has caught up, so readings reach the database in the order they were received.
    """

    def __init__(self, store: Store, spool: Spool, stats: IngestStats = STATS) -> None:
        self.store = store
        self.spool = spool
        self.stats = stats
        self._attempt = 0
        self._retry_at = 0.0

    @property
    def spooling(self) -> bool:
        """True while batches are going to (or waiting in) the spool."""
        return not self.spool.is_empty()

    @property
    def retry_in(self) -> float:
        """Seconds until the next replay attempt is due (0 when due now)."""
        return max(0.0, self._retry_at - time.monotonic())

    def _outage(self, exc: DatabaseUnavailableError) -> None:
        if self._attempt == 0:
            self.stats.db_outages += 1
            logger.warning("database unreachable, spooling to %s: %s", self.spool.dir, exc.cause)
        delay = backoff(self._attempt)
        self._attempt += 1
        self._retry_at = time.monotonic() + delay

    def _recovered(self) -> None:
        if self._attempt:
            logger.info("database reachable again")
        self._attempt = 0
        self._retry_at = 0.0

    async def write(self, batch: Batch) -> Outcome:
        """Make the batch durable (database or spool); returns where it went."""
        if self.spooling:
            self.spool.append(batch.rows, batch.dead)
            self.stats.batches_spooled += 1
            return Outcome("spool")
        try:
            await self._to_db(batch.rows, batch.dead, idempotent=False)
        except DatabaseUnavailableError as exc:
            self._outage(exc)
            self.spool.append(batch.rows, batch.dead)
            self.stats.batches_spooled += 1
            return Outcome("spool")
        self._recovered()
        self.stats.batches_db += 1
        return Outcome("db")

    async def _to_db(self, rows: list[Row], dead: list[DeadLetter], *, idempotent: bool) -> None:
        try:
            result = await self.store.write(rows, dead, idempotent=idempotent)
        except asyncpg.PostgresError as exc:
            # The database is up but refuses this data. Never block the stream on it and never
            # lose it: split the batch, keep what goes in, dead-letter the readings that do not.
            logger.error("database refused a batch (%s); isolating the rows it refuses", exc.sqlstate)
            await self._isolate(rows, dead, exc)
            return
        self.stats.readings_new += result.new
        self.stats.readings_duplicate += result.duplicates
        self.stats.revisions += result.revisions
        for d in dead:
            self.stats.dead_letters[d.reason] += 1

    async def _isolate(self, rows: list[Row], dead: list[DeadLetter], exc: asyncpg.PostgresError) -> None:
        if len(rows) <= 1:
            refused = [
                DeadLetter(
                    received_at=r[6],
                    topic="(storage)",
                    payload=repr(r).encode(),
                    reason=Reason.REJECTED_BY_DATABASE.value,
                    message=f"database refused the row: {exc.sqlstate} {exc}"[:500],
                    problems=[],
                    station_id=None,
                )
                for r in rows
            ]
            await self._to_db([], dead + refused, idempotent=True)
            return
        half = len(rows) // 2
        await self._to_db(rows[:half], dead, idempotent=True)
        await self._to_db(rows[half:], [], idempotent=True)

    async def replay(self, budget: float = REPLAY_SLICE) -> bool:
        """Replay spooled batches for up to `budget` seconds; True when the spool is empty."""
        if self.spool.is_empty():
            return True
        if self.retry_in > 0:
            return False
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            item = self.spool.peek()
            if item is None:
                return self.spool.is_empty()
            position, (rows, dead) = item
            try:
                await self._to_db(rows, dead, idempotent=True)
            except DatabaseUnavailableError as exc:
                self._outage(exc)
                return False
            self._recovered()
            self.spool.commit(position)
            self.stats.batches_replayed += 1
            if self.spool.is_empty():
                logger.info("spool replayed; writing straight to the database again")
                return True
        return self.spool.is_empty()
