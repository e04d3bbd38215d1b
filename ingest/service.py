"""The ingest component: MQTT receiver → validation → batcher → durable writer → acks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho

from ingest.batch import Batch, DeadLetter, Envelope
from ingest.batcher import Batcher
from ingest.hj212.parts import FirstParts
from ingest.messages import decode_message
from ingest.mqtt import Receiver, Subscriber, shared_subscription
from ingest.refusallog import RefusalLog
from ingest.registry import MAX_CODES_OUTSIDE_CATALOGUE, REGISTRY_CACHE, RegistryWatcher, ensure_parameters
from ingest.rows import Row
from ingest.spool import Spool, SpoolError
from ingest.stats import STATS, IngestStats
from ingest.store import CONNECT_TIMEOUT, UPSERT_HEARTBEAT, Store
from ingest.validate import Problem
from ingest.writer import DurableWriter
from parkwatch.retry import backoff
from parkwatch.settings import Settings
from schemas.readings import Reason, gateway_events_topic, hj212_subscription, readings_subscription

logger = logging.getLogger(__name__)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


# Beyond this, the host's clock and the database server's disagree (docs/faults.md#clock-jumps):
# NTP keeps both within milliseconds, so one of them is wrong, and the ingest's 10-minute rule on
# readings ahead of its clock (ingest/validate.py) would refuse good readings or admit early ones.
CLOCK_TOLERANCE_S = 30.0

# A batch neither the database nor the spool (its disk full) takes is tried again at least this
# often: what frees the spool is a replay into a database that is back, noticed on the next try.
SPOOL_FULL_RETRY_CAP = 2.0

# Closed batches waiting for the writer. Two keep the writer busy while the next one fills;
# more would only hold more unacknowledged messages in memory.
WRITER_QUEUE_BATCHES = 2
# On SIGTERM, how long to wait for the last batches to be made durable and acknowledged before
# giving up; whatever is not acknowledged by then is redelivered by the broker on restart.
SHUTDOWN_GRACE = 30.0
# Real-time readings (or messages sent) longer ago than this at commit are back-fill or a
# station's clock error, not a latency sample.
DATA_LATENCY_HORIZON = 60.0


def subscriptions(prefix: str, group: str | None) -> list[str]:
    """The ingest's topic filters: readings, raw HJ 212 packets, the gateway's events (as a group member)."""
    topics = (readings_subscription(prefix), hj212_subscription(prefix), gateway_events_topic(prefix))
    return [shared_subscription(group, topic) for topic in topics]


class IngestService:
    """Owns every ingest task; run() until the stop event is set, then shuts down cleanly."""

    def __init__(self, settings: Settings, *, stats: IngestStats = STATS, retire: bool = False) -> None:
        self.settings = settings
        self.stats = stats
        self.registry = RegistryWatcher(cache_path=settings.SPOOL_DIR / REGISTRY_CACHE)
        self.spool = Spool(settings.SPOOL_DIR)
        self.store = Store(settings.DATABASE_URL)
        self.writer = DurableWriter(self.store, self.spool, stats)
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=WRITER_QUEUE_BATCHES)
        self.batcher = Batcher(self.queue)
        self.refusals = RefusalLog()
        self.receiver = Receiver(
            settings.mqtt,
            client_id=settings.MQTT_CLIENT_ID,
            subscriptions=subscriptions(settings.TOPIC_PREFIX, settings.MQTT_SHARE_GROUP),
            handler=self._on_message,
            on_session_lost=self._session_lost,
            had_session=(settings.SPOOL_DIR / REGISTRY_CACHE).exists(),
            # A session being retired leaves its subscriptions on stop; any other keeps them, so
            # the broker queues for it while it is away (docs/scale.md#sessions).
            leave_on_stop=retire,
        )
        self.ready = asyncio.Event()
        # Since when (monotonic) no batch could be made durable, or None: a full disk under the
        # spool while the database is down (docs/faults.md#a-full-disk).
        self.stalled_since: float | None = None
        # The clock that stamps what arrives (tests set it back or forward: a clock jump), and how
        # far the database server's clock was ahead of it at the last heartbeat, in seconds.
        self.clock: Callable[[], datetime] = _wall_clock
        self.clock_offset_s: float | None = None
        self._registry_ok = False
        # A connection for the rare registration of codes an HJ 212 device sends unannounced.
        self._aux: asyncpg.Connection | None = None
        self._aux_lock = asyncio.Lock()
        self.first_parts = FirstParts()

    # -- receive ---------------------------------------------------------------------------

    def _session_lost(self) -> None:
        self.stats.broker_sessions_lost += 1

    async def _on_message(self, client: Subscriber, message: paho.MQTTMessage) -> None:
        received_at = self.clock()
        topic = message.topic
        payload = bytes(message.payload)
        decoded = decode_message(
            topic,
            payload,
            prefix=self.settings.TOPIC_PREFIX,
            registry=self.registry.current,
            received_at=received_at,
            first_parts=self.first_parts,
        )
        if decoded.unresolved:
            rows, refused = await self._resolve(decoded.unresolved)
            decoded.rows += rows
            decoded.problems += refused
        dead = None
        if decoded.problems:
            kept_topic, kept_payload = decoded.kept_as or (topic, payload)
            dead = DeadLetter.from_problems(
                received_at=received_at,
                topic=kept_topic,
                payload=kept_payload,
                problems=decoded.problems,
                station_id=decoded.station_id,
            )
            self.refusals.refused(topic, dead.reason, dead.message)
        self.stats.messages += 1
        self.stats.readings_offered += len(decoded.rows)
        await self.batcher.add(
            Envelope(
                acker=client,
                mid=message.mid,
                qos=message.qos,
                received_at=received_at,
                rows=decoded.rows,
                dead=dead,
                packets=decoded.packets,
                events=decoded.events,
                sent_at=decoded.sent_at,
            )
        )

    async def _resolve(self, unresolved: list[tuple[str, Row]]) -> tuple[list[Row], list[Problem]]:
        """Register codes an HJ 212 device sent that the registry does not know, and give their rows ids.

        While the database is unreachable the rows cannot get ids; their values stay in the raw
        packet kept with the batch (hj212_packets), so nothing is lost. Past the bound on codes
        outside the catalogue, a new code's values are refused, with a problem that says so.
        """
        codes = sorted({code for code, _ in unresolved})
        try:
            async with self._aux_lock:
                if self._aux is None or self._aux.is_closed():
                    self._aux = await asyncpg.connect(self.settings.DATABASE_URL, timeout=CONNECT_TIMEOUT)
                pids = await ensure_parameters(self._aux, codes)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("cannot register codes %s now (%s); their values stay in the packet log", codes, exc)
            return [], []
        self.registry.current.pids.update(pids)
        if pids:
            logger.info("registered codes outside the catalogue: %s", ", ".join(sorted(pids)))
        refused = [
            Problem(
                Reason.UNKNOWN_PARAMETER,
                f"code {code!r} is outside the HJ 212 tables and the limit of {MAX_CODES_OUTSIDE_CATALOGUE} "
                "such codes is reached: declare it in the station's registry entry",
                code,
            )
            for code in codes
            if code not in pids
        ]
        if refused:
            logger.warning(
                "codes not registered, the bound on codes outside the catalogue is reached: %s",
                ", ".join(c for c in codes if c not in pids),
            )
        return [(*row[:1], pids[code], *row[2:]) for code, row in unresolved if code in pids], refused

    # -- write -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        attempt = 0
        while True:
            try:
                if self.writer.spooling:
                    async with asyncio.timeout(max(self.writer.retry_in, 0.05)):
                        batch = await self.queue.get()
                else:
                    batch = await self.queue.get()
            except TimeoutError:
                await self.writer.replay()
                continue
            try:
                while True:
                    try:
                        await self.writer.write(batch)
                        attempt = 0
                        self.stalled_since = None
                        break
                    except SpoolError as exc:
                        self.stats.durability_failures += 1
                        if self.stalled_since is None:
                            self.stalled_since = time.monotonic()
                        # Neither the database nor the spool can take it: keep the batch, send
                        # no acks (the broker keeps the messages) and try again. A full spool
                        # frees itself only by replaying into a database that is back.
                        delay = backoff(attempt, cap=SPOOL_FULL_RETRY_CAP)
                        attempt += 1
                        logger.critical("cannot make a batch durable (%s); retrying in %.1fs", exc, delay)
                        await asyncio.sleep(delay)
                        await self.writer.replay()
                self._acknowledge(batch)
            finally:
                self.queue.task_done()
            if self.writer.spooling:
                await self.writer.replay()

    def _acknowledge(self, batch: Batch) -> None:
        now = self.clock()
        for env in batch.envelopes:
            if env.acker is not None and self.receiver.is_current(env.acker):
                env.acker.ack(env.mid, env.qos)
            self.stats.ingest_latency.add((now - env.received_at).total_seconds())
            if env.rows and env.rows[0][2] == 0:
                lag = (now - env.rows[0][3]).total_seconds()
                if 0 <= lag < DATA_LATENCY_HORIZON:
                    self.stats.data_latency.add(lag)
            if env.sent_at is not None:
                lag = (now - env.sent_at).total_seconds()
                if 0 <= lag < DATA_LATENCY_HORIZON:
                    self.stats.delivery_latency.add(lag)

    # -- lifecycle -------------------------------------------------------------------------

    async def _registry_loop(self) -> None:
        attempt = 0
        while True:
            try:
                conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                if not self.ready.is_set() and self.registry.load_cache():
                    logger.warning("database unreachable at start (%s); using the cached registry", exc)
                    self.ready.set()
                await asyncio.sleep(backoff(attempt))
                attempt += 1
                continue
            try:
                await self.registry.run(conn, on_loaded=self._registry_loaded)
            except asyncpg.UndefinedTableError:
                logger.error("the database has no parkwatch schema: run `parkwatch migrate`")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("registry connection lost (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
            # Back off on every failure; a connection that worked resets the count (see below).
            await asyncio.sleep(backoff(attempt))
            attempt = 0 if self._registry_ok else attempt + 1
            self._registry_ok = False

    def _registry_loaded(self) -> None:
        self._registry_ok = True
        self.ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then flush, acknowledge and disconnect."""
        logger.info("ingest starting (spool %s, %d batches pending)", self.spool.dir, self.spool.pending_records)
        try:
            async with asyncio.TaskGroup() as tg:
                registry = tg.create_task(self._registry_loop(), name="ingest.registry")
                writer = tg.create_task(self._write_loop(), name="ingest.writer")
                timer = tg.create_task(self.batcher.run(), name="ingest.batch-timer")
                # Consume only once the registry is known, or every message would be refused.
                await _first(self.ready.wait(), stop.wait())
                receiver = tg.create_task(self.receiver.run(), name="ingest.receiver")
                await stop.wait()
                logger.info("ingest stopping: flushing and acknowledging")
                try:
                    async with asyncio.timeout(SHUTDOWN_GRACE):
                        await self.receiver.stop()
                        await self.batcher.flush()
                        await self.queue.join()
                except TimeoutError:
                    logger.warning("shutdown grace expired; unacknowledged messages will be redelivered")
                self.receiver.release()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await asyncio.shield(receiver)
                for task in (registry, writer, timer, receiver):
                    task.cancel()
        finally:
            await self.store.close()
            if self._aux is not None:
                self._aux.terminate()
            self.spool.close()
            self.refusals.flush()
            logger.info("ingest stopped")

    async def heartbeat(self) -> None:
        """Tell the database this ingest is alive, connected or not, and what its spool holds (a periodic job).

        The database server's clock is read at the same time: a host clock that disagrees with it
        by more than CLOCK_TOLERANCE_S is logged and shown in /healthz and /metrics.
        """
        try:
            conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return  # an outage: the spool is filling, and the heartbeat's absence says so
        try:
            before = self.clock()
            server_now = await conn.fetchval(
                UPSERT_HEARTBEAT,
                self.settings.MQTT_CLIENT_ID,
                self.receiver.connected.is_set(),
                self.spool.pending_records,
            )
            after = self.clock()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("ingest heartbeat not written: %s", exc)
        else:
            self._note_clock_offset((server_now - (before + (after - before) / 2)).total_seconds())
        finally:
            await conn.close()

    def _note_clock_offset(self, offset: float) -> None:
        was_off = self.clock_off
        self.clock_offset_s = offset
        if self.clock_off and not was_off:
            logger.error(
                "this host's clock is %.0f s %s the database server's: readings are stamped and checked with it "
                "(docs/faults.md#clock-jumps)",
                abs(offset),
                "behind" if offset > 0 else "ahead of",
            )
        elif was_off and not self.clock_off:
            logger.warning("this host's clock agrees with the database server's again (%.1f s apart)", abs(offset))

    @property
    def clock_off(self) -> bool:
        """True when the last heartbeat found the host's clock and the database's apart by more than the tolerance."""
        return self.clock_offset_s is not None and abs(self.clock_offset_s) > CLOCK_TOLERANCE_S

    def write_stats(self, path: Path) -> None:
        """Dump the counters as JSON (the benchmark reads them)."""
        path.write_text(json.dumps(self.stats.snapshot(), indent=2))


async def _first(*aws: object) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
