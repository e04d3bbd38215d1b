"""`parkwatch bench alerts`: reading → notice latency under the whole path's load, and an alert storm.

1. **Under load.** The whole-path benchmark's fleet of kiln stacks publishes accelerated minute
   data through Mosquitto into `parkwatch serve` (ingest in one process; compliance worker and
   alerts in another) at `--rate` readings/s. Every fourth station exceeds its SO2 limit in
   every third hour of data, so alerts are raised and cleared all through the run. Each raise
   notice is timed from the arrival at the ingest of the reading that decided its hour (the
   45th minute: HJ 75's valid hour) to the moment the webhook received it.
2. **Storm.** 1,000 stations' hours are judged exceedances in one transaction (as the worker
   writes a batch); `parkwatch serve --only alerts` raises the 1,000 alerts and delivers their
   notices to the webhook: all must arrive, none twice; the drain time is reported.

The webhook is the notice sink (simulators/notice_sink.py) in this process, checking signatures.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from alerts.config import load_routing
from parkwatch.embedded.process import pick_port
from parkwatch.settings import Settings
from schemas.registry import ParkSpec, RegistryFile, StationSpec
from schemas.stations import StationKind
from simulators.bench import DECIDING_MINUTE, READINGS_PER_MESSAGE, Bench
from simulators.notice_sink import NoticeSink, Received, Secrets, serving
from simulators.procs import parkwatch_env, stop
from simulators.scratch import drop, recreate

SECRET = "bench-secret"  # noqa: S105 - the local sink's signature key
STORM_STATIONS = 1000
# The storm ends when every notice has arrived, or fails after this long.
STORM_TIMEOUT = 300.0
# The deciding reading of each exceedance hour a notice reports (the DECIDING_MINUTE-th minute
# record of the hour), and when it reached the ingest.
SELECT_DECIDING = """
SELECT r.received_at FROM readings r
JOIN stations s ON s.sid = r.sid JOIN parameters p ON p.pid = r.pid
WHERE s.id = $1 AND p.code = 'a21026' AND r.iv = 1
  AND r.ts >= $2::timestamptz AND r.ts < $2::timestamptz + interval '1 hour'
ORDER BY r.ts OFFSET $3 - 1 LIMIT 1
"""
OUTBOX_BUSY = "SELECT count(*) FROM notifications WHERE status IN ('queued', 'sending')"
STORM_VERDICTS = """
INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value, value_judged,
                      limit_value, unit, exceedance_multiple, rule, coverage, closed)
SELECT s.sid, p.pid, 'hour', $1::timestamptz, $1::timestamptz + interval '1 hour', 'GB4915-2013', 'kiln',
       'exceedance', 300, 300, '200', 'mg/m³', 0.5, '{"table": "Table 1", "item": "二氧化硫"}', '{}', true
FROM stations s, parameters p WHERE p.code = 'a21026'
"""


def _routing(url: str) -> RegistryFile:
    return RegistryFile.model_validate(
        {
            "channels": [{"id": "bench-hook", "kind": "webhook", "url": url, "secret": SECRET}],
            "routes": [{"channels": ["bench-hook"], "min_severity": "advisory"}],
        }
    )


def _percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * share + 0.999999) - 1))]


def _duplicates(received: list[Received]) -> int:
    keys = [r.headers.get("idempotency-key") for r in received if r.accepted]
    return len(keys) - len(set(keys))


async def _under_load(
    settings: Settings, sink: NoticeSink, url: str, *, stations: int, rate: float, duration: float, publishers: int
) -> dict[str, Any]:
    bench = Bench(
        settings,
        stations=stations,
        publishers=publishers,
        duration=duration,
        processes=2,
        routing=_routing(url),
        exceed_every=4,
    )
    try:
        run = await bench.run_parkwatch("alerts", duration=duration, rate_readings=rate)
        raises = [r for r in sink.accepted() if r.json()["event"]["kind"] in ("raised", "activated")]
        conn = await asyncpg.connect(bench.db_url)
        try:
            seconds = []
            for r in raises:
                doc = r.json()
                start = datetime.fromisoformat(doc["event"]["detail"]["window_start"])
                decided = await conn.fetchval(SELECT_DECIDING, doc["alert"]["station_id"], start, DECIDING_MINUTE)
                if decided is not None:
                    seconds.append(r.at - decided.timestamp())
            states = {
                row["status"]: row["n"]
                for row in await conn.fetch("SELECT status, count(*) AS n FROM notifications GROUP BY status")
            }
            alerts_raised = await conn.fetchval("SELECT count(*) FROM alerts")
        finally:
            await conn.close()
    finally:
        bench.close(keep_logs=False)
        await drop(bench.db_url)
    return {
        "readings_per_s": run.readings_per_s,
        "readings_lost": run.lost,
        "published_readings": run.published * READINGS_PER_MESSAGE,
        "exceeding_stations": len(bench.exceeding),
        "alerts": alerts_raised,
        "notices": states,
        "notices_received": len(sink.accepted()),
        "duplicates": _duplicates(sink.received),
        "raise_notices_timed": len(seconds),
        "reading_to_notice_p50_s": _percentile(seconds, 0.5),
        "reading_to_notice_p99_s": _percentile(seconds, 0.99),
        "reading_to_notice_max_s": max(seconds) if seconds else None,
        "verdict_p99_s": run.verdict_p99_s,
    }


async def _storm(settings: Settings, sink: NoticeSink, url: str, workdir: Path) -> dict[str, Any]:
    db_url = settings.DATABASE_URL.rsplit("/", 1)[0] + f"/{settings.database_name}_bench_storm"
    parks = [f"storm-p{i:02d}" for i in range(20)]
    registry = RegistryFile(
        parks=[ParkSpec(id=p, name=f"Storm park {p}", city="长沙") for p in parks],
        stations=[
            StationSpec.model_validate(
                {
                    "id": f"storm-s{i:04d}",
                    "park_id": parks[i % 20],
                    "kind": StationKind.STACK,
                    "parameters": ["a21026", "a19001"],
                    "standard": "GB4915-2013",
                    "class": "kiln",
                }
            )
            for i in range(STORM_STATIONS)
        ],
    )
    await recreate(db_url, timescale=settings.TIMESCALE, registry=registry)
    conn = await asyncpg.connect(db_url)
    log = (workdir / "storm.log").open("wb")
    proc = None
    try:
        await load_routing(conn, _routing(url))
        env = parkwatch_env(
            PARKWATCH_DATABASE_URL=db_url,
            PARKWATCH_MQTT_URL=settings.MQTT_URL,
            PARKWATCH_TOPIC_PREFIX=f"bench{os.getpid()}-storm",
            PARKWATCH_LOG_LEVEL="WARNING",
            PARKWATCH_MQTT_CLIENT_ID=f"bench-storm-{os.getpid()}",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "parkwatch.cli", "serve", "--only", "alerts", env=env, stdout=log, stderr=log
        )
        await asyncio.sleep(2.0)  # the engine takes the lead and listens
        before = len(sink.accepted())
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        started = time.time()
        await conn.execute(STORM_VERDICTS, hour)
        committed = time.time()
        arrived = await sink.wait_for(before + STORM_STATIONS, seconds=STORM_TIMEOUT)
        storm = arrived[before:]
        drained = max(r.at for r in storm) - committed
        for _ in range(int(STORM_TIMEOUT / 0.2)):  # the last deliveries are being recorded
            if not await conn.fetchval(OUTBOX_BUSY):
                break
            await asyncio.sleep(0.2)
        states = {
            r["status"]: r["n"]
            for r in await conn.fetch("SELECT status, count(*) AS n FROM notifications GROUP BY status")
        }
        alerts_open = await conn.fetchval("SELECT count(*) FROM alerts WHERE status = 'active'")
    finally:
        if proc is not None:
            await stop([proc])
        log.close()
        await conn.close()
        await drop(db_url)
    first = min(r.at for r in storm) - committed
    return {
        "stations": STORM_STATIONS,
        "verdicts_written_s": round(committed - started, 3),
        "alerts_active": alerts_open,
        "notices_received": len(storm),
        "distinct_notices": len({r.headers.get("idempotency-key") for r in storm}),
        "duplicates": _duplicates(storm),
        "notices": states,
        "first_notice_s": round(first, 3),
        "all_notices_s": round(drained, 3),
        "notices_per_s": round(len(storm) / drained, 1) if drained > 0 else None,
    }


def run(
    settings: Settings, *, stations: int, rate: float, duration: float, publishers: int, json_path: Path | None
) -> int:
    """The `parkwatch bench alerts` command; returns 1 if a notice or reading was lost or doubled."""
    rate = rate or 20_000.0
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))  # noqa: S108 - the storm's log, kept on failure
    sink = NoticeSink(secrets=Secrets(webhook=SECRET))
    port = pick_port()

    async def main() -> dict[str, Any]:
        async with serving(sink, port) as base:
            url = f"{base}/webhook"
            print(
                f"parkwatch bench alerts: {stations} kiln stacks at {rate:,.0f} readings/s for {duration:g} s, "
                f"every 4th exceeding one hour in three; then a storm of {STORM_STATIONS} stations",
                flush=True,
            )
            print("  1/2 under load ...", flush=True)
            load = await _under_load(
                settings, sink, url, stations=stations, rate=rate, duration=duration, publishers=publishers
            )
            print("  2/2 storm ...", flush=True)
            storm = await _storm(settings, sink, url, workdir)
            return {"under_load": load, "storm": storm}

    results = asyncio.run(main())
    load, storm = results["under_load"], results["storm"]

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f} s"

    print()
    print(
        f"under load: {load['readings_per_s']:,} readings/s sustained, {load['readings_lost']} lost; "
        f"{load['alerts']} alerts from {load['exceeding_stations']} exceeding stations; "
        f"{load['notices_received']} notices received, {load['duplicates']} twice; outbox {load['notices']}"
    )
    print(
        f"  deciding reading received → raise notice at the webhook: p50 {s(load['reading_to_notice_p50_s'])}, "
        f"p99 {s(load['reading_to_notice_p99_s'])}, max {s(load['reading_to_notice_max_s'])} "
        f"({load['raise_notices_timed']} notices timed; hour verdicts p99 {s(load['verdict_p99_s'])})"
    )
    print(
        f"storm: {storm['stations']} exceedances committed in {storm['verdicts_written_s']} s; "
        f"{storm['notices_received']} notices received ({storm['distinct_notices']} distinct, "
        f"{storm['duplicates']} twice); first after {storm['first_notice_s']} s, all after "
        f"{storm['all_notices_s']} s ({storm['notices_per_s']} notices/s); outbox {storm['notices']}"
    )
    failures = []
    if load["readings_lost"]:
        failures.append(f"{load['readings_lost']} readings lost")
    if not load["raise_notices_timed"]:
        failures.append("no raise notice was timed under load")
    if load["duplicates"] or storm["duplicates"]:
        failures.append("a notice arrived twice")
    if storm["distinct_notices"] != STORM_STATIONS:
        failures.append(f"storm: {storm['distinct_notices']} of {STORM_STATIONS} notices arrived")
    for failure in failures:
        print(f"FAILED: {failure}")
    if json_path is not None:
        json_path.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        print(f"figures written to {json_path}")
    return 1 if failures else 0
