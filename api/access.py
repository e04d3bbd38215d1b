"""Each request's principal: who it is (key or session), what its role permits, and its SQL scope.

Authentication happens on the request's own pooled connection, which then switches to a role
without BYPASSRLS and names the principal in `parkwatch.principal`; the row-level security of
migration 0018 does the rest (docs/access.md). The pool's reset undoes both on release.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import orjson
from fastapi import Request

from api.errors import ApiError
from api.principals import Principal, Role, Scope, create_key, hash_key, load_scopes

logger = logging.getLogger(__name__)

KEY_HEADER = "x-api-key"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "pw_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# last_used_at is for people deciding which keys to revoke: a minute's precision is plenty, and
# one UPDATE a minute per key instead of one per request.
TOUCH_EVERY_S = 60.0
# Reads of measured data by an inspector are audited (docs/access.md#audit): readings and
# exports, and everything else made of the measurements (judged windows, AQI, statistics, reports,
# the raw HJ 212 packets).
AUDITED_READS = (
    "/api/v1/readings", "/api/v1/exports", "/api/v1/compliance", "/api/v1/aqi", "/api/v1/statistics",
    "/api/v1/reports",
)  # fmt: skip
AUDITED_READ_PARTS = ("/hj212-packets",)

SELECT_KEY = """
SELECT id, kind, name, role, expires_at, revoked_at, now() AS now FROM principals WHERE key_hash = $1
"""
SELECT_SESSION = """
SELECT p.id, p.kind, p.name, p.role, p.expires_at, p.revoked_at, s.csrf_hash, s.expires_at AS session_expires,
       now() AS now
FROM sessions s JOIN principals p ON p.id = s.principal_id
WHERE s.token_hash = $1
"""
SELECT_PRINCIPAL = "SELECT id, kind, name, role, expires_at, revoked_at, now() AS now FROM principals WHERE id = $1"
# The dashboard's local viewer (settings.DASHBOARD_LOCAL_VIEWER): found by name and maker, so an
# administrator's own key called local-viewer is never taken for it.
LOCAL_VIEWER_NAME = "local-viewer"
LOCAL_VIEWER_MAKER = "parkwatch (DASHBOARD_LOCAL_VIEWER)"
SELECT_LOCAL_VIEWER = """
SELECT id FROM principals WHERE kind = 'key' AND name = $1 AND created_by = $2 ORDER BY id DESC LIMIT 1
"""
TOUCH = "UPDATE principals SET last_used_at = now() WHERE id = $1"
STILL_VALID = """
SELECT p.revoked_at IS NULL AND (p.expires_at IS NULL OR p.expires_at > now())
       AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.token_hash = $2 AND s.expires_at > now()))
FROM principals p WHERE p.id = $1
"""
# The principal's scope, computed once into the settings the policies read (migration 0018), and
# the role switched, in one round trip. set_config(..., false) lasts for the session; the pool's
# reset (RESET ROLE; RESET ALL) ends it. The scope functions are SECURITY DEFINER, so the order in
# which the list is evaluated does not matter; a province scope needs no lists.
ENTER_SCOPE = """
WITH p AS (SELECT $2::bigint AS id, parkwatch_scope_province_of($2::bigint) AS province)
SELECT set_config('parkwatch.principal', p.id::text, false),
       set_config('parkwatch.province', CASE WHEN p.province THEN 'on' ELSE 'off' END, false),
       set_config('parkwatch.sids', CASE WHEN p.province THEN '{}' ELSE
           (SELECT coalesce(array_agg(s), '{}')::text FROM parkwatch_scope_sids_of(p.id) s) END, false),
       set_config('parkwatch.parks', CASE WHEN p.province THEN '{}' ELSE
           (SELECT coalesce(array_agg(x), '{}')::text FROM parkwatch_scope_parks_of(p.id) x) END, false),
       set_config('parkwatch.listed_parks', CASE WHEN p.province THEN '{}' ELSE
           (SELECT coalesce(array_agg(x), '{}')::text FROM parkwatch_listed_parks_of(p.id) x) END, false),
       -- `readings` is the scoped view for the scoped roles (migration 0018)
       set_config('search_path', CASE WHEN $1 = 'none' THEN current_setting('search_path')
                                      ELSE 'parkwatch_scoped, public' END, false),
       set_config('role', $1, false)
FROM p
"""
RESET_QUERY_PREFIX = "RESET ROLE;\n"
# Whether the principal sees a park whole (or, with no park, the whole province): asked in SQL,
# of the same functions the policies use.
SEES_WHOLE = "SELECT parkwatch_province() OR ($1::text IS NOT NULL AND $1 = ANY (parkwatch_parks()))"
SELECT_WHOLE_PARKS = """
SELECT id FROM parks WHERE parkwatch_province() OR id = ANY (parkwatch_parks())
"""
INSERT_AUDIT = """
INSERT INTO audit_log (principal_id, principal, role, action, target, detail, address, status)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
"""

READER = "parkwatch_reader"
WRITER = "parkwatch_writer"


def _unauthenticated(detail: str, code: str = "unauthenticated") -> ApiError:
    return ApiError(401, code, detail, headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})


def presented_key(request: Request) -> str | None:
    """The API key of X-API-Key, or of `Authorization: Bearer` (what Prometheus can send)."""
    key = request.headers.get(KEY_HEADER)
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _live(row: asyncpg.Record, what: str) -> None:
    if row["revoked_at"] is not None:
        raise _unauthenticated(f"this {what} was revoked", "credentials_revoked")
    if row["expires_at"] is not None and row["expires_at"] <= row["now"]:
        raise _unauthenticated(f"this {what} expired at {row['expires_at'].isoformat()}", "credentials_expired")


class Authenticator:
    """Finds the principal of a request; remembers when each one was last marked used."""

    def __init__(self) -> None:
        self._touched: dict[int, float] = {}
        # the local viewer's principal id, when settings.DASHBOARD_LOCAL_VIEWER is on
        self.local_viewer: int | None = None

    async def enable_local_viewer(self, conn: asyncpg.Connection) -> int:
        """Find or create the local viewer's key (inspector, whole province); its secret is never shown.

        An administrator who revokes it (parkwatch keys revoke local-viewer) turns the anonymous
        view off until the setting is turned off and on again with a new key.
        """
        found = await conn.fetchval(SELECT_LOCAL_VIEWER, LOCAL_VIEWER_NAME, LOCAL_VIEWER_MAKER)
        if found is None:
            found, _secret = await create_key(
                conn, name=LOCAL_VIEWER_NAME, role=Role.INSPECTOR, scopes=[Scope("province")],
                created_by=LOCAL_VIEWER_MAKER,
            )  # fmt: skip
        self.local_viewer = int(found)
        return self.local_viewer

    async def authenticate(self, conn: asyncpg.Connection, request: Request) -> Principal:
        """The request's principal, or 401 with the reason."""
        key = presented_key(request)
        session: str | None = None
        if key is not None:
            row = await conn.fetchrow(SELECT_KEY, hash_key(key))
            if row is None:
                raise _unauthenticated("the API key is not one parkwatch issued", "invalid_credentials")
            _live(row, "key")
        else:
            token = request.cookies.get(SESSION_COOKIE)
            if token:
                session = hash_key(token)
                row = await conn.fetchrow(SELECT_SESSION, session)
                if row is None or row["session_expires"] <= row["now"]:
                    raise _unauthenticated("the session ended; sign in again", "session_expired")
                _live(row, "account")
                if request.method not in SAFE_METHODS:
                    sent = request.headers.get(CSRF_HEADER, "")
                    if not hmac.compare_digest(hash_key(sent), row["csrf_hash"]):
                        raise ApiError(403, "csrf_failed", "a signed-in change needs the session's X-CSRF-Token header")
            elif self.local_viewer is not None and is_loopback(request):
                row = await conn.fetchrow(SELECT_PRINCIPAL, self.local_viewer)
                if row is None:
                    raise _unauthenticated("the local viewer's key was deleted; sign in", "credentials_revoked")
                _live(row, "local viewer's key")
            else:
                raise _unauthenticated(
                    "sign in (POST /api/v1/session) or send an API key in X-API-Key (parkwatch keys create)"
                )
        principal = Principal(
            id=row["id"], kind=row["kind"], name=row["name"], role=Role(row["role"]),
            scopes=await load_scopes(conn, row["id"]), session=session,
        )  # fmt: skip
        now = time.monotonic()
        if now - self._touched.get(principal.id, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
            if len(self._touched) > 10_000:  # bounded: principals are few; a flood of keys is not
                self._touched.clear()
            self._touched[principal.id] = now
            await conn.execute(TOUCH, principal.id)
        return principal


def db_role(principal: Principal, method: str) -> str:
    """The database role a request runs as: the owner for administrators, else reader or writer."""
    if principal.role is Role.ADMIN:
        return "none"
    if principal.role is Role.INSPECTOR or method in SAFE_METHODS:
        return READER
    return WRITER


async def enter_scope(conn: asyncpg.Connection, principal: Principal, method: str = "GET") -> None:
    """Confine the connection to the principal's scope until the pool resets it."""
    await conn.execute(ENTER_SCOPE, db_role(principal, method), principal.id)


@asynccontextmanager
async def scoped_connection(pool: asyncpg.Pool, principal: Principal) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in the principal's scope, for work that outlives a request's connection.

    A live stream polls for minutes, an export runs long: a principal revoked or expired since the
    request began gets 401 here, so a long stream ends with its key.
    """
    async with pool.acquire() as proxy:
        conn = cast("asyncpg.Connection", proxy)
        if not await conn.fetchval(STILL_VALID, principal.id, principal.session):
            raise _unauthenticated("the key or account was revoked or expired", "credentials_revoked")
        await enter_scope(conn, principal)
        yield conn


async def reset_connection(conn: asyncpg.Connection) -> None:
    """The pool's reset: leave the request's role, then asyncpg's own reset (RESET ALL, …)."""
    await conn.execute(RESET_QUERY_PREFIX + conn.get_reset_query())


async def require_whole(conn: asyncpg.Connection, principal: Principal, park_id: str | None) -> None:
    """Refuse a figure made of a whole park or the province to one who sees only part of it.

    Reports and rankings are made from every station of their subject with the owner's
    connection (a report made under a partial scope would be wrong, and would then be stored as
    the park's); this check, in SQL on the scoped connection, comes first. A park outside the
    scope is "not found", as a station is.
    """
    if principal.role is Role.ADMIN or await conn.fetchval(SEES_WHOLE, park_id):
        return
    if park_id is None:
        raise ApiError(403, "forbidden", "the province's figures are for those whose scope is the province")
    raise ApiError(404, "unknown_park", f"park {park_id[:64]!r} is not registered")


async def whole_parks(conn: asyncpg.Connection) -> set[str]:
    """The parks the principal of the scoped connection sees whole (not an enterprise's park)."""
    return {r["id"] for r in await conn.fetch(SELECT_WHOLE_PARKS)}


def actor(principal: Principal, said: str | None) -> str:
    """Who a change is recorded as (docs/access.md#who-acted).

    A user is a person: their name. A key is a machine: `key:NAME`, or the person it says it acts
    for followed by the key in brackets, `张工 [key:NAME]`, so that a report names the person and
    the record still shows which credential vouched for it.
    """
    if principal.kind == "user":
        return principal.name
    if said and said != principal.name:
        return f"{said} [{principal.label}]"
    return principal.label


def audit_wanted(principal: Principal, method: str, path: str, query: Mapping[str, str] | None = None) -> bool:
    """Changes always (a report remade with `refresh` is one); an inspector's reads of measured data."""
    if method not in SAFE_METHODS or (query is not None and query.get("refresh", "").lower() in ("true", "1")):
        return True
    return principal.role is Role.INSPECTOR and (
        path.startswith(AUDITED_READS) or any(part in path for part in AUDITED_READ_PARTS)
    )


async def write_audit(
    conn: asyncpg.Connection,
    *,
    principal: Principal | None,
    label: str,
    action: str,
    target: str | None,
    detail: dict[str, Any],
    address: str | None,
    status: int | None,
) -> None:
    """One audit row (the connection runs as the owner: scoped roles cannot touch the log)."""
    await conn.execute(
        INSERT_AUDIT,
        principal.id if principal else None,
        label,
        principal.role.value if principal else None,
        action,
        target,
        orjson.dumps(detail, default=str).decode(),
        address,
        status,
    )


def is_loopback(request: Request) -> bool:
    """Whether the request's peer is this machine (the peer's address; forwarded headers are not trusted)."""
    host = client_address(request)
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_address(request: Request) -> str | None:
    """Where the request came from (the peer; a proxy's forwarded header is not trusted)."""
    return request.client.host if request.client else None
