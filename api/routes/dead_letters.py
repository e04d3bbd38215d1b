"""Dead letters: what was refused and why, and the raw bytes for administrators."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api import paging
from api.deps import ConnDep, PagerDep, PrincipalDep
from api.errors import ApiError
from api.pagemodels import BAD_CURSOR, INVALID, Instant, Page, errors, page
from api.routes.hj212 import after_key, mask_secrets
from ingest.deadletters import dead_letter_json, list_dead_letters

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


class RefusalProblem(BaseModel):
    """One thing wrong with the payload."""

    model_config = ConfigDict(extra="allow")

    reason: str | None = None
    message: str | None = None
    at: str | None = Field(default=None, description="where in the payload, e.g. [2].readings[0].value")
    parameter: str | None = None


class DeadLetter(BaseModel):
    """A refused payload: why, when, and whether it was replayed since."""

    id: int
    reason: str
    message: str
    topic: str
    station_id: str | None
    received_at: Instant
    size: int = Field(description="the payload's bytes")
    attempts: int
    last_attempt_at: Instant | None
    resolved_at: Instant | None
    resolution: str | None
    problems: list[RefusalProblem]
    payload_redacted: bool = Field(
        description="true: the payload is withheld from this caller (administrators alone read refused payloads)"
    )


class DeadLetterPage(Page):
    """A page of dead letters, by id."""

    results: list[DeadLetter]
    next_after_id: int | None = Field(description="the last id of this page while there are more (older clients)")


class DeadLetterOne(DeadLetter):
    """A dead letter with its payload, for administrators."""

    payload_base64: str | None = Field(description="the payload as received; null when redacted")
    payload_text: str | None = Field(description="the same as UTF-8 text; null when redacted or not UTF-8")


class ReasonCount(BaseModel):
    """Dead letters of one reason."""

    reason: str
    total: int
    open: int


class Summary(BaseModel):
    """Counts by reason."""

    results: list[ReasonCount]


def _shown(item: dict[str, Any], secret: bool) -> dict[str, Any]:
    """A dead letter as this caller may read it: the refusal's text cannot quote a password either."""
    if not secret:
        item["message"] = mask_secrets(item["message"])
        item["problems"] = mask_secrets(item["problems"])
    item["payload_redacted"] = not secret
    return item


@router.get(
    "",
    response_model=DeadLetterPage,
    responses=errors({400: f"{BAD_CURSOR}; bad_cursor also for cursor and after_id together", 422: INVALID}),
)
async def get_dead_letters(
    conn: ConnDep,
    pager: PagerDep,
    principal: PrincipalDep,
    reason: str | None = None,
    station_id: str | None = None,
    include_resolved: bool = False,
    after_id: Annotated[int, Query(ge=0, description="keyset: the last id of the previous page (older clients)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> dict[str, Any]:
    """Refused payloads in id order; open ones only unless include_resolved. The bytes: /dead-letters/{id}."""
    fp = paging.fingerprint("dead-letters", reason, station_id, include_resolved)
    after = after_key(pager, cursor, fp, after_id)
    rows = await list_dead_letters(
        conn,
        reason=reason,
        include_resolved=include_resolved,
        station_id=station_id,
        after_id=after,
        limit=limit + 1,
    )
    results = [_shown(r, principal.sees_secrets) for r in rows[:limit]]
    more = len(rows) > limit
    last = results[-1]["id"] if results else None
    return page(results, limit, pager.encode(fp, (last,)) if more else None, next_after_id=last if more else None)


@router.get("/summary", response_model=Summary)
async def get_summary(conn: ConnDep) -> dict[str, Any]:
    """Counts by reason, total and still open."""
    rows = await conn.fetch(SUMMARY)
    return {"results": [{"reason": r["reason"], "total": r["total"], "open": r["open"]} for r in rows]}


@router.get("/{dead_letter_id}", response_model=DeadLetterOne, responses=errors({404: "unknown_dead_letter"}))
async def get_dead_letter(conn: ConnDep, principal: PrincipalDep, dead_letter_id: int) -> dict[str, Any]:
    """One dead letter with its payload (base64, and as text where it decodes): for administrators only.

    Anyone else gets `payload_base64` and `payload_text` null and `payload_redacted` true: a refused
    payload may hold a station's access password, or anything a sender put there.
    """
    row = await conn.fetchrow(SELECT_ONE, dead_letter_id)
    if row is None:
        raise ApiError(404, "unknown_dead_letter", f"no dead letter {dead_letter_id}")
    out = _shown(dead_letter_json(row), principal.sees_secrets)
    if not principal.sees_secrets:
        return {**out, "payload_base64": None, "payload_text": None}
    payload = bytes(row["payload"])
    out["payload_base64"] = base64.b64encode(payload).decode()
    try:
        out["payload_text"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        out["payload_text"] = None
    return out
