"""HJ 212: the raw packets stations sent, the station events they carried, what the platform asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api import paging
from api.deps import ConnDep, PagerDep, PrincipalDep
from api.errors import ApiError
from api.pagemodels import BAD_CURSOR, INVALID, Instant, Page, errors, page
from api.paging import Pager
from api.responses import ORJSONResponse
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
# Keyset paging over (ts, kind, subject): with the station, the table's primary key.
SELECT_EVENTS = """
SELECT kind, subject, ts, value, received_at
FROM station_events
WHERE sid = $1 AND ts >= $2 AND ts < $3 AND ($4::text IS NULL OR kind = $4)
  AND (ts, kind, subject) > ($5, $6, $7)
ORDER BY ts, kind, subject
LIMIT $8
"""
SELECT_REQUESTS = """
SELECT id, kind, cn, begin_ts, end_ts, missing, reason, state, qn, created_at, sent_at, answered_at,
       finished_at, result
FROM logger_requests
WHERE sid = $1 AND created_at >= $2 AND created_at < $3 AND id > $4 AND ($5::text IS NULL OR state = $5)
ORDER BY id
LIMIT $6
"""
FIRST_EVENT = (datetime(1, 1, 2, tzinfo=UTC), "", "")

NOT_BOTH = "give cursor or after_id, not both"


class Finding(BaseModel):
    """What the decoder noticed about a packet (docs/data-loggers.md)."""

    model_config = ConfigDict(extra="allow")

    code: str
    severity: str | None = None
    message: str | None = None


class Packet(BaseModel):
    """An HJ 212 packet as received, with its findings."""

    id: int
    received_at: Instant
    mn: str | None
    cn: str | None
    qn: str | None
    data_time: Instant | None = Field(description="the packet's DataTime, in the station's time zone")
    raw: str = Field(description="the packet's text; PW=****** unless the caller is an administrator")
    findings: list[Finding]


class PacketPage(Page):
    """A page of packets, in the order received."""

    results: list[Packet]
    next_after_id: int | None = Field(description="the last id of this page while there are more (older clients)")


class StationEvent(BaseModel):
    """A facility state, a facility's running time, or a logger restart."""

    kind: str = Field(description="facility_state, facility_runtime or logger_restart")
    subject: str | None = Field(description="the facility (SB1, ...); null for the station itself")
    ts: Instant
    ts_local: Instant
    value: float | None
    received_at: Instant


class EventPage(Page):
    """A page of station events, by time."""

    results: list[StationEvent]


class LoggerRequest(BaseModel):
    """What the platform asked a station's data logger, and what came of it."""

    id: int
    kind: Literal["set_clock", "history"]
    cn: str
    begin: Instant | None = Field(description="history: the first missing record (local)")
    end: Instant | None = Field(description="history: the last missing record (local)")
    missing: int | None = Field(description="history: records missing when asked")
    reason: str
    state: str
    qn: str | None
    created_at: Instant
    sent_at: Instant | None
    answered_at: Instant | None
    finished_at: Instant | None
    result: str | None


class RequestPage(Page):
    """A page of logger requests, oldest first."""

    results: list[LoggerRequest]
    next_after_id: int | None = Field(description="the last id of this page while there are more (older clients)")


ERRORS = errors(
    {
        400: f"{BAD_CURSOR}; bad_cursor also for cursor and after_id together",
        404: "unknown_station (also one outside the caller's scope)",
        422: f"bad_time; {INVALID}",
    }
)


def mask_secrets(value: Any) -> Any:
    """Text (or the strings of a JSON value) with any HJ 212 access password (`PW=...`) masked."""
    if isinstance(value, str):
        return mask_password(value.encode()).decode() if "=" in value else value
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    return value


def after_key(pager: Pager, cursor: str | None, fp: str, after_id: int) -> int:
    """Where an id-ordered page starts: the cursor's id, or `after_id` (the older way)."""
    if cursor is None:
        return after_id
    if after_id:
        raise ApiError(400, "bad_cursor", NOT_BOTH)
    (last,) = pager.decode(cursor, fp, (int,))
    return int(last)


async def _station(conn: Any, station_id: str) -> tuple[int, ZoneInfo]:
    row = await conn.fetchrow(SELECT_STATION, station_id)
    if row is None:
        raise ApiError(404, "unknown_station", f"station {station_id!r} is not registered")
    return row["sid"], ZoneInfo(row["timezone"])


@router.get("/stations/{station_id}/hj212-packets", response_model=PacketPage, responses=ERRORS)
async def get_packets(
    conn: ConnDep,
    pager: PagerDep,
    principal: PrincipalDep,
    station_id: str,
    start: Annotated[str | None, Query(description="received at or after; ISO 8601 (local if no offset)")] = None,
    end: Annotated[str | None, Query(description="received before; default now")] = None,
    after_id: Annotated[int, Query(ge=0, description="keyset: the last id of the previous page (older clients)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    finding: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z0-9_]+$", description="only packets with this finding code")
    ] = None,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> dict[str, Any]:
    """The HJ 212 packets a station sent, as received (by receive time), with their findings.

    The station's access password is masked (`PW=******;`) for everyone but administrators; the
    database keeps the packets as received.
    """
    sid, tz = await _station(conn, station_id)
    fp = paging.fingerprint("hj212-packets", sid, start, end, finding, tz.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, tz)
    after = after_key(pager, cursor, fp, after_id)
    rows = await conn.fetch(SELECT_PACKETS, sid, lo, hi, after, limit + 1, finding)
    page_rows = rows[:limit]
    secret = principal.sees_secrets
    results = []
    for r in page_rows:
        raw = bytes(r["raw"])
        findings = json.loads(r["findings"]) if isinstance(r["findings"], str) else r["findings"]
        results.append(
            {
                "id": r["id"],
                "received_at": iso_utc(r["received_at"]),
                "mn": r["mn"],
                "cn": r["cn"],
                "qn": r["qn"],
                "data_time": r["data_time"].astimezone(tz).isoformat() if r["data_time"] else None,
                "raw": (raw if secret else mask_password(raw)).decode("utf-8", errors="replace"),
                # a finding quoting a malformed header could quote the password too
                "findings": findings if secret else mask_secrets(findings),
            }
        )
    more = len(rows) > limit
    next_cursor = pager.encode(fp, (page_rows[-1]["id"],), (lo, hi)) if more else None
    return page(results, limit, next_cursor, next_after_id=page_rows[-1]["id"] if more else None)


# Up to 10,000 events a page: an ORJSONResponse of plain dicts, as /readings (through EventPage,
# 10,000 events took 24 ms to validate and render instead of 1.3 ms); EventPage documents the body.
@router.get(
    "/stations/{station_id}/events", response_class=ORJSONResponse, responses={200: {"model": EventPage}, **ERRORS}
)
async def get_events(
    conn: ConnDep,
    pager: PagerDep,
    station_id: str,
    kind: Annotated[str | None, Query(description="facility_state, facility_runtime or logger_restart")] = None,
    start: Annotated[str | None, Query(description="at or after; ISO 8601 (local if no offset)")] = None,
    end: Annotated[str | None, Query(description="before; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> ORJSONResponse:
    """Station events: facility state, facility running hours per day, logger restarts.

    Facility states (HJ 212-2017 table 4): 0 off, 1 running, 2 calibrating, 3 maintenance,
    4 alarm, 5 back-blowing.
    """
    sid, tz = await _station(conn, station_id)
    fp = paging.fingerprint("events", sid, kind, start, end, tz.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, tz)
    position = pager.decode(cursor, fp, (datetime, str, str)) if cursor else FIRST_EVENT
    rows = await conn.fetch(SELECT_EVENTS, sid, lo, hi, kind, *position, limit + 1)
    page_rows = rows[:limit]
    results = [
        {
            "kind": r["kind"],
            "subject": r["subject"] or None,
            "ts": iso_utc(r["ts"]),
            "ts_local": r["ts"].astimezone(tz).isoformat(),
            "value": r["value"],
            "received_at": iso_utc(r["received_at"]),
        }
        for r in page_rows
    ]
    next_cursor = None
    if len(rows) > limit:
        last = page_rows[-1]
        next_cursor = pager.encode(fp, (last["ts"], last["kind"], last["subject"]), (lo, hi))
    return ORJSONResponse(page(results, limit, next_cursor))


@router.get("/stations/{station_id}/logger-requests", response_model=RequestPage, responses=ERRORS)
async def get_logger_requests(
    conn: ConnDep,
    pager: PagerDep,
    station_id: str,
    start: Annotated[str | None, Query(description="asked at or after; ISO 8601 (local if no offset)")] = None,
    end: Annotated[str | None, Query(description="asked before; default now")] = None,
    state: Annotated[
        str | None,
        Query(
            pattern=r"^(pending|sent|acknowledged|completed|filled|unfilled|refused|failed|expired)$",
            description="only requests in this state",
        ),
    ] = None,
    after_id: Annotated[int, Query(ge=0, description="keyset: the last id of the previous page (older clients)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="meta.next of the previous page")] = None,
) -> dict[str, Any]:
    """What the platform asked the station's logger (set its clock, send a gap again) and what came of it."""
    sid, tz = await _station(conn, station_id)
    fp = paging.fingerprint("logger-requests", sid, state, start, end, tz.key)
    lo, hi = (pager.window(cursor, fp) if cursor else None) or bounds(start, end, tz)
    after = after_key(pager, cursor, fp, after_id)
    rows = await conn.fetch(SELECT_REQUESTS, sid, lo, hi, after, state, limit + 1)
    page_rows = rows[:limit]

    def local(ts: Any) -> str | None:
        return ts.astimezone(tz).isoformat() if ts is not None else None

    results = [
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
        for r in page_rows
    ]
    more = len(rows) > limit
    next_cursor = pager.encode(fp, (page_rows[-1]["id"],), (lo, hi)) if more else None
    return page(results, limit, next_cursor, next_after_id=page_rows[-1]["id"] if more else None)
