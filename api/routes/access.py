"""Signing in and out, who am I, API keys, users and the audit log (docs/access.md)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import asyncpg
import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api.access import SESSION_COOKIE, client_address, write_audit
from api.deps import ConnDep, PagerDep, PoolDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.pagemodels import Page, page
from api.paging import fingerprint
from api.principals import (
    PERMISSIONS,
    AccessError,
    Permission,
    Principal,
    Role,
    Scope,
    create_key,
    hash_key,
    hash_password,
    list_principals,
    load_scopes,
    needs_rehash,
    password_matches,
)
from api.ratelimit import RateLimiter

public_router = APIRouter(prefix="/api/v1", tags=["access"])
router = APIRouter(prefix="/api/v1", tags=["access"])

# Failed sign-ins an address may make a minute before it waits: guessing passwords is slow work.
SIGN_IN_PER_MINUTE = 10
# A hash to verify against when the user does not exist, so that the answer takes as long.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))

SELECT_USER = """
SELECT id, kind, name, role, password_hash, expires_at, revoked_at, now() AS now
FROM principals WHERE kind = 'user' AND name = $1
"""
INSERT_SESSION = """
INSERT INTO sessions (token_hash, csrf_hash, principal_id, expires_at, address) VALUES ($1, $2, $3, $4, $5)
"""
DELETE_SESSION = "DELETE FROM sessions WHERE token_hash = $1"
REVOKE_KEY = """
UPDATE principals SET revoked_at = now() WHERE kind = 'key' AND id = $1 AND revoked_at IS NULL RETURNING id
"""
DELETE_EXPIRED_SESSIONS = "DELETE FROM sessions WHERE expires_at < now()"
UPDATE_HASH = "UPDATE principals SET password_hash = $2 WHERE id = $1"
SELECT_AUDIT = """
SELECT id, at, principal, role, action, target, detail, address, status FROM audit_log
WHERE ($1::bigint IS NULL OR id < $1)
  AND ($2::text IS NULL OR principal = $2)
  AND ($3::text IS NULL OR action LIKE $3 || '%')
  AND ($4::timestamptz IS NULL OR at >= $4)
  AND ($5::timestamptz IS NULL OR at < $5)
ORDER BY id DESC LIMIT $6
"""


class SignIn(BaseModel):
    """A user's name and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ScopeItem(BaseModel):
    """One item of a scope: the province, a city, a park or a station."""

    kind: str
    value: str = ""


class WhoAmI(BaseModel):
    """The caller: name, role, scope and what the role permits."""

    kind: str
    name: str
    role: str
    scopes: list[ScopeItem]
    permissions: list[str]
    sees_secrets: bool


class SessionOut(WhoAmI):
    """A new session: send `csrf_token` as X-CSRF-Token with every change."""

    csrf_token: str
    expires_at: datetime


class KeyIn(BaseModel):
    """A key to create."""

    name: str = Field(min_length=1, max_length=64)
    role: Role
    provinces: bool = Field(default=False, description="the whole province (bureau, inspector)")
    cities: list[str] = Field(default_factory=list, max_length=100)
    parks: list[str] = Field(default_factory=list, max_length=1000)
    stations: list[str] = Field(default_factory=list, max_length=10_000)
    expires_at: datetime | None = None


class UserOut(BaseModel):
    """A user account as listed."""

    id: int
    name: str
    role: str
    scopes: list[ScopeItem]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyOut(UserOut):
    """A key as listed: its first characters, never the key."""

    prefix: str | None


class NewKey(KeyOut):
    """A new key: `key` is shown this once."""

    key: str


class AuditRow(BaseModel):
    """Who did what, when, from where, and how it ended."""

    id: int
    at: datetime
    principal: str
    role: str | None
    action: str
    target: str | None
    detail: dict[str, Any]
    address: str | None
    status: int | None


class AuditPage(Page):
    """A page of the audit log, newest first."""

    results: list[AuditRow]


def _who(principal: Principal) -> dict[str, Any]:
    return {
        "kind": principal.kind,
        "name": principal.name,
        "role": principal.role.value,
        "scopes": [{"kind": s.kind, "value": s.value} for s in principal.scopes],
        "permissions": sorted(p.value for p in PERMISSIONS[principal.role]),
        "sees_secrets": principal.sees_secrets,
    }


def _admin(principal: Principal) -> None:
    if not principal.may(Permission.ACCESS_ADMIN):
        raise ApiError(403, "forbidden", "only an administrator manages keys, users and the audit log")


def _sign_in_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "sign_in_limiter", None)
    if limiter is None:
        limiter = request.app.state.sign_in_limiter = RateLimiter(SIGN_IN_PER_MINUTE)
    return limiter


@public_router.post("/session", response_model=SessionOut, status_code=201)
async def sign_in(body: SignIn, request: Request, response: Response, pool: PoolDep, settings: SettingsDep) -> Any:
    """Sign in: a session cookie (HttpOnly, SameSite=Strict) and the CSRF token for changes."""
    address = client_address(request)
    limiter = _sign_in_limiter(request)
    # An address out of failures waits whatever it sends, the right password too: otherwise the
    # answer (429 or 201) would still tell a guess right, and each would still cost an Argon2 hash.
    locked = limiter.exhausted(address)
    if locked is not None:
        raise ApiError(429, "rate_limited", "too many failed sign-ins; wait", headers=limiter.headers(locked))
    async with pool.acquire() as proxy:
        conn = cast("asyncpg.Connection", proxy)
        row = await conn.fetchrow(SELECT_USER, body.username)
        ok = password_matches(row["password_hash"] if row else _DUMMY_HASH, body.password) and row is not None
        live = (
            row is not None
            and ok
            and row["revoked_at"] is None
            and (row["expires_at"] is None or row["expires_at"] > row["now"])
        )
        if row is None or not live:
            limiter.take(address)
            await write_audit(
                conn, principal=None, label=f"user:{body.username[:64]}", action="sign-in failed", target=None,
                detail={}, address=address, status=401,
            )  # fmt: skip
            raise ApiError(401, "invalid_credentials", "the name or the password is wrong, or the account is closed")
        principal = Principal(
            id=row["id"],
            kind="user",
            name=row["name"],
            role=Role(row["role"]),
            scopes=await load_scopes(conn, row["id"]),
        )
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = row["now"] + timedelta(hours=settings.SESSION_HOURS)
        async with conn.transaction():
            await conn.execute(DELETE_EXPIRED_SESSIONS)
            await conn.execute(INSERT_SESSION, hash_key(token), hash_key(csrf), principal.id, expires, address)
            if needs_rehash(row["password_hash"]):
                await conn.execute(UPDATE_HASH, principal.id, hash_password(body.password))
            await write_audit(
                conn, principal=principal, label=principal.label, action="sign-in", target=None, detail={},
                address=address, status=201,
            )  # fmt: skip
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(settings.SESSION_HOURS * 3600), httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    return {**_who(principal), "csrf_token": csrf, "expires_at": expires}


@router.get("/session", response_model=WhoAmI)
async def who_am_i(principal: PrincipalDep) -> Any:
    """The caller (a key or a signed-in user): role, scope and permissions."""
    return _who(principal)


@router.delete("/session", status_code=204)
async def sign_out(request: Request, response: Response, conn: ConnDep) -> Response:
    """End the session (a key has none to end)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await conn.execute("RESET ROLE")
        await conn.execute(DELETE_SESSION, hash_key(token))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _scopes(body: KeyIn) -> list[Scope]:
    out = [Scope("province")] if body.provinces else []
    out += [Scope("city", c) for c in body.cities]
    out += [Scope("park", p) for p in body.parks]
    out += [Scope("station", s) for s in body.stations]
    return out


async def _key_row(conn: asyncpg.Connection, kind: str, pid: int) -> dict[str, Any]:
    return next(k for k in await list_principals(conn, kind) if k["id"] == pid)


@router.get("/keys", response_model=list[KeyOut])
async def keys(principal: PrincipalDep, conn: ConnDep) -> Any:
    """Every API key, without the keys themselves (administrators)."""
    _admin(principal)
    return [{**k, "prefix": k["key_prefix"]} for k in await list_principals(conn, "key")]


@router.post("/keys", response_model=NewKey, status_code=201)
async def new_key(body: KeyIn, principal: PrincipalDep, conn: ConnDep) -> Any:
    """Create a key; the response holds it this once (administrators)."""
    _admin(principal)
    try:
        pid, key = await create_key(
            conn, name=body.name, role=body.role, scopes=_scopes(body), created_by=principal.label,
            expires_at=body.expires_at,
        )  # fmt: skip
    except AccessError as exc:
        raise ApiError(422, exc.code, exc.detail) from None
    row = await _key_row(conn, "key", pid)
    return {**row, "prefix": row["key_prefix"], "key": key}


@router.post("/keys/{key_id}/revoke", response_model=KeyOut)
async def revoke_key(key_id: int, principal: PrincipalDep, conn: ConnDep) -> Any:
    """Revoke a key at once (administrators)."""
    _admin(principal)
    # By its id only: `revoke` (the command line's) also takes a name or a prefix, and a key
    # named "7" is not key 7.
    if await conn.fetchval(REVOKE_KEY, key_id) is None:
        raise ApiError(404, "not_found", f"no live key with id {key_id}")
    row = await _key_row(conn, "key", key_id)
    return {**row, "prefix": row["key_prefix"]}


@router.get("/users", response_model=list[UserOut])
async def users(principal: PrincipalDep, conn: ConnDep) -> Any:
    """Every user account (administrators); `parkwatch users` creates and closes them."""
    _admin(principal)
    return await list_principals(conn, "user")


@router.get("/audit", response_model=AuditPage)
async def audit(
    principal: PrincipalDep,
    conn: ConnDep,
    pager: PagerDep,
    who: Annotated[str | None, Query(max_length=80, description="key:NAME or user:NAME")] = None,
    action: Annotated[
        str | None, Query(max_length=200, description="an action or its beginning: POST, sign-in")
    ] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    """The audit log, newest first (administrators)."""
    _admin(principal)
    fp = fingerprint("audit", who, action, since, until)
    before = pager.decode(cursor, fp, (int,))[0] if cursor else None
    rows = await conn.fetch(SELECT_AUDIT, before, who, action, since, until, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    results = [
        {**dict(r), "detail": orjson.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]} for r in rows
    ]
    nxt = pager.encode(fp, (rows[-1]["id"],)) if more and rows else None
    return page(results, limit, nxt)
