"""The alerts' SQL: the inbox, opening and changing alerts, their timeline, and the notices routing chooses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

CLAIM_INBOX = """
SELECT i.*, s.id AS station_id, s.park_id FROM alert_inbox i JOIN stations s USING (sid)
ORDER BY i.id LIMIT $1
FOR UPDATE OF i SKIP LOCKED
"""
DELETE_INBOX = "DELETE FROM alert_inbox WHERE id = any($1::bigint[])"

# Open an alert for its key. The partial unique index alerts_one_open decides, in the database,
# whether one is open already: never a read-then-write that two instances could both win.
OPEN_ALERT = """
INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen, activated_at, late, value,
                    limit_value, unit, standard, clause, exceedance_multiple, details, explanation_due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $5 = 'active' THEN clock_timestamp() END, $9, $10, $11, $12,
        $13, $14::jsonb, $15, $16::jsonb,
        CASE WHEN $5 = 'active' AND $4 = 'exceedance' THEN clock_timestamp() + $17::interval END)
ON CONFLICT (sid, coalesce(pid, 0), rule) WHERE status <> 'cleared' DO NOTHING
RETURNING *
"""
SELECT_OPEN = """
SELECT * FROM alerts WHERE sid = $1 AND coalesce(pid, 0) = coalesce($2::smallint, 0) AND rule = $3
  AND status <> 'cleared'
FOR UPDATE
"""
SELECT_ALERT_FOR_UPDATE = "SELECT * FROM alerts WHERE id = $1 FOR UPDATE"

ADD_WINDOW = """
INSERT INTO alert_windows (alert_id, window_start, window_end, value_judged, exceedance_multiple)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (alert_id, window_start) DO UPDATE SET
    window_end = EXCLUDED.window_end, value_judged = EXCLUDED.value_judged,
    exceedance_multiple = EXCLUDED.exceedance_multiple
RETURNING (xmax = 0) AS inserted
"""
REMOVE_WINDOW = "DELETE FROM alert_windows WHERE alert_id = $1 AND window_start = $2 RETURNING window_start"
WINDOW_SPAN = """
SELECT count(*) AS n, min(window_start) AS first, max(window_end) AS last, max(exceedance_multiple) AS multiple
FROM alert_windows WHERE alert_id = $1
"""
# Closed compliant windows after the latest exceedance window: what clears an exceedance alert.
COMPLIANT_AFTER = """
SELECT count(*) FROM verdicts
WHERE sid = $1 AND pid = $2 AND window_kind = $3 AND window_start >= $4 AND verdict = 'compliant' AND closed
"""

# One statement per kind of change, so each says what it changes.
RECORD_WINDOW = """
UPDATE alerts SET occurrences = occurrences + $2::int, first_seen = least(first_seen, $3),
    last_seen = greatest(last_seen, $4), value = $5, exceedance_multiple = greatest(exceedance_multiple, $6),
    severity = $7, clear_streak = CASE WHEN $4 >= last_seen THEN 0 ELSE clear_streak END,
    updated_at = clock_timestamp()
WHERE id = $1
RETURNING *
"""
ACTIVATE = """
UPDATE alerts SET status = 'active', activated_at = clock_timestamp(),
    explanation_due_at = CASE WHEN family = 'exceedance' THEN clock_timestamp() + $2::interval END,
    updated_at = clock_timestamp()
WHERE id = $1 AND status = 'pending'
RETURNING *
"""
SHRINK = """
UPDATE alerts SET occurrences = $2, first_seen = $3, last_seen = $4, exceedance_multiple = $5,
    updated_at = clock_timestamp()
WHERE id = $1
"""
SET_STREAK = "UPDATE alerts SET clear_streak = $2, updated_at = clock_timestamp() WHERE id = $1"
CLEAR = """
UPDATE alerts SET status = 'cleared', cleared_at = clock_timestamp(), clear_reason = $2,
    updated_at = clock_timestamp()
WHERE id = $1 AND status <> 'cleared'
RETURNING *
"""
TOUCH = "UPDATE alerts SET last_seen = greatest(last_seen, $2), updated_at = clock_timestamp() WHERE id = $1"

ADD_EVENT = """
INSERT INTO alert_events (alert_id, kind, actor, detail) VALUES ($1, $2, $3, $4::jsonb) RETURNING id
"""
# The notices an event sends: one per channel of each route that takes the alert's park,
# family and severity. A silence or maintenance window covering the alert keeps the notice as
# 'muted' (recorded, not sent). $8 picks escalation routes; $9 marks a resolve notice, which
# routes may decline; $10 limits reminders to routes that repeat at most that often.
ENQUEUE = """
INSERT INTO notifications (alert_id, event_id, channel_id, status)
SELECT DISTINCT ON (r.channel_id) $1::bigint, $2::bigint, r.channel_id,
       CASE WHEN EXISTS (
           SELECT 1 FROM alert_silences x
           WHERE x.cancelled_at IS NULL AND clock_timestamp() >= x.starts_at AND clock_timestamp() < x.ends_at
             AND (x.park_id IS NULL OR x.park_id = $3) AND (x.sid IS NULL OR x.sid = $4)
             AND (x.pid IS NULL OR x.pid = $5)
             AND (x.rule IS NULL OR x.rule = $6 OR $6 LIKE x.rule || '.%')
       ) THEN 'muted' ELSE 'queued' END
FROM alert_routes r
WHERE (r.park_id IS NULL OR r.park_id = $3)
  AND $7 = any(r.families)
  AND array_position(ARRAY['advisory', 'warning', 'major', 'critical'], $11::text)
      >= array_position(ARRAY['advisory', 'warning', 'major', 'critical'], r.min_severity)
  AND r.escalation = $8
  AND (NOT $9 OR r.resolved)
  AND ($10::interval IS NULL OR (r.repeat_every IS NOT NULL AND r.repeat_every <= $10::interval))
ORDER BY r.channel_id
ON CONFLICT (event_id, channel_id) DO NOTHING
RETURNING id, status
"""
MARK_NOTIFIED = "UPDATE alerts SET notified_at = clock_timestamp() WHERE id = $1"


async def claim_inbox(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """The oldest verdict changes not yet applied, locked for this transaction."""
    return list(await conn.fetch(CLAIM_INBOX, limit))


async def delete_inbox(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    """Forget applied verdict changes (in the transaction that applied them)."""
    if ids:
        await conn.execute(DELETE_INBOX, list(ids))


async def open_or_find(conn: asyncpg.Connection, args: Sequence[Any]) -> tuple[asyncpg.Record, bool]:
    """Open an alert (OPEN_ALERT's arguments) or lock the one already open for its key; True if opened."""
    for _ in range(3):
        row = await conn.fetchrow(OPEN_ALERT, *args)
        if row is not None:
            return row, True
        row = await conn.fetchrow(SELECT_OPEN, args[0], args[1], args[2])
        if row is not None:
            return row, False
        # Cleared between the two statements by another transaction: open a new one.
    raise RuntimeError(f"could not open or find the alert for {args[:3]}")


async def find_open(conn: asyncpg.Connection, sid: int, pid: int | None, rule: str) -> asyncpg.Record | None:
    """The open alert of a key, locked, or None."""
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_OPEN, sid, pid, rule)
    return row


async def event(
    conn: asyncpg.Connection, alert_id: int, kind: str, detail: dict[str, Any], *, actor: str = "parkwatch"
) -> int:
    """Add a timeline entry; returns its id."""
    event_id: int = await conn.fetchval(ADD_EVENT, alert_id, kind, actor, json.dumps(detail, default=str))
    return event_id


async def enqueue(
    conn: asyncpg.Connection,
    alert: asyncpg.Record,
    event_id: int,
    park_id: str,
    *,
    escalation: bool = False,
    resolve: bool = False,
    reminder_every: Any = None,
) -> int:
    """Write the notices an event sends (in the caller's transaction); returns how many will be sent."""
    rows = await conn.fetch(
        ENQUEUE,
        alert["id"],
        event_id,
        park_id,
        alert["sid"],
        alert["pid"],
        alert["rule"],
        alert["family"],
        escalation,
        resolve,
        reminder_every,
        alert["severity"],
    )
    queued = sum(1 for r in rows if r["status"] == "queued")
    if queued and not resolve and not escalation:  # the reminder clock counts notices to the park's routes
        await conn.execute(MARK_NOTIFIED, alert["id"])
    return queued


async def clear_all(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], reason: str) -> int:
    """Clear each open alert of `rows` (id, park_id) for `reason`, with its event and notices; returns how many."""
    cleared = 0
    for row in rows:
        done = await conn.fetchrow(CLEAR, row["id"], reason)
        if done is None:
            continue
        event_id = await event(conn, row["id"], "cleared", {"reason": reason})
        await enqueue(conn, done, event_id, row["park_id"], resolve=True)
        cleared += 1
    return cleared
