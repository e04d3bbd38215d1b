"""Make batches durable: the database when it answers, the spool while it does not, in order."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from ingest.batch import Batch, DeadLetter
from ingest.spool import Spool
from ingest.stats import STATS, IngestStats
from ingest.store import DatabaseUnavailableError, Store
from parkwatch.retry import backoff
from schemas.readings import Reason

logger = logging.getLogger(__name__)

# While replaying the spool, hand control back after this long so newly received batches are
# still appended (and acknowledged) promptly.
REPLAY_SLICE = 0.5


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
            self.spool.append(batch)
            self.stats.batches_spooled += 1
            return Outcome("spool")
        try:
            await self._to_db(batch, idempotent=False)
        except DatabaseUnavailableError as exc:
            self._outage(exc)
            self.spool.append(batch)
            self.stats.batches_spooled += 1
            return Outcome("spool")
        self._recovered()
        self.stats.batches_db += 1
        return Outcome("db")

    async def _to_db(self, batch: Batch, *, idempotent: bool) -> None:
        try:
            result = await self.store.write(batch, idempotent=idempotent)
        except asyncpg.PostgresError as exc:
            # The database is up but refuses this data. Never block the stream on it and never
            # lose it: split the batch, keep what goes in, dead-letter what does not.
            logger.error("database refused a batch (%s); isolating what it refuses", exc.sqlstate)
            await self._isolate(batch, exc)
            return
        self.stats.readings_new += result.new
        self.stats.readings_duplicate += result.duplicates
        self.stats.revisions += result.revisions
        for d in batch.dead:
            self.stats.dead_letters[d.reason] += 1

    async def _isolate(self, batch: Batch, exc: asyncpg.PostgresError) -> None:
        units: list[tuple[str, Any]] = (
            [("row", r) for r in batch.rows]
            + [("packet", p) for p in batch.packets]
            + [("event", e) for e in batch.events]
        )
        if len(units) <= 1:
            refused = [_refused(kind, item, exc) for kind, item in units]
            await self._to_db(Batch(dead=batch.dead + refused), idempotent=True)
            return
        half = len(units) // 2
        for i, part in enumerate((units[:half], units[half:])):
            await self._to_db(
                Batch(
                    rows=[u for k, u in part if k == "row"],
                    packets=[u for k, u in part if k == "packet"],
                    events=[u for k, u in part if k == "event"],
                    dead=batch.dead if i == 0 else [],
                ),
                idempotent=True,
            )

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
            position, spooled = item
            try:
                await self._to_db(spooled, idempotent=True)
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


def _refused(kind: str, item: Any, exc: asyncpg.PostgresError) -> DeadLetter:
    """A dead letter for one row, packet or event the database would not take."""
    if kind == "packet":
        received_at, topic, payload = item[0], item[1], item[7]
    else:
        received_at = item[6] if kind == "row" else item[5]
        topic, payload = f"(storage:{kind})", repr(item).encode()
    return DeadLetter(
        received_at=received_at,
        topic=topic,
        payload=payload,
        reason=Reason.REJECTED_BY_DATABASE.value,
        message=f"database refused the {kind}: {exc.sqlstate} {exc}"[:500],
        problems=[],
        station_id=None,
    )
