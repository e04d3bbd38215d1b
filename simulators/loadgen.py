"""Load generator processes for the benchmark: lean MQTT 3.1.1 publishers stamping each message.

The publishers speak just enough MQTT (CONNECT, PUBLISH at QoS 1, PUBACK) over a plain socket.
paho's publish path costs ~130 µs of CPU per message on this machine, which made two
publisher processes eat a whole core of the two the benchmark shares with the broker, the
database and the ingest under test. Real stations are other machines; the load generator
should cost as little as possible here.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized

import orjson

from ingest import mqttwire

# Codes of the 8-reading messages the benchmark publishes: a cement kiln's stack (the ceilings
# were measured with 8-reading messages).
BENCH_CODES = ["a21026", "a21002", "a34013", "a19001", "a00000", "a01012", "a01014", "a01011"]
# Typical values of those codes, within GB 4915-2013's kiln limits at 10 % O2 (SO2 200, NOx 400,
# particulates 30 mg/m³), so every hour the benchmark judges is compliant and each verdict is
# decided by its 45th minute (HJ 75: an hour counts with 45 valid minutes).
TYPICAL = (100.0, 250.0, 15.0, 10.5, 300_000.0, 120.0, 8.0, 12.0)
# Unacknowledged publishes one process may have outstanding before it waits for PUBACKs.
MAX_OUTSTANDING = 1000
# Messages written to the socket per send call.
SEND_CHUNK = 32
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class PublisherSpec:
    """What one publisher process does."""

    index: int
    host: str
    port: int
    prefix: str
    stations: list[tuple[str, str]]  # (park_id, station_id)
    start: datetime  # the data time of each station's first minute
    # Stations whose SO2 exceeds the kiln limit in every third hour of data (the alert benchmark).
    exceeding: frozenset[str] = frozenset()


# SO2 of an exceeding hour: 300 against the kiln's 200 mg/m³ (at the reference O2 the fleet holds).
EXCEEDING_SO2 = 300.0
# An exceeding station exceeds in the hours of its data whose clock hour divides by this: an
# exceeding hour, then two compliant ones, which clear its alert, so each cycle raises a new one.
EXCEED_CYCLE = 3


def payload(station_id: str, ts: datetime, seq: int, *, exceed: bool = False) -> bytes:
    """One minute record of 8 readings, stamped with the moment it is sent (sent_at)."""
    values = [round(TYPICAL[k] * (0.8 + (seq * 7 + k * 13) % 41 / 100), 2) for k in range(len(BENCH_CODES))]
    if exceed:
        values[0] = EXCEEDING_SO2
        values[3] = 10.0  # O2 at the reference: the value judged is the value sent
    return orjson.dumps(
        {
            "station_id": station_id,
            "ts": ts.isoformat(),
            "interval": "min",
            "sent_at": datetime.now(UTC).isoformat(),
            "readings": [{"parameter": c, "value": values[k]} for k, c in enumerate(BENCH_CODES)],
        }
    )


class SocketPublisher:
    """A QoS 1 publisher on a blocking socket, for a load-generator process; counts PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # keepalive 600 s: runs are shorter, and this process sends no PINGREQ
        self.sock.sendall(mqttwire.connect(client_id, keepalive=600))
        connack = self._read_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {connack!r}")
        self.sock.setblocking(False)
        self.acked = 0
        self._pending = b""
        self._next_id = 0

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def publish_packet(self, topic: bytes, body: bytes) -> bytes:
        """Encode one QoS 1 PUBLISH (topic already length-prefixed)."""
        self._next_id = self._next_id % 65535 + 1
        return mqttwire.publish_qos1(topic, self._next_id, body)

    def send(self, packets: list[bytes]) -> None:
        """Write packets, reading PUBACKs meanwhile so neither side's buffer fills."""
        data = memoryview(b"".join(packets))
        while data:
            _, writable, _ = select.select([], [self.sock], [], 1.0)
            if writable:
                try:
                    sent = self.sock.send(data)
                except BlockingIOError:
                    sent = 0
                data = data[sent:]
            self.drain_acks()

    def drain_acks(self) -> None:
        """Count every complete PUBACK that has arrived (each is 4 bytes: 0x40 0x02 id)."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self._pending += chunk
        whole = len(self._pending) // 4
        self.acked += whole
        self._pending = self._pending[whole * 4 :]

    def close(self) -> None:
        """DISCONNECT and close."""
        try:
            self.sock.setblocking(True)
            self.sock.sendall(mqttwire.DISCONNECT_PACKET)
        finally:
            self.sock.close()


def run_publisher(
    spec: PublisherSpec,
    sent: Synchronized,  # type: ignore[type-arg]
    acked: Synchronized,  # type: ignore[type-arg]
    rate: Synchronized,  # type: ignore[type-arg]
    stop: Synchronized,  # type: ignore[type-arg]
) -> None:
    """Publish at QoS 1 at `rate` messages/s (the coordinator may change it; 0 pauses), until `stop`.

    Each station's messages are its consecutive minutes from spec.start (accelerated time, so
    hours fill and get judged within a run). Counts messages sent and acknowledged by the broker.
    """
    pub = SocketPublisher(spec.host, spec.port, f"parkwatch-bench-pub-{spec.index}-{time.time_ns()}")
    topics = [(mqttwire.string(f"{spec.prefix}/{park}/{station}/readings"), station) for park, station in spec.stations]
    n = 0
    started = time.monotonic()
    paced = 0
    current = rate.value
    try:
        while not stop.value:
            if rate.value != current:  # re-anchor the pacing on a rate change
                current, started, paced = rate.value, time.monotonic(), 0
            pub.drain_acks()
            if current <= 0 or n - pub.acked >= MAX_OUTSTANDING:
                time.sleep(0.002)
                if current <= 0:
                    started, paced = time.monotonic(), 0
                continue
            chunk = []
            for _ in range(SEND_CHUNK):
                topic, station = topics[n % len(topics)]
                ts = spec.start + MINUTE * (n // len(topics))
                exceed = station in spec.exceeding and (ts.hour % EXCEED_CYCLE == 0)
                chunk.append(pub.publish_packet(topic, payload(station, ts, n, exceed=exceed)))
                n += 1
            pub.send(chunk)
            paced += len(chunk)
            ahead = paced / current - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            sent.value, acked.value = n, pub.acked
        deadline = time.monotonic() + 30
        while pub.acked < n and time.monotonic() < deadline:
            time.sleep(0.01)
            pub.drain_acks()
    finally:
        sent.value, acked.value = n, pub.acked
        pub.close()
