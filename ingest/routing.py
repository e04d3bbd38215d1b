"""Which station a topic speaks for: the topic layouts of the MQTT contract, parsed."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.readings import HJ212_LEVEL, READINGS_SUFFIX


@dataclass(frozen=True, slots=True)
class ReadingsTopic:
    """{prefix}/{park_id}/{station_id}/readings, split."""

    park_id: str
    station_id: str


def parse_readings_topic(topic: str, prefix: str) -> ReadingsTopic | None:
    """The park and station a readings topic names, or None if the topic is not one."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 3 or rest[2] != READINGS_SUFFIX or not rest[0] or not rest[1]:
        return None
    return ReadingsTopic(park_id=rest[0], station_id=rest[1])


def parse_hj212_topic(topic: str, prefix: str) -> str | None:
    """The MN a raw HJ 212 topic ({prefix}/hj212/{MN}) names, or None if the topic is not one."""
    head = f"{prefix}/{HJ212_LEVEL}/"
    if not topic.startswith(head):
        return None
    mn = topic[len(head) :]
    return mn if mn and "/" not in mn else None
