"""Where simulated records go: JSON over MQTT, HJ 212 over MQTT, or HJ 212 over TCP to the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from ingest.hj212.codec import encode_data, qn_for
from parkwatch.settings import Settings
from schemas.readings import INTERVAL_NAMES, hj212_topic, readings_topic
from schemas.stations import StationKind
from simulators.engine import Malformed, Record

Format = Literal["json", "hj212", "hj212-tcp"]
# HJ 212-2017 system codes (ST) by station kind: 32 wastewater, 22 ambient air, 31 flue gas.
SYSTEM_CODES = {
    StationKind.WASTEWATER_INLET: "32",
    StationKind.WASTEWATER_OUTLET: "32",
    StationKind.AMBIENT_AIR: "22",
    StationKind.STACK: "31",
}
# JSON records of one station travel together up to this many per message (an hour of minute
# data is ~20 kB, far under the contract's 256 kB).
JSON_GROUP = 60
# Seconds to wait for a 9014 from the gateway before the link counts as broken.
REPLY_TIMEOUT = 10.0


class Sink(Protocol):
    """Something that takes the simulation's output."""

    async def send(self, item: Record | Malformed) -> None:
        """Send one record or bad payload (may buffer)."""

    async def flush(self) -> None:
        """Send whatever is buffered."""

    @property
    def messages(self) -> int:
        """Messages (or packets) sent so far."""

    @property
    def readings(self) -> int:
        """New readings in what was sent so far (what the database should come to hold)."""


def json_object(record: Record) -> dict[str, object]:
    """A record in the MQTT JSON contract."""
    zone = ZoneInfo(record.station.timezone)
    local = record.ts.astimezone(zone)
    return {
        "station_id": record.station.id,
        "ts": local.isoformat(timespec="seconds"),
        "interval": INTERVAL_NAMES[1],
        "sent_at": datetime.now(zone).isoformat(timespec="milliseconds"),
        "readings": [{"parameter": c, "value": v, "flag": f} for c, (v, f) in record.values.items()],
    }


def hj212_packet(record: Record, *, flag: int = 4) -> bytes:
    """A record as an HJ 212-2017 minute-data packet (CN 2051), DataTime in the station's time."""
    zone = ZoneInfo(record.station.timezone)
    local = record.ts.astimezone(zone)
    return encode_data(
        cn="2051",
        qn=qn_for(datetime.now(zone)),  # the request's own time, as loggers set it (docs/reference/hj212.md §3)
        mn=record.station.mn or record.station.id,
        data_time=local,
        factors={c: {"Avg": v, "Min": v, "Max": v, "Flag": f} for c, (v, f) in record.values.items()},
        st=SYSTEM_CODES[record.station.kind],
        pw=record.station.pw or "123456",
        flag=flag,
    )


def garbage(item: Malformed, fmt: Format) -> bytes:
    """A garbled payload: truncated JSON, or an HJ 212 frame whose CRC does not match."""
    if fmt == "json":
        return b'{"station_id": "' + item.station.id.encode() + b'", "readings": [{"parameter": "w01'
    return b"##0040QN=;ST=32;CN=2051;PW=123456;MN=" + (item.station.mn or "0").encode() + b";CP=&&&&FFFF\r\n"


class MqttSink:
    """JSON or HJ 212 packets over MQTT at QoS 1."""

    def __init__(self, settings: Settings, client: aiomqtt.Client, fmt: Format) -> None:
        self.prefix = settings.TOPIC_PREFIX
        self.client = client
        self.fmt = fmt
        self.buffers: dict[str, list[Record]] = {}
        self.messages = 0
        self.readings = 0

    async def send(self, item: Record | Malformed) -> None:
        """Publish (JSON records are grouped per station, duplicates go on their own)."""
        if isinstance(item, Malformed):
            await self._publish(item.station.park_id, item.station.id, item.station.mn, garbage(item, self.fmt))
            return
        if self.fmt == "hj212":
            await self._publish(item.station.park_id, item.station.id, item.station.mn, hj212_packet(item))
            self.readings += item.new_readings
            return
        if item.alone:
            await self._flush_station(item.station.id)
            await self._publish(item.station.park_id, item.station.id, None, orjson.dumps([json_object(item)]))
            self.readings += item.new_readings
            return
        buffer = self.buffers.setdefault(item.station.id, [])
        buffer.append(item)
        if len(buffer) >= JSON_GROUP:
            await self._flush_station(item.station.id)

    async def flush(self) -> None:
        """Publish every buffered record."""
        for station_id in list(self.buffers):
            await self._flush_station(station_id)

    async def _flush_station(self, station_id: str) -> None:
        buffer = self.buffers.pop(station_id, [])
        if buffer:
            station = buffer[0].station
            await self._publish(station.park_id, station.id, None, orjson.dumps([json_object(r) for r in buffer]))
            self.readings += sum(r.new_readings for r in buffer)

    async def _publish(self, park: str, station: str, mn: str | None, payload: bytes) -> None:
        if self.fmt == "json":
            topic = readings_topic(self.prefix, park, station)
        else:
            topic = hj212_topic(self.prefix, mn or station)
        await self.client.publish(topic, payload, qos=1)
        self.messages += 1


class TcpSink:
    """HJ 212 over TCP to the gateway, one connection per logger, each packet answered by a 9014."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.links: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self.messages = 0
        self.readings = 0
        self.unanswered = 0

    async def send(self, item: Record | Malformed) -> None:
        """Send one packet and wait for its answer (a garbled one gets none)."""
        reader, writer = await self._link(item.station.id)
        if isinstance(item, Malformed):
            writer.write(garbage(item, "hj212"))
            await writer.drain()
            self.messages += 1
            return
        writer.write(hj212_packet(item, flag=5))
        await writer.drain()
        self.messages += 1
        self.readings += item.new_readings
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                await reader.readuntil(b"\n")
        except (TimeoutError, asyncio.IncompleteReadError):
            self.unanswered += 1

    async def flush(self) -> None:
        """Nothing is buffered: every packet waited for its answer."""

    async def _link(self, station_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        link = self.links.get(station_id)
        if link is None or link[1].is_closing():
            link = await asyncio.open_connection(self.host, self.port)
            self.links[station_id] = link
        return link

    async def close(self) -> None:
        """Hang up every logger."""
        for _, writer in self.links.values():
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        self.links.clear()
