"""`parkwatch gateway`: HJ 212 stations over TCP, each packet forwarded to the broker at QoS 1.

Data loggers speak HJ 212 over TCP and cannot be re-flashed to speak our JSON, so this server
takes their connections, cuts frames out of each stream (resynchronising on garbage, several
frames per read, one frame across many reads), publishes every frame as received on
{prefix}/hj212/{MN} at QoS 1, and answers the station as the standard requires (docs/reference/hj212.md §7):

- a data upload whose Flag asks for an answer gets 9014, sent only after the broker has
  acknowledged the packet, so an answered packet is never lost;
- a notification (1013) gets 9013; any other request gets 9011 (QnRtn 1, or 8 for a command
  code we do not know) and, once forwarded, 9012 (ExeRtn 1);
- a frame whose CRC is wrong gets no answer ("if the CRC is wrong the command ends"), so the
  logger sends it again; it is still forwarded, and the ingest dead-letters it with its bytes.

The gateway stores nothing. It reads the registry only to learn which loggers are configured
for a MODBUS CRC (so their packets are answered); without a database it answers standard CRCs.
While the broker is away, a connection's packets wait (its socket is not read meanwhile), so
TCP back-pressure, not memory, absorbs the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from ingest.hj212.access import Access, Peer, canonical_address
from ingest.hj212.asker import Asker, Profile
from ingest.hj212.codec import DecodedPacket, decode_frame, encode_reply
from ingest.hj212.frame import Frame, Framer
from ingest.hj212.packet import COMMAND_CODES
from ingest.hj212.sm4 import is_encrypted, open_packet
from ingest.mqtt import MqttError
from ingest.publisher import LeanPublisher
from ingest.store import CONNECT_TIMEOUT
from parkwatch.retry import backoff
from parkwatch.settings import Settings
from schemas.gateway import gateway_event
from schemas.readings import gateway_events_topic, hj212_topic
from schemas.registry import Hj212Profile, Network, parse_networks
from schemas.stations import CrcVariant

logger = logging.getLogger(__name__)

# Uploads answered with 9014 when their Flag asks (docs/reference/hj212.md §7): data, facility state and run
# time, restarts, instrument info; and the field's answers to platform queries, which are uploads too.
UPLOAD_CNS = frozenset(
    {"2011", "2021", "2031", "2041", "2051", "2061", "2081", "3019", "3020", "1011", "1061", "1063", "3017", "3018",
     "2072", "2013", "2052", "2062", "2111"}
)  # fmt: skip
NOTIFICATION_CNS = frozenset({"1013"})
REPLY_CNS = frozenset({"9011", "9012", "9013", "9014"})
# A logger's answers to the platform's requests (ingest/hj212/asker.py).
ASKED_ANSWERS = frozenset({"9011", "9012"})
# How long a line must be quiet before a checked frame without terminator at the end of the
# buffer counts as complete. Loggers write a frame in one go; 200 ms is far above the gap
# between a frame and its CRLF on any real link, and far below a logger's answer timeout (10 s).
SETTLE_DELAY = 0.2
# A TLS client that has not finished its handshake by then is a stalled or hostile one.
TLS_HANDSHAKE = 15.0
# At most one warning per period about connections refused over the limit.
OVER_LIMIT_LOG_EVERY = 60.0
# How often the MN → CRC routine map is re-read from the registry.
REGISTRY_REFRESH = 60.0
# A topic level may not hold MQTT wildcards or separators: such an MN goes to a fixed level.
_TOPIC_SAFE = re.compile(r"^[^/#+\s]{1,64}$")
UNKNOWN_MN_LEVEL = "_unknown"
# Each configured logger: its CRC routine, and the networks its park allows (parks.attrs).
LOGGERS = """
SELECT s.mn, s.crc, s.sm4_key, s.pw, s.timezone, s.attrs->'hj212' AS dialect,
       p.attrs->'gateway_networks' AS networks
FROM stations s JOIN parks p ON p.id = s.park_id
WHERE s.mn IS NOT NULL
"""


@dataclass
class GatewayStats:
    """Counters of one gateway process."""

    connections: int = 0
    open_connections: int = 0
    frames: int = 0
    invalid_frames: int = 0
    forwarded: int = 0
    replies: int = 0
    idle_closed: int = 0
    refused: int = 0
    over_limit: int = 0


class BrokerLink:
    """One MQTT connection shared by every station connection; publish() waits out outages."""

    def __init__(self, settings: Settings) -> None:
        self._target = settings.mqtt
        self._publisher: LeanPublisher | None = None
        self._ready = asyncio.Event()

    async def run(self) -> None:
        """Keep the connection up until cancelled."""
        attempt = 0
        while True:
            try:
                publisher = await LeanPublisher.connect(
                    self._target, client_id=f"parkwatch-gateway-{uuid.uuid4().hex[:8]}"
                )
            except MqttError as exc:
                logger.warning("gateway: broker unavailable (%s)", exc)
                await asyncio.sleep(backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            self._publisher = publisher
            self._ready.set()
            logger.info("gateway connected to the broker")
            try:
                await publisher.closed
            except MqttError as exc:
                logger.warning("gateway: lost the broker (%s)", exc)
            finally:
                self._ready.clear()
                self._publisher = None
                await publisher.close()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and return once the broker has acknowledged; retries across reconnects."""
        while True:
            await self._ready.wait()
            publisher = self._publisher
            if publisher is None:
                continue
            try:
                await publisher.publish(topic, payload)
            except MqttError as exc:
                logger.debug("gateway: publish failed (%s); retrying once the broker is back", exc)
                await asyncio.sleep(0)  # let the link notice the loss before the retry
            else:
                return


class Gateway:
    """The TCP server; run() until the stop event is set."""

    def __init__(self, settings: Settings, *, host: str, port: int, idle_timeout: float) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.link = BrokerLink(settings)
        self.stats = GatewayStats()
        self.crc_by_mn: dict[str, CrcVariant] = {}
        self.dialect_by_mn: dict[str, Hj212Profile] = {}
        self.key_by_mn: dict[str, bytes] = {}  # HJ 212-2025 SM4 keys: encrypted packets are checked with them
        self.access = Access()
        self.tls_port: int | None = None
        self.asker = Asker(settings.DATABASE_URL)
        self._over_limit_logged = -OVER_LIMIT_LOG_EVERY
        self.listening = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until stopped; open connections are closed on the way out."""
        server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        servers = [server]
        logger.info("HJ 212 gateway listening on %s:%d", self.host, self.port)
        tls = self.settings.gateway_tls_context()
        if tls is not None:
            secure = await asyncio.start_server(
                self._accept, self.host, self.settings.GATEWAY_TLS_PORT, ssl=tls, ssl_handshake_timeout=TLS_HANDSHAKE
            )
            self.tls_port = secure.sockets[0].getsockname()[1]
            servers.append(secure)
            logger.info("HJ 212 gateway listening with TLS on %s:%d", self.host, self.tls_port)
        self.listening.set()
        try:
            async with asyncio.TaskGroup() as tg:
                link = tg.create_task(self.link.run(), name="gateway.broker")
                registry = tg.create_task(self._registry_loop(), name="gateway.registry")
                asking = tg.create_task(self.asker.run(), name="gateway.asking")
                await stop.wait()
                for srv in servers:
                    srv.close()
                for task in list(self._connections):
                    task.cancel()
                link.cancel()
                registry.cancel()
                asking.cancel()
        finally:
            for srv in servers:
                srv.close()
                await srv.wait_closed()
            logger.info("HJ 212 gateway stopped")

    async def load_registry(self) -> None:
        """Read the configured loggers' CRC routines and networks (raises when the database is out of reach)."""
        conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=CONNECT_TIMEOUT)
        try:
            rows = await conn.fetch(LOGGERS)
        finally:
            await conn.close()
        self.crc_by_mn = {r["mn"]: CrcVariant(r["crc"]) for r in rows}
        self.dialect_by_mn = {r["mn"]: _dialect(r["dialect"]) for r in rows if r["dialect"]}
        self.key_by_mn = {r["mn"]: bytes.fromhex(r["sm4_key"]) for r in rows if r["sm4_key"]}
        self.asker.profiles = {
            r["mn"]: Profile(pw=r["pw"] or "", tz=ZoneInfo(r["timezone"]), crc=CrcVariant(r["crc"])) for r in rows
        }
        self.access.networks = _networks(rows)

    async def _registry_loop(self) -> None:
        attempt = 0
        while True:
            try:
                await self.load_registry()
                attempt = 0
                await asyncio.sleep(REGISTRY_REFRESH)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                logger.debug("gateway: registry not readable (%s); answering standard CRCs only", exc)
                await asyncio.sleep(min(REGISTRY_REFRESH, backoff(attempt) + 1))
                attempt += 1

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.settings.GATEWAY_MAX_CONNECTIONS:
            self.stats.over_limit += 1
            now = time.monotonic()
            if now - self._over_limit_logged >= OVER_LIMIT_LOG_EVERY:
                self._over_limit_logged = now
                logger.warning(
                    "gateway: %d connections open, the limit (PARKWATCH_GATEWAY_MAX_CONNECTIONS); closing new ones "
                    "(%d so far)",
                    len(self._connections),
                    self.stats.over_limit,
                )
            writer.close()
            return
        task = asyncio.create_task(self._serve(reader, writer), name="gateway.connection")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = Peer(address=canonical_address(str(peername[0])) if peername else "", close=writer.close)
        self.stats.connections += 1
        self.stats.open_connections += 1
        framer = Framer()
        settled = True
        try:
            while True:
                # A logger that sends no terminator gets its answer once the line is quiet for
                # a moment (settle), not only when the next packet or the idle timeout comes.
                wait = SETTLE_DELAY if framer.pending and not settled else self.idle_timeout
                try:
                    async with asyncio.timeout(wait):
                        data = await reader.read(65536)
                except TimeoutError:
                    if wait == SETTLE_DELAY:
                        settled = True
                        for frame in framer.settle():
                            await self._handle(frame, writer, peer)
                        continue
                    self.stats.idle_closed += 1
                    logger.info("gateway: closing %s after %.0f s without data", peername, self.idle_timeout)
                    break
                if not data:
                    break
                settled = False
                for frame in framer.feed(data):
                    await self._handle(frame, writer, peer)
                    if writer.is_closing():
                        break
                if writer.is_closing():
                    break
            if not writer.is_closing():
                for frame in framer.flush():  # an unterminated last frame, or leftover bytes
                    await self._handle(frame, writer, peer)
        except (ConnectionError, OSError) as exc:
            logger.info("gateway: connection %s lost (%s)", peername, exc)
        finally:
            self.access.release(peer)
            self.asker.forget(writer)
            self.stats.open_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(self, frame: Frame, writer: asyncio.StreamWriter, peer: Peer) -> None:
        self.stats.frames += 1
        decoded = decode_frame(frame, header_only=True)  # routing and answering need no more
        packet = decoded.packet
        mn = packet.mn or ""
        level = mn if _TOPIC_SAFE.match(mn) else UNKNOWN_MN_LEVEL
        if mn:
            admission = self.access.admit(mn, peer)
            if admission.refused is not None:
                # Kept as a dead letter by the ingest, unanswered, and the connection closed.
                self.stats.refused += 1
                logger.warning("gateway: refused %s: %s", admission.refused.value, admission.message)
                await self.link.publish(
                    gateway_events_topic(self.settings.TOPIC_PREFIX),
                    gateway_event(
                        "refused", mn=mn, peer=peer.address, reason=admission.refused.value,
                        message=admission.message, frame=frame.raw,
                    ),
                )  # fmt: skip
                writer.close()
                return
            if admission.previous_source is not None:
                logger.info("gateway: MN %s now sends from %s (was %s)", mn, peer.address, admission.previous_source)
                await self.link.publish(
                    gateway_events_topic(self.settings.TOPIC_PREFIX),
                    gateway_event("source_changed", mn=mn, peer=peer.address, previous=admission.previous_source),
                )
        await self.link.publish(hj212_topic(self.settings.TOPIC_PREFIX, level), frame.raw)
        self.stats.forwarded += 1
        if is_encrypted(frame.data):  # its CRC covers the plain text: judged once decrypted
            decoded = open_packet(decoded, self.key_by_mn.get(mn), header_only=True)
        accept = (self.crc_by_mn[mn],) if mn in self.crc_by_mn else ()
        if not decoded.valid(accept=accept):
            self.stats.invalid_frames += 1
            return
        self.asker.seen(packet, writer)
        if packet.cn in ASKED_ANSWERS:
            await self.asker.answered(decode_frame(decoded.frame).packet)  # answers carry QnRtn/ExeRtn in CP
        crc = self.crc_by_mn.get(mn, CrcVariant.HJ212)
        for reply in replies(decoded, crc=crc, dialect=self.dialect_by_mn.get(mn)):
            writer.write(reply)
            self.stats.replies += 1
        await writer.drain()


def replies(
    decoded: DecodedPacket, *, crc: CrcVariant = CrcVariant.HJ212, dialect: Hj212Profile | None = None
) -> list[bytes]:
    """What the platform answers to an accepted packet that was forwarded (docs/reference/hj212.md §7, §5.3).

    In the logger's dialect: its CRC routine (the station's `crc`, or the profile's `reply_crc`),
    and the profile's ST and QN placement (docs/data-loggers.md#dialects).
    """
    packet = decoded.packet
    cn = packet.cn or ""
    if not packet.ack_requested or cn in REPLY_CNS:
        return []
    d = dialect or Hj212Profile()
    st = (packet.st or "91") if d.reply_st == "echo" else "91"
    reply = functools.partial(encode_reply, packet, crc=d.reply_crc or crc, st=st, qn_in_cp=d.reply_qn == "cp")
    if cn in UPLOAD_CNS:
        return [reply(cn="9014")]
    if cn in NOTIFICATION_CNS:
        return [reply(cn="9013")]
    if cn not in COMMAND_CODES:
        return [reply(cn="9011", cp=[[("QnRtn", "8")]])]  # CN error
    return [reply(cn="9011", cp=[[("QnRtn", "1")]]), reply(cn="9012", cp=[[("ExeRtn", "1")]])]


def _dialect(stored: str) -> Hj212Profile:
    """A station's stored dialect (validated when the registry was loaded); the standard's if unusable."""
    try:
        return Hj212Profile.model_validate_json(stored)
    except ValueError as exc:
        logger.error("gateway: a stored HJ 212 dialect is unusable (%s); replying in the standard's", exc)
        return Hj212Profile()


def _networks(rows: list[asyncpg.Record]) -> dict[str, tuple[Network, ...]]:
    """MN → the networks its park allows, for the parks that set any (validated when loaded)."""
    out: dict[str, tuple[Network, ...]] = {}
    for r in rows:
        if r["networks"]:
            try:
                out[r["mn"]] = parse_networks(json.loads(r["networks"]))
            except (ValueError, TypeError) as exc:
                logger.error("gateway: the networks of MN %s are unusable (%s); refusing it everywhere", r["mn"], exc)
                out[r["mn"]] = ()
    return out
