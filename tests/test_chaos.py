"""Faults against a running pipeline (simulators/chaos.py) at a small scale: the ingest killed and
stopped, the broker killed and restarted, PostgreSQL restarted, crashed and failed over to its
standby, the spool's disk and the database's disk full, and a SIGKILL storm; nothing
acknowledged is lost, nothing stored twice, every fault recovered from by itself.

The long runs are `parkwatch chaos` on demand (docs/faults.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parkwatch.cliparser import CHAOS_FAULTS
from simulators import chaos

# No-loss and throughput measured with the machine to themselves: the test command runs these
# alone, after the others (pyproject.toml, marker serial).
pytestmark = pytest.mark.serial


def test_the_command_knows_every_fault() -> None:
    assert CHAOS_FAULTS == chaos.FAULTS


async def test_every_fault_in_turn_loses_nothing(embedded_dir: Path) -> None:
    """Each fault once. The spool is on 64 KiB and fills while the database is down (disk-full);
    the primary database is killed and its synchronous standby promoted (db-failover)."""
    run = chaos.ChaosRun(embedded_dir, stations=4, rate=10, faults=list(chaos.FAULTS), every=4.0)
    report = await run.run(seconds=30, min_faults=len(chaos.FAULTS))
    text = chaos.render(report, list(chaos.FAULTS), 4.0)
    assert [f.kind for f in report.faults] == list(chaos.FAULTS), text
    assert report.acknowledged > 500, text
    assert report.resent > 0, "no station noticed the broker going away: " + text
    assert report.clean, text
    assert report.stored == report.acknowledged and report.readings >= 8 * report.stored, text
    # What an operator reads: the database outages said so, and where the readings went meanwhile.
    assert any("spooling" in line for line in report.ingest_log), text
    assert any("cannot make a batch durable" in line and "No space left" in line for line in report.ingest_log), text


async def test_a_sigkill_storm_loses_nothing(embedded_dir: Path) -> None:
    """The ingest killed every 2 s, often before it has even subscribed again."""
    run = chaos.ChaosRun(embedded_dir, stations=4, rate=10, faults=["ingest-kill"], every=2.0)
    report = await run.run(seconds=14, min_faults=7)
    text = chaos.render(report, ["ingest-kill"], 2.0)
    assert len(report.faults) == 7, text
    assert report.clean, text
    assert report.stored == report.acknowledged > 200, text
