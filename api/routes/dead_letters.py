"""Dead letters: what was refused, why, and the raw bytes."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ConnDep
from api.errors import ApiError
from ingest.deadletters import dead_letter_json, list_dead_letters
from ingest.hj212.packet import mask_password

router = APIRouter(prefix="/api/v1/dead-letters", tags=["dead letters"])

SUMMARY = """
SELECT reason, count(*) AS total, count(*) FILTER (WHERE resolved_at IS NULL) AS open
FROM dead_letters GROUP BY reason ORDER BY reason
"""
SELECT_ONE = """
SELECT id, received_at, topic, reason, message, problems, station_id, attempts,
       last_attempt_at, resolved_at, resolution, octet_length(payload) AS size, payload
FROM dead_letters WHERE id = $1
"""


@router.get("")
async def get_dead_letters(
    conn: ConnDep,
    reason: str | None = None,
    station_id: str | None = None,
    include_resolved: bool = False,
    after_id: Annotated[int, Query(ge=0, description="keyset: the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Refused payloads in id order; open ones only unless include_resolved."""
    rows = await list_dead_letters(
        conn,
        reason=reason,
        include_resolved=include_resolved,
        station_id=station_id,
        after_id=after_id,
        limit=limit,
    )
    return {"results": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/summary")
async def get_summary(conn: ConnDep) -> dict[str, Any]:
    """Counts by reason, total and still open."""
    rows = await conn.fetch(SUMMARY)
    return {"results": [{"reason": r["reason"], "total": r["total"], "open": r["open"]} for r in rows]}


@router.get("/{dead_letter_id}")
async def get_dead_letter(conn: ConnDep, dead_letter_id: int) -> dict[str, Any]:
    """One dead letter with its payload (base64, and as text where it decodes)."""
    row = await conn.fetchrow(SELECT_ONE, dead_letter_id)
    if row is None:
        raise ApiError(404, "unknown_dead_letter", f"no dead letter {dead_letter_id}")
    out = dead_letter_json(row)
    # An HJ 212 payload carries the station's access password: shown masked, kept as received.
    payload = mask_password(bytes(row["payload"]))
    out["payload_base64"] = base64.b64encode(payload).decode()
    try:
        out["payload_text"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        out["payload_text"] = None
    return out
