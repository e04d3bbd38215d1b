"""What time does to open alerts: pending ones activate, unanswered ones escalate and repeat, explanations fall due."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from alerts import rules, store
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# Pending exceedances that have held long enough (their window is still open).
DUE_PENDING = """
SELECT x.*, coalesce(s.park_id, x.park) AS park_id FROM alerts x LEFT JOIN stations s ON s.sid = x.sid
WHERE x.status = 'pending' AND x.raised_at < clock_timestamp() - $1::interval
FOR UPDATE OF x SKIP LOCKED
"""
# Active alerts nobody acknowledged in time and not escalated yet.
DUE_ESCALATION = """
SELECT x.*, coalesce(s.park_id, x.park) AS park_id FROM alerts x LEFT JOIN stations s ON s.sid = x.sid
WHERE x.status = 'active' AND x.acked_at IS NULL AND x.escalated_at IS NULL
  AND x.activated_at < clock_timestamp() - $1::interval
FOR UPDATE OF x SKIP LOCKED
"""
MARK_ESCALATED = "UPDATE alerts SET escalated_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1"
# Active, unacknowledged alerts whose latest notice is older than the shortest reminder
# interval of a route that would take them.
DUE_REMINDER = """
SELECT x.*, coalesce(s.park_id, x.park) AS park_id,
       clock_timestamp() - coalesce(x.notified_at, x.activated_at) AS quiet
FROM alerts x LEFT JOIN stations s ON s.sid = x.sid
WHERE x.status = 'active' AND x.acked_at IS NULL
  AND EXISTS (
      SELECT 1 FROM alert_routes r
      WHERE r.repeat_every IS NOT NULL AND NOT r.escalation
        AND (r.park_id IS NULL OR r.park_id = coalesce(s.park_id, x.park))
        AND x.family = any(r.families)
        AND clock_timestamp() - coalesce(x.notified_at, x.activated_at) >= r.repeat_every)
FOR UPDATE OF x SKIP LOCKED
"""
# Explanations (情况说明) not given by their deadline.
DUE_EXPLANATION = """
SELECT x.*, coalesce(s.park_id, x.park) AS park_id FROM alerts x LEFT JOIN stations s ON s.sid = x.sid
WHERE x.explanation_due_at < clock_timestamp() AND x.explanation IS NULL AND x.overdue_at IS NULL
FOR UPDATE OF x SKIP LOCKED
"""
MARK_OVERDUE = "UPDATE alerts SET overdue_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1"


async def follow_up(conn: asyncpg.Connection, settings: Settings) -> dict[str, int]:
    """One pass over open alerts; returns how many of each change it made."""
    done = {"activated": 0, "escalated": 0, "reminded": 0, "overdue": 0}
    async with conn.transaction():
        for row in await conn.fetch(DUE_PENDING, rules.EXCEEDANCE_PENDING):
            alert = await conn.fetchrow(store.ACTIVATE, row["id"], timedelta(hours=settings.ALERT_EXPLANATION_HOURS))
            if alert is None:
                continue
            event_id = await store.event(conn, row["id"], "activated", {"after_pending": True})
            await store.enqueue(conn, alert, event_id, row["park_id"])
            done["activated"] += 1
        for row in await conn.fetch(DUE_ESCALATION, timedelta(minutes=settings.ALERT_ESCALATE_AFTER)):
            await conn.execute(MARK_ESCALATED, row["id"])
            event_id = await store.event(
                conn, row["id"], "escalated", {"unacknowledged_minutes": settings.ALERT_ESCALATE_AFTER}
            )
            await store.enqueue(conn, row, event_id, row["park_id"], escalation=True)
            done["escalated"] += 1
        for row in await conn.fetch(DUE_REMINDER):
            event_id = await store.event(conn, row["id"], "reminder", {"quiet_seconds": row["quiet"].total_seconds()})
            await store.enqueue(conn, row, event_id, row["park_id"], reminder_every=row["quiet"])
            done["reminded"] += 1
        for row in await conn.fetch(DUE_EXPLANATION):
            await conn.execute(MARK_OVERDUE, row["id"])
            event_id = await store.event(
                conn, row["id"], "explanation_overdue", {"due_at": row["explanation_due_at"].isoformat()}
            )
            await store.enqueue(conn, row, event_id, row["park_id"], escalation=True)
            done["overdue"] += 1
    if any(done.values()):
        logger.info("alert follow-up: %s", ", ".join(f"{k} {v}" for k, v in done.items() if v))
    return done
