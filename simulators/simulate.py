"""Drive a simulation into a sink at a chosen speed: real time, accelerated, or as fast as possible."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import aiomqtt

from parkwatch.settings import Settings
from simulators.engine import Simulation, Tally
from simulators.sinks import Format, MqttSink, Sink, TcpSink

logger = logging.getLogger(__name__)


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
    if fmt == "hj212-tcp":
        host, port = gateway or (settings.GATEWAY_HOST, settings.GATEWAY_PORT)
        tcp = TcpSink(host, port)
        try:
            await _drive(sim, tcp, speed=speed, stop=stop)
        finally:
            await tcp.close()
        if tcp.unanswered:
            logger.warning("simulate: %d packet(s) got no 9014 from the gateway", tcp.unanswered)
        return sim.tally
    target = settings.mqtt
    async with aiomqtt.Client(
        target.host, target.port, username=target.username, password=target.password, max_queued_outgoing_messages=0
    ) as client:
        await _drive(sim, MqttSink(settings, client, fmt), speed=speed, stop=stop)
    return sim.tally


async def _drive(sim: Simulation, sink: Sink, *, speed: float, stop: asyncio.Event) -> None:
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
        if delay > 0:
            await sink.flush()  # what is due now goes out before we wait
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
                break
            except TimeoutError:
                pass
        await sink.send(item)
        if sent % 1000 == 0:
            await asyncio.sleep(0)  # let the client's network task breathe in fast replays
    await sink.flush()
