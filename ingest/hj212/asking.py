"""What the platform asks data loggers: set a drifting clock (1012), send a gap's data again.

A cluster job (parkwatch/jobs.py) plans requests into `logger_requests`; the gateway holding the
logger's connection sends them and records the answers (ingest/hj212/gateway.py). The policy,
how long to wait, how often to ask, how far back, is the constants below
(docs/data-loggers.md#the-platform-asks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

logger = logging.getLogger(__name__)

# A clock further off than this (the least lag of the current hour, alerts/instruments.py's
# measure) is set. Setting a right clock changes nothing, so the bar is low; one ask an hour.
CLOCK_SET_AFTER_S = 60.0
CLOCK_ASK_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Policy:
    """How one interval's gaps are asked for."""

    cn: str
    iv: int
    step: timedelta  # one record's period (minute data: the station's MinInterval instead)
    lookback: timedelta  # how far back gaps are looked for
    grace: timedelta  # how long after its period a record may still arrive by itself


# Minute data: six hours back keeps a province's look cheap (10,000 loggers x 360 minutes);
# a record is late once 15 minutes have passed (loggers resend unanswered data within minutes).
# Hour and day data arrive once their period has ended.
POLICIES = (
    Policy("2051", 1, timedelta(minutes=1), timedelta(hours=6), timedelta(minutes=15)),
    Policy("2061", 2, timedelta(hours=1), timedelta(days=2), timedelta(hours=2)),
    Policy("2031", 3, timedelta(days=1), timedelta(days=7), timedelta(hours=26)),
)
# A span is asked for at most this often, and this many times in all; then it is left as a gap.
ASK_AGAIN_AFTER = timedelta(minutes=30)
MAX_ASKS = 3
# Spans asked per station and run: a logger answers one request at a time.
MAX_SPANS_PER_STATION = 3
# A request no gateway has sent (the logger is not connected) or answered by then has expired.
REQUEST_EXPIRES = timedelta(minutes=30)

EXPIRE = """
UPDATE logger_requests SET state = 'expired', finished_at = now(),
       result = CASE state WHEN 'pending' THEN 'no gateway holds a connection to the logger'
                           ELSE 'the logger did not finish answering' END
WHERE state IN ('pending', 'sent', 'acknowledged') AND created_at < now() - $1::interval
"""
# Stations whose clock is off now (the least lag of the current hour), not asked within the hour.
DRIFTING = """
SELECT a.sid, a.lag_min_s
FROM station_activity a JOIN stations s USING (sid)
WHERE s.mn IS NOT NULL AND a.lag_hour = date_trunc('hour', now()) AND abs(a.lag_min_s) > $1
  AND NOT EXISTS (SELECT 1 FROM logger_requests q
                  WHERE q.sid = a.sid AND q.kind = 'set_clock' AND q.created_at > now() - $2::interval)
"""
INSERT_CLOCK = """
INSERT INTO logger_requests (sid, kind, cn, reason) VALUES ($1, 'set_clock', '1012', $2)
"""
# Gaps: runs of records missing since the station's first record in the look-back window, up to
# the grace period; a station never sending this interval is never asked for it.
GAPS = """
WITH station AS (
    SELECT s.sid, CASE WHEN $1 = 1 THEN make_interval(mins => coalesce((s.attrs->>'min_interval')::int, 1))
                       ELSE $2::interval END AS step,
           array_agg(sp.pid) AS pids
    FROM stations s JOIN station_parameters sp USING (sid)
    WHERE s.mn IS NOT NULL
    GROUP BY s.sid
), present AS (
    SELECT st.sid, st.step, r.ts
    FROM station st JOIN readings r ON r.sid = st.sid AND r.pid = any(st.pids)
    WHERE r.iv = $1 AND r.ts >= now() - $3::interval AND r.ts < now() - $4::interval
    GROUP BY st.sid, st.step, r.ts
), expected AS (
    SELECT p.sid, p.step, g.ts
    FROM (SELECT sid, step, min(ts) AS first, max(ts) AS last FROM present GROUP BY sid, step) p
    CROSS JOIN LATERAL generate_series(p.first, now() - $4::interval, p.step) AS g(ts)
), missing AS (
    SELECT e.sid, e.step, e.ts FROM expected e
    WHERE NOT EXISTS (SELECT 1 FROM present p WHERE p.sid = e.sid AND p.ts = e.ts)
), runs AS (
    SELECT sid, step, ts, ts - step * row_number() OVER (PARTITION BY sid ORDER BY ts) AS run FROM missing
)
SELECT sid, min(ts) AS begin_ts, max(ts) AS end_ts, count(*)::int AS missing
FROM runs GROUP BY sid, run
ORDER BY sid, begin_ts
"""
# Requests for the same station and command overlapping a span: open ones, recent ones, all.
ASKED = """
SELECT count(*) FILTER (WHERE state IN ('pending', 'sent', 'acknowledged') OR created_at > now() - $5::interval)
         AS recent,
       count(*) AS total
FROM logger_requests
WHERE sid = $1 AND cn = $2 AND kind = 'history' AND begin_ts <= $4 AND end_ts >= $3
"""
INSERT_HISTORY = """
INSERT INTO logger_requests (sid, kind, cn, begin_ts, end_ts, missing, reason)
VALUES ($1, 'history', $2, $3, $4, $5, $6)
"""
# Completed history requests: filled when none of their span is missing any more.
COMPLETED = """
SELECT q.id, q.missing,
       (SELECT count(DISTINCT r.ts) FROM readings r
        WHERE r.sid = q.sid AND r.iv = $1 AND r.ts BETWEEN q.begin_ts AND q.end_ts
          AND r.pid IN (SELECT pid FROM station_parameters sp WHERE sp.sid = q.sid))::int AS present
FROM logger_requests q
WHERE q.state = 'completed' AND q.kind = 'history' AND q.cn = $2
"""
FINISH = "UPDATE logger_requests SET state = $2, result = $3, finished_at = now() WHERE id = $1"
FINISH_CLOCK = """
UPDATE logger_requests SET state = 'filled', result = 'the logger set its clock', finished_at = now()
WHERE state = 'completed' AND kind = 'set_clock'
"""


@dataclass
class Plan:
    """What one planning run did."""

    clocks: int = 0
    spans: int = 0
    expired: int = 0
    filled: int = 0
    unfilled: int = 0


async def plan_requests(conn: asyncpg.Connection) -> Plan:
    """Expire stale requests, judge finished ones, and ask for what is missing now."""
    plan = Plan()
    plan.expired = int((await conn.execute(EXPIRE, REQUEST_EXPIRES)).split()[-1])
    await conn.execute(FINISH_CLOCK)
    for policy in POLICIES:
        for q in await conn.fetch(COMPLETED, policy.iv, policy.cn):
            # the span was a run of missing records when asked: filled once each is stored
            if q["present"] >= q["missing"]:
                await conn.execute(FINISH, q["id"], "filled", f"all {q['missing']} record(s) of the span are stored")
                plan.filled += 1
            else:
                result = f"{q['present']} of the span's {q['missing']} record(s) are stored"
                await conn.execute(FINISH, q["id"], "unfilled", result)
                plan.unfilled += 1
    for row in await conn.fetch(DRIFTING, CLOCK_SET_AFTER_S, CLOCK_ASK_EVERY):
        lag = row["lag_min_s"]
        side = "behind" if lag > 0 else "ahead"
        await conn.execute(INSERT_CLOCK, row["sid"], f"the logger's clock is about {abs(lag):.0f} s {side}")
        plan.clocks += 1
    for policy in POLICIES:
        per_station: dict[int, int] = {}
        for gap in await conn.fetch(GAPS, policy.iv, policy.step, policy.lookback, policy.grace):
            sid = gap["sid"]
            if per_station.get(sid, 0) >= MAX_SPANS_PER_STATION:
                continue
            asked = await conn.fetchrow(ASKED, sid, policy.cn, gap["begin_ts"], gap["end_ts"], ASK_AGAIN_AFTER)
            if asked is None or asked["recent"] or asked["total"] >= MAX_ASKS:
                continue
            reason = f"{gap['missing']} record(s) missing"
            await conn.execute(INSERT_HISTORY, sid, policy.cn, gap["begin_ts"], gap["end_ts"], gap["missing"], reason)
            per_station[sid] = per_station.get(sid, 0) + 1
            plan.spans += 1
    if plan.clocks or plan.spans or plan.expired:
        logger.info(
            "logger requests: %d clocks to set, %d gaps to ask for, %d expired, %d filled, %d unfilled",
            plan.clocks, plan.spans, plan.expired, plan.filled, plan.unfilled,
        )  # fmt: skip
    return plan
