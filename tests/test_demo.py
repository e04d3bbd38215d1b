"""The Quick start's demo, end to end: history and live readings → ingest → verdicts → API."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime

import asyncpg
import pytest

from api.principals import hash_key
from compliance.assessment import assessment
from compliance.delivery import local_today
from compliance.targets import province_targets
from parkwatch.settings import Settings
from simulators.demo import SEED, demo_database, demo_settings
from simulators.demo_inputs import REPORTER, laggards, months_reported
from simulators.fleet import province
from simulators.scratch import drop
from tests.conftest import forget_session
from tests.helpers import cli_env, run_cli

pytestmark = pytest.mark.slow


async def test_demo_judges_its_history(settings: Settings) -> None:
    env = {**cli_env(settings), "PARKWATCH_API_PORT": str(settings.API_PORT)}
    demo_url = demo_database(settings)
    try:
        # four parks: the fewest whose assessment cards three (the demo's reported inputs)
        result = await asyncio.to_thread(run_cli, "demo", "--parks", "4", "--duration", "10", env=env, timeout=180)
    finally:
        await forget_session(settings.model_copy(update=demo_settings(settings)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "/api/v1/compliance?park_id=cs-p1&verdict=exceedance" in result.stdout
    conn = await asyncpg.connect(demo_url)
    try:
        rows = await conn.fetch(
            """SELECT s.id, p.code, v.verdict, v.window_kind, v.notes FROM verdicts v
               JOIN stations s USING (sid) JOIN parameters p USING (pid) WHERE v.closed"""
        )
        aqi = await conn.fetchval("SELECT count(*) FROM aqi WHERE period = '1h' AND aqi IS NOT NULL")
        raised = await conn.fetch(
            """SELECT a.*, s.id AS station_id, p.code FROM alerts a JOIN stations s USING (sid)
               JOIN parameters p USING (pid)"""
        )
        notices = await conn.fetch("SELECT alert_id, channel_id, status FROM notifications")
        kpi_alerts = await conn.fetch("SELECT park, rule FROM alerts WHERE family = 'kpi'")
        today = local_today(settings.DEFAULT_TIMEZONE)
        # The month under way ranks from its second day: a treatment rate needs a complete day.
        months = [m for m in months_reported(today) if m < today]
        assessed = [
            await assessment(conn, period="month", on=m, now=datetime.now(UTC), targets=province_targets(settings))
            for m in months
        ]
        reporters = await conn.fetch(
            """SELECT reported_by FROM reported_volumes UNION SELECT reported_by FROM solid_waste_reports
               UNION SELECT reported_by FROM assessment_inputs"""
        )
        principals = await conn.fetch(
            "SELECT kind, name, role, key_hash FROM principals WHERE name <> 'local-viewer' ORDER BY id"
        )
        viewer = await conn.fetch("SELECT role, created_by FROM principals WHERE name = 'local-viewer'")
    finally:
        await conn.close()
        await drop(demo_url)
    # the credentials it printed: a read-only key, stored hashed, and the kiln park's operator
    key = re.search(r"read-only key\s+(pwk_\S+)", result.stdout)
    assert key is not None, result.stdout[-2000:]
    assert [(p["kind"], p["role"]) for p in principals] == [("key", "inspector"), ("user", "operator")]
    assert principals[0]["key_hash"] == hash_key(key.group(1)) and key.group(1) not in str(list(principals))
    assert f"{principals[1]['name']} / " in result.stdout
    # and the dashboard's read-only view from this machine (docs/dashboard.md#the-local-viewer)
    assert [(v["role"], v["created_by"]) for v in viewer] == [("inspector", "parkwatch (DASHBOARD_LOCAL_VIEWER)")]
    assert re.search(r"dashboard\s+http://127\.0\.0\.1:\d+/ ", result.stdout), result.stdout[-2000:]
    found = {(r["id"], r["code"], r["verdict"]) for r in rows}
    # the scripted SO2 excursion at the cement kiln: 340 mg/m³ at ~10 % O2 is ~340 at the 10 % reference
    kiln_so2 = [r["verdict"] for r in rows if r["id"] == "cs-p1-cement-k1" and r["code"] == "a21026"]
    assert kiln_so2.count("exceedance") == 2
    assert "compliant" in kiln_so2
    # no other exceedance anywhere: the simulated fleet is otherwise within its limits
    assert {(s, c) for s, c, v in found if v == "exceedance"} == {("cs-p1-cement-k1", "a21026")}
    # every closed ambient hour of the simulated day is within its limits (the 24 h windows may be
    # short of hours, depending on the time of day the demo starts)
    air_hours = {r["verdict"] for r in rows if r["id"].endswith("-air") and r["window_kind"] == "1h"}
    assert air_hours == {"compliant"}
    assert aqi >= 6  # the replayed hours at least
    notes = [json.loads(r["notes"]) for r in rows if r["verdict"] == "exceedance"]
    assert any("10 % O2" in n for ns in notes for n in ns)
    # the episode raised one alert, of two hours, and its notice reached the demo's own webhook
    [alert] = raised
    assert (alert["station_id"], alert["code"], alert["rule"]) == ("cs-p1-cement-k1", "a21026", "exceedance.hour")
    assert alert["occurrences"] == 2 and alert["status"] == "active" and alert["severity"] == "major"
    assert [(n["channel_id"], n["status"]) for n in notices if n["alert_id"] == alert["id"]] == [
        ("demo-webhook", "sent")
    ]
    # the parks' reported inputs: each month ranks every park and cards the three that lag
    lagging = laggards([p.id for p in province(parks=4).parks], SEED)
    assert len(lagging) == 3 and "cs-p1" not in lagging
    assert [r["reported_by"] for r in reporters] == [REPORTER]
    assert [a.period_start for a in assessed] == months and months
    for month in assessed:
        assert {c.park_id: c.status for c in month.cards} == dict.fromkeys(["cs-p1", *lagging], "ranked")
        assert sorted(c.park_id for c in month.cards if c.yellow_card) == lagging
        assert all(c.card_reasons for c in month.cards if c.yellow_card)
    # whose figures are off their targets: the laggards' KPI alerts, noticed like any alert
    assert kpi_alerts and {a["park"] for a in kpi_alerts} <= set(lagging)
    assert {a["rule"] for a in kpi_alerts} <= {"kpi.treatment_rate", "kpi.solid_waste_rate"}
    assert {(n["channel_id"], n["status"]) for n in notices} == {("demo-webhook", "sent")}
    assert "/api/v1/alerts?park_id=cs-p1" in result.stdout and "/received" in result.stdout
