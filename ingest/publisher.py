"""A lean asyncio MQTT 3.1.1 publisher: QoS 1, one future per PUBLISH, resolved by its PUBACK.

The HJ 212 gateway publishes one message per logger packet from a thousand connections at once.
aiomqtt's publish path (paho underneath: a threading Condition per message, a scan of every
in-flight message on each PUBACK) cost most of the gateway's CPU; this speaks just the four
packets it needs over an asyncio transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from ingest import mqttwire
from ingest.mqtt import MqttError
from parkwatch.settings import MqttTarget

# Unacknowledged publishes at once; more wait their turn (bounded memory whatever the load).
MAX_INFLIGHT = 2000
HANDSHAKE_TIMEOUT = 10.0


class LeanPublisher(asyncio.Protocol):
    """One connection; publish() returns once the broker has acknowledged the message."""

    def __init__(self, *, keepalive: int = 30) -> None:
        self._keepalive = keepalive
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._slots = asyncio.Semaphore(MAX_INFLIGHT)
        self._connack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writable = asyncio.Event()
        self._writable.set()
        self._heard = 0.0
        self._pinger: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - asyncio contract
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Parse CONNACK, PUBACK and PINGRESP; ignore the rest."""
        self._heard = asyncio.get_running_loop().time()
        self._buf += data
        try:
            packets = mqttwire.split_packets(self._buf)
        except ValueError as exc:
            self._fail(MqttError(f"broker sent a malformed packet: {exc}"))
            return
        for first, body in packets:
            kind = first & 0xF0
            if kind == mqttwire.PUBACK and len(body) >= 2:
                future = self._pending.pop(struct.unpack_from("!H", body)[0], None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == mqttwire.CONNACK and not self._connack.done():
                if len(body) >= 2 and body[1] == 0:
                    self._connack.set_result(None)
                else:
                    self._connack.set_exception(MqttError(f"connection refused (CONNACK {body[1:2].hex()})"))

    def pause_writing(self) -> None:
        """The socket buffer is full: publishers wait."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """Room again."""
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail everything still waiting for an acknowledgement."""
        self._fail(MqttError(f"connection lost: {exc or 'closed'}"))

    def _fail(self, error: MqttError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        for future in (self._connack, self.closed):
            if not future.done():
                future.set_exception(error)
        self._writable.set()
        if self._pinger is not None:
            self._pinger.cancel()
        if self._transport is not None:
            self._transport.abort()

    # -- public ----------------------------------------------------------------------------

    @classmethod
    async def connect(cls, target: MqttTarget, *, client_id: str, keepalive: int = 30) -> LeanPublisher:
        """Open a connection and wait for CONNACK."""
        loop = asyncio.get_running_loop()
        proto = cls(keepalive=keepalive)
        try:
            await loop.create_connection(
                lambda: proto,
                target.host,
                target.port,
                ssl=target.ssl_context(),
            )
        except OSError as exc:
            raise MqttError(f"cannot connect to {target.host}:{target.port}: {exc}") from None
        assert proto._transport is not None  # noqa: S101 - set by connection_made
        proto._transport.write(
            mqttwire.connect(client_id, keepalive=keepalive, username=target.username, password=target.password)
        )
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await asyncio.shield(proto._connack)
        except TimeoutError:
            proto._fail(MqttError("no CONNACK from the broker"))
            raise MqttError("no CONNACK from the broker") from None
        proto._heard = loop.time()
        proto._pinger = loop.create_task(proto._keep_alive(), name="publisher.keepalive")
        return proto

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1; returns once the broker has acknowledged (raises MqttError if lost)."""
        async with self._slots:
            if self.closed.done():
                self.closed.result()
            await self._writable.wait()
            transport = self._transport
            if transport is None or transport.is_closing():
                raise MqttError("not connected")
            packet_id = self._allocate()
            future = self._pending[packet_id] = asyncio.get_running_loop().create_future()
            transport.write(mqttwire.publish_qos1(mqttwire.string(topic), packet_id, payload))
            await future

    def _allocate(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._pending:
                return self._next_id
        raise MqttError("no free packet id")  # unreachable with MAX_INFLIGHT < 65535

    async def _keep_alive(self) -> None:
        # PINGREQ at half the keepalive; a broker silent for 1.5 keepalives is gone (§3.1.2.10).
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._keepalive / 2)
            if loop.time() - self._heard > 1.5 * self._keepalive:
                self._fail(MqttError("broker stopped answering"))
                return
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(mqttwire.PINGREQ_PACKET)

    async def close(self) -> None:
        """DISCONNECT and close."""
        if self._pinger is not None:
            self._pinger.cancel()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(mqttwire.DISCONNECT_PACKET)
            transport.close()
        with contextlib.suppress(MqttError, asyncio.CancelledError):
            if not self.closed.done():
                self.closed.set_result(None)
