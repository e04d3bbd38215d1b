"""One received message, whatever its format, into rows, events, packets and problems (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ingest.batch import EventRow, PacketRecord
from ingest.hj212.convert import convert
from ingest.registry import Registry
from ingest.routing import parse_hj212_topic, parse_readings_topic
from ingest.rows import Row
from ingest.validate import Problem, decode
from schemas.readings import Reason


@dataclass
class Message:
    """What a message gives; `unresolved` rows wait for an id for a code not registered yet."""

    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    packets: list[PacketRecord] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    unresolved: list[tuple[str, Row]] = field(default_factory=list)
    station_id: str | None = None  # as the topic names it (a station id, or an HJ 212 MN)


def decode_message(topic: str, payload: bytes, *, prefix: str, registry: Registry, received_at: datetime) -> Message:
    """Route by topic: JSON readings ({prefix}/{park}/{station}/readings) or raw HJ 212 ({prefix}/hj212/{MN})."""
    route = parse_readings_topic(topic, prefix)
    if route is not None:
        decoded = decode(
            payload,
            topic_park=route.park_id,
            topic_station=route.station_id,
            registry=registry,
            received_at=received_at,
        )
        return Message(rows=decoded.rows, problems=decoded.problems, station_id=route.station_id)
    mn = parse_hj212_topic(topic, prefix)
    if mn is not None:
        done = convert(payload, topic=topic, topic_mn=mn, registry=registry, received_at=received_at)
        station = registry.by_mn.get(mn)
        return Message(
            rows=done.rows,
            problems=done.problems,
            packets=done.packets,
            events=done.events,
            unresolved=done.unresolved,
            station_id=station.id if station else mn,
        )
    return Message(
        problems=[Problem(Reason.SCHEMA, f"topic {topic!r} is neither a readings nor an HJ 212 topic", "topic")]
    )
