"""One received message, whatever its format, into rows, events, packets and problems (pure)."""

from __future__ import annotations

from datetime import datetime

from ingest.batch import Message
from ingest.hj212.convert import convert
from ingest.hj212.events import convert_event
from ingest.registry import Registry
from ingest.routing import parse_hj212_topic, parse_readings_topic
from ingest.validate import Problem, decode
from schemas.readings import Reason, gateway_events_topic


def decode_message(topic: str, payload: bytes, *, prefix: str, registry: Registry, received_at: datetime) -> Message:
    """Route by topic: JSON readings, raw HJ 212 ({prefix}/hj212/{MN}) or the gateway's events."""
    route = parse_readings_topic(topic, prefix)
    if route is not None:
        decoded = decode(
            payload,
            topic_park=route.park_id,
            topic_station=route.station_id,
            registry=registry,
            received_at=received_at,
        )
        return Message(
            rows=decoded.rows, problems=decoded.problems, station_id=route.station_id, sent_at=decoded.sent_at
        )
    mn = parse_hj212_topic(topic, prefix)
    if mn is not None:
        return convert(payload, topic=topic, topic_mn=mn, registry=registry, received_at=received_at)
    if topic == gateway_events_topic(prefix):
        return convert_event(payload, prefix=prefix, registry=registry, received_at=received_at)
    return Message(
        problems=[Problem(Reason.SCHEMA, f"topic {topic!r} is neither a readings nor an HJ 212 topic", "topic")]
    )
