"""Dependencies shared by the routes: the connection pool and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

import asyncpg
from fastapi import Depends, Request

from api.paging import Pager, shared_secret
from parkwatch.settings import Settings


def get_pool(request: Request) -> asyncpg.Pool:
    """The application's asyncpg pool."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_settings(request: Request) -> Settings:
    """The settings the application was started with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_conn(pool: Annotated[asyncpg.Pool, Depends(get_pool)]) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one request."""
    async with pool.acquire() as conn:
        # The pool hands out a proxy that forwards every Connection method.
        yield cast("asyncpg.Connection", conn)


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


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
PagerDep = Annotated[Pager, Depends(get_pager)]
ConnDep = Annotated[asyncpg.Connection, Depends(get_conn)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
