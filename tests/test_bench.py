"""The benchmark's CI smoke run: the whole path under load loses nothing (figures are not asserted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.hj212.convert import convert
from parkwatch.settings import Settings
from simulators.bench_hj212 import BENCH_MN, WATER_FACTORS, bench_registry, minute_packet
from tests.helpers import cli_env, run_cli
from tests.services import drop_database

# No-loss and throughput measured with the machine to themselves: the test command runs these
# alone, after the others (pyproject.toml, marker serial).
pytestmark = pytest.mark.serial


def test_bench_smoke_run_loses_nothing_and_times_verdicts(settings: Settings, tmp_path: Path) -> None:
    """A short `parkwatch bench`: every acknowledged reading stored, hours judged, baselines run."""
    out = tmp_path / "bench.json"
    try:
        done = run_cli(
            *("bench", "--duration", "4", "--stations", "20", "--rate", "4000", "--json", str(out)),
            env=cli_env(settings),
            timeout=600,
        )
    finally:
        drop_database(f"{settings.database_name}_bench")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "readings lost by parkwatch: 0 of" in done.stdout
    runs = json.loads(out.read_text())["runs"]
    for name in ("paced", "saturated"):
        run = runs[name]
        assert run["published"] > 0, name
        assert run["lost"] == 0 and run["stored"] == run["published"] * 8, (name, run)
        # every hour the fleet completed was judged, and judged compliant (the fleet's values are)
        assert run["verdicts"] > 0 and run["verdict_p99_s"] is not None, (name, run)
        assert set(run["extra"]["hour_verdicts"]) <= {"compliant", "insufficient_data"}, run["extra"]
        assert run["extra"]["ingest_stats"]["delivery_latency_s"]["count"] > 0
    assert runs["naive"]["lost"] == 0 and runs["naive"]["stored"] > 0
    assert runs["copy"]["stored"] == runs["copy"]["published"]


def test_bench_scale_answers_the_same_queries_at_every_size(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench scale` smoke run: each size answers the same month and day, and cleans up."""
    out = tmp_path / "scale.json"
    try:
        done = run_cli("bench", "scale", "--sizes", "0.1,0.5", "--json", str(out), env=cli_env(settings), timeout=600)
    finally:
        drop_database(f"{settings.database_name}_bench_scale")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    steps = json.loads(out.read_text())["steps"]
    assert [s["readings"] >= size for s, size in zip(steps, (100_000, 500_000), strict=True)] == [True, True]
    assert steps[0]["readings"] < steps[1]["readings"]
    for step in steps:
        # 31 local days x 24 hours x 8 parameters; a park of 5 stations x 8 parameters x 1,440 minutes
        assert step["month_hourly_rows"] == 31 * 24 * 8
        assert step["park_day_rows"] == 5 * 8 * 1440
        assert step["station_hours"] > 0 and step["ingest_per_s"] > 0


def test_bench_alerts_delivers_every_notice_once(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench alerts` smoke run: alerts raised under load are timed; the storm's 1,000 notices all arrive once."""
    out = tmp_path / "alerts.json"
    try:
        done = run_cli(
            *("bench", "alerts", "--duration", "5", "--stations", "20", "--rate", "4000", "--json", str(out)),
            env=cli_env(settings),
            timeout=600,
        )
    finally:
        drop_database(f"{settings.database_name}_bench")
        drop_database(f"{settings.database_name}_bench_storm")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(out.read_text())
    load, storm = figures["under_load"], figures["storm"]
    assert load["readings_lost"] == 0
    assert load["alerts"] >= 1 and load["raise_notices_timed"] >= 1
    assert load["duplicates"] == 0 and set(load["notices"]) == {"sent"}
    assert storm["distinct_notices"] == storm["notices_received"] == 1000
    assert storm["duplicates"] == 0 and storm["notices"] == {"sent": 1000}
    assert storm["alerts_active"] == 1000


def test_bench_hj212_packet_is_accepted_whole() -> None:
    """The packet `parkwatch bench hj212` decodes is one a station would send: every factor becomes
    a reading and nothing is refused (else the benchmark would time the refusal path)."""
    message = convert(
        minute_packet(BENCH_MN, datetime(2026, 11, 26, 8, 0)),
        topic="t",
        topic_mn=BENCH_MN,
        registry=bench_registry(),
        received_at=datetime.now(UTC),
    )
    assert message.problems == []
    assert len(message.rows) == len(WATER_FACTORS)


def test_bench_kpis_times_every_figure_and_a_late_hour(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench kpis` smoke run on a small province: every figure timed, the late hour read back."""
    out = tmp_path / "kpis.json"
    try:
        done = run_cli(*("bench", "kpis", "--parks", "4", "--stations", "28", "--days", "2", "--json", str(out)),
                       env=cli_env(settings), timeout=600)  # fmt: skip
    finally:
        drop_database(f"{settings.database_name}_bench_kpis")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["rows"]["rollup_hour"] > 4 * 7 * 48 * 0.9  # 28 stations, ≥ 3 parameters, 48 hours, 2 % missing
    assert figures["caps"] == 4 * 3 and figures["late"]["readings"] > 0
    assert set(figures["timings_s"]) >= {
        "KPIs per park (month)",
        "assessment (month)",
        "KPI alert job kpi-caps (hourly)",
    }
    assert "a late hour" in done.stdout


def test_bench_access_reads_the_same_rows_for_every_role_in_scope(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench access` smoke run: each scoped role reads its scope's rows (figures not asserted)."""
    out = tmp_path / "access.json"
    done = run_cli(
        "bench", "access", "--parks", "4", "--stations", "8", "--json", str(out), env=cli_env(settings), timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    results = {r["request"]: r for r in json.loads(out.read_text())["results"]}
    station_day = results["a station's day of minute data"]
    assert station_day["admin_rows"] == 1440
    assert {role: fig["rows"] for role, fig in station_day["roles"].items()} == dict.fromkeys(
        station_day["roles"], 1440
    )
    stations = results["the station list"]
    assert stations["roles"]["bureau (province)"]["rows"] == stations["admin_rows"] > 0
    assert 0 < stations["roles"]["operator (park)"]["rows"] < stations["admin_rows"]


def test_bench_export_streams_every_row(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench export` smoke run: both exports complete with every row (figures not asserted)."""
    out = tmp_path / "export.json"
    try:
        done = run_cli(
            *("bench", "export", "--rows", "60000", "--small", "20000", "--json", str(out)),
            env=cli_env(settings),
            timeout=600,
        )
    finally:
        drop_database(f"{settings.database_name}_bench_export")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    runs = {r["label"]: r for r in json.loads(out.read_text())["runs"]}
    assert runs["large"]["rows"] == 60_000 and 0 < runs["small"]["rows"] < 60_000, runs
    assert all(r["format"] == "csv" and r["bytes"] > 80 * r["rows"] for r in runs.values()), runs


def test_bench_drain_and_instances_lose_nothing(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench drain --instances 2`: a backlog drained by one process, by serve and by two
    ingest instances sharing the readings; every reading stored, each instance took a share."""
    out = tmp_path / "drain.json"
    try:
        done = run_cli(
            *("bench", "drain", "--readings", "48000", "--stations", "20", "--instances", "2", "--json", str(out)),
            env=cli_env(settings),
            timeout=600,
        )
    finally:
        drop_database(f"{settings.database_name}_bench")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"one", "serve", "instances2"}
    for name, run in runs.items():
        assert run["published"] >= 6000 and run["lost"] == 0 and run["stored"] == run["published"] * 8, (name, run)
        assert run["readings_per_s"] > 0, name
    shares = runs["instances2"]["extra"]["instances"]
    assert len(shares) == 2 and all(s["readings_new"] > 0 for s in shares), shares


def test_bench_national_measures_each_part_and_the_bytes_a_reading_takes(settings: Settings, tmp_path: Path) -> None:
    """`parkwatch bench national`, small: the rate is kept, nothing lost, CPU of each part and of
    PostgreSQL measured, bytes per reading and a year extrapolated."""
    out = tmp_path / "national.json"
    try:
        done = run_cli(
            *("bench", "national", "--stations", "3000", "--duration", "8", "--json", str(out)),
            env=cli_env(settings),
            timeout=600,
        )
    finally:
        drop_database(f"{settings.database_name}_bench")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert doc["run"]["lost"] == 0 and doc["offered_readings_per_s"] == 500
    assert {"ingest", "compliance", "postgres"} <= set(doc["run"]["extra"]["cpu_s_per_million_by_part"])
    assert 20 < doc["sizes"]["bytes_per_reading"] < 2000
    assert doc["year"]["readings"] == 500 * 365 * 86_400
