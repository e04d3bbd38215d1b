"""Load generator processes for the benchmark: paho publishers stamping each message at publish time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# Codes of the 8-reading messages the benchmark publishes (a stack: the ceilings were measured
# with 8-reading messages).
BENCH_CODES = ["a21026", "a21002", "a34013", "a19001", "a00000", "a01012", "a01014", "a01011"]
# Unacknowledged publishes one process may have outstanding before it waits: keeps paho's
# queue (and this process's memory) bounded when the broker is slower than the loop.
MAX_OUTSTANDING = 2000


@dataclass(frozen=True)
class PublisherSpec:
    """What one publisher process does."""

    index: int
    host: str
    port: int
    prefix: str
    stations: list[tuple[str, str]]  # (park_id, station_id)


def payload(station_id: str, now: datetime, seq: int) -> bytes:
    """One 8-reading message; ts is the publish instant (µs), which makes every key unique."""
    return orjson.dumps(
        {
            "station_id": station_id,
            "ts": now.isoformat(),
            "readings": [
                {"parameter": c, "value": round(10 + (seq * 7 + k * 13) % 500 / 10, 1)}
                for k, c in enumerate(BENCH_CODES)
            ],
        }
    )


def run_publisher(
    spec: PublisherSpec,
    sent: Synchronized,  # type: ignore[type-arg]
    acked: Synchronized,  # type: ignore[type-arg]
    rate: Synchronized,  # type: ignore[type-arg]
    stop: Synchronized,  # type: ignore[type-arg]
) -> None:
    """Publish at QoS 1 at `rate` messages/s (the coordinator may change it; 0 pauses), until `stop`.

    Counts messages sent and messages the broker acknowledged.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"parkwatch-bench-pub-{spec.index}-{time.time_ns()}")
    client.max_inflight_messages_set(MAX_OUTSTANDING)
    done = 0

    def on_publish(_c: object, _u: object, _mid: int, _rc: object, _p: object) -> None:
        nonlocal done
        done += 1

    client.on_publish = on_publish
    client.connect(spec.host, spec.port, keepalive=60)
    client.loop_start()
    topics = [(f"{spec.prefix}/{park}/{station}/readings", station) for park, station in spec.stations]
    n = 0
    started = time.monotonic()
    paced = 0
    current = rate.value
    try:
        while not stop.value:
            if rate.value != current:  # re-anchor the pacing on a rate change
                current, started, paced = rate.value, time.monotonic(), 0
            if current <= 0 or n - done >= MAX_OUTSTANDING:
                time.sleep(0.002)
                started, paced = time.monotonic(), 0
                continue
            topic, station = topics[n % len(topics)]
            client.publish(topic, payload(station, datetime.now(UTC), n), qos=1)
            n += 1
            paced += 1
            if paced % 10 == 0:
                ahead = paced / current - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if n % 200 == 0:
                sent.value, acked.value = n, done
        deadline = time.monotonic() + 30
        while done < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sent.value, acked.value = n, done
        client.loop_stop()
        client.disconnect()
