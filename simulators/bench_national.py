"""`parkwatch bench national`: the country's reading rate through the whole pipeline, and what it costs.

The national load (docs/scale.md): ~50,000 monitored stations reporting ~10 factors a minute,
about 8,300 readings/s. This run registers that many stations (cement-kiln stacks of the bench
fleet, 8 factors a message) and publishes at that reading rate through `parkwatch serve` as a
user runs it (a process per part; with --instances N, N ingest instances of one shared group),
for --duration seconds. It measures what the capacity plan is built from: whether the rate is
kept, publish → commit latency, CPU per million readings of each part and of PostgreSQL, and
the bytes each stored reading takes with its indexes; then extrapolates a year of it.
Figures compare within one run only: the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from parkwatch.settings import Settings
from simulators.bench import Bench, RunResult

# The country (docs/scale.md#the-load): stations, and factors each reports a minute.
NATIONAL_STATIONS = 50_000
FACTORS_PER_STATION = 10
SECONDS_PER_YEAR = 365 * 86_400

# Bytes the readings take on disk with their indexes, per stored reading (native partitions or a
# hypertable's chunks), and the same for the hourly rollups.
SELECT_STORAGE = "SELECT value FROM parkwatch_meta WHERE key = 'storage'"
SELECT_READINGS_BYTES = {
    "native": "SELECT sum(pg_total_relation_size(relid))::float8 FROM pg_partition_tree('readings')",
    "timescaledb": "SELECT hypertable_size('readings')::float8",
}
COUNT_READINGS = "SELECT count(*)::float8 FROM readings"
# TimescaleDB: compress every chunk now (the policy would, after a few chunk widths) to measure
# what a reading takes compressed; an Apache-only build refuses, and the figure is left out.
COMPRESS_ALL = "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('readings') c"
ROLLUP_BYTES = "SELECT pg_total_relation_size('rollup_hour')::float8"
COUNT_ROLLUPS = "SELECT count(*)::float8 FROM rollup_hour"


def run(
    settings: Settings,
    *,
    stations: int,
    duration: float,
    publishers: int,
    instances: int,
    json_path: Path | None,
) -> int:
    """The `parkwatch bench national` command; 1 if a reading was lost or the rate was not kept."""
    rate = stations * FACTORS_PER_STATION / 60
    bench = Bench(
        settings, stations=stations, publishers=publishers, duration=duration, processes=2, instances=instances
    )
    print(
        f"parkwatch bench national: {stations:,} stations x {FACTORS_PER_STATION} factors a minute = {rate:,.0f} "
        f"readings/s for {duration:g} s; parkwatch as {bench.layout}; broker {bench.broker.kind}",
        flush=True,
    )

    async def main() -> tuple[RunResult, dict[str, float]]:
        result = await bench.run_parkwatch("national", duration=duration, rate_readings=rate)
        conn = await asyncpg.connect(bench.db_url)
        try:
            storage = await conn.fetchval(SELECT_STORAGE)
            readings_bytes = await conn.fetchval(SELECT_READINGS_BYTES[storage])
            readings = await conn.fetchval(COUNT_READINGS)
            rollup_bytes = await conn.fetchval(ROLLUP_BYTES)
            rollups = await conn.fetchval(COUNT_ROLLUPS)
            compressed = None
            if storage == "timescaledb":
                try:
                    await conn.fetchval(COMPRESS_ALL)
                    compressed = await conn.fetchval(SELECT_READINGS_BYTES[storage]) / max(readings, 1)
                except asyncpg.PostgresError as exc:
                    print(f"(compression not measured: {exc})")
        finally:
            await conn.close()
        sizes = {
            "bytes_per_reading": readings_bytes / max(readings, 1),
            "compressed_bytes_per_reading": compressed,
            "bytes_per_rollup_hour": rollup_bytes / max(rollups, 1),
        }
        return result, sizes

    failed = True
    try:
        result, sizes = asyncio.run(main())
        failed = False
    finally:
        bench.close(keep_logs=failed)
    by_part: dict[str, float] = result.extra.get("cpu_s_per_million_by_part", {})
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print()
    print(f"machine: {machine}")
    print(
        f"kept {result.readings_per_s:,.0f} readings/s of {rate:,.0f} offered ({result.readings_per_s / rate:.2f}x); "
        f"lost {result.lost}; publish → commit p50 {_ms(result.latency_p50_s)}, p99 {_ms(result.latency_p99_s)}"
    )
    print(f"{'part':<14}{'CPU s/M':>9}{'cores at this rate':>20}")
    for part, per_million in sorted(by_part.items(), key=lambda kv: -kv[1]):
        print(f"{part:<14}{per_million:>9.2f}{per_million * rate / 1e6:>20.2f}")
    total = sum(by_part.values())
    print(f"{'all':<14}{total:>9.2f}{total * rate / 1e6:>20.2f}")
    year = rate * SECONDS_PER_YEAR
    raw_tb = year * sizes["bytes_per_reading"] / 1e12
    rollup_rows = stations * FACTORS_PER_STATION * 24 * 365
    rollup_tb = rollup_rows * sizes["bytes_per_rollup_hour"] / 1e12
    if sizes["compressed_bytes_per_reading"] is not None:
        print(f"compressed (TimescaleDB): {sizes['compressed_bytes_per_reading']:.1f} bytes a reading")
    print(
        f"storage: {sizes['bytes_per_reading']:.0f} bytes a reading with its indexes, "
        f"{sizes['bytes_per_rollup_hour']:.0f} an hourly rollup; a year at this rate: {year / 1e9:,.0f} billion "
        f"readings = {raw_tb:,.1f} TB raw, {rollup_tb:,.2f} TB of hourly rollups"
    )
    failures = []
    if result.lost:
        failures.append(f"{result.lost} reading(s) lost")
    if result.readings_per_s < 0.95 * rate:
        failures.append("the national rate was not kept")
    for failure in failures:
        print(f"FAILED: {failure}")
    if json_path is not None:
        doc: dict[str, Any] = {
            "machine": machine,
            "layout": bench.layout,
            "stations": stations,
            "offered_readings_per_s": rate,
            "run": asdict(result),
            "sizes": sizes,
            "year": {"readings": year, "raw_tb": raw_tb, "rollup_tb": rollup_tb},
        }
        json_path.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    return 1 if failures else 0


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"
