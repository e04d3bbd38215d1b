"""Keyset paging: an opaque cursor carries the last row's key and a fingerprint of the query's filters."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

import orjson

from api.errors import ApiError


def fingerprint(*filters: Any) -> str:
    """A short digest of a query's filters: a cursor is only good for the query that issued it."""
    return hashlib.sha256(orjson.dumps(filters, default=str)).hexdigest()[:16]


def encode(fp: str, key: tuple[Any, ...]) -> str:
    """The cursor after a row with this key (datetimes travel as ISO 8601)."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(orjson.dumps([fp, *values])).decode().rstrip("=")


def decode(cursor: str, fp: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The key a cursor carries, each value read as `types` says; 400 bad_cursor when it is not ours."""
    try:
        cfp, *values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # zip(strict=True) refuses a cursor with a key of another length
        key = tuple(datetime.fromisoformat(v) if t is datetime else t(v) for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ApiError(400, "bad_cursor", "cursor is not one this API issued") from None
    if cfp != fp:
        raise ApiError(400, "bad_cursor", "cursor belongs to a query with other filters; repeat the same query")
    return key
