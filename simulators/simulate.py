"""Drive a simulation into a sink at a chosen speed: real time, accelerated, or as fast as possible."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

import aiomqtt
import asyncpg

from parkwatch.settings import Settings
from schemas.readings import MAX_FUTURE_SKEW
from simulators.engine import Simulation, Tally
from simulators.sinks import Format, MqttSink, Sink, TcpSink

logger = logging.getLogger(__name__)

# A fast replay must not outrun the ingest by more than the broker queues for it: past
# max_queued_messages (1,000 in Mosquitto's default configuration) the broker drops QoS 1
# messages it has already acknowledged (docs/reference/ceilings.md). So while it runs ahead of the real clock,
# every THROTTLE_EVERY items the replay compares what it sent with what the database holds, and
# waits while more than BACKLOG_MESSAGES messages' worth is in flight.
THROTTLE_EVERY = 100
BACKLOG_MESSAGES = 400
THROTTLE_POLL = 0.05
STORED = "SELECT count(*) FROM readings WHERE ts >= $1 AND ts < $2"


class Throttle:
    """Holds a fast replay back to what the ingest has stored of the replayed span."""

    def __init__(self, conn: asyncpg.Connection, since: datetime) -> None:
        self.conn = conn
        self.since = since
        self.base: int | None = None

    async def _stored(self) -> int:
        return int(await self.conn.fetchval(STORED, self.since, datetime.now(UTC) + MAX_FUTURE_SKEW))

    async def wait(self, sent_readings: int, sent_messages: int, stop: asyncio.Event) -> None:
        """Return once the backlog is under BACKLOG_MESSAGES messages (or when stopped)."""
        if self.base is None:
            self.base = await self._stored()
        allowed = BACKLOG_MESSAGES * max(sent_readings / max(sent_messages, 1), 1.0)
        while sent_readings - (await self._stored() - self.base) > allowed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(THROTTLE_POLL):
                    await stop.wait()
            if stop.is_set():
                return


async def run_simulation(
    settings: Settings,
    sim: Simulation,
    *,
    fmt: Format,
    speed: float,
    stop: asyncio.Event | None = None,
    gateway: tuple[str, int] | None = None,
) -> Tally:
    """Send everything the simulation produces; `speed` simulated seconds per second (0: no pacing)."""
    stop = stop or asyncio.Event()
    conn = await asyncpg.connect(settings.DATABASE_URL)
    throttle = Throttle(conn, sim.start - timedelta(days=1))
    try:
        if fmt == "hj212-tcp":
            host, port = gateway or (settings.GATEWAY_HOST, settings.GATEWAY_PORT)
            tcp = TcpSink(host, port)
            try:
                await _drive(sim, tcp, speed=speed, stop=stop, throttle=throttle)
            finally:
                await tcp.close()
            if tcp.unanswered:
                logger.warning("simulate: %d packet(s) got no 9014 from the gateway", tcp.unanswered)
            return sim.tally
        target = settings.mqtt
        async with aiomqtt.Client(
            target.host, target.port, username=target.username, password=target.password
        ) as client:
            await _drive(sim, MqttSink(settings, client, fmt), speed=speed, stop=stop, throttle=throttle)
        return sim.tally
    finally:
        await conn.close()


async def _drive(sim: Simulation, sink: Sink, *, speed: float, stop: asyncio.Event, throttle: Throttle) -> None:
    """Pace by `speed`, and never send a record before its time on the real clock.

    A replay that starts in the past runs fast until it has caught up with now, then in real time.
    """
    wall0 = time.monotonic()
    origin: datetime = sim.start
    for sent, item in enumerate(sim, start=1):
        if stop.is_set():
            break
        paced = wall0 + (item.send_at - origin).total_seconds() / speed if speed > 0 else 0.0
        real = time.monotonic() + (item.send_at - datetime.now(UTC)).total_seconds()
        delay = max(paced, real) - time.monotonic()
        if delay <= 0 and sent % THROTTLE_EVERY == 0:
            await throttle.wait(sink.readings, max(sink.messages, 1), stop)  # running ahead: hold back
        elif delay > 0:
            await sink.flush()  # what is due now goes out before we wait
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
                break
            except TimeoutError:
                pass
        await sink.send(item)
    await sink.flush()
