"""`parkwatch simulate`: a province (or a registry, or a scenario) published as its stations would."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import yaml

from ingest.registry import load_registry_file
from parkwatch.serve import install_stop_signals
from parkwatch.settings import Settings
from schemas.registry import RegistryFile, read_registry
from simulators.check import check
from simulators.engine import Simulation
from simulators.fleet import as_yaml_doc, province
from simulators.scenario import Scenario, duration, load_scenario
from simulators.simulate import run_simulation
from simulators.sinks import Format

logger = logging.getLogger(__name__)

# How long `--check` waits for the pipeline (a running `parkwatch serve`) to store and judge.
CHECK_TIMEOUT = 300.0
# Between looks at the pipeline's progress; two alike in a row mean it has settled.
CHECK_POLL = 1.0
SELECT_PROGRESS = """
SELECT (SELECT count(*) FROM readings WHERE ts >= $1 AND ts < $2) AS stored,
       (SELECT count(*) FROM rollup_queue) AS pending,
       (SELECT count(*) FROM dead_letters WHERE received_at >= $3) AS letters
"""
# A running ingest learns of newly loaded stations through LISTEN/NOTIFY within milliseconds;
# this pause keeps the first records from racing the notification (they would be dead letters).
REGISTRY_SETTLE = 1.0


@dataclass
class SimulateArgs:
    """What the command line chose."""

    parks: int
    stations_per_park: int
    registry: Path | None
    scenario: Path | None
    interval: str
    speed: float
    fmt: Format
    start: str | None
    duration: str | None
    seed: int
    registry_out: Path | None
    load: bool
    check: bool


def run_simulate(settings: Settings, args: SimulateArgs) -> int:
    """The command; returns 1 when `--check` finds an outcome the scenario did not expect."""
    scenario = load_scenario(args.scenario) if args.scenario else None
    registry = _registry(args, scenario)
    if args.registry_out is not None:
        args.registry_out.write_text(
            yaml.safe_dump(as_yaml_doc(registry), allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        print(f"wrote {len(registry.stations)} stations in {len(registry.parks)} parks to {args.registry_out}")
        return 0
    start = _start(args, scenario)
    step = duration(args.interval) if scenario is None else scenario.step
    end = scenario.end if scenario else (start + duration(args.duration) if args.duration else None)
    sim = Simulation(
        registry,
        start=start,
        step=step,
        end=end,
        events=scenario.events if scenario else [],
        seed=scenario.seed if scenario else args.seed,
    )

    async def main() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        if args.load or args.check:
            conn = await asyncpg.connect(settings.DATABASE_URL)
            try:
                await load_registry_file(conn, registry)
            finally:
                await conn.close()
            await asyncio.sleep(REGISTRY_SETTLE)
        started = time.monotonic()
        sent_from = datetime.now(UTC)
        tally = await run_simulation(settings, sim, fmt=args.fmt, speed=args.speed, stop=stop)
        print(
            f"sent {tally.records:,} records ({tally.expected_readings:,} readings) of {len(registry.stations)} "
            f"stations in {time.monotonic() - started:.1f}s; {tally.duplicates} duplicates, "
            f"{tally.malformed} malformed, {tally.refused_records} with a faulty clock"
        )
        if not args.check or scenario is None:
            return 0
        return await _check(settings, scenario, args.fmt, tally.expected_readings, sent_from)

    return asyncio.run(main())


def _registry(args: SimulateArgs, scenario: Scenario | None) -> RegistryFile:
    if scenario is not None:
        return scenario.registry()
    if args.registry is not None:
        return read_registry(args.registry)
    return province(parks=args.parks, stations_per_park=args.stations_per_park)


def _start(args: SimulateArgs, scenario: Scenario | None) -> datetime:
    if scenario is not None:
        return scenario.start
    if args.start:
        start = datetime.fromisoformat(args.start)
        return start if start.tzinfo else start.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    return now.replace(second=0, microsecond=0)


async def _check(settings: Settings, scenario: Scenario, fmt: str, expected: int, since: datetime) -> int:
    """Wait for the pipeline to store and judge what was sent, then compare with the scenario.

    Caught up means: the scenario's readings stored, nothing waiting to be judged, and nothing
    new (readings, dead letters) for one poll — a rerun finds its readings stored already, and
    must still wait for its own dead letters.
    """
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        deadline = time.monotonic() + CHECK_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            row = await conn.fetchrow(SELECT_PROGRESS, scenario.start, scenario.end, since)
            state = (row["stored"], row["pending"], row["letters"]) if row is not None else None
            if state is not None and state[0] >= expected and not state[1] and state == last:
                break
            last = state
            await asyncio.sleep(CHECK_POLL)
        else:
            print(f"parkwatch: the pipeline did not catch up within {CHECK_TIMEOUT:g}s (is `parkwatch serve` running?)")
            return 1
        report = await check(conn, scenario, fmt=fmt, since=since)
    finally:
        await conn.close()
    for problem in report.problems:
        print(f"  MISMATCH {problem}")
    print(f"{scenario.name}: {report.checked} expectation(s) checked, {len(report.problems)} mismatch(es)")
    return 0 if report.ok else 1
