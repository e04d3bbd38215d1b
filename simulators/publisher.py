"""A minimal station publisher: JSON readings over MQTT for every station of a registry file."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from parkwatch.serve import install_stop_signals
from parkwatch.settings import Settings
from schemas.readings import readings_topic
from schemas.registry import RegistryFile, read_registry
from simulators.values import StationModel

logger = logging.getLogger(__name__)

# Reconnect pause when the broker is away: the publisher is a demo tool, a fixed second is fine.
RECONNECT_DELAY = 1.0


def demo_registry_path() -> Path:
    """The registry file of the demo fleet shipped with the package."""
    return Path(str(resources.files("simulators").joinpath("demo_registry.yaml")))


async def publish_fleet(
    settings: Settings,
    registry: RegistryFile,
    *,
    interval: float,
    stop: asyncio.Event,
    seed: int = 1,
    duration: float | None = None,
) -> int:
    """Publish one message per station every `interval` seconds until stopped; returns the count."""
    rng = random.Random(seed)
    models = {s.id: StationModel(s.kind, s.parameters) for s in registry.stations}
    target = settings.mqtt
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration if duration else None
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                target.host, target.port, username=target.username, password=target.password
            ) as client:
                while not stop.is_set():
                    for station in registry.stations:
                        now = datetime.now(ZoneInfo(station.timezone))
                        values = models[station.id].sample(now, rng)
                        payload = {
                            "station_id": station.id,
                            "ts": now.isoformat(timespec="seconds"),
                            "interval": "rtd",
                            "readings": [{"parameter": code, "value": v, "flag": "N"} for code, v in values.items()],
                        }
                        topic = readings_topic(settings.TOPIC_PREFIX, station.park_id, station.id)
                        await client.publish(topic, orjson.dumps(payload), qos=1)
                        sent += 1
                    if deadline is not None and loop.time() >= deadline:
                        return sent
                    try:
                        async with asyncio.timeout(interval):
                            await stop.wait()
                    except TimeoutError:
                        pass
        except aiomqtt.MqttError as exc:
            logger.warning("publisher: broker unavailable (%s); retrying", exc)
            await asyncio.sleep(RECONNECT_DELAY)
    return sent


def run_publisher(
    settings: Settings, *, registry_path: Path | None, interval: float, duration: float | None, seed: int
) -> int:
    """The `parkwatch simulate` command."""
    registry = read_registry(registry_path or demo_registry_path())

    async def main() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        sent = await publish_fleet(settings, registry, interval=interval, stop=stop, seed=seed, duration=duration)
        print(f"published {sent} messages for {len(registry.stations)} stations")
        return 0

    return asyncio.run(main())
