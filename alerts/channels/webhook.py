"""Webhooks: the notice as JSON, signed with HMAC-SHA256 over the timestamp and body, with an idempotency key.

The receiver checks `X-Parkwatch-Signature: sha256=<hex>` against
HMAC-SHA256(secret, "<X-Parkwatch-Timestamp>." + body), refuses old timestamps, and keeps the
`Idempotency-Key` it has seen: a notice is sent again after a crash at the wrong moment, never
lost (docs/alerts.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson

from alerts.channels import http_failure, post
from alerts.messages import Notice


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Parkwatch-Signature."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def send(config: dict[str, Any], notice: Notice, http: httpx.AsyncClient) -> None:
    """POST the notice's JSON document."""
    body = orjson.dumps(notice.document)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": str(notice.document["idempotency_key"]),
        "X-Parkwatch-Timestamp": timestamp,
        "X-Parkwatch-Event": str(notice.document["event"]["kind"]),
    }
    if config.get("secret"):
        headers["X-Parkwatch-Signature"] = signature(str(config["secret"]), timestamp, body)
    response = await post(http, str(config["url"]), content=body, headers=headers)
    if not response.is_success:
        raise http_failure(response)
