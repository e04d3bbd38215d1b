"""`parkwatch bench scale`: how query latency and ingest cost grow as the readings table grows.

One scratch database is filled in steps to each size asked (1, 10 and 100 million readings by
default) with minute data of cement-kiln stacks (8 parameters, the benchmark's station), over
the 31 local days before today. The station and the park the queries ask for are filled first,
so every step answers the same queries with the same rows; only the table around them grows.
At each size it measures:
- fill: server-side INSERT … SELECT of the step (how the table is grown; not the ingest path);
- catch-up: the compliance worker bringing rollups and verdicts current for the step;
- queries, warm, as an inspector makes them: one station's month of hourly data (the SQL the
  API runs, and GET /api/v1/readings?interval=hour over HTTP) and one park's day of raw
  minute data (GET /api/v1/readings?park_id=…, every page);
- ingest: the ingest's own write path (Store.write: COPY, series, rollup queue) taking a fixed
  number of new real-time readings into the middle of the filled month (the partition there
  as full as its width allows), as readings/s beside the first size's rate; once right after
  the fill and again after VACUUM (ANALYZE) and CHECKPOINT.
Figures are comparable only within one run: the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson

from api.principals import Role, create_key
from api.routes.rollups import SELECT_HOURS
from compliance.worker import ComplianceWorker
from ingest.batch import Batch
from ingest.rows import Row
from ingest.store import ENSURE_PARTITION, Store
from parkwatch.settings import Settings
from schemas.registry import ParkSpec, RegistryFile, StationSpec
from schemas.stations import StationKind
from simulators.broker import free_port
from simulators.loadgen import BENCH_CODES, TYPICAL
from simulators.procs import parkwatch_env, stop
from simulators.scratch import drop, recreate, with_db

CST = ZoneInfo("Asia/Shanghai")
DAYS = 31  # the month an inspector asks for
STATIONS_PER_PARK = 5
READINGS_PER_STATION_DAY = len(BENCH_CODES) * 1440
# Station-days per INSERT … SELECT: ~1.2 M rows, big enough to amortise, small enough to report.
FILL_CHUNK = 100
# Warm repetitions of each query (after one run that warms the caches); p50 and max reported.
QUERY_REPEAT = 11
# New readings written through the ingest's path at each size, in batches the ingest makes.
INGEST_READINGS = 200_000
INGEST_BATCH = 5_000
# The new readings go into the middle of the filled month, not into today: the partition they
# land in then holds as much as its width can (a month's partition most of the fill, a week's a
# quarter of it, a day's a thirtieth), as the current partition does at the end of its period.
INGEST_DAYS_BACK = 15
API_START_TIMEOUT = 30.0
API_STOP_GRACE = 30.0  # the API holds no data: a short wait

FILL = """
INSERT INTO readings (sid, pid, iv, ts, value, flag, received_at)
SELECT u.sid, p.pid, 1, t, round((p.typical * (0.85 + 0.15 * sin(extract(epoch FROM t) / 3600.0 + u.sid)))::numeric, 2),
       'N', t + interval '70 seconds'
FROM unnest($1::integer[], $2::timestamptz[]) AS u(sid, day)
CROSS JOIN unnest($3::smallint[], $4::float8[]) AS p(pid, typical)
CROSS JOIN LATERAL generate_series(u.day, u.day + interval '1 day' - interval '1 minute', interval '1 minute') AS t
"""
FILL_SERIES = """
INSERT INTO series (sid, pid, iv)
SELECT s, p, 1 FROM unnest($1::integer[]) AS s CROSS JOIN unnest($2::smallint[]) AS p
ON CONFLICT DO NOTHING
"""
# The hours a fill touched, for the worker (the ingest queues them the same way).
FILL_QUEUE = """
INSERT INTO rollup_queue (sid, hour)
SELECT u.sid, h
FROM unnest($1::integer[], $2::timestamptz[]) AS u(sid, day)
CROSS JOIN LATERAL generate_series(u.day, u.day + interval '23 hours', interval '1 hour') AS h
ON CONFLICT DO NOTHING
"""
SIZE_ON_DISK = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass
"""


@dataclass
class Step:
    """The figures at one size."""

    readings: int
    size_gb: float
    fill_s: float
    fill_per_s: float
    catch_up_s: float
    station_hours: int
    month_hourly_sql_ms: dict[str, float] = field(default_factory=dict)
    month_hourly_api_ms: dict[str, float] = field(default_factory=dict)
    month_hourly_one_api_ms: dict[str, float] = field(default_factory=dict)
    park_day_api_ms: dict[str, float] = field(default_factory=dict)
    park_day_rows: int = 0
    month_hourly_rows: int = 0
    ingest_per_s: float = 0.0
    settle_s: float = 0.0
    ingest_settled_per_s: float = 0.0


class Scale:
    """The scratch database and its fleet."""

    def __init__(self, settings: Settings, largest: int) -> None:
        self.settings = settings
        self.url = with_db(settings.DATABASE_URL, f"{settings.database_name}_bench_scale")
        n = max(STATIONS_PER_PARK * 2, -(-largest // (READINGS_PER_STATION_DAY * DAYS)) + STATIONS_PER_PARK)
        self.station_ids = [f"sc-s{i:04d}" for i in range(n)]
        today = datetime.now(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        self.today = today
        self.days = [today - timedelta(days=DAYS - i) for i in range(DAYS)]
        self.query_day = self.days[-1]
        self.sids: list[int] = []
        self.pids: list[int] = []
        self.typical: list[float] = []
        self.plan: list[tuple[int, datetime]] = []  # station-days in fill order
        self.queried = 0  # the first station-days of the plan: what the queries read
        self.filled = 0  # station-days of the plan written
        self.ingest_second = 0

    @property
    def target_station(self) -> str:
        """The station whose month of hourly data is asked for."""
        return self.station_ids[0]

    @property
    def target_park(self) -> str:
        """The park whose day of raw data is asked for."""
        return "sc-p000"

    async def reset(self) -> None:
        """A fresh database with the fleet registered; the fill plan made."""
        parks = [f"sc-p{i:03d}" for i in range(-(-len(self.station_ids) // STATIONS_PER_PARK))]
        registry = RegistryFile(
            parks=[ParkSpec(id=p, name=f"Scale park {p}", city="长沙") for p in parks],
            stations=[
                StationSpec.model_validate(
                    {
                        "id": s,
                        "park_id": parks[i // STATIONS_PER_PARK],
                        "kind": StationKind.STACK,
                        "parameters": BENCH_CODES,
                        "standard": "GB4915-2013",
                        "class": "kiln",
                    }
                )
                for i, s in enumerate(self.station_ids)
            ],
        )
        await recreate(
            self.url, timescale=self.settings.TIMESCALE, registry=registry, partition=self.settings.READINGS_PARTITION
        )
        conn = await asyncpg.connect(self.url)
        try:
            by_id = {r["id"]: r["sid"] for r in await conn.fetch("SELECT id, sid FROM stations")}
            by_code = {r["code"]: r["pid"] for r in await conn.fetch("SELECT code, pid FROM parameters")}
            # Each local day's first and last instant: the partitions (a UTC day, week or month
            # wide: docs/storage.md#partitions) of every reading the fill writes.
            for day in [*self.days, self.today]:
                for ts in (day, day + timedelta(days=1) - timedelta(microseconds=1)):
                    await conn.execute(ENSURE_PARTITION, ts)
        finally:
            await conn.close()
        self.sids = [by_id[s] for s in self.station_ids]
        self.pids = [by_code[c] for c in BENCH_CODES]
        self.typical = list(TYPICAL)
        first, park = self.sids[0], self.sids[1:STATIONS_PER_PARK]
        plan = [(first, d) for d in self.days] + [(s, self.query_day) for s in park]
        rest = [(s, d) for s in self.sids[STATIONS_PER_PARK:] for d in self.days]
        rest += [(s, d) for s in park for d in self.days[:-1]]
        self.plan = plan + rest
        self.queried = len(plan)

    async def fill_to(self, readings: int) -> tuple[float, int]:
        """Write station-days until the table holds `readings`; returns (seconds, rows written)."""
        want = min(len(self.plan), max(self.queried, -(-readings // READINGS_PER_STATION_DAY)))
        conn = await asyncpg.connect(self.url)
        written = 0
        started = time.perf_counter()
        try:
            await conn.execute(FILL_SERIES, self.sids, self.pids)
            while self.filled < want:
                chunk = self.plan[self.filled : min(want, self.filled + FILL_CHUNK)]
                sids, days = [s for s, _ in chunk], [d for _, d in chunk]
                async with conn.transaction():
                    status = await conn.execute(FILL, sids, days, self.pids, self.typical)
                    await conn.execute(FILL_QUEUE, sids, days)
                written += int(status.split()[-1])
                self.filled += len(chunk)
            await conn.execute("ANALYZE readings")
        finally:
            await conn.close()
        return time.perf_counter() - started, written

    async def catch_up(self) -> tuple[float, int]:
        """The worker brings everything current; returns (seconds, station-hours)."""
        conn = await asyncpg.connect(self.url)
        try:
            started = time.perf_counter()
            hours = await ComplianceWorker(self.url).drain(conn) or 0
            await conn.execute("ANALYZE rollup_hour")
            return time.perf_counter() - started, hours
        finally:
            await conn.close()

    async def ingest(self) -> float:
        """Write INGEST_READINGS new real-time readings through the ingest's store; readings/s.

        One record a second per station from midnight INGEST_DAYS_BACK days ago on (real-time data,
        keys the minute data of the fill do not hold): with the fleet of a 100 M run that is a
        minute and a half of that day.
        """
        store = Store(self.url)
        received = datetime.now(UTC)
        rows: list[Row] = []
        while len(rows) < INGEST_READINGS:
            ts = self.today - timedelta(days=INGEST_DAYS_BACK) + timedelta(seconds=self.ingest_second)
            self.ingest_second += 1
            for sid in self.sids:
                rows += [
                    (sid, pid, 0, ts, TYPICAL[k], "N", received, None, None, None, None)
                    for k, pid in enumerate(self.pids)
                ]
        try:
            started = time.perf_counter()
            for i in range(0, len(rows), INGEST_BATCH):
                await store.write(Batch(rows=rows[i : i + INGEST_BATCH]))
            seconds = time.perf_counter() - started
        finally:
            await store.close()
        return len(rows) / seconds

    async def settle(self) -> float:
        """VACUUM (ANALYZE) the readings and CHECKPOINT, as a table grown over weeks would be; seconds.

        The fill writes tens of millions of rows in minutes; until autovacuum has been through them
        and the checkpointer has written them out, the write measured next competes with both on
        the same cores. A table that grew at the ingest's pace would have been vacuumed along the way.
        """
        conn = await asyncpg.connect(self.url, command_timeout=None)
        try:
            started = time.perf_counter()
            await conn.execute("VACUUM (ANALYZE) readings")
            await conn.execute("CHECKPOINT")
            return time.perf_counter() - started
        finally:
            await conn.close()

    async def size(self) -> tuple[int, float]:
        """Readings stored and the readings partitions' size on disk (GB, with indexes)."""
        conn = await asyncpg.connect(self.url)
        try:
            n = await conn.fetchval("SELECT count(*) FROM readings")
            size = await conn.fetchval(SIZE_ON_DISK)
        finally:
            await conn.close()
        return int(n), size / 1e9

    async def drop(self) -> None:
        """Drop the scratch database."""
        await drop(self.url)


def _summary(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 1), "max": round(max(samples), 1)}


async def _timed(call: Any) -> tuple[list[float], int]:
    await call()  # warms the caches, as an inspector's second look would be
    samples, rows = [], 0
    for _ in range(QUERY_REPEAT):
        started = time.perf_counter()
        rows = await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, rows


async def _all_pages(client: httpx.AsyncClient, params: dict[str, Any]) -> int:
    rows, cursor = 0, None
    while True:
        resp = await client.get("/api/v1/readings", params={**params, **({"cursor": cursor} if cursor else {})})
        resp.raise_for_status()
        body = orjson.loads(resp.content)
        rows += len(body["results"])
        cursor = body.get("next_cursor")
        if not cursor:
            return rows


async def _queries(scale: Scale, client: httpx.AsyncClient, step: Step) -> None:
    start, end = scale.days[0], scale.today
    conn = await asyncpg.connect(scale.url)
    try:

        async def month_sql() -> int:
            first = (-1, -1, datetime(1, 1, 2, tzinfo=UTC))
            return len(await conn.fetch(SELECT_HOURS, [scale.sids[0]], None, start, end, *first, 10_000))

        samples, step.month_hourly_rows = await _timed(month_sql)
        step.month_hourly_sql_ms = _summary(samples)
    finally:
        await conn.close()
    month = {
        "station_id": scale.target_station,
        "interval": "hour",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "limit": 10_000,
    }
    samples, _ = await _timed(lambda: _all_pages(client, month))
    step.month_hourly_api_ms = _summary(samples)
    samples, _ = await _timed(lambda: _all_pages(client, {**month, "parameter": "so2"}))
    step.month_hourly_one_api_ms = _summary(samples)
    day = {
        "park_id": scale.target_park,
        "interval": "min",
        "start": scale.query_day.isoformat(),
        "end": (scale.query_day + timedelta(days=1)).isoformat(),
        "limit": 10_000,
    }
    samples, step.park_day_rows = await _timed(lambda: _all_pages(client, day))
    step.park_day_api_ms = _summary(samples)


@contextlib.asynccontextmanager
async def _api(scale: Scale) -> Any:
    """`parkwatch serve --only api` on the scratch database, as a subprocess, and a client for it.

    The client sends an administrator's key: the figures are the owner's reads (`parkwatch bench
    access` compares the roles).
    """
    conn = await asyncpg.connect(scale.url)
    try:
        _, key = await create_key(conn, name="bench-scale", role=Role.ADMIN, scopes=[], created_by="bench")
    finally:
        await conn.close()
    port = free_port()
    env = parkwatch_env(
        PARKWATCH_DATABASE_URL=scale.url,
        PARKWATCH_API_PORT=str(port),
        PARKWATCH_LOG_LEVEL="WARNING",
    )
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "parkwatch.cli", "serve", "--only", "api"), env=env, stdout=log, stderr=log
        )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=120, headers={"X-API-Key": key}
            ) as client:
                deadline = time.monotonic() + API_START_TIMEOUT
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/healthz")).status_code < 500:
                            break
                    if time.monotonic() > deadline or proc.returncode is not None:
                        log.seek(0)
                        raise RuntimeError(f"the API did not start: {log.read()[-2000:].decode(errors='replace')}")
                    await asyncio.sleep(0.2)
                yield client
        finally:
            await stop([proc], API_STOP_GRACE)


def run(settings: Settings, *, sizes: list[int], json_path: Path | None, keep: bool = False) -> int:
    """The `parkwatch bench scale` command."""
    sizes = sorted(sizes)
    scale = Scale(settings, sizes[-1])
    print(
        f"parkwatch bench scale: {', '.join(f'{s:,}' for s in sizes)} readings; {len(scale.station_ids)} kiln "
        f"stacks x 8 parameters, minute data over {DAYS} days; readings partitions a {settings.READINGS_PARTITION} "
        f"wide (PARKWATCH_READINGS_PARTITION)",
        flush=True,
    )

    async def main() -> list[Step]:
        try:
            return await measure()
        finally:
            if not keep:
                await scale.drop()  # ~11 GB at 100 M readings: never left behind by a failure

    async def measure() -> list[Step]:
        await scale.reset()
        steps = []
        for size in sizes:
            print(f"  {size:,} readings: fill ...", flush=True)
            fill_s, written = await scale.fill_to(size)
            print("    catch up ...", flush=True)
            catch_s, hours = await scale.catch_up()
            readings, gb = await scale.size()
            step = Step(readings, round(gb, 2), round(fill_s, 1), round(written / fill_s), round(catch_s, 1), hours)
            print("    queries ...", flush=True)
            async with _api(scale) as client:
                await _queries(scale, client, step)
            print("    ingest ...", flush=True)
            step.ingest_per_s = round(await scale.ingest())
            await scale.catch_up()  # what the ingest queued, so the next step's catch-up is its own
            print("    vacuum, checkpoint, ingest again ...", flush=True)
            step.settle_s = round(await scale.settle(), 1)
            step.ingest_settled_per_s = round(await scale.ingest())
            await scale.catch_up()
            steps.append(step)
        return steps

    steps = asyncio.run(main())
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    first, last = steps[0], steps[-1]
    print()
    print(f"machine: {machine}")
    print(
        f"{'readings':>13}{'on disk':>9}{'fill/s':>10}{'catch-up':>10}{'ms/stn-h':>9}"
        f"{'month hourly SQL':>18}{'API':>9}{'API SO2':>9}{'park day API':>14}{'ingest/s':>10}{'vs first':>9}"
        f"{'settle':>8}{'then ingest/s':>14}{'vs first':>9}"
    )
    for s in steps:
        per_hour = s.catch_up_s / s.station_hours * 1000 if s.station_hours else 0.0
        print(
            f"{s.readings:>13,}{s.size_gb:>7.1f}GB{s.fill_per_s:>10,.0f}{s.catch_up_s:>9.1f}s{per_hour:>9.2f}"
            f"{s.month_hourly_sql_ms['p50']:>15.1f} ms{s.month_hourly_api_ms['p50']:>6.0f} ms"
            f"{s.month_hourly_one_api_ms['p50']:>6.0f} ms"
            f"{s.park_day_api_ms['p50']:>11.0f} ms{s.ingest_per_s:>10,.0f}{s.ingest_per_s / first.ingest_per_s:>8.2f}x"
            f"{s.settle_s:>7.0f}s{s.ingest_settled_per_s:>14,.0f}"
            f"{s.ingest_settled_per_s / first.ingest_settled_per_s:>8.2f}x"
        )
    print(
        f"(queries: warm p50 of {QUERY_REPEAT}; month hourly = {last.month_hourly_rows:,} hourly rows of one "
        f"station's 8 parameters, API SO2 = its {last.month_hourly_rows // 8} SO2 hours; park day = "
        f"{last.park_day_rows:,} minute readings of {STATIONS_PER_PARK} stations, every page; ingest = "
        f"{INGEST_READINGS:,} new readings through Store.write, right after the fill and again after VACUUM "
        "(ANALYZE) and CHECKPOINT)"
    )
    if json_path is not None:
        doc = {"machine": machine, "steps": [asdict(s) for s in steps]}
        json_path.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        print(f"figures written to {json_path}")
    return 0
