"""Data-delivery rates (compliance/delivery.py, docs/kpis.md), worked by hand, through the pipeline,
the API and the command line."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from alerts.kpi import check_kpis
from compliance.delivery import delivery, period_start
from compliance.kpis import kpis
from compliance.loads import cap_positions
from compliance.treatment import report_volume
from ingest.service import IngestService
from parkwatch.progress import Bar
from parkwatch.settings import Settings
from schemas.registry import read_registry
from tests.conftest import ingest_for
from tests.helpers import cli_env, run_cli, serving_api
from tests.test_compliance import DATA, DAY, drain, hourly, minutes, obj, pipeline, send

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
    got = {**row.figures(), "inputs": row.inputs()}
    assert got["inputs"] == {
        "expected_minutes": 2860, "received_minutes": 150, "valid_minutes": 140, "maintenance_minutes": 20,
        "stations": 1, "parameters": 2,
    }  # fmt: skip
    assert got["transmission_rate"] == pytest.approx(150 / 2860, abs=1e-6)
    assert got["validity_rate"] == pytest.approx(140 / 150, abs=1e-6)
    assert got["effective_transmission_rate"] == pytest.approx(140 / 2860, abs=1e-6)
    assert row.period_start == "2025-06-10"
    # June has 30 days: 2 x 43,200 minutes, less the 20 of maintenance, expected
    assert month.inputs()["expected_minutes"] == 2 * 30 * 1440 - 20
    assert month.period_start == "2025-06-01"

    async with serving_api(settings, pipeline) as api:
        answer = await api.get(
            "/api/v1/kpis", params={"period": "day", "date": "2025-06-10", "level": "park", "park_id": "cp"}
        )
        assert answer.status_code == 200, answer.text
        [park] = answer.json()["results"]
        assert park["id"] == "cp" and park["inputs"]["delivery"]["received_minutes"] >= 150
        assert park["inputs"]["delivery"]["stations"] >= 2
        bad = await api.get("/api/v1/kpis", params={"date": "2025-13-01"})
        assert bad.status_code == 422 and bad.json()["error"] == "bad_date"

    printed = run_cli("kpis", "--date", "2025-06-10", "--level", "station", "--park", "cp", "--json",
                      env=cli_env(settings))  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    rows = {r["id"]: r for r in map(json.loads, printed.stdout.splitlines())}
    assert rows["cp-sinter"]["inputs"]["delivery"]["valid_minutes"] == 140
    table = run_cli("kpis", "--date", "2025-06-10", "--level", "station", "--park", "cp", env=cli_env(settings))
    assert "cp-sinter" in table.stdout and "5.2%" in table.stdout and "93.3%" in table.stdout


# -- treatment figures (compliance/treatment.py, docs/kpis.md#treatment) --


@pytest.fixture
async def plant(settings: Settings) -> AsyncIterator[IngestService]:
    """Park tp: a plant (tp-in, tp-out) and two enterprises discharging to it (tp-e1 metered, tp-e2 not)."""
    async with ingest_for(settings, read_registry(DATA / "kpi_registry.yaml")) as service:
        yield service


def day_of(station: str, day: datetime, readings: dict[str, float]) -> list[dict[str, Any]]:
    """A value at every hour of a local day: 24 valid hours."""
    return hourly(station, day, range(24), readings)


async def test_treatment_figures_worked_by_hand(settings: Settings, plant: IngestService) -> None:
    """Volumes: mean valid flow (L/s) × 3.6 × 24 h = 86.4 m³ per L/s a day. Treatment rate 污水处理率 =
    treated / discharged (docs/reference/standards.md B7, the MOHURD definition); removal = (C_in − C_out) / C_in
    on flow-weighted daily means (HJ 356-2019); compliance rate = compliant / valid judged days (B7, [M]).

    10 June: inlet 90 L/s (7,776 m³), COD 200, NH3-N 20; outlet 85 L/s (7,344 m³), COD 20, NH3-N 2;
    tp-e1 50 L/s (4,320 m³); tp-e2 has no meter and reports 8,000 m³ over 10-11 June (4,000 a day).
    Treatment 7,776 / 8,320 = 0.934615 (below the 95 % target); balance 7,344 / 7,776 = 0.944444;
    removal 0.9 for both; treated water: 2 of 2 days compliant.
    11 June: inlet 60 L/s (5,184 m³), COD 100, NH3-N 20; outlet 50 L/s (4,320 m³), COD 60 (over 1A's 50);
    tp-e1 silent: no treatment rate, which names tp-e1. 12 June: tp-e1 only, the inlet meter missing.
    June: 1 day of 30 compares, so no rate; removal of COD on flow-weighted means:
    C_in = (200·7,776 + 100·5,184) / 12,960 = 160, C_out = (20·7,344 + 60·4,320) / 11,664 = 34.814815,
    removal 0.782407 (an arithmetic mean would give 0.766667); 3 of 4 judged days compliant."""
    d1, d2, d3 = DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)
    await send(settings, "tp-in", day_of("tp-in", d1, {"w00000": 90, "w01018": 200, "w21003": 20})
               + day_of("tp-in", d2, {"w00000": 60, "w01018": 100, "w21003": 20}), park="tp")  # fmt: skip
    await send(settings, "tp-out", day_of("tp-out", d1, {"w00000": 85, "w01018": 20, "w21003": 2})
               + day_of("tp-out", d2, {"w00000": 50, "w01018": 60, "w21003": 2}), park="tp")  # fmt: skip
    await send(settings, "tp-e1", day_of("tp-e1", d1, {"w00000": 50}) + day_of("tp-e1", d3, {"w00000": 50}), park="tp")
    await drain(settings)
    async with serving_api(settings, plant) as api:
        report = {"station_id": "tp-e2", "first_day": "2025-06-10", "last_day": "2025-06-11",
                  "volume_m3": 8000, "reported_by": "园区环保办 王工"}  # fmt: skip
        stored = await api.post("/api/v1/volumes", json=report)
        assert stored.status_code == 201, stored.text
        assert stored.json()["volume_m3"] == 8000
        clash = await api.post("/api/v1/volumes", json={**report, "first_day": "2025-06-11", "last_day": "2025-06-12"})
        assert clash.status_code == 422 and clash.json()["error"] == "overlapping_report"
        backwards = await api.post(
            "/api/v1/volumes", json={**report, "first_day": "2025-07-02", "last_day": "2025-07-01"}
        )
        assert backwards.status_code == 422 and backwards.json()["error"] == "bad_span"
        unknown = await api.post("/api/v1/volumes", json={**report, "station_id": "nowhere"})
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_station"
        negative = await api.post("/api/v1/volumes", json={**report, "volume_m3": -1})
        assert negative.status_code == 422
        listed = (await api.get("/api/v1/volumes", params={"park_id": "tp"})).json()
        assert [r["station_id"] for r in listed["results"]] == ["tp-e2"] and listed["next_cursor"] is None

        async def park(period: str, on: str) -> dict[str, Any]:
            answer = await api.get("/api/v1/kpis", params={"period": period, "date": on, "park_id": "tp"})
            assert answer.status_code == 200, answer.text
            [row] = answer.json()["results"]
            return dict(row)

        loads = (await api.get("/api/v1/loads", params={"year": 2025, "station_id": "tp-out"})).json()["results"]
        first = await park("day", "2025-06-10")
        second = await park("day", "2025-06-11")
        third = await park("day", "2025-06-12")
        june = await park("month", "2025-06-10")
    [cod] = loads
    assert (cod["parameter"], cod["cap_kg"], cod["missing_days"]) == ("w01018", 500, 363)
    assert cod["cumulative_kg"] == pytest.approx(406.08) and cod["projected_kg"] == pytest.approx(406.08)
    assert cod["over_cap"] is False
    assert first["treatment_rate"] == pytest.approx(7776 / 8320, abs=1e-6)
    assert first["inputs"]["treatment"]["treated_m3"] == pytest.approx(7776)
    assert first["inputs"]["treatment"]["discharged_m3"] == pytest.approx(8320)
    assert first["inputs"]["treatment"]["plants"][0]["reported_station_days"] == 1
    assert first["water_balance"] == pytest.approx(7344 / 7776, abs=1e-6)
    assert first["removal_efficiency"] == {"w01018": pytest.approx(0.9), "w21003": pytest.approx(0.9)}
    assert first["treated_water_compliance_rate"] == 1.0
    assert first["inputs"]["treated_water_compliance"]["windows_compliant"] == 2
    assert first["targets"]["treatment_rate"] == 0.95
    assert first["shortfalls"]["treatment_rate"] == {"value": pytest.approx(0.934615, abs=1e-6), "target": 0.95}
    # one real-time value an hour covers 24 of the day's 1,440 minutes per parameter: far below 90 %
    assert first["shortfalls"]["effective_transmission_rate"]["target"] == 0.9

    assert second["treatment_rate"] is None
    assert "tp-e1" in second["reasons"]["treatment_rate"][0]
    assert second["water_balance"] == pytest.approx(4320 / 5184, abs=1e-6)
    assert second["treated_water_compliance_rate"] == 0.5
    assert third["treatment_rate"] is None and "tp-in" in third["reasons"]["treatment_rate"][0]

    assert june["treatment_rate"] is None
    assert "1 of 30 days" in june["reasons"]["treatment_rate"][0]
    assert june["removal_efficiency"]["w01018"] == pytest.approx(0.782407, abs=1e-6)
    assert june["removal_efficiency"]["w21003"] == pytest.approx(0.9)
    assert june["water_balance"] == pytest.approx(11664 / 12960, abs=1e-6)
    assert june["treated_water_compliance_rate"] == 0.75
    assert june["inputs"]["treated_water_compliance"] == {
        "windows_compliant": 3, "windows_exceedance": 1, "windows_insufficient_data": 0, "stations": 1,
    }  # fmt: skip


async def test_a_cap_is_crossed_by_projection_before_it_is_crossed_in_fact(
    settings: Settings, plant: IngestService
) -> None:
    """Stack load G = C × Q × 10⁻⁶ kg (docs/reference/standards.md B8): SO2 100 mg/m³ at 10 m³/s (36,000 m³/h)
    is 3.6 kg an hour, 86.4 kg a day. tp-kiln's cap is 1,500 kg a year. On 11 January 2025, after ten
    days: 864 kg so far, projected 864 × 365 / 10 = 31,536 kg: past the cap by projection only
    (kpi.cap_projected). On 21 January: 1,728 kg, past the cap in fact (kpi.cap_exceeded), and the
    projection's alert gives way to it. The water outlet tp-out's COD load in June (C × V × 10⁻³ kg):
    20 mg/L × 7,344 m³ + 60 mg/L × 4,320 m³ = 146.88 + 259.2 = 406.08 kg."""
    jan = datetime(2025, 1, 1, tzinfo=DAY.tzinfo)
    hours = [jan + timedelta(hours=h) for h in range(240)]
    await send(
        settings, "tp-kiln", [obj("tp-kiln", t, "hour", {"a21026": 100, "a00000": 10}) for t in hours], park="tp"
    )
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        [kiln] = await cap_positions(conn, year=2025, now=jan + timedelta(days=10), station_id="tp-kiln")
        assert kiln.cumulative_kg == pytest.approx(864)
        assert kiln.projected_kg == pytest.approx(31536)
        assert kiln.as_json()["over_cap"] is False and kiln.as_json()["projected_over_cap"] is True
        assert await check_kpis(conn, settings, now=jan + timedelta(days=10)) >= (1, 0)
        open_now = await conn.fetch("SELECT rule, value, limit_value, status FROM alerts WHERE rule LIKE 'kpi.cap%'")
        assert [(r["rule"], r["status"]) for r in open_now] == [("kpi.cap_projected", "active")]
        assert open_now[0]["value"] == pytest.approx(864) and open_now[0]["limit_value"] == 1500
        later = [jan + timedelta(hours=h) for h in range(240, 480)]
        await send(settings, "tp-kiln", [obj("tp-kiln", t, "hour", {"a21026": 100, "a00000": 10}) for t in later],
                   park="tp")  # fmt: skip
        await drain(settings)
        await check_kpis(conn, settings, now=jan + timedelta(days=20))
        rows = await conn.fetch("SELECT rule, status, clear_reason FROM alerts WHERE rule LIKE 'kpi.cap%' ORDER BY id")
        assert [tuple(r) for r in rows] == [
            ("kpi.cap_projected", "cleared", "judged"),
            ("kpi.cap_exceeded", "active", None),
        ]
    finally:
        await conn.close()


async def test_a_treatment_rate_alert_raised_and_cleared(settings: Settings, plant: IngestService) -> None:
    """June 2025 under way on 3 June: two complete days. Inlet 90 L/s (7,776 m³ a day), tp-e1 50 L/s
    (4,320 m³), tp-e2 reports 8,000 m³ for the two days: 15,552 / 16,640 = 0.934615 < 0.95, one
    kpi.treatment_rate alert about the park. tp-e2's report is corrected to 6,000 m³: 15,552 / 14,640
    is over 1 (capped at 1), and the alert clears."""
    first = datetime(2025, 6, 1, tzinfo=DAY.tzinfo)
    days = [first, first + timedelta(days=1)]
    await send(settings, "tp-in", [o for d in days for o in day_of("tp-in", d, {"w00000": 90})], park="tp")
    await send(settings, "tp-e1", [o for d in days for o in day_of("tp-e1", d, {"w00000": 50})], park="tp")
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        report = {"station_id": "tp-e2", "first_day": date(2025, 6, 1), "last_day": date(2025, 6, 2),
                  "reported_by": "test", "note": None}  # fmt: skip
        await report_volume(conn, **report, volume_m3=8000)
        now = first + timedelta(days=2, hours=1)
        await check_kpis(conn, settings, now=now)
        [alert] = await conn.fetch("SELECT * FROM alerts WHERE rule = 'kpi.treatment_rate'")
        assert alert["park"] == "tp" and alert["sid"] is None and alert["status"] == "active"
        assert alert["value"] == pytest.approx(15552 / 16640, abs=1e-6) and alert["limit_value"] == 0.95
        async with serving_api(settings, plant) as api:
            listed = (await api.get("/api/v1/alerts", params={"rule": "kpi.treatment_rate"})).json()["results"]
            assert [(a["park_id"], a["station_id"]) for a in listed] == [("tp", None)]
        # the same figure again: the alert is updated, not doubled
        await check_kpis(conn, settings, now=now)
        assert await conn.fetchval("SELECT count(*) FROM alerts WHERE rule = 'kpi.treatment_rate'") == 1
        await report_volume(conn, **report, volume_m3=6000)
        await check_kpis(conn, settings, now=now)
        cleared = await conn.fetchrow("SELECT status, clear_reason FROM alerts WHERE rule = 'kpi.treatment_rate'")
        assert tuple(cleared) == ("cleared", "target_met")
    finally:
        await conn.close()


async def test_a_solid_waste_rate_below_target_raises_a_park_alert(settings: Settings, plant: IngestService) -> None:
    """处置利用率 = (utilised + disposed) / (generated + earlier stock drawn) (docs/reference/standards.md B7):
    May 2025, 100 t generated, 60 utilised, 20 disposed, 20 stored: 80 / 100 = 0.8 < 0.9, the target.
    The year's figure is held to the target: one kpi.solid_waste_rate alert about park tp."""
    month = {"park_id": "tp", "month": "2025-05", "category": "general", "generated": 100, "utilised": 60,
             "disposed": 20, "stored": 20, "reported_by": "园区环保办"}  # fmt: skip
    async with serving_api(settings, plant) as api:
        stored = await api.post("/api/v1/solid-waste", json=month)
        assert stored.status_code == 201, stored.text
        answer = await api.get("/api/v1/kpis", params={"period": "year", "date": "2025-05-01", "park_id": "tp"})
        [row] = answer.json()["results"]
        city = await api.get("/api/v1/kpis", params={"period": "year", "date": "2025-05-01", "level": "city"})
    assert row["solid_waste_rate"] == pytest.approx(0.8) and row["solid_waste_utilisation_rate"] == pytest.approx(0.6)
    assert row["shortfalls"]["solid_waste_rate"] == {"value": pytest.approx(0.8), "target": 0.9}
    [zz] = [r for r in city.json()["results"] if r["id"] == "株洲"]
    assert zz["solid_waste_rate"] == pytest.approx(0.8)
    assert zz["inputs"]["solid_waste"] == {
        "utilised_and_disposed_t": 80, "generated_and_prior_stock_t": 100, "parks_reporting": 1,
    }  # fmt: skip
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await check_kpis(conn, settings, now=datetime(2025, 6, 15, tzinfo=DAY.tzinfo))
        [alert] = await conn.fetch("SELECT park, sid, value, limit_value, details FROM alerts WHERE rule = $1",
                                   "kpi.solid_waste_rate")  # fmt: skip
    finally:
        await conn.close()
    assert (alert["park"], alert["sid"], alert["limit_value"]) == ("tp", None, 0.9)
    assert alert["value"] == pytest.approx(0.8)
    assert json.loads(alert["details"])["period"] == "year"


async def test_late_data_update_the_figures(settings: Settings, plant: IngestService) -> None:
    """Figures are computed on read from the rollups (docs/kpis.md): tp-e1's 10 June, back-filled
    after the day was first read, turns an insufficient_metering day into a rate at the next read.
    Inlet 90 L/s (7,776 m³), tp-e1 50 L/s (4,320 m³), tp-e2 40 L/s (3,456 m³): 7,776 / 7,776 = 1."""
    await send(settings, "tp-in", day_of("tp-in", DAY, {"w00000": 90}), park="tp")
    await send(settings, "tp-e2", day_of("tp-e2", DAY, {"w00000": 40}), park="tp")
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        [before] = await kpis(conn, period="day", on=DAY.date(), park_id="tp", now=DAY + timedelta(days=2))
        assert before["treatment_rate"] is None and "tp-e1" in before["reasons"]["treatment_rate"][0]
        await send(settings, "tp-e1", day_of("tp-e1", DAY, {"w00000": 50}), park="tp")
        await drain(settings)
        stages: list[tuple[str, int, int]] = []
        [after] = await kpis(conn, period="day", on=DAY.date(), park_id="tp", now=DAY + timedelta(days=2),
                             progress=lambda *step: stages.append(step))  # fmt: skip
        assert stages[0] == ("data delivery", 0, 4) and stages[-1] == ("KPIs", 4, 4)
    finally:
        await conn.close()
    assert after["treatment_rate"] == 1.0
    assert after["inputs"]["treatment"]["discharged_m3"] == pytest.approx(4320 + 3456)
    assert after["inputs"]["delivery"]["received_minutes"] > before["inputs"]["delivery"]["received_minutes"]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    screen, pipe = Terminal(), io.StringIO()
    for out in (screen, pipe):
        bar = Bar(out)
        bar("loads against caps", 3, 4)
        bar.close()
    assert screen.getvalue() == f"\r{'loads against caps':<28} [{'#' * 22}{'.' * 8}] 3/4 \n"
    assert pipe.getvalue() == ""


async def test_a_month_with_invalid_flagged_data(settings: Settings, plant: IngestService) -> None:
    """June 2025 at tp-out, one value an hour (each covers its minute). 10 June: COD 20, compliant.
    11 June: 11 hours of COD 20, then 13 hours flagged D (instrument fault, HJ 212 table 8): 11 valid
    hours < 12, insufficient data, counted apart and never as compliant. 12 June: COD 60 > 50 (1A),
    an exceedance. Treated-water compliance 1 / (1 + 1) = 0.5 (docs/kpis.md#compliance-rate).
    Validity 有效率 = valid / received minutes: COD 24 + 11 + 24 = 59 of 72, flow 72 of 72:
    131 / 144 = 0.909722."""
    cod = {1: [(20, "N")] * 24, 2: [(20, "N")] * 11 + [(20, "D")] * 13, 3: [(60, "N")] * 24}
    objects = [
        obj("tp-out", (DAY + timedelta(days=d - 1)).replace(hour=h), "rtd", {"w01018": value, "w00000": 80})
        for d, values in cod.items()
        for h, value in enumerate(values)
    ]
    await send(settings, "tp-out", objects, park="tp")
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        [park] = await kpis(conn, period="month", on=DAY.date(), park_id="tp", now=DAY + timedelta(days=30))
        [station] = await kpis(conn, period="month", on=DAY.date(), level="station", station_id="tp-out",
                               now=DAY + timedelta(days=30))  # fmt: skip
    finally:
        await conn.close()
    assert park["treated_water_compliance_rate"] == 0.5
    assert park["inputs"]["treated_water_compliance"] == {
        "windows_compliant": 1, "windows_exceedance": 1, "windows_insufficient_data": 1, "stations": 1,
    }  # fmt: skip
    assert station["compliance_rate"] == 0.5
    delivered = station["inputs"]["delivery"]
    assert (delivered["received_minutes"], delivered["valid_minutes"]) == (144, 131)
    assert station["validity_rate"] == pytest.approx(131 / 144, abs=1e-6)
