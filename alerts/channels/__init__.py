"""Delivering a notice through a channel: one module per kind, one entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from alerts.messages import Notice


class DeliveryError(Exception):
    """A notice was not delivered; `retryable` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


@dataclass
class Context:
    """What channels share: one HTTP client, the MQTT publisher, the topic prefix."""

    http: httpx.AsyncClient
    mqtt: Any  # alerts.channels.mqtt.Publisher; typed loosely to keep this module import-light
    topic_prefix: str


async def deliver(kind: str, config: dict[str, Any], notice: Notice, ctx: Context) -> None:
    """Send one notice by a channel of `kind`; raises DeliveryError."""
    from alerts.channels import email, mqtt, robots, sms, webhook  # noqa: PLC0415 - each kind loads its own

    if kind == "webhook":
        await webhook.send(config, notice, ctx.http)
    elif kind in ("dingtalk", "wecom", "feishu"):
        await robots.send(kind, config, notice, ctx.http)
    elif kind == "sms":
        await sms.send(config, notice, ctx.http)
    elif kind == "email":
        await email.send(config, notice)
    elif kind == "mqtt":
        await mqtt.send(config, notice, ctx.mqtt, ctx.topic_prefix)
    else:
        raise DeliveryError(f"unknown channel kind {kind!r}", retryable=False)


def http_failure(response: httpx.Response) -> DeliveryError:
    """How an HTTP error status reads: 429 and 5xx may pass, other 4xx will not."""
    retryable = response.status_code == 429 or response.status_code >= 500
    return DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}", retryable=retryable)


async def post(http: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST, turning transport failures into a retryable DeliveryError."""
    try:
        return await http.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
