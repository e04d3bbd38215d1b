"""The ingest's MQTT session: QoS 1, persistent, acknowledged only once readings are durable.

Why not aiomqtt here (it is used everywhere else): aiomqtt 2.x has paho send each PUBACK as
soon as a message is received (aiomqtt issue #345), so a reading still in our memory when the
process dies is lost, the broker believing it was delivered. paho-mqtt 2.x, which aiomqtt
wraps, has a manual-ack mode. `Subscriber` is a small asyncio adapter over paho that uses it:
the writer calls ack() only after a batch is committed in PostgreSQL or fsynced to the spool,
in the order the messages arrived (MQTT 3.1.1 §4.6 wants PUBACKs in receive order). It is also
several times cheaper per message than aiomqtt's iterator (measured on this machine: 79 µs of
CPU per message against 152 µs for aiomqtt with MQTT 3.1.1 and 227 µs with MQTT 5, whose
per-packet property parsing in paho is the costliest step).

Back-pressure and the memory bound: messages wait in `inbox`; above INBOX_HIGH the socket is
no longer read, so TCP flow control holds the broker back (QoS 0 included), and reading
resumes below INBOX_LOW. QoS 1 messages also stop at the broker's in-flight window for us
(`max_inflight_messages` in deploy/mosquitto.conf, sized so the window spans a few batches):
unacknowledged messages are never more than that window, whatever the load.

Why a fixed client id and clean_session=False: the broker keeps the session, with everything
not yet acknowledged, across a crash or restart of this process, and redelivers it on
reconnect. Redelivered messages that were already written are duplicates the store ignores
(first value wins; see ingest/store.py). Acks are sent only on the connection that received
the message: a packet id means nothing on a later connection.

Several ingest instances share the readings through a shared subscription ($share/<group>/…,
docs/scale.md): the broker hands each message to one member, and goes on queueing a member's
share in its session while it is away, stopped or killed (measured on Mosquitto 2.0), exactly as
for a lone ingest. Leaving the group is deliberate, when an instance is retired: it
unsubscribes, drains what the broker had already queued for it, acknowledges, and only then
disconnects; were every member to leave on a plain stop, what stations sent during a restart
would go to no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from parkwatch.retry import backoff
from parkwatch.settings import MqttTarget

logger = logging.getLogger(__name__)

KEEPALIVE = 30
# How long to wait for CONNACK / SUBACK before giving up on a connection attempt.
HANDSHAKE_TIMEOUT = 10.0
# Stop reading the socket above this many undelivered messages, resume below the low mark. The
# high mark is above the broker's in-flight window (4,000 in deploy/mosquitto.conf) so QoS 1
# traffic alone never pauses us; it bounds QoS 0 floods and brokers configured otherwise.
INBOX_HIGH = 6000
INBOX_LOW = 3000
# Packets read per readable event: paho reads one packet per loop_read(); looping avoids one
# event-loop round trip per message.
READ_BURST = 256
# Reconnect backoff: start fast (a broker restart takes a second), cap at 30 s.
RECONNECT_BASE = 0.5
RECONNECT_CAP = 30.0
# A shared-group member reconnects sooner: Mosquitto 2.0 forgets shared subscriptions over a
# restart of its own, and drops what stations send until a member subscribes again
# (docs/scale.md#caveats), so the gap is the reconnect delay.
RECONNECT_CAP_SHARED = 1.0
# Retiring a session: after UNSUBACK the broker still sends what it had queued for us, a
# window at a time as we acknowledge. The drain ends once nothing has arrived for LEAVE_QUIET (a
# batch closes within 0.1 s and commits in tens of ms, ingest/batcher.py, so a second of silence
# means the queue is empty), or after LEAVE_TIMEOUT (under the ingest's 30 s shutdown grace):
# what is left then waits in the session for this client id to come back.
LEAVE_QUIET = 1.0
LEAVE_TIMEOUT = 20.0


def shared_subscription(group: str | None, topic: str) -> str:
    """The topic filter as a member of the shared group, or as is without one."""
    return topic if group is None else f"$share/{group}/{topic}"


class MqttError(Exception):
    """The MQTT connection could not be made or was lost; `rc` is paho's code when known."""

    def __init__(self, message: str, rc: int | None = None) -> None:
        self.rc = rc
        super().__init__(message)


class Subscriber:
    """One connection of the ingest's persistent session, driven by the asyncio loop."""

    def __init__(self, target: MqttTarget, *, client_id: str) -> None:
        self._target = target
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        context = target.ssl_context()
        if context is not None:
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        self._client = client
        self.inbox: deque[paho.MQTTMessage] = deque()
        self._arrived = asyncio.Event()
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._disconnected: asyncio.Future[None] = self._loop.create_future()
        self._subscribes: dict[int, asyncio.Future[None]] = {}
        self._fd: int | None = None
        self._paused = False
        self._received = 0
        self._misc: asyncio.Task[None] | None = None
        self._closing = False
        self.session_present = False  # the CONNACK's: the broker still had our session

    # -- paho callbacks (all run on the event loop thread, except socket_open: see connect) --

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, _props: Any) -> None:
        if self._connected.done():
            return
        self.session_present = bool(getattr(flags, "session_present", False))
        if rc.is_failure:
            self._connected.set_exception(MqttError(f"connection refused: {rc}", int(rc.value)))
        else:
            self._connected.set_result(None)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
        error = MqttError(f"disconnected: {rc}", int(rc.value))
        if not self._connected.done():
            self._connected.set_exception(error)
        if not self._disconnected.done():
            if self._closing:
                self._disconnected.set_result(None)
            else:
                self._disconnected.set_exception(error)
        self._arrived.set()  # wake a consumer waiting on an empty inbox

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _props: Any) -> None:
        future = self._subscribes.pop(mid, None)
        if future is None or future.done():
            return
        if any(code.is_failure for code in codes):
            future.set_exception(MqttError(f"subscription refused: {codes}"))
        else:
            future.set_result(None)

    def _on_unsubscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _props: Any) -> None:
        future = self._subscribes.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self._received += 1
        self.inbox.append(message)
        self._arrived.set()

    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        # Called from the executor thread that runs connect(): hand over to the loop.
        self._loop.call_soon_threadsafe(self._attach, sock.fileno())

    def _attach(self, fd: int) -> None:
        self._fd = fd
        self._loop.add_reader(fd, self._on_readable)
        self._misc = self._loop.create_task(self._misc_loop(), name="ingest.mqtt.keepalive")

    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        fd = sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._fd = None
        if self._misc is not None:
            self._misc.cancel()

    def _on_socket_register_write(self, _c: Any, _u: Any, sock: Any) -> None:
        # Every PUBACK registers a write; on the loop's own thread (all but the CONNECT), add
        # the writer directly rather than waking the loop through its self-pipe.
        if threading.get_ident() == self._loop_thread:
            self._loop.add_writer(sock.fileno(), self._client.loop_write)
        else:
            self._loop.call_soon_threadsafe(self._loop.add_writer, sock.fileno(), self._client.loop_write)

    def _on_socket_unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self._loop.remove_writer(sock.fileno())

    def _on_readable(self) -> None:
        try:
            for _ in range(READ_BURST):
                before = self._received
                if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._received == before:
                    break
                if len(self.inbox) >= INBOX_HIGH:
                    self._pause()
                    break
        except Exception as exc:
            if not self._disconnected.done():
                self._disconnected.set_exception(MqttError(f"connection lost: {exc}"))
            self._arrived.set()

    def _pause(self) -> None:
        if not self._paused and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._paused = True

    def _resume(self) -> None:
        if self._paused and self._fd is not None:
            self._loop.add_reader(self._fd, self._on_readable)
            self._paused = False
            self._on_readable()  # data may already be waiting

    async def _misc_loop(self) -> None:
        # paho's keepalive pings and timeouts
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 - a timer, not a wait
            await asyncio.sleep(1)

    # -- public ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection and wait for CONNACK."""
        try:
            # connect() blocks on the TCP handshake; run it off the loop.
            await self._loop.run_in_executor(
                None, self._client.connect, self._target.host, self._target.port, KEEPALIVE
            )
        except OSError as exc:
            raise MqttError(f"cannot connect to {self._target.host}:{self._target.port}: {exc}") from None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await self._connected
        except TimeoutError:
            self._client.disconnect()
            raise MqttError("no CONNACK from the broker") from None

    async def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for SUBACK."""
        rc, mid = self._client.subscribe(topic, qos=1)
        await self._acknowledged(rc, mid, "subscribe", "SUBACK")

    async def unsubscribe(self, topics: list[str]) -> None:
        """Unsubscribe and wait for UNSUBACK."""
        rc, mid = self._client.unsubscribe(topics)
        await self._acknowledged(rc, mid, "unsubscribe", "UNSUBACK")

    async def _acknowledged(self, rc: MQTTErrorCode, mid: int | None, what: str, reply: str) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"{what} failed: {rc}", int(rc))
        future = self._subscribes[mid] = self._loop.create_future()
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await asyncio.wait({future, self._disconnected}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise MqttError(f"no {reply} from the broker") from None
        if self._disconnected.done():
            self._disconnected.result()
        future.result()

    @property
    def received(self) -> int:
        """Messages received on this connection so far."""
        return self._received

    async def take(self, limit: int) -> list[paho.MQTTMessage]:
        """Wait for messages and return up to `limit` of them, oldest first.

        Raises MqttError once the connection is lost and the inbox is drained.
        """
        while not self.inbox:
            if self._disconnected.done():
                self._disconnected.result()
                raise MqttError("disconnected")
            self._arrived.clear()
            await self._arrived.wait()
        n = min(limit, len(self.inbox))
        batch = [self.inbox.popleft() for _ in range(n)]
        if len(self.inbox) <= INBOX_LOW:
            self._resume()
        return batch

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK for a message received on this connection."""
        if qos > 0 and not self._disconnected.done():
            self._client.ack(mid, qos)

    @property
    def alive(self) -> bool:
        """True while the connection is up."""
        return self._connected.done() and not self._connected.exception() and not self._disconnected.done()

    async def close(self) -> None:
        """Disconnect cleanly (the session and anything unacknowledged stay with the broker)."""
        self._closing = True
        if self._disconnected.done():
            return
        self._client.disconnect()
        with contextlib.suppress(TimeoutError, MqttError):
            async with asyncio.timeout(5):
                await self._disconnected
        if self._misc is not None:
            self._misc.cancel()


Handler = Callable[[Subscriber, paho.MQTTMessage], Awaitable[None]]
# Messages handed to the handler per wake-up; bounds how long one pass holds the loop.
TAKE_LIMIT = 500


class Receiver:
    """Keeps the session connected and feeds each message to the handler, in order."""

    def __init__(
        self,
        target: MqttTarget,
        *,
        client_id: str,
        subscriptions: list[str],
        handler: Handler,
        on_session_lost: Callable[[], None] | None = None,
        had_session: bool = False,
        leave_on_stop: bool = False,
    ) -> None:
        self._target = target
        # Whether the broker should still hold our session: after the first connection, always;
        # before it, if this ingest ran here before (the caller knows).
        self._had_session = had_session
        self._on_session_lost = on_session_lost
        self._client_id = client_id
        self._subscriptions = subscriptions
        # A retired session unsubscribes before it stops (see the module's docstring).
        self._leave_on_stop = leave_on_stop
        self._handler = handler
        self.current: Subscriber | None = None
        self.connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._release = asyncio.Event()
        self._stopped_consuming = asyncio.Event()
        self._idle = True

    def is_current(self, subscriber: object) -> bool:
        """True when acks for this subscriber's messages can still be sent."""
        return subscriber is not None and subscriber is self.current

    async def run(self) -> None:
        """Connect, subscribe and consume until stop() is called; reconnect with backoff."""
        attempt = 0
        while not self._stop.is_set():
            sub = Subscriber(self._target, client_id=self._client_id)
            try:
                await sub.connect()
                for topic in self._subscriptions:
                    await sub.subscribe(topic)
                attempt = 0
                self.current = sub
                if self._had_session and not sub.session_present:
                    # A broker restarted without its persistence, or crashed before saving it,
                    # routed what stations sent meanwhile to no one (docs/storage.md).
                    logger.warning(
                        "the broker no longer had the session of %s: messages stations sent while the "
                        "ingest was away may have been dropped by the broker",
                        self._client_id,
                    )
                    if self._on_session_lost is not None:
                        self._on_session_lost()
                self._had_session = True
                logger.info("subscribed to %s as %s", ", ".join(self._subscriptions), self._client_id)
                self.connected.set()
                try:
                    await self._consume_until_stopped(sub)
                finally:
                    self.connected.clear()
                    if self._stop.is_set():
                        self._stopped_consuming.set()
                # Stopping: keep the connection until the writer has acknowledged what it
                # holds, so a clean shutdown leaves nothing to redeliver.
                await self._release.wait()
                await sub.close()
            except MqttError as exc:
                shared = any(topic.startswith("$share/") for topic in self._subscriptions)
                delay = backoff(attempt, base=RECONNECT_BASE, cap=RECONNECT_CAP_SHARED if shared else RECONNECT_CAP)
                attempt += 1
                logger.warning("MQTT connection lost or refused (%s); retrying in %.1fs", exc, delay)
                await sub.close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
            finally:
                self.current = None
        self._stopped_consuming.set()

    async def _consume_until_stopped(self, sub: Subscriber) -> None:
        consumer = asyncio.create_task(self._consume(sub), name="ingest.mqtt.consume")
        stopper = asyncio.create_task(self._stop.wait(), name="ingest.mqtt.stop-wait")
        try:
            await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # re-raise MqttError (connection lost)
                return
            # Stop requested. If the consumer is waiting for messages, cancel it; if it is
            # handing some to the batcher, let it finish so no message is half-taken.
            if self._idle:
                consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        finally:
            stopper.cancel()
            if not consumer.done():
                consumer.cancel()

    async def _consume(self, sub: Subscriber) -> None:
        while not self._stop.is_set():
            self._idle = True
            batch = await sub.take(TAKE_LIMIT)
            self._idle = False
            for message in batch:
                await self._handler(sub, message)
        self._idle = True

    async def stop(self) -> None:
        """Stop taking messages and wait until no message is being handled.

        A retired session first leaves its subscriptions and drains what the broker queued for it.
        The connection stays open until release(), so acknowledgements can still be sent.
        """
        sub = self.current
        if self._leave_on_stop and sub is not None and sub.alive:
            await self._leave(sub)
        self._stop.set()
        if self.connected.is_set():
            await self._stopped_consuming.wait()

    async def _leave(self, sub: Subscriber) -> None:
        try:
            await sub.unsubscribe(self._subscriptions)
        except MqttError as exc:
            logger.warning("could not unsubscribe (%s); the broker keeps queueing for %s", exc, self._client_id)
            return
        seen, before = -1, sub.received
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LEAVE_TIMEOUT):
                while sub.alive and (sub.received != seen or sub.inbox or not self._idle):
                    seen = sub.received
                    await asyncio.sleep(LEAVE_QUIET)
                logger.info(
                    "retired session %s: unsubscribed, %d messages drained", self._client_id, sub.received - before
                )
                return
        logger.warning(
            "retired session %s: unsubscribed; messages still arriving after %.0f s wait in its session",
            self._client_id,
            LEAVE_TIMEOUT,
        )

    def release(self) -> None:
        """Let the stopped receiver disconnect."""
        self._release.set()
