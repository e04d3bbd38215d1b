"""The MQTT side of ingest: a persistent QoS 1 session whose messages we acknowledge ourselves.

Why manual acknowledgement: aiomqtt 2.x lets paho send the PUBACK as soon as a message is
received, so a reading still in our memory when the process dies is lost, since the broker
believes it was delivered (aiomqtt issue #345). paho-mqtt 2.x, which aiomqtt wraps, has a
manual-ack mode; AckingClient turns it on for the paho client aiomqtt owns and exposes ack().
The writer calls it only after a batch is committed in PostgreSQL or fsynced to the spool, in
the order the messages arrived (MQTT 5 §4.6 wants PUBACKs in receive order).

Why MQTT 5: with acknowledgements withheld until commit, the number of unacknowledged messages
the broker may send us is our memory bound. MQTT 5's Receive Maximum (sent in CONNECT) makes
the broker stop at that many, whatever its own max_inflight_messages says; a v3.1.1 client gets
max_inflight_messages (20 by default), which would pace ingest to 20 messages per commit.
Messages beyond the window wait in the broker's queue, bounded by max_queued_messages in
deploy/mosquitto.conf; that is the back-pressure, and nothing in this process grows without
bound.

Why a fixed client id, clean_start=False and a session expiry: the broker keeps the session,
with everything not yet acknowledged, across a crash or restart of this process and redelivers
it on reconnect. Redelivered messages that were already written are duplicates the store
ignores (first value wins; see ingest/store.py). Acks are sent only on the connection that
received the message: a packet id means nothing on a later connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.writer import backoff
from parkwatch.settings import MqttTarget

logger = logging.getLogger(__name__)

# How long the broker keeps our session (and the messages queued for it) while we are away. A
# week covers any planned downtime; max_queued_messages bounds what it holds meanwhile.
SESSION_EXPIRY = 7 * 24 * 3600
KEEPALIVE = 30
# Reconnect backoff: start fast (a broker restart takes a second), cap at 30 s.
RECONNECT_BASE = 0.5
RECONNECT_CAP = 30.0


class AckingClient(aiomqtt.Client):
    """aiomqtt.Client whose QoS 1 messages are acknowledged by the application via ack()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The only reach into aiomqtt's internals: its paho client, to enable manual acks.
        self._client.manual_ack_set(True)

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK for a message received on this connection."""
        if qos > 0:
            self._client.ack(mid, qos)


def connect_properties(receive_maximum: int) -> Properties:
    """CONNECT properties of the ingest session."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY
    props.ReceiveMaximum = receive_maximum
    return props


def make_client(target: MqttTarget, *, client_id: str, receive_maximum: int) -> AckingClient:
    """A persistent-session MQTT 5 client for the ingest."""
    return AckingClient(
        target.host,
        target.port,
        identifier=client_id,
        username=target.username,
        password=target.password,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=connect_properties(receive_maximum),
        keepalive=KEEPALIVE,
        tls_context=ssl.create_default_context() if target.tls else None,
    )


Handler = Callable[[AckingClient, aiomqtt.Message], Awaitable[None]]


class Receiver:
    """Keeps the session connected and feeds each message to the handler, in order."""

    def __init__(
        self,
        target: MqttTarget,
        *,
        client_id: str,
        subscriptions: list[str],
        receive_maximum: int,
        handler: Handler,
    ) -> None:
        self._target = target
        self._client_id = client_id
        self._subscriptions = subscriptions
        self._receive_maximum = receive_maximum
        self._handler = handler
        self.current: AckingClient | None = None
        self.connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._release = asyncio.Event()
        self._stopped_consuming = asyncio.Event()
        self._idle = True

    def is_current(self, client: object) -> bool:
        """True when acks for this client's messages can still be sent."""
        return client is not None and client is self.current

    async def run(self) -> None:
        """Connect, subscribe and consume until stop() is called; reconnect with backoff."""
        attempt = 0
        while not self._stop.is_set():
            client = make_client(self._target, client_id=self._client_id, receive_maximum=self._receive_maximum)
            try:
                async with client:
                    attempt = 0
                    self.current = client
                    for topic in self._subscriptions:
                        await client.subscribe(topic, qos=1)
                    logger.info("subscribed to %s as %s", ", ".join(self._subscriptions), self._client_id)
                    self.connected.set()
                    try:
                        await self._consume_until_stopped(client)
                    finally:
                        self.connected.clear()
                        if self._stop.is_set():
                            self._stopped_consuming.set()
                    # Stopping: keep the connection until the writer has acknowledged what it
                    # holds, so a clean shutdown leaves nothing to redeliver.
                    await self._release.wait()
                    self.current = None
            except aiomqtt.MqttError as exc:
                self.current = None
                delay = backoff(attempt, base=RECONNECT_BASE, cap=RECONNECT_CAP)
                attempt += 1
                logger.warning("MQTT connection lost or refused (%s); retrying in %.1fs", exc, delay)
                try:
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
                except TimeoutError:
                    pass
            finally:
                self.current = None
        self._stopped_consuming.set()

    async def _consume_until_stopped(self, client: AckingClient) -> None:
        consumer = asyncio.create_task(self._consume(client), name="ingest.mqtt.consume")
        stopper = asyncio.create_task(self._stop.wait(), name="ingest.mqtt.stop-wait")
        try:
            await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # re-raise MqttError (connection lost)
                return
            # Stop requested. If the consumer is waiting for the next message, cancel it; if it
            # is handing one to the batcher, let it finish so no message is half-taken.
            if self._idle:
                consumer.cancel()
            try:
                await consumer
            except asyncio.CancelledError:
                if not consumer.cancelled():
                    raise
        finally:
            stopper.cancel()
            if not consumer.done():
                consumer.cancel()

    async def _consume(self, client: AckingClient) -> None:
        messages = client.messages.__aiter__()
        while not self._stop.is_set():
            self._idle = True
            message = await anext(messages)
            self._idle = False
            await self._handler(client, message)
        self._idle = True

    async def stop(self) -> None:
        """Stop taking messages and wait until no message is being handled.

        The connection stays open until release(), so acknowledgements can still be sent.
        """
        self._stop.set()
        if self.connected.is_set():
            await self._stopped_consuming.wait()

    def release(self) -> None:
        """Let the stopped receiver disconnect."""
        self._release.set()
