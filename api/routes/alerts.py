"""Alerts: list, one with its timeline and notices, the actions people take, silences, and the routing in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from alerts import actions, queries
from api import paging, params
from api.access import actor
from api.deps import ConnDep, PagerDep, PoolDep, PrincipalDep, SettingsDep, require
from api.errors import ApiError
from api.guard import error_response
from api.pagemodels import Page, page
from api.principals import Permission, Role
from api.timeparams import parse_instant
from schemas.alerting import VERIFICATIONS, redact
from schemas.parameters import catalog

router = APIRouter(prefix="/api/v1", tags=["alerts"])

MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100

SELECT_KNOWN_STATIONS = "SELECT id FROM stations WHERE id = any($1::text[])"
SELECT_STATION = "SELECT sid, park_id FROM stations WHERE id = $1"
SELECT_SILENCES = """
SELECT x.*, s.id AS station_id, p.code AS parameter FROM alert_silences x
LEFT JOIN stations s ON s.sid = x.sid LEFT JOIN parameters p ON p.pid = x.pid
WHERE $1 OR (x.cancelled_at IS NULL AND x.ends_at > clock_timestamp())
ORDER BY x.id DESC LIMIT 1000
"""
SELECT_SILENCE = """
SELECT x.*, s.id AS station_id, p.code AS parameter FROM alert_silences x
LEFT JOIN stations s ON s.sid = x.sid LEFT JOIN parameters p ON p.pid = x.pid WHERE x.id = $1
"""
SELECT_CHANNELS = (
    "SELECT id, kind, config, updated_at FROM alert_channels WHERE $1::text[] IS NULL OR id = ANY($1) ORDER BY id"
)
SELECT_ROUTES = "SELECT * FROM alert_routes ORDER BY id"

Status = Literal["pending", "active", "cleared"]
SeverityName = Literal["advisory", "warning", "major", "critical"]
Verification = Literal[
    "genuine_exceedance", "instrument_fault", "maintenance", "data_falsification_suspected", "false_alarm", "other"
]
assert set(VERIFICATIONS) == set(get_args(Verification))  # noqa: S101 - the contract and the schema agree


class Acknowledgement(BaseModel):
    """Who said "seen, on it", and when."""

    at: datetime
    by: str
    comment: str | None


class VerificationOut(BaseModel):
    """The bureau's finding (核实)."""

    at: datetime
    by: str
    verification: str
    comment: str | None


class Supervision(BaseModel):
    """超标异常督办: the enterprise's explanation due, given, and the bureau's review of it."""

    due_at: datetime | None
    overdue_at: datetime | None
    text: str | None
    explained_at: datetime | None
    explained_by: str | None
    review: str | None
    reviewed_at: datetime | None
    reviewed_by: str | None
    review_comment: str | None


class Alert(BaseModel):
    """An alert: one episode of one rule at one station (and parameter), or of a park's figure."""

    id: int
    station_id: str | None = Field(description="null for a park's alert (a KPI of the park as a whole)")
    park_id: str
    parameter: str | None = Field(description="HJ 212 code; null for an alert about the station as a whole")
    parameter_name: str | None = Field(description="English name")
    parameter_name_zh: str | None = Field(description="Chinese name (中文名称)")
    rule: str = Field(description="e.g. exceedance.hour, exceedance.day, data_quality.offline")
    family: str
    status: Status
    severity: SeverityName
    first_seen: datetime = Field(description="when the condition began (the first window's start)")
    last_seen: datetime = Field(description="the latest time it held (the latest window's end)")
    raised_at: datetime = Field(description="when parkwatch knew")
    activated_at: datetime | None
    cleared_at: datetime | None
    clear_reason: str | None
    occurrences: int = Field(description="windows (or repeats) in this episode")
    late: bool = Field(description="found long after the window ended (back-filled or revised data)")
    value: float | None
    limit: float | None
    unit: str | None
    standard: str | None
    clause: dict[str, Any] | None
    exceedance_multiple: float | None
    details: dict[str, Any]
    acknowledged: Acknowledgement | None
    verified: VerificationOut | None
    escalated_at: datetime | None
    notified_at: datetime | None
    supervision: Supervision | None


class AlertPage(Page):
    """A page of alerts, newest first."""

    results: list[Alert]


class TimelineEntry(BaseModel):
    """One change of an alert."""

    id: int
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


class NotificationOut(BaseModel):
    """One notice through one channel."""

    id: int
    event_id: int
    channel_id: str
    status: Literal["queued", "sending", "sent", "failed", "muted"]
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None


class AlertDetail(Alert):
    """An alert with its whole timeline and every notice it sent."""

    timeline: list[TimelineEntry]
    notifications: list[NotificationOut]


class ByBody(BaseModel):
    """Why, and (optionally) for whom: the record names the caller's key or user."""

    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="who acts, when a shared key acts for a person; the record names the key or user in any case",
    )
    comment: str | None = Field(default=None, max_length=2000)


class VerifyBody(ByBody):
    """核实: the finding."""

    verification: Verification


class ExplanationBody(BaseModel):
    """The enterprise's 情况说明."""

    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="who acts, when a shared key acts for a person; the record names the key or user in any case",
    )
    text: str = Field(min_length=1, max_length=5000)


class ReviewBody(ByBody):
    """The bureau's review of an explanation."""

    decision: Literal["accepted", "rejected"]


class SilenceBody(BaseModel):
    """A silence or maintenance window: notices of matching alerts are muted (the alerts still recorded)."""

    kind: Literal["silence", "maintenance"] = "silence"
    park_id: str | None = None
    station_id: str | None = None
    parameter: str | None = None
    rule: str | None = Field(default=None, description="a rule or a prefix: exceedance, data_quality.offline")
    starts_at: datetime | None = Field(default=None, description="default now")
    ends_at: datetime | None = None
    minutes: float | None = Field(default=None, gt=0, description="instead of ends_at")
    reason: str = Field(min_length=1, max_length=1000)
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="who acts, when a shared key acts for a person; the record names the key or user in any case",
    )


class Silence(BaseModel):
    """A silence or maintenance window."""

    id: int
    kind: str
    park_id: str | None
    station_id: str | None
    parameter: str | None
    rule: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None


class SilenceList(BaseModel):
    """Silences, newest first."""

    results: list[Silence]


class Channel(BaseModel):
    """A notification channel, its secrets hidden."""

    id: str
    kind: str
    config: dict[str, Any]
    updated_at: datetime


class Route(BaseModel):
    """Which alerts a channel receives."""

    id: int
    park_id: str | None
    channel_id: str
    min_severity: str
    families: list[str]
    escalation: bool
    resolved: bool
    repeat_every_seconds: float | None


class Routing(BaseModel):
    """The channels and routes in force."""

    channels: list[Channel]
    routes: list[Route]


@router.get("/alerts", response_model=AlertPage)
async def list_alerts(
    conn: ConnDep,
    settings: SettingsDep,
    pager: PagerDep,
    status: Annotated[list[Status] | None, Query(description="pending, active, cleared")] = None,
    severity: Annotated[list[SeverityName] | None, Query()] = None,
    park_id: Annotated[str | None, Query()] = None,
    station_id: Annotated[list[str] | None, Query(description="repeat or comma-separate")] = None,
    parameter: Annotated[list[str] | None, Query(description="HJ 212 codes or aliases")] = None,
    rule: Annotated[list[str] | None, Query(description="rules or families: exceedance, exceedance.hour")] = None,
    start: Annotated[str | None, Query(description="alerts still holding at or after; ISO 8601")] = None,
    end: Annotated[str | None, Query(description="alerts begun before; ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Alerts, newest raised first, paged by cursor."""
    stations = params.split(station_id)
    if stations:
        known = {r["id"] for r in await conn.fetch(SELECT_KNOWN_STATIONS, stations)}
        missing = sorted(set(stations) - known)
        if missing:
            raise ApiError(404, "unknown_station", f"not registered: {', '.join(missing)}")
    codes = params.codes(params.split(parameter))
    zone = ZoneInfo(settings.DEFAULT_TIMEZONE)
    lo = parse_instant(start, "start", zone) if start else None
    hi = parse_instant(end, "end", zone) if end else None
    rules = params.split(rule)
    fp = paging.fingerprint(status, severity, park_id, stations, codes, rules, lo, hi)
    position = pager.decode(cursor, fp, (datetime, int)) if cursor else None
    rows = await queries.list_alerts(
        conn,
        status=status,
        severity=severity,
        park_id=park_id,
        stations=stations,
        codes=codes,
        rules=rules,
        start=lo,
        end=hi,
        before=position,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = pager.encode(fp, (rows[-1]["raised_at"], rows[-1]["id"])) if more else None
    return page(rows, limit, next_cursor)


async def _detail(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any]:
    found = await queries.get_alert(conn, alert_id)
    if found is None:
        raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
    return found


AlertId = Annotated[int, Path(ge=1)]


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
async def get_alert(conn: ConnDep, alert_id: AlertId) -> dict[str, Any]:
    """One alert with its timeline (every change, who and when) and its notices."""
    return await _detail(conn, alert_id)


async def _act(conn: asyncpg.Connection, alert_id: int, action: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        await action(conn, alert_id, **kwargs)
    except actions.ActionError as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None
    return await _detail(conn, alert_id)


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertDetail,
    dependencies=[require(Permission.ALERT_ACK)],
    responses={409: error_response("already_acknowledged, alert_cleared")},
)
async def acknowledge(conn: ConnDep, principal: PrincipalDep, alert_id: AlertId, body: ByBody) -> dict[str, Any]:
    """Acknowledge ("seen, on it"): stops reminders and escalation; 409 if already acknowledged or cleared."""
    return await _act(conn, alert_id, actions.acknowledge, by=actor(principal, body.by), comment=body.comment)


@router.post("/alerts/{alert_id}/verify", response_model=AlertDetail, dependencies=[require(Permission.ALERT_VERIFY)])
async def verify(conn: ConnDep, principal: PrincipalDep, alert_id: AlertId, body: VerifyBody) -> dict[str, Any]:
    """核实: record what the alert turned out to be (any state; again to correct)."""
    return await _act(
        conn, alert_id, actions.verify, by=actor(principal, body.by), verification=body.verification,
        comment=body.comment,
    )  # fmt: skip


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=AlertDetail,
    dependencies=[require(Permission.ALERT_RESOLVE)],
    responses={409: error_response("alert_cleared, not_manually_resolvable (exceedances clear with the data)")},
)
async def resolve(conn: ConnDep, principal: PrincipalDep, alert_id: AlertId, body: ByBody) -> dict[str, Any]:
    """Close by hand where the rule allows it; exceedances clear only when the data say so (409)."""
    return await _act(conn, alert_id, actions.resolve, by=actor(principal, body.by), comment=body.comment)


@router.post(
    "/alerts/{alert_id}/explanation",
    response_model=AlertDetail,
    dependencies=[require(Permission.ALERT_EXPLAIN)],
    responses={409: error_response("no_explanation_needed (only exceedances call for one)")},
)
async def explain(conn: ConnDep, principal: PrincipalDep, alert_id: AlertId, body: ExplanationBody) -> dict[str, Any]:
    """The enterprise's explanation (情况说明) of an exceedance."""
    return await _act(conn, alert_id, actions.explain, by=actor(principal, body.by), text=body.text)


@router.post(
    "/alerts/{alert_id}/review",
    response_model=AlertDetail,
    dependencies=[require(Permission.ALERT_REVIEW)],
    responses={409: error_response("nothing_to_review (no explanation has been given)")},
)
async def review(
    conn: ConnDep, principal: PrincipalDep, settings: SettingsDep, alert_id: AlertId, body: ReviewBody
) -> dict[str, Any]:
    """The bureau accepts the explanation, or rejects it and asks for another."""
    return await _act(
        conn,
        alert_id,
        actions.review,
        by=actor(principal, body.by),
        decision=body.decision,
        comment=body.comment,
        resubmit_hours=settings.ALERT_EXPLANATION_HOURS,
    )


def _silence(r: asyncpg.Record) -> dict[str, Any]:
    return {k: r[k] for k in Silence.model_fields}


@router.get("/silences", response_model=SilenceList)
async def list_silences(
    conn: ConnDep, include_ended: Annotated[bool, Query(description="also ended and cancelled ones")] = False
) -> dict[str, Any]:
    """Silences and maintenance windows in force (or all)."""
    return {"results": [_silence(r) for r in await conn.fetch(SELECT_SILENCES, include_ended)]}


@router.post("/silences", response_model=Silence, status_code=201, dependencies=[require(Permission.SILENCE)])
async def add_silence(conn: ConnDep, principal: PrincipalDep, body: SilenceBody) -> dict[str, Any]:
    """Mute the notices of matching alerts for a time; the alerts are still raised and recorded."""
    sid = pid = None
    park_id = body.park_id
    if body.station_id:
        station = await conn.fetchrow(SELECT_STATION, body.station_id)
        if station is None:
            raise ApiError(404, "unknown_station", f"not registered: {body.station_id}")
        sid = station["sid"]
    if park_id and not await conn.fetchval("SELECT 1 FROM parks WHERE id = $1", park_id):
        raise ApiError(404, "unknown_park", f"park {park_id!r} is not registered")
    if body.parameter:
        code = catalog().resolve_any(body.parameter) or body.parameter
        pid = await conn.fetchval("SELECT pid FROM parameters WHERE code = $1", code)
        if pid is None:
            raise ApiError(422, "unknown_parameter", f"unknown parameter code or alias: {body.parameter}")
    if not (park_id or sid or pid or body.rule):
        raise ApiError(422, "missing_filter", "a silence names a park, a station, a parameter or a rule")
    starts = body.starts_at or datetime.now(UTC)
    if starts.tzinfo is None:
        raise ApiError(422, "bad_time", "starts_at needs an offset")
    if body.ends_at is not None:
        ends = body.ends_at
    elif body.minutes is not None:
        ends = starts + timedelta(minutes=body.minutes)
    else:
        raise ApiError(422, "bad_time", "give ends_at or minutes")
    if ends.tzinfo is None:
        raise ApiError(422, "bad_time", "ends_at needs an offset")
    try:
        silence_id = await actions.add_silence(
            conn,
            kind=body.kind,
            park_id=park_id,
            sid=sid,
            pid=pid,
            rule=body.rule,
            starts_at=starts,
            ends_at=ends,
            reason=body.reason,
            by=actor(principal, body.by),
        )
    except actions.ActionError as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None
    row = await conn.fetchrow(SELECT_SILENCE, silence_id)
    assert row is not None  # noqa: S101 - inserted just now
    return _silence(row)


@router.post("/silences/{silence_id}/cancel", response_model=Silence, dependencies=[require(Permission.SILENCE)])
async def cancel_silence(conn: ConnDep, silence_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    """End a silence now."""
    try:
        await actions.cancel_silence(conn, silence_id)
    except actions.ActionError as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None
    row = await conn.fetchrow(SELECT_SILENCE, silence_id)
    assert row is not None  # noqa: S101 - it exists: it was just cancelled
    return _silence(row)


@router.get("/alert-routing", response_model=Routing)
async def routing(conn: ConnDep, pool: PoolDep, principal: PrincipalDep) -> dict[str, Any]:
    """The routes in force that the caller sees, and the channels they use (secrets hidden)."""
    visible = await conn.fetch(SELECT_ROUTES)
    # Channels hold addresses and tokens the scoped roles cannot read (migration 0018): they are
    # read by the owner, only those the visible routes use (every one for an administrator).
    used = None if principal.role is Role.ADMIN else sorted({r["channel_id"] for r in visible})
    async with pool.acquire() as owner:
        rows = await owner.fetch(SELECT_CHANNELS, used)
    channels = [
        {"id": r["id"], "kind": r["kind"], "config": redact(queries.decode(r["config"])), "updated_at": r["updated_at"]}
        for r in rows
    ]
    routes = [
        {
            "id": r["id"],
            "park_id": r["park_id"],
            "channel_id": r["channel_id"],
            "min_severity": r["min_severity"],
            "families": list(r["families"]),
            "escalation": r["escalation"],
            "resolved": r["resolved"],
            "repeat_every_seconds": r["repeat_every"].total_seconds() if r["repeat_every"] else None,
        }
        for r in visible
    ]
    return {"channels": channels, "routes": routes}
