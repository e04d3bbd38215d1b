"""One received message, whatever its format, into rows, events, packets and problems (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from ingest.batch import Message
from ingest.hj212.convert import convert
from ingest.hj212.events import convert_event
from ingest.hj212.parts import FirstParts
from ingest.registry import Registry
from ingest.routing import parse_hj212_topic, parse_readings_topic
from ingest.validate import Problem, decode, shown
from schemas.readings import Reason, gateway_events_topic

# station_events kind and subjects for the way a station's readings arrived.
PATH_EVENT: Final = "path"
PATH_MQTT: Final = "mqtt"
PATH_HJ212: Final = "hj212"


def decode_message(
    topic: str,
    payload: bytes,
    *,
    prefix: str,
    registry: Registry,
    received_at: datetime,
    first_parts: FirstParts | None = None,
) -> Message:
    """Route by topic: JSON readings, raw HJ 212 ({prefix}/hj212/{MN}) or the gateway's events.

    `first_parts` carries split HJ 212 packets' data times from one message to the next.
    """
    route = parse_readings_topic(topic, prefix)
    if route is not None:
        decoded = decode(
            payload,
            topic_park=route.park_id,
            topic_station=route.station_id,
            registry=registry,
            received_at=received_at,
        )
        message = Message(
            rows=decoded.rows, problems=decoded.problems, station_id=route.station_id, sent_at=decoded.sent_at
        )
        return _with_path(message, PATH_MQTT, received_at)
    mn = parse_hj212_topic(topic, prefix)
    if mn is not None:
        message = convert(
            payload, topic=topic, topic_mn=mn, registry=registry, received_at=received_at, first_parts=first_parts
        )
        return _with_path(message, PATH_HJ212, received_at)
    if topic == gateway_events_topic(prefix):
        return convert_event(payload, prefix=prefix, registry=registry, received_at=received_at)
    return Message(
        problems=[Problem(Reason.SCHEMA, f"topic {shown(topic)} is neither a readings nor an HJ 212 topic", "topic")]
    )


def _with_path(message: Message, path: str, received_at: datetime) -> Message:
    """Note, once an hour per station, which way its readings came (a station_events row).

    A station whose readings come both as JSON and through HJ 212 has each stored once (first
    wins), and the data-quality check raises it (alerts/instruments.py).
    """
    hour = received_at.replace(minute=0, second=0, microsecond=0)
    for sid in {r[0] for r in message.rows}:
        message.events.append((sid, PATH_EVENT, path, hour, None, received_at))
    return message
