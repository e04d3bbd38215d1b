"""Dead letters after the fact: list them, and replay them once the cause is fixed."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ingest.batch import Batch
from ingest.hj212.parts import FirstParts
from ingest.messages import decode_message
from ingest.registry import ensure_parameters, fetch_registry
from ingest.routing import parse_hj212_topic
from ingest.store import Store

logger = logging.getLogger(__name__)

SELECT_DEAD_LETTERS = """
SELECT id, received_at, topic, reason, message, problems, station_id, attempts,
       last_attempt_at, resolved_at, resolution, octet_length(payload) AS size
FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::boolean OR resolved_at IS NULL)
  AND ($3::text IS NULL OR station_id = $3)
  AND id > $4
ORDER BY id
LIMIT $5
"""
SELECT_FOR_REPLAY = """
SELECT id, received_at, topic, payload
FROM dead_letters
WHERE resolved_at IS NULL
  AND ($1::bigint[] IS NULL OR id = any($1))
  AND ($2::text IS NULL OR reason = $2)
  AND id > $3
ORDER BY id
LIMIT $4
"""
MARK_RESOLVED = """
UPDATE dead_letters SET resolved_at = now(), resolution = $2, attempts = attempts + 1,
       last_attempt_at = now()
WHERE id = $1
"""
MARK_STILL_REFUSED = """
UPDATE dead_letters SET attempts = attempts + 1, last_attempt_at = now(),
       reason = $2, message = $3, problems = $4::jsonb
WHERE id = $1
"""
# Replay works through the selection in pages, so a million dead letters never sit in memory.
REPLAY_PAGE = 500
# The logged packets a replay reads split packets' first parts from: those of the page's loggers
# received this close to the page's own (the parts of one packet follow each other within seconds).
SELECT_FIRST_PARTS = """
SELECT mn, cn, qn, data_time
FROM hj212_packets
WHERE mn = any($1::text[]) AND received_at >= $2 AND received_at < $3
  AND qn IS NOT NULL AND data_time IS NOT NULL
"""
FIRST_PART_WINDOW = timedelta(days=1)


def dead_letter_json(row: asyncpg.Record) -> dict[str, Any]:
    """One dead letter as the CLI and the API print it."""
    problems = row["problems"]
    return {
        "id": row["id"],
        "reason": row["reason"],
        "message": row["message"],
        "topic": row["topic"],
        "station_id": row["station_id"],
        "received_at": _iso(row["received_at"]),
        "size": row["size"],
        "attempts": row["attempts"],
        "last_attempt_at": _iso(row["last_attempt_at"]),
        "resolved_at": _iso(row["resolved_at"]),
        "resolution": row["resolution"],
        "problems": json.loads(problems) if isinstance(problems, str) else problems,
    }


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts is not None else None


async def list_dead_letters(
    conn: asyncpg.Connection,
    *,
    reason: str | None = None,
    include_resolved: bool = False,
    station_id: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Dead letters in id order (open ones only unless include_resolved)."""
    rows = await conn.fetch(SELECT_DEAD_LETTERS, reason, include_resolved, station_id, after_id, limit)
    return [dead_letter_json(r) for r in rows]


@dataclass
class ReplayReport:
    """What a replay did."""

    examined: int = 0
    resolved: int = 0
    still_refused: int = 0
    readings_new: int = 0
    readings_duplicate: int = 0
    refused_reasons: dict[str, int] = field(default_factory=dict)


async def replay_dead_letters(
    conn: asyncpg.Connection,
    store: Store,
    *,
    prefix: str,
    ids: list[int] | None = None,
    reason: str | None = None,
    limit: int | None = None,
    clock_shift: timedelta = timedelta(0),
) -> ReplayReport:
    """Run open dead letters through validation again with today's registry; store what passes.

    Each is judged as of its receipt, plus `clock_shift` when the receiving host's clock was
    wrong then (docs/faults.md#clock-jumps).

    Writes use the idempotent path, so replaying a payload whose good readings were already
    stored adds nothing, and replaying twice is harmless. A dead letter is resolved when all of
    its payload is accepted; otherwise it stays open with its current problems.
    """
    registry = await fetch_registry(conn)
    report = ReplayReport()
    last_id = 0
    while limit is None or report.examined < limit:
        page = REPLAY_PAGE if limit is None else min(REPLAY_PAGE, limit - report.examined)
        batch = await conn.fetch(SELECT_FOR_REPLAY, ids, reason, last_id, page)
        if not batch:
            break
        first_parts = await _first_parts(conn, batch, prefix)
        for row in batch:
            last_id = row["id"]
            report.examined += 1
            decoded = decode_message(
                row["topic"],
                bytes(row["payload"]),
                prefix=prefix,
                registry=registry,
                received_at=row["received_at"] + clock_shift,  # as of its receipt, e.g. for clock skew
                first_parts=first_parts,
            )
            if decoded.unresolved:
                pids = await ensure_parameters(conn, sorted({code for code, _ in decoded.unresolved}))
                registry.pids.update(pids)
                decoded.rows += [(*r[:1], pids[c], *r[2:]) for c, r in decoded.unresolved]
            if decoded.rows or decoded.packets or decoded.events:
                result = await store.write(
                    Batch(rows=decoded.rows, packets=decoded.packets, events=decoded.events), idempotent=True
                )
                report.readings_new += result.new
                report.readings_duplicate += result.duplicates
            if decoded.problems:
                first = decoded.problems[0]
                await conn.execute(
                    MARK_STILL_REFUSED,
                    row["id"],
                    first.reason.value,
                    first.message,
                    json.dumps([p.as_json() for p in decoded.problems], ensure_ascii=False),
                )
                report.still_refused += 1
                report.refused_reasons[first.reason.value] = report.refused_reasons.get(first.reason.value, 0) + 1
            else:
                await conn.execute(MARK_RESOLVED, row["id"], "replayed")
                report.resolved += 1
    return report


async def _first_parts(conn: asyncpg.Connection, page: list[asyncpg.Record], prefix: str) -> FirstParts:
    """The data times a page's split-packet parts may need, from the packet log (ingest/hj212/parts.py)."""
    parts = FirstParts(limit=10**9)  # one page's loggers over two days: bounded by the query
    mns = sorted({mn for r in page if (mn := parse_hj212_topic(r["topic"], prefix)) is not None})
    if not mns:
        return parts
    lo = min(r["received_at"] for r in page) - FIRST_PART_WINDOW
    hi = max(r["received_at"] for r in page) + FIRST_PART_WINDOW
    for r in await conn.fetch(SELECT_FIRST_PARTS, mns, lo, hi):
        parts.remember((r["mn"], r["cn"] or "", r["qn"]), r["data_time"])
    return parts
