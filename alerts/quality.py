"""Data-quality alarms: stations silent, parameters missing, values stuck, instruments flagged out; cleared by data."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import asyncpg

from alerts import rules, store
from parkwatch.settings import Settings
from schemas.alerting import Family, Severity

logger = logging.getLogger(__name__)

# An ingest heartbeat older than this means no ingest is receiving (ingest/service.py beats
# every 30 s): a station's silence then says nothing about the station.
HEARTBEAT_FRESH = timedelta(minutes=2)

# Silence is the station's only while an ingest is receiving and no spool holds batches still
# to be written (whose readings may be the very ones missing).
PIPELINE_RECEIVING = """
SELECT EXISTS (SELECT 1 FROM ingest_heartbeats WHERE seen_at > clock_timestamp() - $1::interval AND broker_connected)
   AND NOT EXISTS (SELECT 1 FROM ingest_heartbeats WHERE seen_at > clock_timestamp() - $1::interval
                   AND spool_pending > 0)
"""
# Stations silent for longer than their threshold (the registry's offline_after, in minutes, or
# the default), with no offline alert open.
SILENT = """
SELECT t.* FROM (
    SELECT a.sid, a.last_received_at, s.park_id,
           coalesce((s.attrs->>'offline_after')::float8, $1) AS after_minutes
    FROM station_activity a JOIN stations s USING (sid)
) t
WHERE t.last_received_at < clock_timestamp() - make_interval(secs => t.after_minutes * 60)
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = t.sid AND x.pid IS NULL AND x.rule = $2 AND x.status <> 'cleared')
"""
# Offline alerts whose station has sent data since.
BACK = """
SELECT x.*, a.last_received_at, s.park_id FROM alerts x
JOIN station_activity a USING (sid) JOIN stations s USING (sid)
WHERE x.rule = $1 AND x.status <> 'cleared' AND a.last_received_at > x.first_seen
FOR UPDATE OF x
"""


async def check_offline(conn: asyncpg.Connection, settings: Settings) -> tuple[int, int]:
    """Raise offline alarms for silent stations, clear those whose data returned; returns (raised, cleared)."""
    raised = cleared = 0
    async with conn.transaction():
        for row in await conn.fetch(BACK, rules.OFFLINE_RULE):
            done = await conn.fetchrow(store.CLEAR, row["id"], "data_returned")
            if done is None:
                continue
            event_id = await store.event(
                conn, row["id"], "cleared", {"reason": "data_returned", "data_at": row["last_received_at"].isoformat()}
            )
            await store.enqueue(conn, done, event_id, row["park_id"], resolve=True)
            cleared += 1
        if not await conn.fetchval(PIPELINE_RECEIVING, HEARTBEAT_FRESH):
            return raised, cleared
        for row in await conn.fetch(SILENT, settings.ALERT_OFFLINE_AFTER, rules.OFFLINE_RULE):
            alert, opened = await store.open_or_find(
                conn,
                (
                    row["sid"],
                    None,
                    rules.OFFLINE_RULE,
                    Family.DATA_QUALITY.value,
                    "active",
                    Severity.MAJOR.value,
                    row["last_received_at"],
                    row["last_received_at"],
                    False,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    f'{{"offline_after_minutes": {float(row["after_minutes"])}}}',
                    timedelta(0),
                ),
            )
            if not opened:
                continue
            event_id = await store.event(
                conn,
                alert["id"],
                "raised",
                {"last_data_at": row["last_received_at"].isoformat(), "offline_after_minutes": row["after_minutes"]},
            )
            await store.enqueue(conn, alert, event_id, row["park_id"])
            raised += 1
    if raised or cleared:
        logger.info("offline stations: %d alarm(s) raised, %d cleared", raised, cleared)
    return raised, cleared


MISSING_RULE = "data_quality.missing_parameter"
FLATLINE_RULE = "data_quality.flatline"
# A parameter is missing when the station sent other data in each of the latest closed hours
# and none of it (online analysers of COD or TP report every hour or two: one empty hour is
# normal); a value is flat when it did not move at all through those hours.
RECENT_HOURS = 3
# A flat hour counts only with this many valid values: a station's single hourly value, equal
# three hours running, is not a stuck instrument.
FLAT_MIN_VALUES = 10

_HOURS = """
hours AS (
    SELECT generate_series(date_trunc('hour', clock_timestamp()) - make_interval(hours => $1),
                           date_trunc('hour', clock_timestamp()) - interval '1 hour',
                           interval '1 hour') AS hour
)"""
# Declared parameters absent from every one of the latest hours of a station that reported in
# each of them, with no such alert open.
MISSING = f"""
WITH {_HOURS}, reporting AS (
    SELECT r.sid FROM rollup_hour r JOIN hours h ON r.hour = h.hour GROUP BY r.sid HAVING count(DISTINCT r.hour) = $1
)
SELECT sp.sid, sp.pid, s.park_id, (SELECT min(hour) FROM hours) AS since
FROM station_parameters sp JOIN reporting USING (sid) JOIN stations s USING (sid)
WHERE NOT EXISTS (SELECT 1 FROM rollup_hour r
                  WHERE r.sid = sp.sid AND r.pid = sp.pid AND r.hour >= (SELECT min(hour) FROM hours))
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = sp.sid AND x.pid = sp.pid AND x.rule = $2 AND x.status <> 'cleared')
"""
MISSING_BACK = """
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid)
WHERE x.rule = $1 AND x.status <> 'cleared'
  AND EXISTS (SELECT 1 FROM rollup_hour r WHERE r.sid = x.sid AND r.pid = x.pid AND r.hour >= x.first_seen)
FOR UPDATE OF x
"""
# Series whose valid values were one and the same through every one of the latest hours.
FLAT = f"""
WITH {_HOURS}, spans AS (
    SELECT r.sid, r.pid, min(r.vmin) AS lo, max(r.vmax) AS hi, count(*) AS n_hours, min(r.n_valid) AS least
    FROM rollup_hour r JOIN hours h ON r.hour = h.hour
    WHERE r.n_valid > 0
    GROUP BY r.sid, r.pid
)
SELECT f.sid, f.pid, f.lo AS value, s.park_id, (SELECT min(hour) FROM hours) AS since
FROM spans f JOIN stations s USING (sid)
WHERE f.n_hours = $1 AND f.lo = f.hi AND f.least >= $3
  AND NOT EXISTS (SELECT 1 FROM rollup_hour r  -- moving again in the hour now running
                  WHERE r.sid = f.sid AND r.pid = f.pid AND r.hour >= date_trunc('hour', clock_timestamp())
                    AND r.n_valid > 0 AND r.vmin <> r.vmax)
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = f.sid AND x.pid = f.pid AND x.rule = $2 AND x.status <> 'cleared')
"""
# Flat series that moved again in an hour after the alert was raised.
FLAT_BACK = """
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid)
WHERE x.rule = $1 AND x.status <> 'cleared'
  AND EXISTS (SELECT 1 FROM rollup_hour r
              WHERE r.sid = x.sid AND r.pid = x.pid AND r.hour >= date_trunc('hour', x.raised_at) - interval '1 hour'
                AND r.n_valid > 0 AND r.vmin <> r.vmax)
FOR UPDATE OF x
"""


FLAGS_RULE = "data_quality.invalid_flags"
# Hours in a row mostly flagged invalid before it is an alarm: calibration takes minutes and
# routine maintenance an hour or two; four hours of fault, calibration or maintenance flags is
# an instrument out of service.
FLAG_HOURS = 4
# Flags that put a value out of service (HJ 212 table 8); F (the source itself stopped) is not a
# data problem and N/T are measurements.
OUT_OF_SERVICE = ("D", "C", "M", "S", "B", "?")
FLAGGED = f"""
WITH {_HOURS}, flagged AS (
    SELECT r.sid, r.pid, count(*) AS n
    FROM rollup_hour r JOIN hours h ON r.hour = h.hour
    WHERE r.observed_minutes > 0 AND 2 * (r.observed_minutes - r.measured_minutes) > r.observed_minutes
    GROUP BY r.sid, r.pid
), worst AS (
    SELECT f.sid, f.pid, (
        SELECT x.flag FROM readings x
        WHERE x.sid = f.sid AND x.pid = f.pid AND x.iv IN (0, 1) AND x.ts >= (SELECT min(hour) FROM hours)
          AND x.flag NOT IN ('N', 'T')
        GROUP BY x.flag ORDER BY count(*) DESC, x.flag LIMIT 1) AS flag
    FROM flagged f WHERE f.n = $1
)
SELECT w.sid, w.pid, w.flag, s.park_id, (SELECT min(hour) FROM hours) AS since
FROM worst w JOIN stations s USING (sid)
WHERE w.flag = any($3::text[])
  AND NOT EXISTS (SELECT 1 FROM rollup_hour r  -- valid again in the hour now running
                  WHERE r.sid = w.sid AND r.pid = w.pid AND r.hour >= date_trunc('hour', clock_timestamp())
                    AND r.observed_minutes > 0 AND 2 * r.measured_minutes >= r.observed_minutes)
  AND NOT EXISTS (SELECT 1 FROM alerts x
                  WHERE x.sid = w.sid AND x.pid = w.pid AND x.rule = $2 AND x.status <> 'cleared')
"""
# Flagged series whose latest closed hour is mostly valid again.
FLAGS_BACK = """
SELECT x.*, s.park_id FROM alerts x JOIN stations s USING (sid)
WHERE x.rule = $1 AND x.status <> 'cleared'
  AND EXISTS (SELECT 1 FROM rollup_hour r
              WHERE r.sid = x.sid AND r.pid = x.pid AND r.hour >= date_trunc('hour', x.raised_at) - interval '1 hour'
                AND r.observed_minutes > 0 AND 2 * r.measured_minutes >= r.observed_minutes)
FOR UPDATE OF x
"""


async def _raise(
    conn: asyncpg.Connection, row: asyncpg.Record, rule: str, hours: int, detail: dict[str, object]
) -> bool:
    alert, opened = await store.open_or_find(
        conn,
        (
            row["sid"],
            row["pid"],
            rule,
            Family.DATA_QUALITY.value,
            "active",
            Severity.WARNING.value,
            row["since"],
            row["since"] + timedelta(hours=hours),
            False,
            detail.get("value"),
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


async def _clear_back(conn: asyncpg.Connection, query: str, rule: str, reason: str) -> int:
    return await store.clear_all(conn, await conn.fetch(query, rule), reason)


async def check_series(conn: asyncpg.Connection) -> tuple[int, int]:
    """Missing parameters and flat values over the latest closed hours; returns (raised, cleared)."""
    raised = cleared = 0
    async with conn.transaction():
        cleared += await _clear_back(conn, MISSING_BACK, MISSING_RULE, "data_returned")
        cleared += await _clear_back(conn, FLAT_BACK, FLATLINE_RULE, "values_move")
        cleared += await _clear_back(conn, FLAGS_BACK, FLAGS_RULE, "data_valid_again")
        for row in await conn.fetch(MISSING, RECENT_HOURS, MISSING_RULE):
            detail = {"hours": RECENT_HOURS, "since": row["since"].isoformat()}
            raised += await _raise(conn, row, MISSING_RULE, RECENT_HOURS, detail)
        for row in await conn.fetch(FLAT, RECENT_HOURS, FLATLINE_RULE, FLAT_MIN_VALUES):
            detail = {"hours": RECENT_HOURS, "value": row["value"], "since": row["since"].isoformat()}
            raised += await _raise(conn, row, FLATLINE_RULE, RECENT_HOURS, detail)
        for row in await conn.fetch(FLAGGED, FLAG_HOURS, FLAGS_RULE, list(OUT_OF_SERVICE)):
            detail = {"hours": FLAG_HOURS, "flag": row["flag"], "since": row["since"].isoformat()}
            raised += await _raise(conn, row, FLAGS_RULE, FLAG_HOURS, detail)
    if raised or cleared:
        logger.info("series checks: %d alarm(s) raised, %d cleared", raised, cleared)
    return raised, cleared
