"""Scenario replays: a simulated park's day through MQTT (JSON or HJ 212) or the TCP gateway, then the
worker; the verdicts and dead letters must be exactly the ones the scenario expects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from compliance.worker import ComplianceWorker
from ingest.service import IngestService
from parkwatch.settings import Settings
from simulators.check import check
from simulators.engine import Simulation
from simulators.fleet import province
from simulators.scenario import Event, Scenario, load_scenario
from simulators.simulate import run_simulation
from tests.conftest import ingest_for
from tests.helpers import cli_env, eventually, fetchval, run_cli, running_gateway

SCENARIOS = Path(__file__).resolve().parent.parent / "simulators" / "scenarios"

pytestmark = pytest.mark.slow


@pytest.fixture
def episodes() -> Scenario:
    return load_scenario(SCENARIOS / "episodes.yaml")


@pytest.fixture
async def fleet_ingest(settings: Settings, episodes: Scenario) -> AsyncIterator[IngestService]:
    async with ingest_for(settings, episodes.registry()) as service:
        yield service


async def replay(settings: Settings, scenario: Scenario, fmt: str, gateway: tuple[str, int] | None = None) -> None:
    sim = Simulation(
        scenario.registry(),
        start=scenario.start,
        step=scenario.step,
        end=scenario.end,
        events=scenario.events,
        seed=scenario.seed,
    )
    tally = await run_simulation(settings, sim, fmt=fmt, speed=0, gateway=gateway)  # type: ignore[arg-type]
    assert tally.malformed == 3 and tally.refused_records == 5 and tally.duplicates == 60
    await eventually(
        lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings"),
        lambda n: n >= tally.expected_readings,
        timeout=120,
        interval=0.5,
    )
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await ComplianceWorker(settings.DATABASE_URL).drain(conn)
        report = await check(conn, scenario, fmt=fmt)
        stored = await conn.fetchval("SELECT count(*) FROM readings")
    finally:
        await conn.close()
    assert stored == tally.expected_readings  # nothing lost, nothing twice
    assert report.ok, "\n".join(report.problems)
    assert report.checked == len(scenario.expect)


async def test_episodes_over_json(settings: Settings, episodes: Scenario, fleet_ingest: IngestService) -> None:
    await replay(settings, episodes, "json")


async def test_episodes_over_hj212(settings: Settings, episodes: Scenario, fleet_ingest: IngestService) -> None:
    await replay(settings, episodes, "hj212")


async def test_episodes_through_the_gateway(
    settings: Settings, episodes: Scenario, fleet_ingest: IngestService
) -> None:
    async with running_gateway(settings) as gw:
        await replay(settings, episodes, "hj212-tcp", gateway=("127.0.0.1", gw.port))


async def test_simulate_command_replays_and_checks(
    settings: Settings, episodes: Scenario, fleet_ingest: IngestService
) -> None:
    """`parkwatch simulate --scenario FILE --speed 0 --check` against a running ingest and worker."""
    worker = ComplianceWorker(settings.DATABASE_URL)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        result = await asyncio.to_thread(
            run_cli,
            "simulate",
            "--scenario",
            str(SCENARIOS / "episodes.yaml"),
            "--speed",
            "0",
            "--check",
            env=cli_env(settings),
            timeout=300,
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert f"{len(episodes.expect)} expectation(s) checked, 0 mismatch(es)" in result.stdout


def test_fleet_registry_file_loads(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "fleet.yaml"
    env = cli_env(settings)
    written = run_cli("simulate", "--parks", "15", "--stations-per-park", "8", "--registry-out", str(out), env=env)
    assert written.returncode == 0, written.stderr
    assert "120 stations in 15 parks" in written.stdout
    loaded = run_cli("stations", "load", str(out), env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 15 park(s) and 120 station(s)" in loaded.stdout


def test_bad_scenario_is_refused_with_its_problem(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nstart: 2026-06-01T00:00:00+08:00\n"
        "events:\n  - {kind: exceedance, station: nowhere, parameter: a21026, value: 1,"
        " start: 2026-06-01T01:00:00+08:00, end: 2026-06-01T02:00:00+08:00}\n"
    )
    result = run_cli("simulate", "--scenario", str(bad), env=cli_env(settings))
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "not in the fleet" in result.stderr


def test_a_clock_shifted_onto_other_records_counts_each_stamp_once() -> None:
    """A logger 2 minutes fast for 5 minutes stamps records with times it also sends genuinely:
    parkwatch keeps the first of each key, so the expected count holds each stamp once."""
    registry = province(parks=1, stations_per_park=1)
    station = registry.stations[0]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    skew = Event(kind="clock_skew", station=station.id, start=start + timedelta(minutes=5),
                 end=start + timedelta(minutes=10), skew="2m")  # fmt: skip
    sim = Simulation(registry, start=start, step=timedelta(minutes=1), end=start + timedelta(minutes=20), events=[skew])
    records = [r for r in sim if getattr(r, "station", None) is not None]
    per_record = len(station.parameters)
    stamps = {r.ts for r in records}  # type: ignore[union-attr]
    assert len(records) == 20 and len(stamps) == 18  # minutes 10 and 11 are sent twice
    assert sim.tally.expected_readings == 18 * per_record
