"""The demo's history: the last day of minute data for every station, with two incidents to judge."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from parkwatch.settings import Settings
from schemas.readings import readings_topic
from schemas.registry import RegistryFile, StationSpec
from schemas.stations import StationKind
from simulators.values import StationModel

# Hours before now of the two incidents the demo shows: a stack SO2 excursion (an exceedance
# once corrected to 10 % O2) and a maintenance hour at an outlet (flag M: excluded, not judged).
SO2_EXCURSION_HOURS_AGO = 5
MAINTENANCE_HOURS_AGO = 8
SO2_EXCURSION = 260.0


def hour_objects(station: StationSpec, start: datetime, model: StationModel, rng: random.Random) -> list[Any]:
    """One message of 60 minute records (HJ 212 2051 in JSON form) for one station and hour."""
    hours_ago = int((datetime.now(start.tzinfo) - start) / timedelta(hours=1))
    objects = []
    for minute in range(60):
        ts = start + timedelta(minutes=minute)
        readings = []
        for code, sampled in model.sample(ts, rng).items():
            value, flag = sampled, "N"
            if station.kind is StationKind.STACK and code == "a21026" and hours_ago == SO2_EXCURSION_HOURS_AGO:
                value = SO2_EXCURSION + rng.uniform(-10, 10)
            if station.kind is StationKind.WASTEWATER_OUTLET and hours_ago == MAINTENANCE_HOURS_AGO:
                flag = "M"
            readings.append({"parameter": code, "value": round(value, 3), "flag": flag})
        objects.append(
            {"station_id": station.id, "ts": ts.isoformat(timespec="seconds"), "interval": "min", "readings": readings}
        )
    return objects


def history(registry: RegistryFile, *, hours: int, seed: int = 2) -> Iterator[tuple[StationSpec, list[Any]]]:
    """(station, minute objects of one hour), for the `hours` whole hours before this one."""
    rng = random.Random(seed)
    for station in registry.stations:
        model = StationModel(station.kind, station.parameters)
        tz = ZoneInfo(station.timezone)
        this_hour = datetime.now(tz).replace(minute=0, second=0, microsecond=0)
        for k in range(hours, 0, -1):
            yield station, hour_objects(station, this_hour - timedelta(hours=k), model, rng)


async def backfill(settings: Settings, registry: RegistryFile, *, hours: int = 24) -> int:
    """Publish the history at QoS 1; returns the number of messages (one per station and hour)."""
    target = settings.mqtt
    sent = 0
    async with aiomqtt.Client(target.host, target.port, username=target.username, password=target.password) as client:
        for station, objects in history(registry, hours=hours):
            topic = readings_topic(settings.TOPIC_PREFIX, station.park_id, station.id)
            await client.publish(topic, orjson.dumps(objects), qos=1)
            sent += 1
    return sent
