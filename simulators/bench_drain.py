"""`parkwatch bench drain`: a broker backlog queued while parkwatch was away, drained by each way of running it.

The bench fleet's minute data (simulators/bench.py) are published while no ingest is connected,
the broker queueing them for the ingest's persistent session(s); then parkwatch starts and the
database is polled until it holds all of it. Layouts, each on a fresh scratch database:
`serve --single-process` (ingest, compliance in one process); `serve` as a user runs it (a
process per part, parkwatch/supervisor.py); and with --instances N, N ingest instances of one
shared group beside a compliance process (docs/scale.md). The rate counts from the first reading
stored to the last, so start-up is left out (printed apart). Figures compare within one run only.
"""

from __future__ import annotations

import asyncio
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from parkwatch.settings import Settings
from simulators.bench import READINGS_PER_MESSAGE, Bench, RunResult
from simulators.bench_run import print_instances

# Below deploy/mosquitto.conf's max_queued_messages (50,000 messages of 8 readings) for one
# session: a bigger backlog would be dropped by the broker, not drained.
MAX_READINGS = 50_000 * READINGS_PER_MESSAGE


def run(
    settings: Settings,
    *,
    readings: int,
    instances: int,
    stations: int,
    publishers: int,
    json_path: Path | None,
) -> int:
    """The `parkwatch bench drain` command; 1 if a reading was lost."""
    readings = min(readings, MAX_READINGS)
    layouts = [("one", 1, 1), ("serve", 2, 1)] + ([(f"instances{instances}", 2, instances)] if instances > 1 else [])
    benches = {
        name: Bench(settings, stations=stations, publishers=publishers, duration=1.0, processes=procs, instances=n)
        for name, procs, n in layouts
    }
    print(
        f"parkwatch bench drain: a backlog of {readings:,} readings from {stations} stations; "
        f"{os.cpu_count()} cores; broker {next(iter(benches.values())).broker.kind}",
        flush=True,
    )

    async def main() -> dict[str, RunResult]:
        out = {}
        for i, (name, bench) in enumerate(benches.items(), 1):
            print(f"  {i}/{len(benches)} {bench.layout} ...", flush=True)
            out[name] = await bench.run_drain(name, readings=readings)
        return out

    failed = True
    try:
        results = asyncio.run(main())
        failed = False
    finally:
        for bench in benches.values():
            bench.close(keep_logs=failed)
    base = results["one"].readings_per_s
    print()
    print(f"{'layout':<58}{'readings/s':>12}{'vs one':>9}{'lost':>7}{'CPU s/M':>9}{'RSS MB':>8}{'start→done':>12}")
    for name, r in results.items():
        ratio = f"{r.readings_per_s / base:.2f}x" if base else "-"
        print(
            f"{benches[name].layout:<58}{r.readings_per_s:>12,.0f}{ratio:>9}{r.lost:>7}"
            f"{r.cpu_s_per_million or 0:>9.1f}{r.peak_rss_mb or 0:>8.0f}{r.extra['start_to_drained_s']:>11.1f}s"
        )
    for r in results.values():
        print_instances(r)
    lost = sum(r.lost for r in results.values())
    print(f"readings lost: {lost} of {sum(r.published for r in results.values()) * READINGS_PER_MESSAGE:,}")
    if json_path is not None:
        doc: dict[str, Any] = {
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
            "readings": readings,
            "runs": {k: asdict(v) | {"layout": benches[k].layout} for k, v in results.items()},
        }
        json_path.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    return 1 if lost or not all(r.readings_per_s for r in results.values()) else 0
