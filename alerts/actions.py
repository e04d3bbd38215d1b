"""What people do to alerts: acknowledge, verify (核实), resolve, explain, review; silences and maintenance.

Each action locks the alert, checks it is allowed, changes it and adds its timeline entry in one
transaction. The API and the command line both come here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from alerts import rules, store
from schemas.alerting import VERIFICATIONS, Family


class ActionError(Exception):
    """An action refused; `code` is machine-readable, `status` the HTTP status it maps to."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(detail)


LOCK = """
SELECT x.*, coalesce(s.park_id, x.park) AS park_id FROM alerts x LEFT JOIN stations s ON s.sid = x.sid
WHERE x.id = $1 FOR UPDATE OF x
"""
ACK = """
UPDATE alerts SET acked_at = clock_timestamp(), acked_by = $2, ack_comment = $3, updated_at = clock_timestamp()
WHERE id = $1
"""
VERIFY = """
UPDATE alerts SET verified_at = clock_timestamp(), verified_by = $2, verification = $3, verify_comment = $4,
    updated_at = clock_timestamp()
WHERE id = $1
"""
EXPLAIN = """
UPDATE alerts SET explanation = $3, explained_at = clock_timestamp(), explained_by = $2, review = NULL,
    reviewed_at = NULL, reviewed_by = NULL, review_comment = NULL, updated_at = clock_timestamp()
WHERE id = $1
"""
REVIEW = """
UPDATE alerts SET review = $3, reviewed_at = clock_timestamp(), reviewed_by = $2, review_comment = $4,
    explanation = CASE WHEN $3 = 'rejected' THEN NULL ELSE explanation END,
    explanation_due_at = CASE WHEN $3 = 'rejected' THEN clock_timestamp() + $5::interval ELSE explanation_due_at END,
    overdue_at = CASE WHEN $3 = 'rejected' THEN NULL ELSE overdue_at END,
    updated_at = clock_timestamp()
WHERE id = $1
"""
INSERT_SILENCE = """
INSERT INTO alert_silences (kind, park_id, sid, pid, rule, starts_at, ends_at, reason, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""
CANCEL_SILENCE = """
UPDATE alert_silences SET cancelled_at = clock_timestamp() WHERE id = $1 AND cancelled_at IS NULL RETURNING id
"""


async def _lock(conn: asyncpg.Connection, alert_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK, alert_id)
    if row is None:
        raise ActionError(404, "unknown_alert", f"no alert {alert_id}")
    return row


def _who(by: str) -> str:
    by = by.strip()
    if not by:
        raise ActionError(422, "missing_actor", "say who does it (by)")
    return by[:200]


async def acknowledge(conn: asyncpg.Connection, alert_id: int, *, by: str, comment: str | None = None) -> None:
    """Say 'seen, on it': stops reminders and escalation."""
    actor = _who(by)
    async with conn.transaction():
        alert = await _lock(conn, alert_id)
        if alert["acked_at"] is not None:
            who = f"acknowledged by {alert['acked_by']} at {alert['acked_at']:%Y-%m-%d %H:%M:%S%z}"
            raise ActionError(409, "already_acknowledged", who)
        if alert["status"] == "cleared":
            raise ActionError(409, "alert_cleared", "the alert has cleared; verify it instead")
        await conn.execute(ACK, alert_id, actor, comment)
        await store.event(conn, alert_id, "acknowledged", {"comment": comment}, actor=actor)


async def verify(
    conn: asyncpg.Connection, alert_id: int, *, by: str, verification: str, comment: str | None = None
) -> None:
    """核实: the bureau's finding on what the alert was; allowed in any state, again to correct it."""
    actor = _who(by)
    if verification not in VERIFICATIONS:
        raise ActionError(422, "bad_verification", f"verification is one of {', '.join(VERIFICATIONS)}")
    async with conn.transaction():
        await _lock(conn, alert_id)
        await conn.execute(VERIFY, alert_id, actor, verification, comment)
        await store.event(conn, alert_id, "verified", {"verification": verification, "comment": comment}, actor=actor)


async def resolve(conn: asyncpg.Connection, alert_id: int, *, by: str, comment: str | None = None) -> None:
    """Close an alert by hand, where its rule allows it (an exceedance clears only when the data say so)."""
    actor = _who(by)
    async with conn.transaction():
        alert = await _lock(conn, alert_id)
        if alert["status"] == "cleared":
            raise ActionError(409, "alert_cleared", "the alert has already cleared")
        if Family(alert["family"]) not in rules.MANUALLY_RESOLVABLE:
            raise ActionError(
                409,
                "not_manually_resolvable",
                f"{alert['rule']} alerts clear when the data are compliant again; acknowledge or verify instead",
            )
        cleared = await conn.fetchrow(store.CLEAR, alert_id, "resolved")
        event_id = await store.event(conn, alert_id, "cleared", {"reason": "resolved", "comment": comment}, actor=actor)
        if cleared is not None and alert["status"] == "active":
            await store.enqueue(conn, cleared, event_id, alert["park_id"], resolve=True)


async def explain(conn: asyncpg.Connection, alert_id: int, *, by: str, text: str) -> None:
    """The enterprise's 情况说明 for an exceedance."""
    actor = _who(by)
    if not text.strip():
        raise ActionError(422, "empty_explanation", "the explanation is empty")
    async with conn.transaction():
        alert = await _lock(conn, alert_id)
        if alert["family"] != Family.EXCEEDANCE.value:
            raise ActionError(409, "no_explanation_needed", "only exceedances call for an explanation")
        await conn.execute(EXPLAIN, alert_id, actor, text.strip()[:5000])
        await store.event(conn, alert_id, "explained", {"text": text.strip()[:5000]}, actor=actor)


async def review(
    conn: asyncpg.Connection,
    alert_id: int,
    *,
    by: str,
    decision: str,
    comment: str | None,
    resubmit_hours: float,
) -> None:
    """The bureau accepts the explanation, or rejects it and asks for another by a new deadline."""
    actor = _who(by)
    if decision not in ("accepted", "rejected"):
        raise ActionError(422, "bad_decision", "decision is accepted or rejected")
    async with conn.transaction():
        alert = await _lock(conn, alert_id)
        if alert["explanation"] is None:
            raise ActionError(409, "nothing_to_review", "no explanation has been given")
        await conn.execute(REVIEW, alert_id, actor, decision, comment, timedelta(hours=resubmit_hours))
        await store.event(conn, alert_id, "reviewed", {"decision": decision, "comment": comment}, actor=actor)


async def add_silence(
    conn: asyncpg.Connection,
    *,
    kind: str,
    park_id: str | None,
    sid: int | None,
    pid: int | None,
    rule: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    by: str,
) -> int:
    """Mute notices of matching alerts for a time (they are still raised and recorded)."""
    actor = _who(by)
    if ends_at <= starts_at:
        raise ActionError(422, "bad_time", "ends_at must be after starts_at")
    if not reason.strip():
        raise ActionError(422, "missing_reason", "say why (reason)")
    silence_id: int = await conn.fetchval(
        INSERT_SILENCE, kind, park_id, sid, pid, rule, starts_at, ends_at, reason.strip()[:1000], actor
    )
    return silence_id


async def cancel_silence(conn: asyncpg.Connection, silence_id: int) -> None:
    """End a silence now."""
    if await conn.fetchval(CANCEL_SILENCE, silence_id) is None:
        raise ActionError(404, "unknown_silence", f"no active silence {silence_id}")
