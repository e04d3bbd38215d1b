"""`parkwatch bench dashboard` smoke run: a tiny province, the report's shape and positive figures (no target asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parkwatch.settings import Settings
from tests.browser import chromium
from tests.helpers import cli_env, run_cli
from tests.services import drop_database

pytestmark = [pytest.mark.services, pytest.mark.slow]

pytest.importorskip("playwright.async_api")

STATEMENTS = {"SELECT_PARKS", "SELECT_OPEN_ALERTS", "SELECT_JUDGED_TODAY", "SELECT_AQI"}


def test_bench_dashboard_times_the_api_and_the_page_at_two_sizes(settings: Settings, tmp_path: Path) -> None:
    """Three parks and the small size: API latency and size, cold and warm paints, EXPLAINs, ratios."""
    chromium()  # the bench finds Debian's Chromium the same way; without it, a skip (a failure under CI)
    out = tmp_path / "dashboard.json"
    try:
        done = run_cli(
            *("bench", "dashboard", "--parks", "3", "--stations", "12", "--json", str(out)),
            env=cli_env(settings),
            timeout=600,
        )
    finally:
        drop_database(f"{settings.database_name}_bench_dashboard")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    assert "first meaningful paint" in done.stdout, done.stdout
    report = json.loads(out.read_text())
    assert (report["large"]["parks"], report["large"]["stations"]) == (3, 12)
    for name in ("small", "large"):
        size = report[name]
        assert size["fill"]["readings"] > 0 and size["fill"]["verdicts"] > 0 and size["fill"]["aqi"] > 0, size["fill"]
        assert sum(size["states"].values()) == size["parks"], size["states"]
        for route in ("overview", "park"):
            assert size[route]["ms"] > 0 and size[route]["bytes"] > 0, (name, route, size[route])
        browser = size["browser"]
        assert browser["errors"] == [], browser["errors"]
        for kind in ("cold", "warm"):
            m = browser[kind]
            assert m["fcp"] > 0 and 0 < m["drawn"] <= m["painted"], (name, kind, m)
            assert 0 < m["overview_start"] < m["overview_end"] <= m["drawn"], (name, kind, m)
            assert m["requests"] > 0 and m["transfer"] > 0, (name, kind, m)
            assert len(browser[f"{kind}_loads"]) > 1
        # cold loads fetch ECharts; warm ones find it in the browser's cache
        assert browser["cold"]["echarts_transfer"] > 1_000_000 > browser["warm"]["transfer"]
    explained = {e["statement"]: e for e in report["large"]["explain"]}
    assert set(explained) == STATEMENTS
    assert all(e["ms"] > 0 and e["explain_ms"] > 0 and "Execution Time" in e["plan"] for e in explained.values())
    assert set(report["ratios"]) == {"overview", "park", "paint_cold", "paint_warm"}
    assert all(r > 0 for r in report["ratios"].values())
    assert isinstance(report["target_met"], bool)
