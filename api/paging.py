"""Keyset paging: an opaque cursor carries the last row's key and the query's filters, signed.

The signature (HMAC-SHA256 with a server secret) makes a cursor tamper-proof: one edited by hand,
or made for other filters, is refused with 400 `bad_cursor` instead of reaching the database.
The secret is PARKWATCH_API_SECRET, or one generated once and kept in the database, so that every
API process and every restart reads the cursors of the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from api.errors import ApiError

# The secret every API process shares when PARKWATCH_API_SECRET is not set.
ENSURE_SECRET = "INSERT INTO parkwatch_meta (key, value) VALUES ('api_secret', $1) ON CONFLICT (key) DO NOTHING"  # noqa: S105 - SQL
SELECT_SECRET = "SELECT value FROM parkwatch_meta WHERE key = 'api_secret'"  # noqa: S105 - SQL


async def shared_secret(conn: asyncpg.Connection) -> str:
    """The database's API secret, created on first use."""
    await conn.execute(ENSURE_SECRET, secrets.token_urlsafe(32))
    value: str = await conn.fetchval(SELECT_SECRET)
    return value


def fingerprint(*filters: Any) -> str:
    """A short digest of a query's filters: a cursor is only good for the query that issued it."""
    return hashlib.sha256(orjson.dumps(filters, default=str)).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Pager:
    """Issues and reads signed cursors."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:16])

    def encode(self, fp: str, key: tuple[Any, ...], window: tuple[datetime, datetime] | None = None) -> str:
        """The cursor after a row with this key; `window` is the time span the first page resolved.

        A query without an explicit end reads up to "now"; its later pages keep the first page's
        span, carried in the cursor, or a row could be skipped or shown twice between pages.
        """
        span = [window[0].isoformat(), window[1].isoformat()] if window else [None, None]
        values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
        body = _b64(orjson.dumps([fp, *span, *values]))
        return f"{body}.{self._sign(body)}"

    def _open(self, cursor: str, fp: str) -> list[Any]:
        body, _, signature = cursor.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued")
        try:
            doc = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued") from None
        if not isinstance(doc, list) or len(doc) < 3:
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued")
        if doc[0] != fp:
            raise ApiError(400, "bad_cursor", "cursor belongs to a query with other filters; repeat the same query")
        return doc

    def window(self, cursor: str, fp: str) -> tuple[datetime, datetime] | None:
        """The time span the cursor's first page resolved, if it had one."""
        lo, hi = self._open(cursor, fp)[1:3]
        if lo is None or hi is None:
            return None
        try:
            return datetime.fromisoformat(lo), datetime.fromisoformat(hi)
        except (TypeError, ValueError):
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued") from None

    def decode(self, cursor: str, fp: str, types: tuple[type, ...]) -> tuple[Any, ...]:
        """The key a cursor carries, each value read as `types` says; 400 bad_cursor when it is not ours."""
        values = self._open(cursor, fp)[3:]
        try:
            # zip(strict=True) refuses a cursor with a key of another length
            return tuple(
                datetime.fromisoformat(v) if t is datetime else t(v) for t, v in zip(types, values, strict=True)
            )
        except (ValueError, TypeError):
            raise ApiError(400, "bad_cursor", "cursor is not one this API issued") from None
