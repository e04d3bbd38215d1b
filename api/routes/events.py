"""GET /api/v1/events: alert events as server-sent events, live, resumable with Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.access import scoped_connection
from api.deps import PoolDep, PrincipalDep
from api.errors import ApiError
from api.livefeed import LiveFeed

router = APIRouter(prefix="/api/v1", tags=["alerts"])

# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
# Events sent per database read while catching up.
PAGE = 500

SELECT_EVENTS = """
SELECT e.id, e.at, e.kind, e.actor, e.detail, x.id AS alert_id, s.id AS station_id,
       coalesce(s.park_id, x.park) AS park_id,
       p.code AS parameter, x.rule, x.family, x.status, x.severity, x.value, x.limit_value, x.unit
FROM alert_events e JOIN alerts x ON x.id = e.alert_id LEFT JOIN stations s ON s.sid = x.sid
LEFT JOIN parameters p ON p.pid = x.pid
WHERE e.id > $1 AND ($2::text IS NULL OR coalesce(s.park_id, x.park) = $2) AND ($3::text IS NULL OR s.id = $3)
ORDER BY e.id LIMIT $4
"""
LATEST = "SELECT coalesce(max(id), 0) FROM alert_events"


def _frame(r: Any) -> str:
    detail = json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]
    data = {
        "id": r["id"],
        "at": r["at"].isoformat(),
        "kind": r["kind"],
        "actor": r["actor"],
        "detail": detail,
        "alert": {
            "id": r["alert_id"],
            "station_id": r["station_id"],
            "park_id": r["park_id"],
            "parameter": r["parameter"],
            "rule": r["rule"],
            "family": r["family"],
            "status": r["status"],
            "severity": r["severity"],
            "value": r["value"],
            "limit": r["limit_value"],
            "unit": r["unit"],
        },
    }
    return f"id: {r['id']}\nevent: alert\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "a text/event-stream of alert events"}},
)
async def events(
    request: Request,
    pool: PoolDep,
    principal: PrincipalDep,
    park_id: Annotated[str | None, Query()] = None,
    station_id: Annotated[str | None, Query()] = None,
    after: Annotated[
        int | None, Query(ge=0, description="replay events after this id (default: only new ones)")
    ] = None,
    last_event_id: Annotated[str | None, Header(description="set by EventSource on reconnect")] = None,
) -> StreamingResponse:
    """Alert events (raised, activated, cleared, acknowledged, ...) as they commit; `event: alert`, JSON data."""
    if last_event_id is not None:
        try:
            after = int(last_event_id)
        except ValueError:
            raise ApiError(400, "bad_last_event_id", "Last-Event-ID is an event id this stream sent") from None
    feed: LiveFeed = request.app.state.livefeed
    feed.start()
    if after is None:
        async with scoped_connection(pool, principal) as conn:
            after = int(await conn.fetchval(LATEST))

    async def stream() -> AsyncIterator[str]:
        last = after
        yield "retry: 3000\n\n"
        version = feed.version
        while not await request.is_disconnected():
            # Each poll in the principal's scope, checked again: a revoked key's stream ends.
            try:
                async with scoped_connection(pool, principal) as conn:
                    rows = await conn.fetch(SELECT_EVENTS, last, park_id, station_id, PAGE)
            except ApiError:
                yield 'event: end\ndata: {"error": "credentials_revoked"}\n\n'
                return
            for r in rows:
                last = r["id"]
                yield _frame(r)
            if len(rows) == PAGE:
                continue
            moved = await feed.wait(version, KEEPALIVE_SECONDS)
            if moved == version:
                yield ": keep-alive\n\n"
            version = moved

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
