"""Data-quality alarms: a station that stopped sending is offline, and back when its data return."""

from __future__ import annotations

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
