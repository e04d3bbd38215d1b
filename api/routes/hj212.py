"""HJ 212: the raw packets stations sent, and the station events they carried."""

from __future__ import annotations

import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from api.deps import ConnDep
from api.errors import ApiError
from api.timeparams import bounds, iso_utc
from ingest.hj212.packet import mask_password

router = APIRouter(prefix="/api/v1", tags=["hj212"])

SELECT_STATION = "SELECT sid, timezone FROM stations WHERE id = $1"
SELECT_PACKETS = """
SELECT id, received_at, topic, mn, cn, qn, data_time, raw, findings
FROM hj212_packets
WHERE sid = $1 AND received_at >= $2 AND received_at < $3 AND id > $4
  AND ($6::text IS NULL OR findings @> jsonb_build_array(jsonb_build_object('code', $6::text)))
ORDER BY id
LIMIT $5
"""
SELECT_EVENTS = """
SELECT kind, subject, ts, value, received_at
FROM station_events
WHERE sid = $1 AND ts >= $2 AND ts < $3 AND ($4::text IS NULL OR kind = $4)
ORDER BY ts, kind, subject
LIMIT $5
"""


async def _station(conn: Any, station_id: str) -> tuple[int, ZoneInfo]:
    row = await conn.fetchrow(SELECT_STATION, station_id)
    if row is None:
        raise ApiError(404, "unknown_station", f"station {station_id!r} is not registered")
    return row["sid"], ZoneInfo(row["timezone"])


@router.get("/stations/{station_id}/hj212-packets")
async def get_packets(
    conn: ConnDep,
    station_id: str,
    start: str | None = None,
    end: str | None = None,
    after_id: Annotated[int, Query(ge=0, description="keyset: the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    finding: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z0-9_]+$", description="only packets with this finding code")
    ] = None,
) -> dict[str, Any]:
    """The HJ 212 packets a station sent, as received (by receive time), with their findings."""
    sid, tz = await _station(conn, station_id)
    lo, hi = bounds(start, end, tz)
    rows = await conn.fetch(SELECT_PACKETS, sid, lo, hi, after_id, limit, finding)
    return {
        "results": [
            {
                "id": r["id"],
                "received_at": iso_utc(r["received_at"]),
                "mn": r["mn"],
                "cn": r["cn"],
                "qn": r["qn"],
                "data_time": r["data_time"].astimezone(tz).isoformat() if r["data_time"] else None,
                # the station's access password never leaves the database (the stored bytes keep it)
                "raw": mask_password(bytes(r["raw"])).decode("utf-8", errors="replace"),
                "findings": json.loads(r["findings"]) if isinstance(r["findings"], str) else r["findings"],
            }
            for r in rows
        ],
        "next_after_id": rows[-1]["id"] if len(rows) == limit else None,
    }


@router.get("/stations/{station_id}/events")
async def get_events(
    conn: ConnDep,
    station_id: str,
    kind: str | None = Query(default=None, description="facility_state, facility_runtime or logger_restart"),
    start: str | None = None,
    end: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Station events: facility state, facility running hours per day, logger restarts.

    Facility states (HJ 212-2017 table 4): 0 off, 1 running, 2 calibrating, 3 maintenance,
    4 alarm, 5 back-blowing.
    """
    sid, tz = await _station(conn, station_id)
    lo, hi = bounds(start, end, tz)
    rows = await conn.fetch(SELECT_EVENTS, sid, lo, hi, kind, limit)
    return {
        "results": [
            {
                "kind": r["kind"],
                "subject": r["subject"] or None,
                "ts": iso_utc(r["ts"]),
                "ts_local": r["ts"].astimezone(tz).isoformat(),
                "value": r["value"],
                "received_at": iso_utc(r["received_at"]),
            }
            for r in rows
        ]
    }


SELECT_REQUESTS = """
SELECT id, kind, cn, begin_ts, end_ts, missing, reason, state, qn, created_at, sent_at, answered_at,
       finished_at, result
FROM logger_requests
WHERE sid = $1 AND created_at >= $2 AND created_at < $3 AND id > $4 AND ($5::text IS NULL OR state = $5)
ORDER BY id
LIMIT $6
"""


@router.get("/stations/{station_id}/logger-requests")
async def get_logger_requests(
    conn: ConnDep,
    station_id: str,
    start: str | None = None,
    end: str | None = None,
    state: Annotated[
        str | None,
        Query(
            pattern=r"^(pending|sent|acknowledged|completed|filled|unfilled|refused|failed|expired)$",
            description="only requests in this state",
        ),
    ] = None,
    after_id: Annotated[int, Query(ge=0, description="keyset: the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """What the platform asked the station's logger (set its clock, send a gap again) and what came of it."""
    sid, tz = await _station(conn, station_id)
    lo, hi = bounds(start, end, tz)
    rows = await conn.fetch(SELECT_REQUESTS, sid, lo, hi, after_id, state, limit)

    def local(ts: Any) -> str | None:
        return ts.astimezone(tz).isoformat() if ts is not None else None

    return {
        "results": [
            {
                "id": r["id"],
                "kind": r["kind"],
                "cn": r["cn"],
                "begin": local(r["begin_ts"]),
                "end": local(r["end_ts"]),
                "missing": r["missing"],
                "reason": r["reason"],
                "state": r["state"],
                "qn": r["qn"],
                "created_at": iso_utc(r["created_at"]),
                "sent_at": iso_utc(r["sent_at"]) if r["sent_at"] else None,
                "answered_at": iso_utc(r["answered_at"]) if r["answered_at"] else None,
                "finished_at": iso_utc(r["finished_at"]) if r["finished_at"] else None,
                "result": r["result"],
            }
            for r in rows
        ],
        "next_after_id": rows[-1]["id"] if len(rows) == limit else None,
    }
