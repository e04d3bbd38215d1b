"""Export benchmark: 1 M and 10 M readings as CSV through the HTTP API, rows/s and the API process's peak RSS.

Run as `parkwatch bench export --rows 10000000` (docs/benchmarks.md#exports). A scratch
database (<PARKWATCH_DATABASE_URL's name>_bench_export) gets one park of 20 kiln stacks × 8
parameters of minute data, written server-side by INSERT … SELECT generate_series (not the ingest
path: its subject is the export). Then, for each size, a fresh `parkwatch serve --only api`
process serves one export to an operator of that park (row-level security on, as in use): the
smaller size is the first stations of the park, the larger the whole park, over the same minutes.
Each export is streamed by the client to nowhere, counting its bytes and lines; the API process's
peak resident memory over the export (VmHWM, reset after a warm-up export; and VmRSS sampled
every 0.2 s) and CPU are read from /proc.
Figures are comparable only within one run: the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson

from api.principals import Role, Scope, create_key
from ingest.store import ENSURE_PARTITION
from parkwatch.settings import Settings
from schemas.registry import ParkSpec, RegistryFile, StationSpec
from schemas.stations import StationKind
from simulators.broker import free_port
from simulators.loadgen import BENCH_CODES, TYPICAL
from simulators.procs import cpu_seconds, parkwatch_env, peak_rss_mb, stop
from simulators.scratch import drop, recreate, with_db

CST = ZoneInfo("Asia/Shanghai")
STATIONS = 20
PARK = "bx-p0"
# Another park's station with a day of data: what the operator must not get, and RLS must skip.
OTHER_PARK = "bx-p1"
T0 = datetime(2026, 1, 1, tzinfo=CST)
API_START_TIMEOUT = 60.0
API_STOP_GRACE = 30.0
RSS_EVERY_S = 0.2
# The client's own reads: large, so that the client is not what limits the rate.
READ_CHUNK = 1 << 20

FILL = """
INSERT INTO readings (sid, pid, iv, ts, value, flag, received_at)
SELECT $1::integer, p.pid, 1, t,
       round((p.typical * (0.85 + 0.15 * sin(extract(epoch FROM t) / 3600.0 + $1::integer)))::numeric, 2),
       'N', t + interval '70 seconds'
FROM unnest($2::smallint[], $3::float8[]) AS p(pid, typical)
CROSS JOIN generate_series($4::timestamptz, $5::timestamptz - interval '1 minute', interval '1 minute') AS t
"""
FILL_SERIES = """
INSERT INTO series (sid, pid, iv)
SELECT s, p, 1 FROM unnest($1::integer[]) AS s CROSS JOIN unnest($2::smallint[]) AS p
ON CONFLICT DO NOTHING
"""
COUNT = "SELECT count(*) FROM readings"


@dataclass
class Run:
    """One export as measured."""

    label: str
    format: str
    rows: int
    bytes: int
    seconds: float
    rows_per_s: float
    mb_per_s: float
    first_byte_s: float
    rss_before_mb: float
    rss_peak_sampled_mb: float
    rss_peak_mb: float
    cpu_s_per_m_rows: float


def _registry() -> RegistryFile:
    def stack(sid: str, park: str) -> StationSpec:
        return StationSpec.model_validate(
            {"id": sid, "park_id": park, "kind": StationKind.STACK, "parameters": BENCH_CODES,
             "standard": "GB4915-2013", "class": "kiln", "name": f"{sid} 窑尾"}
        )  # fmt: skip

    return RegistryFile(
        parks=[
            ParkSpec(id=PARK, name="导出测试园区", city="长沙"),
            ParkSpec(id=OTHER_PARK, name="其他园区", city="株洲"),
        ],
        stations=[stack(f"bx-s{i:02d}", PARK) for i in range(STATIONS)] + [stack("bx-other", OTHER_PARK)],
    )


async def _fill(url: str, minutes: int, timescale: str) -> None:
    """The scratch database, afresh: the registry, then `minutes` of minute data for each station."""
    await recreate(url, timescale=timescale, registry=_registry())
    conn = await asyncpg.connect(url)
    try:
        sids = {r["id"]: r["sid"] for r in await conn.fetch("SELECT id, sid FROM stations")}
        by_code = {r["code"]: r["pid"] for r in await conn.fetch("SELECT code, pid FROM parameters")}
        pids = [by_code[c] for c in BENCH_CODES]
        typical = list(TYPICAL)
        end = T0 + timedelta(minutes=minutes)
        # A partition is at least a UTC day wide (docs/storage.md#partitions): one call a day.
        day = T0
        while day < end + timedelta(days=1):
            await conn.execute(ENSURE_PARTITION, min(day, end))
            day += timedelta(days=1)
        await conn.execute(FILL_SERIES, list(sids.values()), pids)
        started = time.perf_counter()
        written = 0
        for i in range(STATIONS):
            status = await conn.execute(FILL, sids[f"bx-s{i:02d}"], pids, typical, T0, end)
            written += int(status.split()[-1])
            if sys.stdout.isatty():
                print(f"\r  fill: {written:,} rows", end="", flush=True)
        await conn.execute(FILL, sids["bx-other"], pids, typical, T0, T0 + timedelta(days=1))
        seconds = time.perf_counter() - started
        print(f"\r  fill: {written:,} rows in {seconds:.0f} s ({written / seconds:,.0f}/s)", flush=True)
        await conn.execute("VACUUM ANALYZE readings")
    finally:
        await conn.close()


async def _key(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        _, key = await create_key(
            conn, name=f"bench-{os.getpid()}", role=Role.OPERATOR, scopes=[Scope("park", PARK)], created_by="bench"
        )
    finally:
        await conn.close()
    return key


@contextlib.asynccontextmanager
async def _api(url: str, key: str) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """A fresh `parkwatch serve --only api` on the scratch database; its client and pid."""
    port = free_port()
    env = parkwatch_env(PARKWATCH_DATABASE_URL=url, PARKWATCH_API_PORT=str(port), PARKWATCH_LOG_LEVEL="WARNING")
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "parkwatch.cli", "serve", "--only", "api"), env=env, stdout=log, stderr=log
        )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(30, read=600), headers={"X-API-Key": key}
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
                yield client, proc.pid
        finally:
            await stop([proc], API_STOP_GRACE)
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace").strip()
            if "Traceback" in tail:
                print(f"  the API logged:\n{tail}", flush=True)


def _reset_peak(pid: int) -> None:
    """Make the process's VmHWM its current RSS (Linux ≥ 4.0, proc(5) clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _rss_mb(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _measure(url: str, key: str, label: str, params: dict[str, Any], *, fmt: str, expected: int) -> Run:
    async with _api(url, key) as (client, pid):
        # Everything a first export imports and caches, loaded before the measure begins.
        warm = {**params, "end": (T0 + timedelta(minutes=1)).isoformat(), "format": fmt}
        warmed = await client.get("/api/v1/exports/readings", params=warm)
        if warmed.status_code != 200:
            raise RuntimeError(f"the warm-up export answered {warmed.status_code}: {warmed.text[:500]}")
        # The peak so far is the start-up's: from here on, VmHWM is the export's alone.
        _reset_peak(pid)
        before = _rss_mb(pid)
        sampled = before
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal sampled
            while not done.is_set():
                sampled = max(sampled, _rss_mb(pid))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), RSS_EVERY_S)

        sampler = asyncio.create_task(sample())
        cpu0 = cpu_seconds(pid)
        started = time.perf_counter()
        first_byte = 0.0
        size = lines = 0
        async with client.stream("GET", "/api/v1/exports/readings", params={**params, "format": fmt}) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise RuntimeError(f"export answered {resp.status_code}: {resp.text[:500]}")
            async for chunk in resp.aiter_raw(READ_CHUNK):
                if not size:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu0
        done.set()
        await sampler
        peak = peak_rss_mb(pid)
    rows = lines - 1 if fmt == "csv" else expected
    if fmt == "csv" and rows != expected:
        raise RuntimeError(f"{label}: {rows:,} rows exported, {expected:,} expected")
    return Run(
        label=label, format=fmt, rows=rows, bytes=size, seconds=round(seconds, 2), rows_per_s=round(rows / seconds),
        mb_per_s=round(size / 2**20 / seconds, 1), first_byte_s=round(first_byte, 3), rss_before_mb=round(before, 1),
        rss_peak_sampled_mb=round(sampled, 1), rss_peak_mb=round(peak, 1),
        cpu_s_per_m_rows=round(cpu / rows * 1e6, 2),
    )  # fmt: skip


def _print(run: Run) -> None:
    print(
        f"  {run.label:<6}{run.format:<5}{run.rows:>12,} rows {run.bytes / 2**20:>9,.0f} MB {run.seconds:>8.1f} s"
        f"{run.rows_per_s:>10,.0f} rows/s {run.mb_per_s:>6.1f} MB/s  first byte {run.first_byte_s * 1000:>5.0f} ms"
        f"  RSS {run.rss_before_mb:>5.0f} MB before, peak {run.rss_peak_mb:>5.0f} MB"
        f" (sampled {run.rss_peak_sampled_mb:.0f})  CPU {run.cpu_s_per_m_rows:.1f} s/M rows",
        flush=True,
    )


def run(
    settings: Settings, *, rows: int, small: int, xlsx: bool, keep: bool, reuse: bool, json_path: Path | None
) -> int:
    """Fill (or reuse) the scratch database, measure each export, print the figures and their ratios."""
    url = with_db(settings.DATABASE_URL, f"{settings.database_name}_bench_export")
    per_station = len(BENCH_CODES)
    minutes = -(-rows // (STATIONS * per_station))
    small_stations = max(1, min(STATIONS, round(small / (per_station * minutes))))
    total = STATIONS * per_station * minutes
    small_rows = small_stations * per_station * minutes
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print(
        f"bench export: {total:,} readings ({STATIONS} kiln stacks x {per_station} parameters x {minutes:,} minutes) "
        f"and {small_rows:,} ({small_stations} stacks) as CSV through GET /api/v1/exports/readings; {machine}",
        flush=True,
    )
    span = {"start": T0.isoformat(), "end": (T0 + timedelta(minutes=minutes)).isoformat()}
    large_params = {"park_id": PARK, **span}
    small_params = {"station_id": ",".join(f"bx-s{i:02d}" for i in range(small_stations)), **span}

    async def main() -> list[Run]:
        try:
            if not (reuse and await _has(url, total)):
                await _fill(url, minutes, settings.TIMESCALE)
            key = await _key(url)
            runs = []
            for label, params, expected in (("small", small_params, small_rows), ("large", large_params, total)):
                runs.append(await _measure(url, key, label, params, fmt="csv", expected=expected))
                _print(runs[-1])
            if xlsx:
                one = {"station_id": "bx-s00", **span}
                runs.append(await _measure(url, key, "xlsx", one, fmt="xlsx", expected=per_station * minutes))
                _print(runs[-1])
            return runs
        finally:
            if not keep:
                await drop(url)

    runs = asyncio.run(main())
    small_run, large_run = runs[0], runs[1]
    print(
        f"large ÷ small: rows {large_run.rows / small_run.rows:.1f}x, "
        f"rows/s {large_run.rows_per_s / small_run.rows_per_s:.2f}, "
        f"peak RSS {large_run.rss_peak_mb / small_run.rss_peak_mb:.2f} "
        f"(growth over the idle process: {large_run.rss_peak_mb - large_run.rss_before_mb:.0f} MB against "
        f"{small_run.rss_peak_mb - small_run.rss_before_mb:.0f} MB)",
        flush=True,
    )
    if json_path is not None:
        json_path.write_bytes(orjson.dumps({"machine": machine, "runs": [asdict(r) for r in runs]}))
    return 0


async def _has(url: str, rows: int) -> bool:
    """Whether the scratch database is there, filled as this run would fill it."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return int(await conn.fetchval(COUNT)) == rows + len(BENCH_CODES) * 1440
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()
