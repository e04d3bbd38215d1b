"""The access log (one line per request naming its key or user) and the rate-limit headers (ASGI middleware)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("api.access")


class AccessLog:
    """Logs method, path, status, duration and principal; adds the request's rate-limit headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = (scope.get("state") or {}).get("ratelimit")
                if extra:
                    present = {k.lower() for k, _ in message.get("headers", [])}
                    headers = list(message.get("headers", []))
                    headers += [
                        (k.lower().encode(), v.encode()) for k, v in extra.items() if k.lower().encode() not in present
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            principal = (scope.get("state") or {}).get("principal")
            client = scope.get("client")
            # The path without its query string: a query may name what an inspector is looking into.
            logger.info(
                "%s %s %d %.1f ms %s %s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                principal.label if principal is not None else "-",
                client[0] if client else "-",
            )
