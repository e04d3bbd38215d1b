"""Data-quality alarms about a station's equipment: values no meter reports, a drifting clock, two senders."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from alerts import store
from schemas.alerting import Family, Severity

logger = logging.getLogger(__name__)

RANGE_RULE = "data_quality.out_of_range"
CLOCK_RULE = "data_quality.clock_drift"
PATHS_RULE = "data_quality.two_paths"

# Values refused as out_of_range (schemas/ranges.py) are counted per station and parameter over
# this window: one refused value is already an instrument or a logger misconfigured (a range no
# meter has), so the alarm is raised on the first, and clears once an hour passes without one.
RANGE_WINDOW = timedelta(hours=1)

# A logger clock this far from ours is an alarm. Minute data are filed by their timestamp: at five
# minutes off, a twelfth of every hour's minutes are counted in the wrong hour, and at ten the
# ingest refuses data as from the future (schemas/readings.py MAX_FUTURE_SKEW).
CLOCK_DRIFT_LIMIT = timedelta(minutes=5)
# It clears under half the limit, so a clock hovering near the limit does not flap.
CLOCK_CLEAR_BELOW = CLOCK_DRIFT_LIMIT / 2

# Refusals of the last window per station and parameter, with no such alert open.
REFUSED = """
SELECT s.sid, p.pid, s.park_id, count(*) AS refused, min(d.received_at) AS since, max(d.received_at) AS last,
       (array_agg(e->>'message' ORDER BY d.received_at DESC))[1] AS example
FROM dead_letters d
CROSS JOIN LATERAL jsonb_array_elements(d.problems) AS e
JOIN stations s ON s.id = d.station_id
JOIN parameters p ON p.code = e->>'parameter'
WHERE d.received_at > clock_timestamp() - $1::interval AND e->>'reason' = 'out_of_range'
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = s.sid AND x.pid = p.pid AND x.rule = $2 AND x.status <> 'cleared')
GROUP BY s.sid, p.pid, s.park_id
"""
# Open range alarms with no refusal in the last window, whose station has sent data since.
RANGE_BACK = """
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid) JOIN parameters p USING (pid)
JOIN station_activity a USING (sid)
WHERE x.rule = $2 AND x.status <> 'cleared' AND a.last_received_at > x.last_seen
  AND NOT EXISTS (SELECT 1 FROM dead_letters d CROSS JOIN LATERAL jsonb_array_elements(d.problems) AS e
                  WHERE d.received_at > clock_timestamp() - $1::interval AND d.station_id = s.id
                    AND e->>'reason' = 'out_of_range' AND e->>'parameter' = p.code)
FOR UPDATE OF x
"""
# A clock behind shows as a lag that every hour's data keep (the hour now and the one before: a
# back-fill after an outage is late, not wrong, and live data follow it within the hour); a
# clock ahead, as data stamped after they were received, at once.
DRIFTING = """
SELECT a.sid, s.park_id, a.lag_min_s, a.lag_prev_s,
       CASE WHEN a.lag_min_s < 0 THEN a.lag_min_s ELSE least(a.lag_min_s, a.lag_prev_s) END AS drift_s
FROM station_activity a JOIN stations s USING (sid)
WHERE a.lag_hour >= date_trunc('hour', clock_timestamp()) - interval '1 hour'
  AND (a.lag_min_s < -$1::float8 OR (a.lag_min_s > $1 AND a.lag_prev_s > $1))
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = a.sid AND x.pid IS NULL AND x.rule = $2 AND x.status <> 'cleared')
"""
# Open clock alarms whose station's data of the hour now arrive on time again.
CLOCK_BACK = """
SELECT x.*, s.park_id, a.lag_min_s FROM alerts x JOIN stations s USING (sid) JOIN station_activity a USING (sid)
WHERE x.rule = $2 AND x.status <> 'cleared'
  AND a.lag_hour = date_trunc('hour', clock_timestamp()) AND abs(a.lag_min_s) < $1
  AND a.last_received_at > x.raised_at
FOR UPDATE OF x
"""


# Stations whose readings came both as JSON and through HJ 212 in one of the latest two hours of
# receipt: each reading is stored once (the first to arrive), but which one depends on timing,
# and a logger and a second sender (a gateway, a script) disagreeing is what an operator must
# sort out.
TWO_PATHS = """
SELECT e.sid, s.park_id, max(e.ts) AS hour, array_agg(DISTINCT e.subject ORDER BY e.subject) AS paths
FROM station_events e JOIN stations s USING (sid)
WHERE e.kind = 'path' AND e.ts >= date_trunc('hour', clock_timestamp()) - interval '1 hour'
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = e.sid AND x.pid IS NULL AND x.rule = $1 AND x.status <> 'cleared')
GROUP BY e.sid, s.park_id, e.ts
HAVING count(DISTINCT e.subject) > 1
"""
# Open two-path alarms whose station used one way only through the latest two hours.
ONE_PATH_AGAIN = """
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid)
WHERE x.rule = $1 AND x.status <> 'cleared' AND x.raised_at < date_trunc('hour', clock_timestamp()) - interval '1 hour'
  AND NOT EXISTS (SELECT 1 FROM station_events e
                  WHERE e.kind = 'path' AND e.sid = x.sid
                    AND e.ts >= date_trunc('hour', clock_timestamp()) - interval '1 hour'
                  GROUP BY e.ts HAVING count(DISTINCT e.subject) > 1)
FOR UPDATE OF x
"""


async def _open(
    conn: asyncpg.Connection,
    key: tuple[int, int | None, str],
    row: asyncpg.Record,
    value: float | None,
    detail: dict[str, object],
) -> bool:
    alert, opened = await store.open_or_find(
        conn,
        (
            *key,
            Family.DATA_QUALITY.value,
            "active",
            Severity.WARNING.value,
            detail["since"],
            detail["last"],
            False,
            value,
            None,
            None,
            None,
            None,
            None,
            json.dumps(detail, default=str),
            timedelta(0),
        ),
    )
    if opened:
        event_id = await store.event(conn, alert["id"], "raised", detail)
        await store.enqueue(conn, alert, event_id, row["park_id"])
    return opened


async def check_instruments(conn: asyncpg.Connection) -> tuple[int, int]:
    """Out-of-range values, drifting clocks and readings arriving two ways; returns (raised, cleared)."""
    raised = cleared = 0
    limit = CLOCK_DRIFT_LIMIT.total_seconds()
    async with conn.transaction():
        cleared += await store.clear_all(
            conn, await conn.fetch(RANGE_BACK, RANGE_WINDOW, RANGE_RULE), "values_in_range"
        )
        cleared += await store.clear_all(
            conn, await conn.fetch(CLOCK_BACK, CLOCK_CLEAR_BELOW.total_seconds(), CLOCK_RULE), "clock_on_time"
        )
        cleared += await store.clear_all(conn, await conn.fetch(ONE_PATH_AGAIN, PATHS_RULE), "one_path")
        for row in await conn.fetch(TWO_PATHS, PATHS_RULE):
            paths: dict[str, object] = {"paths": list(row["paths"]), "since": row["hour"], "last": row["hour"]}
            raised += await _open(conn, (row["sid"], None, PATHS_RULE), row, None, paths)
        for row in await conn.fetch(REFUSED, RANGE_WINDOW, RANGE_RULE):
            detail: dict[str, object] = {
                "refused": row["refused"],
                "example": row["example"],
                "since": row["since"],
                "last": row["last"],
            }
            raised += await _open(conn, (row["sid"], row["pid"], RANGE_RULE), row, None, detail)
        for row in await conn.fetch(DRIFTING, limit, CLOCK_RULE):
            drift = float(row["drift_s"])
            now = datetime.now(UTC)
            detail = {
                "drift_seconds": round(drift),
                "direction": "ahead" if drift < 0 else "behind",
                "limit_seconds": limit,
                "since": now,
                "last": now,
            }
            raised += await _open(conn, (row["sid"], None, CLOCK_RULE), row, drift, detail)
    if raised or cleared:
        logger.info("instrument checks: %d alarm(s) raised, %d cleared", raised, cleared)
    return raised, cleared
