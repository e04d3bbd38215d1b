"""MQTT: each notice on {prefix}/{park_id}/alerts at QoS 1, and each open alert's state retained.

`{prefix}/{park_id}/alerts/{alert_id}` holds the alert's latest document, retained, while it is
open, so a dashboard that subscribes sees what is open now; a cleared alert's retained message
is removed (an empty retained payload).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiomqtt
import orjson

from alerts.channels import DeliveryError
from alerts.messages import Notice
from parkwatch.settings import MqttTarget

CONNECT_TIMEOUT = 10.0


class Publisher:
    """One broker connection for the dispatcher, made on first use and again after a failure."""

    def __init__(self, target: MqttTarget, *, client_id: str) -> None:
        self._target = target
        self._client_id = client_id
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 (returns once the broker has acknowledged)."""
        async with self._lock:
            if self._client is None:
                client = aiomqtt.Client(
                    self._target.host,
                    self._target.port,
                    identifier=self._client_id,
                    username=self._target.username,
                    password=self._target.password,
                    timeout=CONNECT_TIMEOUT,
                )
                await client.__aenter__()
                self._client = client
            try:
                await self._client.publish(topic, payload, qos=1, retain=retain)
            except aiomqtt.MqttError:
                await self.close()
                raise

    async def close(self) -> None:
        """Disconnect (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)


async def send(_config: dict[str, Any], notice: Notice, publisher: Publisher, prefix: str) -> None:
    """Publish the notice, then the alert's retained state."""
    alert = notice.document["alert"]
    base = f"{prefix}/{alert['park_id']}/alerts"
    try:
        await publisher.publish(base, orjson.dumps(notice.document))
        state = b"" if alert["status"] == "cleared" else orjson.dumps(alert)
        await publisher.publish(f"{base}/{alert['id']}", state, retain=True)
    except (aiomqtt.MqttError, OSError) as exc:
        raise DeliveryError(f"MQTT: {exc}", retryable=True) from exc
