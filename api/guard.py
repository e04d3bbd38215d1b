"""What reaches the routes: bodies of a bounded size, and no NUL character anywhere (an ASGI middleware).

PostgreSQL's text cannot hold NUL, so a request carrying one would fail at the database with a
500; a body of 20 MB would be parsed whole before any item limit. Both are refused here, with the
API's error envelope: 400 `bad_parameter`, 413 `too_large`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest body any route takes: a /evaluate of 1,000 questions is ~300 kB.
MAX_BODY_BYTES = 1024 * 1024


class _TooLargeError(Exception):
    pass


async def _reply(send: Send, status: int, code: str, detail: str) -> None:
    body = orjson.dumps({"error": code, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Refuses NUL in the path, query or body, and bodies over MAX_BODY_BYTES, before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or b""
        query = scope.get("query_string") or b""
        if b"%00" in raw_path or b"%00" in query or b"\x00" in query or "\x00" in scope.get("path", ""):
            await _reply(send, 400, "bad_parameter", "a NUL character (%00) is not allowed in a path or a parameter")
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _reply(send, 413, "too_large", f"the request body is limited to {MAX_BODY_BYTES} bytes")
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except _TooLargeError:
            await _reply(send, 413, "too_large", f"the request body is limited to {MAX_BODY_BYTES} bytes")
            return
        if b"\\u0000" in body or b"\x00" in body:
            await _reply(send, 400, "bad_parameter", "a NUL character (\\u0000) is not allowed in the body")
            return
        await self.app(scope, _replay(body), send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def error_response(description: str) -> dict[str, Any]:
    """An error status in the error envelope, for the OpenAPI document (a route's own, as `responses=`)."""
    from api.errors import ErrorBody  # noqa: PLC0415 - errors imports nothing of this module

    return {"model": ErrorBody, "description": description}


def error_responses() -> dict[int | str, dict[str, Any]]:
    """The error statuses every route may answer, for the OpenAPI document."""
    described = {
        400: "a parameter the API cannot use: bad_parameter, bad_cursor, bad_time",
        401: "unauthenticated, invalid_credentials, credentials_expired, credentials_revoked, session_expired",
        403: "forbidden (the role may not), csrf_failed",
        404: "what the request names does not exist, or is outside the caller's scope",
        408: "query_timeout: the query took too long",
        413: "too_large: the body is over 1 MiB",
        429: "rate_limited: over the requests a minute of the key or user (Retry-After says when)",
        422: "invalid_request (each parameter's problem listed), or a code of the route's own",
        503: "database_unavailable",
    }
    return {status: error_response(text) for status, text in described.items()}
