"""Suspicious data (弄虚作假 concerns): patterns worth a look, each with its explanation; advisory, never a verdict.

Three patterns, from the hourly rollups and verdicts (docs/alerts.md):
- `suspicious.pinned_below_limit`: a series whose judged values sat just under the limit (the
  top tenth of it) for most of the last days, never over it;
- `suspicious.flag_near_limit`: an hour judged close to the limit followed by an hour mostly
  flagged invalid (calibration, maintenance, fault): the flag started as the value approached;
- `suspicious.drop_with_flow_stop`: a wastewater outlet whose concentration fell by half in the
  hour its flow stopped.
A pattern alert clears by itself when the pattern no longer holds (pinned values) or a day after
it was seen (the others); a person may verify or resolve it at any time.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import asyncpg

from alerts import store
from schemas.alerting import Family, Severity

logger = logging.getLogger(__name__)

PINNED_RULE = "suspicious.pinned_below_limit"
FLAG_RULE = "suspicious.flag_near_limit"
DROP_RULE = "suspicious.drop_with_flow_stop"
# "Just under": judged values in the top tenth below the limit.
NEAR_SHARE = 0.9
# Pinned: over the last 3 days, at least 48 judged compliant hours, and at least 80 % of them near.
PINNED_SPAN_HOURS = 72
PINNED_MIN_HOURS = 48
PINNED_SHARE = 0.8
# An hour is "mostly flagged" when more than half of its observed minutes carry an invalid flag.
FLAGGED_SHARE = 0.5
# A flow "stops" below 5 % of the three hours before; a concentration "falls" below half of theirs.
FLOW_STOP_SHARE = 0.05
DROP_SHARE = 0.5
# Point patterns (a flag, a drop) stay open this long, then clear by themselves.
POINT_PATTERN_LIFE = timedelta(days=1)
LOOKBACK = timedelta(hours=24)

_LIMIT = "(v.limit_value #>> '{}')::float8"
PINNED = f"""
SELECT v.sid, v.pid, s.park_id, count(*) AS hours,
       count(*) FILTER (WHERE v.value_judged >= $2::float8 * {_LIMIT}) AS near,
       min(v.window_start) AS since, max(v.window_end) AS until, max({_LIMIT}) AS limit_value
FROM verdicts v JOIN stations s USING (sid)
WHERE v.window_kind = 'hour' AND v.closed AND v.verdict = 'compliant' AND jsonb_typeof(v.limit_value) = 'number'
  AND v.window_start >= clock_timestamp() - make_interval(hours => $1)
GROUP BY v.sid, v.pid, s.park_id
HAVING count(*) >= $3 AND count(*) FILTER (WHERE v.value_judged >= $2::float8 * {_LIMIT}) >= $4::float8 * count(*)
   AND NOT EXISTS (SELECT 1 FROM verdicts e WHERE e.sid = v.sid AND e.pid = v.pid AND e.window_kind = 'hour'
                   AND e.verdict = 'exceedance' AND e.window_start >= clock_timestamp() - make_interval(hours => $1))
"""
# Open pinned alerts whose series no longer sits just under its limit.
PINNED_ENDED = f"""
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid)
WHERE x.rule = $5 AND x.status <> 'cleared'
  AND NOT EXISTS (
      SELECT 1 FROM verdicts v
      WHERE v.sid = x.sid AND v.pid = x.pid AND v.window_kind = 'hour' AND v.closed AND v.verdict = 'compliant'
        AND jsonb_typeof(v.limit_value) = 'number'
        AND v.window_start >= clock_timestamp() - make_interval(hours => $1)
      GROUP BY v.sid, v.pid
      HAVING count(*) >= $3
         AND count(*) FILTER (WHERE v.value_judged >= $2::float8 * {_LIMIT}) >= $4::float8 * count(*))
FOR UPDATE OF x
"""
FLAG_NEAR = f"""
SELECT v.sid, v.pid, s.park_id, v.window_start AS since, v.window_end + interval '1 hour' AS until,
       v.value_judged AS value, {_LIMIT} AS limit_value,
       r.observed_minutes, r.observed_minutes - r.measured_minutes AS flagged_minutes
FROM verdicts v
JOIN stations s USING (sid)
JOIN rollup_hour r ON r.sid = v.sid AND r.pid = v.pid AND r.hour = v.window_end
WHERE v.window_kind = 'hour' AND v.closed AND v.verdict = 'compliant' AND jsonb_typeof(v.limit_value) = 'number'
  AND v.window_start >= clock_timestamp() - $1::interval
  AND v.value_judged >= $2::float8 * {_LIMIT}
  AND r.observed_minutes > 0 AND r.observed_minutes - r.measured_minutes > $3::float8 * r.observed_minutes
"""
# Hourly rollups of outlets: flow (w00000) and the main concentrations, the hour against the three before.
DROP = """
WITH h AS (
    SELECT r.sid, r.pid, p.code, r.hour, r.avg,
           avg(r.avg) OVER (PARTITION BY r.sid, r.pid ORDER BY r.hour
                            RANGE BETWEEN interval '3 hours' PRECEDING AND interval '1 hour' PRECEDING) AS before,
           count(*) OVER (PARTITION BY r.sid, r.pid ORDER BY r.hour
                          RANGE BETWEEN interval '3 hours' PRECEDING AND interval '1 hour' PRECEDING) AS n_before
    FROM rollup_hour r JOIN parameters p USING (pid) JOIN stations s USING (sid)
    WHERE s.kind = 'wastewater_outlet' AND p.code IN ('w00000', 'w01018', 'w21003', 'w21011', 'w21001')
      AND r.hour >= clock_timestamp() - $1::interval - interval '3 hours' AND r.avg IS NOT NULL
)
SELECT c.sid, c.pid, s.park_id, c.hour AS since, c.hour + interval '1 hour' AS until, c.avg AS value,
       c.before AS value_before, f.avg AS flow, f.before AS flow_before
FROM h c
JOIN h f ON f.sid = c.sid AND f.hour = c.hour AND f.code = 'w00000'
JOIN stations s ON s.sid = c.sid
WHERE c.code <> 'w00000' AND c.hour >= clock_timestamp() - $1::interval
  AND c.hour < date_trunc('hour', clock_timestamp())
  AND f.n_before = 3 AND c.n_before = 3 AND f.before > 0 AND c.before > 0
  AND f.avg < $2::float8 * f.before AND c.avg < $3::float8 * c.before
"""
EXPIRED = """
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid)
WHERE x.rule = any($1::text[]) AND x.status <> 'cleared' AND x.last_seen < clock_timestamp() - $2::interval
FOR UPDATE OF x
"""


async def _raise(conn: asyncpg.Connection, row: asyncpg.Record, rule: str, detail: dict[str, object]) -> bool:
    alert, opened = await store.open_or_find(
        conn,
        (
            row["sid"],
            row["pid"],
            rule,
            Family.SUSPICIOUS.value,
            "active",
            Severity.ADVISORY.value,
            row["since"],
            row["until"],
            False,
            detail.get("value"),
            row.get("limit_value"),
            None,
            None,
            None,
            None,
            json.dumps(detail, default=str, ensure_ascii=False),
            timedelta(0),
        ),
    )
    if opened:
        event_id = await store.event(conn, alert["id"], "raised", detail)
        await store.enqueue(conn, alert, event_id, row["park_id"])
    elif row["until"] > alert["last_seen"]:
        await conn.execute(store.TOUCH, alert["id"], row["until"])
    return opened


async def check_suspicious(conn: asyncpg.Connection) -> tuple[int, int]:
    """Look for each pattern over the latest hours; returns (raised, cleared)."""
    raised = cleared = 0
    async with conn.transaction():
        pinned_args = (PINNED_SPAN_HOURS, NEAR_SHARE, PINNED_MIN_HOURS, PINNED_SHARE)
        cleared += await store.clear_all(
            conn, await conn.fetch(PINNED_ENDED, *pinned_args, PINNED_RULE), "pattern_ended"
        )
        cleared += await store.clear_all(
            conn, await conn.fetch(EXPIRED, [FLAG_RULE, DROP_RULE], POINT_PATTERN_LIFE), "pattern_ended"
        )
        for row in await conn.fetch(PINNED, *pinned_args):
            detail = {
                "explanation": f"{row['near']} of {row['hours']} judged hours in the last {PINNED_SPAN_HOURS} h "
                f"were within {100 - NEAR_SHARE * 100:.0f} % under the limit, and none over it",
                "near_hours": row["near"],
                "hours": row["hours"],
            }
            raised += await _raise(conn, row, PINNED_RULE, detail)
        for row in await conn.fetch(FLAG_NEAR, LOOKBACK, NEAR_SHARE, FLAGGED_SHARE):
            detail = {
                "explanation": f"the hour was judged at {row['value']:.4g}, {row['value'] / row['limit_value']:.0%} of "
                f"the limit, and the next hour had {row['flagged_minutes']} of {row['observed_minutes']} minutes "
                "flagged invalid (calibration, maintenance or fault)",
                "value": row["value"],
                "flagged_minutes": row["flagged_minutes"],
            }
            raised += await _raise(conn, row, FLAG_RULE, detail)
        for row in await conn.fetch(DROP, LOOKBACK, FLOW_STOP_SHARE, DROP_SHARE):
            detail = {
                "explanation": f"in the hour the flow fell from {row['flow_before']:.4g} to {row['flow']:.4g}, the "
                f"concentration fell from {row['value_before']:.4g} to {row['value']:.4g}",
                "value": row["value"],
                "value_before": row["value_before"],
                "flow": row["flow"],
                "flow_before": row["flow_before"],
            }
            raised += await _raise(conn, row, DROP_RULE, detail)
    if raised or cleared:
        logger.info("suspicious patterns: %d raised, %d cleared", raised, cleared)
    return raised, cleared
