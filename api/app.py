"""The FastAPI application: pool lifecycle, routers and error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI

import parkwatch
from api import dashboard as pages
from api import docs_ui, errors
from api.access import Authenticator, reset_connection
from api.accesslog import AccessLog
from api.deps import audited, get_conn, require
from api.guard import Guard, error_responses
from api.livefeed import LiveFeed
from api.metrics import Metrics, MetricsMiddleware
from api.principals import Permission
from api.ratelimit import RateLimiter
from api.responses import ORJSONResponse
from api.routes import access as access_routes
from api.routes import alerts as alert_routes
from api.routes import (
    assessment,
    compliance,
    dashboard,
    dead_letters,
    events,
    exports,
    health,
    hj212,
    kpis,
    readings,
    registry,
    reports,
    solid_waste,
    statistics,
)
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# A request that runs longer than this is cancelled by PostgreSQL and answered 408 with advice
# (OpenAQ does the same at 6 s); a 10,000-row page takes well under a second.
STATEMENT_TIMEOUT_MS = 15_000
POOL_MAX = 10
HEALTH_POOL_MAX = 2
# Requests with bad credentials an address may make a minute before it is answered 429: enough
# for a person mistyping, far too few to guess a key.
FAILED_AUTH_PER_MINUTE = 30
# What every data route depends on: a principal, its scope, and its audit row (written before the
# response goes out).
GUARDED = [Depends(get_conn), Depends(audited, scope="function")]
# A health probe or a metrics scrape answers within a second or says why not.
HEALTH_STATEMENT_TIMEOUT_MS = 2_000


def create_app(settings: Settings, *, ingest: Any = None, alerts: Any = None, watchdog: Any = None) -> FastAPI:
    """Build the API; `ingest` and `alerts` are the in-process services when serve runs them too."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # min_size=0: the API starts (and /healthz answers) even while the database is down.
        app.state.pool = await asyncpg.create_pool(
            settings.DATABASE_URL,
            min_size=0,
            max_size=POOL_MAX,
            # A request's role and principal must not outlive it (api/access.py).
            reset=reset_connection,
            server_settings={
                "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                "application_name": "parkwatch-api",
            },
        )
        # /healthz and /metrics have connections of their own: under a flood of inspectors'
        # queries an orchestrator must not read a busy pool as a database that is down.
        app.state.health_pool = await asyncpg.create_pool(
            settings.DATABASE_URL,
            min_size=0,
            max_size=HEALTH_POOL_MAX,
            server_settings={
                "statement_timeout": str(HEALTH_STATEMENT_TIMEOUT_MS),
                "application_name": "parkwatch-health",
            },
        )
        app.state.livefeed = LiveFeed(settings.DATABASE_URL)
        if settings.DASHBOARD_LOCAL_VIEWER:
            async with app.state.pool.acquire() as conn:
                viewer = await app.state.authenticator.enable_local_viewer(conn)
            logger.warning(
                "dashboard: requests from this machine without a key or session read the whole province "
                "as key:local-viewer (id %d, inspector); PARKWATCH_DASHBOARD_LOCAL_VIEWER=false turns it off",
                viewer,
            )
        try:
            yield
        finally:
            await app.state.livefeed.close()
            await app.state.health_pool.close()
            await app.state.pool.close()

    app = FastAPI(
        title="parkwatch",
        version=parkwatch.__version__,
        summary="Environmental-compliance monitoring for industrial parks",
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
        # Served by parkwatch itself (api/docs_ui.py): government networks are often offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.ingest = ingest
    app.state.alerts = alerts
    app.state.watchdog = watchdog
    app.state.authenticator = Authenticator()
    app.state.ratelimiter = RateLimiter(settings.API_RATE_LIMIT)
    app.state.failed_auth = RateLimiter(FAILED_AUTH_PER_MINUTE)
    errors.install(app)
    docs_ui.install(app)
    pages.install(app)
    for module in (
        registry,
        readings,
        compliance,
        kpis,
        assessment,
        reports,
        solid_waste,
        statistics,
        alert_routes,
        events,
        dashboard,
        exports,
        hj212,
        access_routes,
    ):
        # Every data route authenticates and enters its principal's scope before it runs.
        app.include_router(module.router, responses=error_responses(), dependencies=GUARDED)
    # Refused messages are the operators of the whole system's business (bureau and administrators).
    app.include_router(
        dead_letters.router,
        responses=error_responses(),
        dependencies=[*GUARDED, require(Permission.DEAD_LETTERS)],
    )
    # No principal: health and metrics (which checks for itself), signing in.
    app.include_router(health.router, responses=error_responses())
    app.include_router(access_routes.public_router, responses=error_responses())
    app.add_middleware(Guard)
    app.add_middleware(AccessLog)
    app.state.metrics = Metrics(app.state)
    # Outermost, so that what Guard refuses is counted too.
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
