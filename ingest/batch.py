"""What travels from the receiver to the writer: envelopes (one per message) and batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ingest.rows import Row
from ingest.validate import Problem

# One accepted HJ 212 packet for hj212_packets: received_at, topic, sid, mn, cn, qn, data_time,
# raw bytes, findings (JSON text).
PacketRecord = tuple[datetime, str, int | None, str | None, str | None, str | None, datetime | None, bytes, str]
# One station event: sid, kind, subject, ts, value, received_at.
EventRow = tuple[int, str, str, datetime, float | None, datetime]


class Acker(Protocol):
    """Something that can acknowledge a delivered MQTT message (see ingest/mqtt.py)."""

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK."""


@dataclass(slots=True)
class DeadLetter:
    """One refused payload, as stored in dead_letters."""

    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    message: str
    problems: list[dict[str, str]]
    station_id: str | None

    @classmethod
    def from_problems(
        cls,
        *,
        received_at: datetime,
        topic: str,
        payload: bytes,
        problems: list[Problem],
        station_id: str | None,
    ) -> DeadLetter:
        """Summarise a payload's problems: the first one names the reason."""
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return cls(
            received_at=received_at,
            topic=topic,
            payload=payload,
            reason=first.reason.value,
            message=first.message + more,
            problems=[p.as_json() for p in problems],
            station_id=station_id,
        )


@dataclass
class Message:
    """What one received message gives; `unresolved` rows wait for the id of a code not yet registered."""

    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    packets: list[PacketRecord] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    unresolved: list[tuple[str, Row]] = field(default_factory=list)
    station_id: str | None = None  # as the topic names it (a station id, or an HJ 212 MN)
    sent_at: datetime | None = None  # when the station sent it (JSON sent_at, HJ 212 QN), if it says
    # The topic and payload its dead letter keeps, when not the message's own: a frame the gateway
    # refused is kept as it would have arrived (ingest/hj212/events.py).
    kept_as: tuple[str, bytes] | None = None


@dataclass(slots=True)
class Envelope:
    """One received message after validation, waiting to be made durable and acknowledged."""

    acker: Acker | None
    mid: int
    qos: int
    received_at: datetime
    rows: list[Row]
    dead: DeadLetter | None
    packets: list[PacketRecord] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    sent_at: datetime | None = None


@dataclass(slots=True)
class Batch:
    """Rows and dead letters written in one transaction, and the messages they acknowledge."""

    rows: list[Row] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    packets: list[PacketRecord] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    opened: float = 0.0  # monotonic time of the first envelope

    def add(self, env: Envelope) -> None:
        """Take one envelope's rows and dead letter."""
        self.envelopes.append(env)
        self.rows.extend(env.rows)
        if env.dead is not None:
            self.dead.append(env.dead)
        self.packets.extend(env.packets)
        self.events.extend(env.events)
