"""How failures reach API clients: a status, a machine-readable code and a human detail."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import ORJSONResponse
from ingest.store import is_unavailable

logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """One thing wrong with a request: where (e.g. query.limit) and what."""

    at: str
    message: str


class ErrorBody(BaseModel):
    """Every error the API answers: a stable code to branch on, and a sentence for people."""

    error: str
    detail: str
    problems: list[Problem] | None = None  # invalid_request: each parameter's problem


# What an error's detail may hold of a request's own values: they are hostile as often as not.
DETAIL_CHARS = 500
# HTTP errors raised below the routes (no such route, a method it has not, a body that is no
# JSON), by status.
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


class ApiError(Exception):
    """An error with an HTTP status and a stable `code` clients can branch on."""

    def __init__(self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        super().__init__(detail)


def _errors_documented_as_json(app: FastAPI) -> None:
    """Say in the OpenAPI document that errors are JSON on every route, whatever its success is.

    FastAPI files a `responses=` model under the route's own media type: /metrics's errors read as
    text/plain, though the handlers below always answer application/json.
    """
    build = app.openapi
    error_schema = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if not str(status).startswith(("4", "5")) or "application/json" in content:
                        continue
                    for media_type in [m for m, v in content.items() if v.get("schema") == error_schema]:
                        content["application/json"] = content.pop(media_type)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON errors, and document them as JSON."""
    _errors_documented_as_json(app)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> ORJSONResponse:
        return ORJSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> ORJSONResponse:
        # FastAPI's own 422 echoes every input back; ours says where and what, in the one envelope.
        problems = [
            {"at": ".".join(str(p) for p in err.get("loc", ())) or "request", "message": str(err.get("msg", ""))[:200]}
            for err in exc.errors()[:20]
        ]
        detail = "; ".join(f"{p['at']}: {p['message']}" for p in problems)[:DETAIL_CHARS]
        return ORJSONResponse({"error": "invalid_request", "detail": detail, "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return ORJSONResponse(
            {"error": code, "detail": str(exc.detail)[:DETAIL_CHARS]}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(asyncpg.QueryCanceledError)
    async def _timeout(_request: Request, _exc: asyncpg.QueryCanceledError) -> ORJSONResponse:
        return ORJSONResponse(
            {
                "error": "query_timeout",
                "detail": (
                    "the query took too long; narrow the time range or the stations, or page with a smaller limit"
                ),
            },
            status_code=408,
        )

    async def _bad_parameter(_request: Request, exc: Exception) -> ORJSONResponse:
        # A value the database cannot take (an integer beyond 64 bits, a date it cannot hold):
        # the request's fault, said as such, never a 500.
        return ORJSONResponse(
            {"error": "bad_parameter", "detail": f"a parameter is out of range for the database: {exc}"[:300]},
            status_code=400,
        )

    async def _outside_scope(request: Request, exc: Exception) -> ORJSONResponse:
        # The database refused: a row the change would write lies outside the caller's scope (a
        # row-level security check), or a table the caller's role may not touch. The routes check
        # what they can first; this is the floor under them, never a 500, and said in the log.
        logger.warning("the database refused %s %s: %s", request.method, request.url.path, exc)
        return ORJSONResponse(
            {"error": "forbidden", "detail": "outside your scope, or not for your role"}, status_code=403
        )

    app.add_exception_handler(asyncpg.InsufficientPrivilegeError, _outside_scope)
    app.add_exception_handler(asyncpg.DataError, _bad_parameter)
    app.add_exception_handler(OverflowError, _bad_parameter)

    async def _unavailable(_request: Request, exc: Exception) -> ORJSONResponse:
        if not is_unavailable(exc):
            logger.error("unhandled error", exc_info=exc)
            return ORJSONResponse({"error": "internal", "detail": "internal error"}, status_code=500)
        return ORJSONResponse(
            {"error": "database_unavailable", "detail": "the database is unreachable; try again shortly"},
            status_code=503,
        )

    for exc_type in (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
        app.add_exception_handler(exc_type, _unavailable)
