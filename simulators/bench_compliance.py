"""`parkwatch bench compliance`: what keeping rollups and verdicts current costs as readings grow.

Against one scratch database, with the ingest's own write path (COPY + rollup queue, no MQTT):
1. catch-up: one day of minute data for a quarter of the fleet, then for the whole fleet, each
   written and then brought current by the worker; the time to judge is set beside the time it
   took to write the same rows (a ratio from the same run, on a shared and noisy machine);
2. sustained: the worker running as in `serve` while minute ticks for every station arrive
   faster than real time; the lag behind the ingest (age of the oldest dirty hour) is sampled,
   and the time to drain once the writes stop is measured.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from compliance.worker import ComplianceWorker
from ingest.batch import Batch
from ingest.rows import Row
from ingest.store import Store
from parkwatch.settings import Settings
from schemas.registry import ParkSpec, RegistryFile, StationSpec
from schemas.stations import StationKind
from simulators.scratch import recreate, with_db

CST = ZoneInfo("Asia/Shanghai")
# Three station profiles in turn, four parameters each (the ones judged, plus O2 or flow).
PROFILES: tuple[tuple[StationKind, dict[str, Any], list[str]], ...] = (
    (StationKind.STACK, {"standard": "GB4915-2013", "class": "kiln"}, ["a21026", "a21002", "a34013", "a19001"]),
    (
        StationKind.WASTEWATER_OUTLET,
        {"standard": "GB18918-2002", "class": "1A"},
        ["w01018", "w21003", "w21011", "w00000"],
    ),
    (StationKind.AMBIENT_AIR, {"standard": "GB3095", "class": "2"}, ["a34004", "a34002", "a21026", "a05024"]),
)
TYPICAL = {
    "a21026": 120.0,
    "a21002": 250.0,
    "a34013": 15.0,
    "a19001": 10.5,
    "w01018": 35.0,
    "w21003": 3.0,
    "w21011": 0.35,
    "w00000": 120.0,
    "a34004": 45.0,
    "a34002": 80.0,
    "a05024": 90.0,
}
WRITE_BATCH = 20_000  # rows per Store.write (the ingest's batches are of this order)
LAG_SAMPLE = 0.5  # seconds between lag samples in the sustained run
DRAIN_TIMEOUT = 600.0


@dataclass
class CatchUp:
    """One catch-up run."""

    stations: int
    readings: int
    write_s: float
    judge_s: float
    hours: int
    verdicts: int
    aqi: int

    @property
    def per_station_hour_ms(self) -> float:
        """Judging cost per station-hour."""
        return self.judge_s / self.hours * 1000 if self.hours else math.nan


@dataclass
class Sustained:
    """The sustained run."""

    stations: int
    ticks: int
    readings: int
    readings_per_s: float
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    drain_s: float


class Fleet:
    """The bench fleet in its scratch database."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.settings = settings
        self.db_name = f"{settings.database_name}_bench_compliance"
        self.url = with_db(settings.DATABASE_URL, self.db_name)
        self.n = n
        self.specs = [
            StationSpec.model_validate(
                {
                    "id": f"bc-s{i:05d}",
                    "park_id": f"bc-p{i % 20:02d}",
                    "kind": PROFILES[i % 3][0],
                    "parameters": PROFILES[i % 3][2],
                    **PROFILES[i % 3][1],
                }
            )
            for i in range(n)
        ]
        self.slots: list[tuple[int, list[tuple[int, str]]]] = []  # sid, [(pid, code)]
        self.rng = random.Random(7)

    async def reset(self) -> None:
        """Drop and re-create the scratch database with the fleet registered."""
        parks = sorted({s.park_id for s in self.specs})
        registry = RegistryFile(
            parks=[ParkSpec(id=p, name=f"Bench park {p}", city="长沙") for p in parks], stations=self.specs
        )
        await recreate(self.url, timescale=self.settings.TIMESCALE, registry=registry)
        conn = await asyncpg.connect(self.url)
        try:
            sids = {r["id"]: r["sid"] for r in await conn.fetch("SELECT id, sid FROM stations")}
            pids = {r["code"]: r["pid"] for r in await conn.fetch("SELECT code, pid FROM parameters")}
        finally:
            await conn.close()
        self.slots = [(sids[s.id], [(pids[c], c) for c in s.parameters]) for s in self.specs]

    def minute_rows(self, stations: int, ts: datetime, received: datetime) -> list[Row]:
        """One minute record of every parameter of the first `stations` stations."""
        rows: list[Row] = []
        rnd = self.rng.random
        for sid, params in self.slots[:stations]:
            for pid, code in params:
                value = TYPICAL[code] * (0.7 + 0.6 * rnd())
                flag = "N" if rnd() > 0.02 else "C"  # ~2 % of minutes under calibration
                rows.append((sid, pid, 1, ts, round(value, 3), flag, received, None, None, None, None))
        return rows


async def _write(store: Store, rows: list[Row]) -> None:
    for i in range(0, len(rows), WRITE_BATCH):
        await store.write(Batch(rows=rows[i : i + WRITE_BATCH]))


async def catch_up(fleet: Fleet, stations: int, day: datetime) -> CatchUp:
    """Write a day of minute data for `stations` stations, then bring everything current."""
    store = Store(fleet.url)
    readings = 0
    started = time.perf_counter()
    try:
        pending: list[Row] = []
        for minute in range(24 * 60):
            pending += fleet.minute_rows(stations, day + timedelta(minutes=minute), datetime.now(UTC))
            if len(pending) >= WRITE_BATCH:
                await _write(store, pending)
                readings += len(pending)
                pending = []
        await _write(store, pending)
        readings += len(pending)
    finally:
        await store.close()
    write_s = time.perf_counter() - started
    worker = ComplianceWorker(fleet.url)
    conn = await asyncpg.connect(fleet.url)
    try:
        started = time.perf_counter()
        hours = await worker.drain(conn) or 0
        judge_s = time.perf_counter() - started
    finally:
        await conn.close()
    return CatchUp(stations, readings, write_s, judge_s, hours, worker.stats.verdicts, worker.stats.aqi)


async def sustained(fleet: Fleet, *, day: datetime, duration: float, tick_rate: float) -> Sustained:
    """Minute ticks for the whole fleet at `tick_rate` per second with the worker running beside."""
    worker = ComplianceWorker(fleet.url)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="bench.compliance")
    store = Store(fleet.url)
    probe = await asyncpg.connect(fleet.url)
    sampling = await asyncpg.connect(fleet.url)
    lags: list[float] = []
    ticks = readings = 0

    async def sample() -> None:
        while True:
            oldest = await sampling.fetchval("SELECT min(queued_at) FROM rollup_queue")
            lags.append(0.0 if oldest is None else max(0.0, time.time() - oldest.timestamp()))
            await asyncio.sleep(LAG_SAMPLE)

    sampler = asyncio.create_task(sample(), name="bench.lag")
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < duration:
            due = started + ticks / tick_rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            rows = fleet.minute_rows(fleet.n, day + timedelta(minutes=ticks), datetime.now(UTC))
            await _write(store, rows)
            ticks += 1
            readings += len(rows)
        elapsed = time.perf_counter() - started
        sampler.cancel()
        stopped = time.perf_counter()
        deadline = stopped + DRAIN_TIMEOUT
        while time.perf_counter() < deadline:
            if not await probe.fetchval("SELECT count(*) FROM rollup_queue"):
                break
            await asyncio.sleep(0.1)
        drain_s = time.perf_counter() - stopped
    finally:
        sampler.cancel()
        stop.set()
        await asyncio.gather(task, sampler, return_exceptions=True)
        await store.close()
        await probe.close()
        sampling.terminate()
    ordered = sorted(lags) or [0.0]
    return Sustained(
        fleet.n,
        ticks,
        readings,
        readings / elapsed,
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        ordered[-1],
        drain_s,
    )


def run(
    settings: Settings,
    *,
    stations: int,
    json_path: Path | None,
    duration: float = 60.0,
    tick_rate: float = 1.0,
) -> int:
    """The `parkwatch bench compliance` command."""
    stations = max(stations, 12)
    fleet = Fleet(settings, stations)
    quarter = max(3, stations // 4)
    print(
        f"parkwatch bench compliance: {stations} stations (stack, water outlet, ambient in turn), "
        f"4 parameters each, minute data",
        flush=True,
    )

    async def main() -> dict[str, Any]:
        await fleet.reset()
        out: dict[str, Any] = {}
        print(f"  1/3 one day for {quarter} stations: write, then catch up ...", flush=True)
        out["small"] = await catch_up(fleet, quarter, datetime(2026, 6, 1, tzinfo=CST))
        print(f"  2/3 one day for {stations} stations: write, then catch up ...", flush=True)
        out["full"] = await catch_up(fleet, stations, datetime(2026, 6, 2, tzinfo=CST))
        print(f"  3/3 sustained: a minute tick for every station {tick_rate:g}×/s for {duration:g} s ...", flush=True)
        out["sustained"] = await sustained(
            fleet, day=datetime(2026, 6, 3, tzinfo=CST), duration=duration, tick_rate=tick_rate
        )
        return out

    results = asyncio.run(main())
    small, full, sus = results["small"], results["full"], results["sustained"]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print()
    print(f"machine: {machine}")
    print(
        f"{'one day of minute data':<28}{'readings':>12}{'write s':>9}{'judge s':>9}{'judge/write':>13}"
        f"{'ms/stn-hour':>13}{'verdicts':>10}{'AQI':>8}"
    )
    for label, r in ((f"{small.stations} stations", small), (f"{full.stations} stations", full)):
        print(
            f"{label:<28}{r.readings:>12,}{r.write_s:>9.1f}{r.judge_s:>9.1f}{r.judge_s / r.write_s:>12.2f}x"
            f"{r.per_station_hour_ms:>13.2f}{r.verdicts:>10,}{r.aqi:>8,}"
        )
    growth = (full.judge_s / small.judge_s) / (full.readings / small.readings) if small.judge_s else math.nan
    print(f"judging time grew {growth:.2f}× as fast as the readings ({full.readings / small.readings:.1f}× more)")
    print(
        f"sustained: {sus.readings_per_s:,.0f} readings/s ({sus.ticks} minute ticks of {sus.stations} stations); "
        f"lag behind ingest p50 {sus.lag_p50_s:.1f} s, p99 {sus.lag_p99_s:.1f} s, max {sus.lag_max_s:.1f} s; "
        f"queue empty {sus.drain_s:.1f} s after the last write"
    )
    if json_path is not None:
        doc = {"machine": machine, **{k: asdict(v) for k, v in results.items()}}
        json_path.write_text(json.dumps(doc, indent=2))
        print(f"figures written to {json_path}")
    return 0
