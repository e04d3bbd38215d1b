"""`parkwatch bench hj212`: codec decode rate on one core, and gateway throughput under many loggers.

1. Decode: a typical 10-factor minute packet (CN 2051, Cou/Min/Avg/Max/Flag per factor), framed,
   parsed and turned into reading rows, as many times as fit in a few seconds on one core.
2. Gateway: `parkwatch gateway` in its own process and a private broker from
   deploy/mosquitto.conf; N loggers connect at once and each sends packets asking for an answer,
   sending the next as soon as its 9014 arrives (the gateway answers only once the broker holds
   the packet, so every answer is a packet safely forwarded).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest.hj212.codec import decode, encode_data
from ingest.hj212.convert import convert
from ingest.registry import Registry, StationInfo
from parkwatch.settings import Settings
from schemas.parameters import catalog
from schemas.stations import StationKind
from simulators.broker import PrivateBroker, free_port
from simulators.procs import cpu_seconds, parkwatch_env, stop

WATER_FACTORS = ["w00000", "w01001", "w01018", "w21003", "w21011", "w21001", "w01012", "w01017", "w01010", "w01009"]
DECODE_SECONDS = 3.0
# The gateway holds nothing unacknowledged once its loggers are gone: a short wait.
GATEWAY_STOP_GRACE = 30.0


def minute_packet(mn: str, when: datetime, *, flag: int = 4) -> bytes:
    """A typical 10-factor CN 2051 upload."""
    factors: dict[str, dict[str, float | str]] = {
        code: {"Cou": 10.5 + i, "Min": 20.0 + i, "Avg": 25.125 + i, "Max": 30.5 + i, "Flag": "N"}
        for i, code in enumerate(WATER_FACTORS)
    }
    # pH has no cumulative value and lives on 0-14: anything else is refused as out_of_range.
    factors["w01001"] = {"Min": 6.9, "Avg": 7.125, "Max": 7.4, "Flag": "N"}
    return encode_data(cn="2051", mn=mn, data_time=when, factors=factors, flag=flag)


BENCH_MN = "010000A8900016F000169DC0"


def bench_registry() -> Registry:
    """One wastewater outlet with the benchmark's MN and the whole parameter catalogue."""
    station = StationInfo(
        sid=1,
        id="s",
        park_id="p",
        kind=StationKind.WASTEWATER_OUTLET,
        mn=BENCH_MN,
        tz=ZoneInfo("Asia/Shanghai"),
        declared=frozenset(),
        report_units={},
    )
    return Registry.of([station], {code: i for i, code in enumerate(catalog().by_code)})


def decode_rate() -> dict[str, float]:
    """Packets/s for framing + parsing alone, and through to reading rows."""
    packet = minute_packet(BENCH_MN, datetime(2026, 11, 26, 8, 0))
    registry = bench_registry()
    received = datetime.now(UTC)
    out: dict[str, float] = {"packet_bytes": len(packet)}
    for name, fn in (
        ("decode_per_s", lambda: decode(packet)),
        (
            "decode_to_rows_per_s",
            lambda: convert(packet, topic="t", topic_mn=BENCH_MN, registry=registry, received_at=received),
        ),
    ):
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < DECODE_SECONDS:
            for _ in range(200):
                fn()
            n += 200
        out[name] = n / (time.perf_counter() - started)
    return out


async def _logger(k: int, port: int, stop_at: float, latencies: list[float], counts: list[int]) -> None:
    mn = f"BENCH{k:019d}"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = datetime(2026, 11, 26) + timedelta(minutes=k)
    i = 0
    try:
        while time.monotonic() < stop_at:
            packet = minute_packet(mn, t0 + timedelta(days=i), flag=5)
            sent = time.perf_counter()
            writer.write(packet)
            await writer.drain()
            reply = await reader.readuntil(b"\r\n")
            if b"CN=9014" in reply:
                latencies.append(time.perf_counter() - sent)
                counts[0] += 1
            i += 1
    except (ConnectionError, asyncio.IncompleteReadError):
        counts[1] += 1
    finally:
        writer.close()


async def gateway_throughput(settings: Settings, *, connections: int, duration: float) -> dict[str, Any]:
    """Answered packets/s and send → 9014 latency with `connections` loggers at once."""
    folder = Path(tempfile.mkdtemp(prefix="parkwatch-bench-gw-"))
    broker = PrivateBroker(folder / "broker")
    broker.start()
    port = free_port()
    env = parkwatch_env(
        PARKWATCH_MQTT_URL=broker.url,
        PARKWATCH_TOPIC_PREFIX=f"benchgw{os.getpid()}",
        PARKWATCH_GATEWAY_PORT=str(port),
        PARKWATCH_DATABASE_URL=settings.DATABASE_URL,
        PARKWATCH_LOG_LEVEL="WARNING",
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "parkwatch.cli", "gateway", env=env)
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the gateway's broker link
        latencies: list[float] = []
        counts = [0, 0]  # answered, broken connections
        cpu0 = cpu_seconds(proc.pid)
        stop_at = time.monotonic() + duration
        started = time.monotonic()
        await asyncio.gather(*(_logger(k, port, stop_at, latencies, counts) for k in range(connections)))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        await stop([proc], GATEWAY_STOP_GRACE)
        broker.stop()
    latencies.sort()
    n = len(latencies)
    return {
        "connections": connections,
        "answered": counts[0],
        "broken_connections": counts[1],
        "packets_per_s": counts[0] / elapsed,
        "latency_p50_s": latencies[n // 2] if n else None,
        "latency_p99_s": latencies[min(n - 1, int(n * 0.99))] if n else None,
        "gateway_cpu_ms_per_packet": cpu / counts[0] * 1000 if counts[0] else None,
    }


def run(settings: Settings, *, connections: int, duration: float) -> int:
    """The `parkwatch bench hj212` command."""
    print(f"decoding a 10-factor CN 2051 packet on one core for {DECODE_SECONDS:g} s ...", flush=True)
    rates = decode_rate()
    print(f"gateway: {connections} loggers at once for {duration:g} s ...", flush=True)
    gw = asyncio.run(gateway_throughput(settings, connections=connections, duration=duration))
    print()
    print(f"packet: {rates['packet_bytes']:.0f} bytes")
    print(f"decode (frame + CRC + parse):      {rates['decode_per_s']:>10,.0f} packets/s on one core")
    print(f"decode to reading rows:            {rates['decode_to_rows_per_s']:>10,.0f} packets/s on one core")
    p50 = gw["latency_p50_s"]
    p99 = gw["latency_p99_s"]
    print(
        f"gateway, {gw['connections']} connections: {gw['packets_per_s']:>10,.0f} packets/s answered (9014 after "
        f"broker ack); send→9014 p50 {p50 * 1000 if p50 else 0:.0f} ms, p99 {p99 * 1000 if p99 else 0:.0f} ms; "
        f"{gw['answered']:,} answered, {gw['broken_connections']} connections broken; "
        f"gateway CPU {gw['gateway_cpu_ms_per_packet'] or 0:.2f} ms/packet"
    )
    return 0 if gw["broken_connections"] == 0 and gw["answered"] else 1
