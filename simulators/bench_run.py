"""`parkwatch bench` (the whole path): its four runs, the table they print, and the exit status."""

from __future__ import annotations

import asyncio
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from parkwatch.settings import Settings
from simulators.bench import DECIDING_MINUTE, READINGS_PER_MESSAGE, Bench, RunResult


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value:,.0f}"


def print_instances(r: RunResult) -> None:
    """Each ingest instance's share of a run, when there were several."""
    shares = r.extra.get("instances", [])
    if len(shares) < 2:
        return
    total = sum(i["readings_per_s"] for i in shares)
    each = ", ".join(f"#{i['instance']} {i['readings_per_s']:,}/s ({i['share']:.0%})" for i in shares)
    print(f"{r.name}: {len(shares)} ingest instances, {total:,} readings/s in all: {each}")


def run_bench(
    settings: Settings,
    *,
    duration: float,
    stations: int,
    rate: float,
    publishers: int,
    json_path: Path | None,
    processes: int = 2,
    instances: int = 1,
) -> int:
    """The `parkwatch bench` command; returns 1 if a reading was lost or a run measured nothing."""
    latency_rate = rate or 20_000.0
    bench = Bench(
        settings, stations=stations, publishers=publishers, duration=duration, processes=processes, instances=instances
    )
    print(
        f"parkwatch bench: {stations} stations, {READINGS_PER_MESSAGE} readings/message, {duration:g} s per run, "
        f"{publishers} publisher processes, broker {bench.broker.kind}; parkwatch as {bench.layout}",
        flush=True,
    )

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        print(f"  1/4 paced run at {latency_rate:,.0f} readings/s ...", flush=True)
        out["paced"] = await bench.run_parkwatch("paced", duration=duration, rate_readings=latency_rate)
        print("  2/4 saturated run ...", flush=True)
        out["saturated"] = await bench.run_parkwatch("saturated", duration=duration, rate_readings=0)
        print("  3/4 naive consumer (one INSERT per reading) ...", flush=True)
        out["naive"] = await bench.run_naive(duration=min(duration, 30))
        print("  4/4 asyncpg COPY of the same rows ...", flush=True)
        out["copy"] = await bench.run_copy(max(out["saturated"].stored, 200_000))
        return out

    failed = True
    try:
        results = asyncio.run(main())
        failed = False
    finally:
        bench.close(keep_logs=failed)
    sat, paced, naive, copy = results["saturated"], results["paced"], results["naive"], results["copy"]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print()
    print(f"machine: {machine}; broker {bench.broker.kind}")
    print(
        f"{'run':<34}{'readings/s':>12}{'vs parkwatch':>14}{'lost':>8}{'p50':>10}{'p99':>10}"
        f"{'verdict p50':>13}{'p99':>10}{'CPU s/M':>9}{'RSS MB':>8}"
    )
    for label, r in (
        ("parkwatch, saturated", sat),
        (f"parkwatch, paced at {latency_rate:,.0f}/s", paced),
        ("naive: INSERT per reading", naive),
        ("asyncpg COPY, no MQTT (ceiling)", copy),
    ):
        if r is sat:
            ratio = "1.00x" if sat.readings_per_s else "-"
        else:
            ratio = f"{sat.readings_per_s / r.readings_per_s:.2f}x" if r.readings_per_s else "-"
        lat = (r.latency_p50_s, r.latency_p99_s) if r.name in ("paced", "saturated") else (None, None)
        print(
            f"{label:<34}{_fmt(r.readings_per_s):>12}{ratio:>14}{r.lost if r.name != 'copy' else '-':>8}"
            f"{_fmt(lat[0], 's'):>10}{_fmt(lat[1], 's'):>10}{_fmt(r.verdict_p50_s, 's'):>13}"
            f"{_fmt(r.verdict_p99_s, 's'):>10}{_fmt(r.cpu_s_per_million):>9}{_fmt(r.peak_rss_mb):>8}"
        )
    print(
        "('vs parkwatch' = parkwatch's saturated rate divided by that run's rate; p50/p99 = publish → commit;\n"
        f" verdict = the {DECIDING_MINUTE}th minute of an hour received → that hour's verdict written)"
    )
    for r in (paced, sat):
        print(
            f"{r.name}: {r.verdicts:,} hour verdicts timed, {r.extra.get('hour_verdicts', {})}; "
            f"verdicts current {r.extra.get('verdicts_current_after_s', '-')} s after the last reading was stored"
        )
    for r in (paced, sat):
        print_instances(r)
    lost = sat.lost + paced.lost
    offered = (sat.published + paced.published) * READINGS_PER_MESSAGE
    print(f"readings lost by parkwatch: {lost} of {offered:,}")
    failures = [f"{lost} reading(s) lost"] if lost else []
    for r in (paced, sat):
        if not r.published:
            failures.append(f"{r.name}: nothing was published")
        elif not r.verdicts:
            failures.append(f"{r.name}: no hour was judged")
        if r.stored > r.published * READINGS_PER_MESSAGE:
            failures.append(f"{r.name}: {r.stored} readings stored of {r.published * READINGS_PER_MESSAGE} sent")
        timed = r.extra["ingest_stats"]["delivery_latency_s"]["count"]
        if timed < r.published:
            # delivery samples over 60 s are dropped as back-fill: the p99 would understate them
            print(f"{r.name}: publish → commit timed for {timed:,} of {r.published:,} messages")
    for failure in failures:
        print(f"FAILED: {failure}")
    doc = {
        "machine": machine,
        "broker": bench.broker.kind,
        "stations": stations,
        "layout": bench.layout,
        "duration_s": duration,
        "runs": {k: asdict(v) for k, v in results.items()},
    }
    if json_path is not None:
        json_path.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        print(f"figures written to {json_path}")
    return 1 if failures else 0
