"""Data-delivery rates (compliance/delivery.py, docs/kpis.md), worked by hand, through the pipeline,
the API and the command line."""

from __future__ import annotations

import json
from datetime import date, timedelta

import asyncpg
import pytest

from compliance.delivery import delivery, period_start
from ingest.service import IngestService
from parkwatch.settings import Settings
from tests.helpers import cli_env, run_cli, serving_api
from tests.test_compliance import DAY, drain, minutes, obj, pipeline, send

__all__ = ["pipeline"]  # the fixture, shared with the compliance tests


def test_period_starts() -> None:
    on = date(2025, 8, 19)
    assert [period_start(p, on) for p in ("day", "month", "quarter", "year")] == [  # type: ignore[arg-type]
        on,
        date(2025, 8, 1),
        date(2025, 7, 1),
        date(2025, 1, 1),
    ]


async def test_rates_of_a_day_worked_by_hand(settings: Settings, pipeline: IngestService) -> None:
    """cp-sinter declares two parameters (SO2, O2), minute data. On 2025-06-10 (a past day, all
    of it expected): 10:00-11:00 both for 60 minutes; 11:00-11:30 SO2 alone, 10 of its 30
    minutes flagged D (instrument fault); 12:00-12:20 O2 flagged M (maintenance).
    expected = 2 x 1,440 - 20 = 2,860 minutes; received = 60 + 60 + 30 + 20 - 20 = 150;
    valid = 150 - 10 = 140; transmission 150 / 2,860 = 0.052448; validity 140 / 150 = 0.933333;
    effective 140 / 2,860 = 0.048951 (their product)."""
    ten = DAY.replace(hour=10)
    full = [obj("cp-sinter", t, "min", {"a21026": 50, "a19001": 16}) for t in minutes(ten, 60)]
    half = [
        obj("cp-sinter", t, "min", {"a21026": (50, "D" if i < 10 else "N")})
        for i, t in enumerate(minutes(ten + timedelta(hours=1), 30))
    ]
    # 12:00-12:20 O2 under maintenance (M): neither expected nor delivered
    service = [obj("cp-sinter", t, "min", {"a19001": (20.9, "M")}) for t in minutes(ten + timedelta(hours=2), 20)]
    await send(settings, "cp-sinter", full + half + service)
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        [row] = await delivery(conn, period="day", on=DAY.date(), level="station", station_id="cp-sinter")
        [month] = await delivery(conn, period="month", on=DAY.date(), level="station", station_id="cp-sinter")
    finally:
        await conn.close()
    got = row.as_json()
    assert got["inputs"] == {
        "expected_minutes": 2860, "received_minutes": 150, "valid_minutes": 140, "maintenance_minutes": 20,
        "stations": 1, "parameters": 2,
    }  # fmt: skip
    assert got["transmission_rate"] == pytest.approx(150 / 2860, abs=1e-6)
    assert got["validity_rate"] == pytest.approx(140 / 150, abs=1e-6)
    assert got["effective_transmission_rate"] == pytest.approx(140 / 2860, abs=1e-6)
    assert got["period_start"] == "2025-06-10"
    # June has 30 days: 2 x 43,200 minutes, less the 20 of maintenance, expected
    assert month.as_json()["inputs"]["expected_minutes"] == 2 * 30 * 1440 - 20
    assert month.period_start == "2025-06-01"

    async with serving_api(settings, pipeline) as api:
        answer = await api.get(
            "/api/v1/kpis", params={"period": "day", "date": "2025-06-10", "level": "park", "park_id": "cp"}
        )
        assert answer.status_code == 200, answer.text
        [park] = answer.json()["results"]
        assert park["id"] == "cp" and park["inputs"]["received_minutes"] >= 150
        assert park["inputs"]["stations"] >= 2
        bad = await api.get("/api/v1/kpis", params={"date": "2025-13-01"})
        assert bad.status_code == 422 and bad.json()["error"] == "bad_date"

    printed = run_cli("kpis", "--date", "2025-06-10", "--level", "station", "--park", "cp", "--json",
                      env=cli_env(settings))  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    rows = {r["id"]: r for r in map(json.loads, printed.stdout.splitlines())}
    assert rows["cp-sinter"]["inputs"]["valid_minutes"] == 140
    table = run_cli("kpis", "--date", "2025-06-10", "--level", "station", "--park", "cp", env=cli_env(settings))
    assert "cp-sinter" in table.stdout and "5.2%" in table.stdout and "93.3%" in table.stdout
