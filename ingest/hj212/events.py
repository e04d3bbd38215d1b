"""The gateway's events into what is kept: a refused frame as a dead letter, an MN's new source as a station event."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from ingest.batch import Message
from ingest.registry import Registry
from ingest.validate import Problem
from schemas.gateway import GatewayEvent
from schemas.readings import Reason, hj212_topic

SOURCE_CHANGED = "source_changed"


def convert_event(payload: bytes, *, prefix: str, registry: Registry, received_at: datetime) -> Message:
    """One document from {prefix}/gateway/events (schemas/gateway.py)."""
    try:
        event = GatewayEvent.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        return Message(problems=[Problem(Reason.SCHEMA, f"gateway event: {first['msg']}", where)])
    station = registry.by_mn.get(event.mn)
    if event.kind == SOURCE_CHANGED:
        if station is None:
            return Message()  # its frames are dead letters of an unknown MN already
        return Message(
            station_id=station.id, events=[(station.sid, SOURCE_CHANGED, event.peer, event.at, None, received_at)]
        )
    # Kept as the frame would have arrived on its HJ 212 topic, so that a replay (after the
    # park's networks are corrected) ingests it like any packet.
    return Message(
        station_id=station.id if station else event.mn,
        problems=[
            Problem(
                Reason.REFUSED_BY_GATEWAY,
                f"{event.reason}: {event.message or ''} (connection from {event.peer})",
                event.reason or "",
            )
        ],
        kept_as=(hj212_topic(prefix, event.mn), event.frame_bytes()),
    )
