"""Reading alerts back: a filtered page, and one alert with its timeline and notices (the API and the CLI)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

SELECT_ALERTS = """
SELECT x.*, s.id AS station_id, coalesce(s.park_id, x.park) AS park_id, p.code AS parameter, p.name AS parameter_name,
       p.name_zh AS parameter_name_zh
FROM alerts x LEFT JOIN stations s ON s.sid = x.sid LEFT JOIN parameters p ON p.pid = x.pid
WHERE ($1::text[] IS NULL OR x.status = any($1::text[]))
  AND ($2::text[] IS NULL OR x.severity = any($2::text[]))
  AND ($3::text IS NULL OR coalesce(s.park_id, x.park) = $3)
  AND ($4::text[] IS NULL OR s.id = any($4::text[]))
  AND ($5::text[] IS NULL OR p.code = any($5::text[]))
  AND ($6::text[] IS NULL OR x.rule = any($6::text[]) OR x.family = any($6::text[]))
  AND ($7::timestamptz IS NULL OR x.last_seen >= $7)
  AND ($8::timestamptz IS NULL OR x.first_seen < $8)
  AND (x.raised_at, x.id) < ($9, $10)
ORDER BY x.raised_at DESC, x.id DESC
LIMIT $11
"""
SELECT_ALERT = """
SELECT x.*, s.id AS station_id, coalesce(s.park_id, x.park) AS park_id, p.code AS parameter, p.name AS parameter_name,
       p.name_zh AS parameter_name_zh
FROM alerts x LEFT JOIN stations s ON s.sid = x.sid LEFT JOIN parameters p ON p.pid = x.pid
WHERE x.id = $1
"""
SELECT_TIMELINE = "SELECT id, at, kind, actor, detail FROM alert_events WHERE alert_id = $1 ORDER BY id"
SELECT_NOTICES = """
SELECT id, event_id, channel_id, status, attempts, created_at, sent_at, next_attempt_at, last_error
FROM notifications WHERE alert_id = $1 ORDER BY id
"""


# A position after every alert: the first page.
NEWEST = (datetime(9999, 1, 1, tzinfo=UTC), 2**62)


def decode(value: Any) -> Any:
    """Jsonb as asyncpg hands it over (text) → Python."""
    return json.loads(value) if isinstance(value, str) else value


def as_dict(r: asyncpg.Record) -> dict[str, Any]:
    """An alert row as the API and the CLI show it."""
    return {
        "id": r["id"],
        "station_id": r["station_id"],
        "park_id": r["park_id"],
        "parameter": r["parameter"],
        "parameter_name": r["parameter_name"],
        "parameter_name_zh": r["parameter_name_zh"],
        "rule": r["rule"],
        "family": r["family"],
        "status": r["status"],
        "severity": r["severity"],
        "first_seen": r["first_seen"],
        "last_seen": r["last_seen"],
        "raised_at": r["raised_at"],
        "activated_at": r["activated_at"],
        "cleared_at": r["cleared_at"],
        "clear_reason": r["clear_reason"],
        "occurrences": r["occurrences"],
        "late": r["late"],
        "value": r["value"],
        "limit": r["limit_value"],
        "unit": r["unit"],
        "standard": r["standard"],
        "clause": decode(r["clause"]),
        "exceedance_multiple": r["exceedance_multiple"],
        "details": decode(r["details"]) or {},
        "acknowledged": (
            {"at": r["acked_at"], "by": r["acked_by"], "comment": r["ack_comment"]} if r["acked_at"] else None
        ),
        "verified": (
            {
                "at": r["verified_at"],
                "by": r["verified_by"],
                "verification": r["verification"],
                "comment": r["verify_comment"],
            }
            if r["verified_at"]
            else None
        ),
        "escalated_at": r["escalated_at"],
        "notified_at": r["notified_at"],
        "supervision": (
            {
                "due_at": r["explanation_due_at"],
                "overdue_at": r["overdue_at"],
                "text": r["explanation"],
                "explained_at": r["explained_at"],
                "explained_by": r["explained_by"],
                "review": r["review"],
                "reviewed_at": r["reviewed_at"],
                "reviewed_by": r["reviewed_by"],
                "review_comment": r["review_comment"],
            }
            if r["explanation_due_at"] or r["explanation"]
            else None
        ),
    }


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    status: Sequence[str] | None = None,
    severity: Sequence[str] | None = None,
    park_id: str | None = None,
    stations: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    rules: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts matching the filters, newest raised first, after the (raised_at, id) position `before`."""
    position = before or NEWEST
    rows = await conn.fetch(
        SELECT_ALERTS,
        list(status) if status else None,
        list(severity) if severity else None,
        park_id,
        list(stations) if stations else None,
        list(codes) if codes else None,
        list(rules) if rules else None,
        start,
        end,
        *position,
        limit,
    )
    return [as_dict(r) for r in rows]


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any] | None:
    """One alert with its timeline and notices, or None."""
    row = await conn.fetchrow(SELECT_ALERT, alert_id)
    if row is None:
        return None
    timeline = [
        {"id": e["id"], "at": e["at"], "kind": e["kind"], "actor": e["actor"], "detail": decode(e["detail"])}
        for e in await conn.fetch(SELECT_TIMELINE, alert_id)
    ]
    notices = [dict(n) for n in await conn.fetch(SELECT_NOTICES, alert_id)]
    return {**as_dict(row), "timeline": timeline, "notifications": notices}
