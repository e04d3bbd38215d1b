"""The fuzzing campaign's fixed-budget CI run: every edge, a few thousand hostile inputs, nothing crashes, hangs, leaks or is lost.

The long run (a million inputs per edge) is `parkwatch fuzz` on demand (docs/testing.md#fuzzing).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parkwatch.cliparser import FUZZ_EDGES
from parkwatch.settings import Settings
from simulators import fuzz
from simulators.fuzz_edges import PURE_EDGES

# Per edge: enough inputs to pass every mutation many times, few enough for CI.
CI_INPUTS = 2000
CI_SECONDS = 20.0


def test_the_command_knows_every_edge() -> None:
    assert FUZZ_EDGES == fuzz.EDGES


@pytest.mark.parametrize("edge", sorted(PURE_EDGES))
def test_pure_edge_survives_a_fixed_budget(edge: str, tmp_path: Path) -> None:
    [report] = fuzz.fuzz([edge], inputs=CI_INPUTS, seconds=CI_SECONDS, seed=7, out=tmp_path)
    assert report.inputs >= min(CI_INPUTS, 200), report
    assert report.refused > 0, "the mutations never produced a refusal: they are too timid"
    assert report.clean, (report, report.failures)


@pytest.mark.parametrize("edge", fuzz.SERVICE_EDGES)
def test_service_edge_survives_a_fixed_budget(edge: str, settings: Settings, tmp_path: Path) -> None:
    [report] = fuzz.fuzz([edge], inputs=600, seconds=CI_SECONDS, seed=7, out=tmp_path, settings=settings)
    assert report.inputs >= 100, report
    assert report.accepted > 0 and report.refused > 0, report
    assert report.clean, (report, report.failures)
