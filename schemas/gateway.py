"""What the HJ 212 gateway tells the ingest besides the packets: frames it refused, an MN sending from a new address."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import BaseModel, Field


class GatewayEvent(BaseModel):
    """One JSON document on {prefix}/gateway/events (docs/data-loggers.md#who-may-send-as-an-mn)."""

    kind: Literal["refused", "source_changed"]
    mn: str = Field(min_length=1, max_length=64)
    peer: str = Field(max_length=64)  # the connection's address
    at: datetime
    reason: str | None = Field(default=None, max_length=64)  # refused: ingest/hj212/access.py Refusal
    message: str | None = Field(default=None, max_length=512)
    frame: str | None = None  # refused: the frame as received, base64
    previous: str | None = Field(default=None, max_length=64)  # source_changed: the address before

    def frame_bytes(self) -> bytes:
        """The refused frame's bytes (empty when none was sent)."""
        return base64.b64decode(self.frame) if self.frame else b""


def gateway_event(kind: str, *, mn: str, peer: str, frame: bytes | None = None, **fields: str) -> bytes:
    """The JSON document of one event, stamped now."""
    doc: dict[str, object] = {"kind": kind, "mn": mn, "peer": peer, "at": datetime.now(UTC).isoformat(), **fields}
    if frame is not None:
        doc["frame"] = base64.b64encode(frame).decode()
    return orjson.dumps(doc)
