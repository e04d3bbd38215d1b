"""Dependencies shared by the routes: the request's scoped connection, its principal, the settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyCookie, APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.access import SESSION_COOKIE, audit_wanted, client_address, enter_scope, write_audit
from api.errors import ApiError
from api.paging import Pager, shared_secret
from api.principals import Permission, Principal
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# What an audit row keeps of a request's query string.
AUDIT_QUERY_CHARS = 1000


def get_pool(request: Request) -> asyncpg.Pool:
    """The application's asyncpg pool (unscoped: for sign-in and the routes without a principal)."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_settings(request: Request) -> Settings:
    """The settings the application was started with."""
    settings: Settings = request.app.state.settings
    return settings


async def authenticate(conn: asyncpg.Connection, request: Request) -> Principal:
    """The request's principal (api/access.py), wrong keys limited per address: 429 past the limit."""
    try:
        return cast("Principal", await request.app.state.authenticator.authenticate(conn, request))
    except ApiError as exc:
        # Guessing keys costs a lookup each: an address that keeps failing waits, as a failed
        # sign-in does (api/routes/access.py).
        if exc.code == "invalid_credentials":
            quota = request.app.state.failed_auth.take(client_address(request))
            if not quota.allowed:
                raise ApiError(
                    429, "rate_limited", "too many requests with bad credentials; wait",
                    headers=request.app.state.failed_auth.headers(quota),
                ) from None  # fmt: skip
        raise


# Declared so that OpenAPI (and /docs's Authorize button) knows the two ways in; reading them is
# api/access.py's job, which also takes the key as a Bearer token.
_KEY_SCHEME = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (parkwatch keys create)")
_SESSION_SCHEME = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="a session (POST /api/v1/session)")


async def get_conn(
    request: Request,
    pool: Annotated[asyncpg.Pool, Depends(get_pool)],
    _key: Annotated[str | None, Security(_KEY_SCHEME)] = None,
    _session: Annotated[str | None, Security(_SESSION_SCHEME)] = None,
) -> AsyncIterator[asyncpg.Connection]:
    """The request's connection: its principal authenticated, rate-limited and confined to its scope.

    Every route with data depends on this (app.py adds it to their routers), so no query of a
    request runs before the principal is known, nor outside its scope (docs/access.md).
    """
    async with pool.acquire() as proxy:
        # The pool hands out a proxy that forwards every Connection method.
        conn = cast("asyncpg.Connection", proxy)
        principal = await authenticate(conn, request)
        request.state.principal = principal
        limiter = request.app.state.ratelimiter
        quota = limiter.take(principal.id)
        request.state.ratelimit = limiter.headers(quota)
        if not quota.allowed:
            raise ApiError(
                429, "rate_limited",
                f"over {limiter.limit} requests a minute for this key or user; retry in {quota.retry_after_s} s",
                headers=request.state.ratelimit,
            )  # fmt: skip
        await enter_scope(conn, principal, request.method)
        yield conn


async def audited(
    request: Request,
    _conn: Annotated[asyncpg.Connection, Depends(get_conn)],
    pool: Annotated[asyncpg.Pool, Depends(get_pool)],
) -> AsyncIterator[None]:
    """Write the request's audit row, if it needs one, before its response is sent (scope "function").

    Before, not after: a client that reads the log right after a change finds the change in it.
    """
    principal: Principal = request.state.principal
    status = 200
    try:
        yield
    except ApiError as exc:
        status = exc.status
        raise
    except StarletteHTTPException as exc:
        status = exc.status_code
        raise
    except RequestValidationError:
        status = 422
        raise
    except asyncpg.QueryCanceledError:
        status = 408
        raise
    except BaseException:
        status = 500
        raise
    finally:
        if audit_wanted(principal, request.method, request.url.path, request.query_params):
            await _audit(pool, request, principal, status)


async def _audit(pool: asyncpg.Pool, request: Request, principal: Principal, status: int) -> None:
    route = request.scope.get("route")
    action = f"{request.method} {getattr(route, 'path', request.url.path)}"
    try:
        # Its own connection, as the owner: the request's stays in its scope, for a response still
        # to be streamed from it (an export) — an earlier RESET ROLE here let one run unscoped.
        async with pool.acquire() as owner:
            await write_audit(
                cast("asyncpg.Connection", owner),
                principal=principal,
                label=principal.label,
                action=action,
                target=request.url.path,
                detail={"query": str(request.url.query)[:AUDIT_QUERY_CHARS]} if request.url.query else {},
                address=client_address(request),
                status=status,
            )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # The request's own outcome stands; the failure to record it is said loudly.
        logger.error("audit row not written for %s by %s: %s", action, principal.label, type(exc).__name__)


def get_principal(request: Request, _conn: Annotated[asyncpg.Connection, Depends(get_conn)]) -> Principal:
    """The authenticated principal of the request."""
    principal: Principal = request.state.principal
    return principal


async def get_pager(request: Request, pool: Annotated[asyncpg.Pool, Depends(get_pool)]) -> Pager:
    """The signer of cursors, its secret read (or made) once per process."""
    pager: Pager | None = getattr(request.app.state, "pager", None)
    if pager is None:
        settings: Settings = request.app.state.settings
        if settings.API_SECRET:
            secret = settings.API_SECRET
        else:
            async with pool.acquire() as conn:
                secret = await shared_secret(cast("asyncpg.Connection", conn))
        pager = request.app.state.pager = Pager(secret)
    return pager


def require(permission: Permission) -> Any:
    """A route dependency: 403 unless the principal's role grants `permission`."""

    async def _check(principal: Annotated[Principal, Depends(get_principal)]) -> None:
        if not principal.may(permission):
            raise ApiError(403, "forbidden", f"the role {principal.role} may not do this ({permission})")

    _check.permission = permission  # type: ignore[attr-defined]  # read by the route census test
    return Depends(_check)


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
PagerDep = Annotated[Pager, Depends(get_pager)]
ConnDep = Annotated[asyncpg.Connection, Depends(get_conn)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
