"""Readings over MQTT → rollups → verdicts and AQI, judged as the regulator does (real broker and database).

Each test publishes a station's readings through the running ingest, drains the compliance worker
and reads what it wrote. Days are in the past (windows closed) and in the station's local time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

import compliance.worker as worker_module
from compliance.worker import ComplianceWorker
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.registry import read_registry
from tests.conftest import ingest_for
from tests.helpers import cli_env, eventually, fetchval, publish, run_cli, serving_api

DATA = Path(__file__).parent / "data"
CST = ZoneInfo("Asia/Shanghai")
DAY = datetime(2025, 6, 10, tzinfo=CST)  # GB 3095-2012 / HJ 633-2012 in force
DAY26 = datetime(2026, 6, 10, tzinfo=CST)  # GB 3095-2026 / HJ 633-2026 in force


@pytest.fixture
async def pipeline(settings: Settings) -> AsyncIterator[IngestService]:
    """The compliance registry loaded and the ingest running."""
    async with ingest_for(settings, read_registry(DATA / "compliance_registry.yaml")) as service:
        yield service


def obj(station: str, ts: datetime, interval: str, readings: dict[str, Any]) -> dict[str, Any]:
    """One message object; a reading is a value or a (value, flag) pair."""
    items = []
    for code, v in readings.items():
        value, flag = v if isinstance(v, tuple) else (v, "N")
        items.append({"parameter": code, "value": value, "flag": flag})
    return {"station_id": station, "ts": ts.isoformat(), "interval": interval, "readings": items}


async def send(settings: Settings, station: str, objects: Iterable[dict[str, Any]], *, park: str = "cp") -> int:
    """Publish the objects (as arrays of at most 200) on the station's topic; wait until stored."""
    batch = list(objects)
    before = await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings")
    expected = before + sum(len(o["readings"]) for o in batch)
    for i in range(0, len(batch), 200):
        await publish(settings, park, station, batch[i : i + 200])
    await eventually(lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings"), lambda n: n >= expected)
    return len(batch)


async def drain(settings: Settings) -> int:
    """Bring rollups and verdicts current (what the worker in `serve` does continuously)."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        return await ComplianceWorker(settings.DATABASE_URL).drain(conn)
    finally:
        await conn.close()


async def verdicts(settings: Settings, station: str, code: str, kind: str) -> dict[datetime, dict[str, Any]]:
    """window_start (local) → verdict row, decoded."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        rows = await conn.fetch(
            """SELECT v.* FROM verdicts v JOIN stations s USING (sid) JOIN parameters p USING (pid)
               WHERE s.id = $1 AND p.code = $2 AND v.window_kind = $3 ORDER BY window_start""",
            station,
            code,
            kind,
        )
    finally:
        await conn.close()
    out = {}
    for r in rows:
        d = dict(r)
        for key in ("limit_value", "rule", "coverage", "notes"):
            d[key] = json.loads(d[key]) if d[key] is not None else None
        out[r["window_start"].astimezone(CST)] = d
    return out


def minutes(start: datetime, n: int, every: int = 1) -> list[datetime]:
    """n minute-record start times from `start`, `every` minutes apart."""
    return [start + timedelta(minutes=every * i) for i in range(n)]


# -- stacks: the valid hourly average after oxygen correction (HJ 75-2017, GB 4915-2013 formula 1) --


async def test_stack_hour_corrected_to_reference_oxygen(settings: Settings, pipeline: IngestService) -> None:
    h8 = DAY.replace(hour=8)
    # SO2 180 at 12 % O2 → 180 × (21 − 10)/(21 − 12) = 220 > 200 (Table 1 kiln): exceedance, multiple 0.1.
    # NOx 300 → 366.67 ≤ 400: compliant.
    await send(
        settings,
        "cp-kiln",
        [obj("cp-kiln", t, "min", {"a21026": 180, "a21002": 300, "a19001": 12}) for t in minutes(h8, 60)],
    )
    await drain(settings)
    so2 = (await verdicts(settings, "cp-kiln", "a21026", "hour"))[h8]
    assert so2["verdict"] == "exceedance"
    assert so2["value"] == pytest.approx(180)
    assert so2["value_judged"] == pytest.approx(220)
    assert so2["limit_value"] == 200
    assert so2["exceedance_multiple"] == pytest.approx(0.1)
    assert so2["rule"]["standard"] == "GB4915-2013"
    assert so2["rule"]["table"] == "Table 1"
    assert so2["window_end"] - so2["window_start"] == timedelta(hours=1)
    assert so2["closed"] is True
    assert so2["coverage"]["minutes_valid"] == 60
    assert any("10 % O2" in n for n in so2["notes"])
    nox = (await verdicts(settings, "cp-kiln", "a21002", "hour"))[h8]
    assert nox["verdict"] == "compliant"
    assert nox["value_judged"] == pytest.approx(300 * 11 / 9)


async def test_stack_45_minute_hour(settings: Settings, pipeline: IngestService) -> None:
    """HJ 75-2017: an hour is valid with ≥ 45 minutes of valid data; C, M, D minutes do not count."""
    objects = []
    for hour, valid in ((9, 45), (10, 44), (11, 60)):
        start = DAY.replace(hour=hour)
        for i, t in enumerate(minutes(start, 60)):
            flag = "N" if i < valid else ("C" if i % 2 else "M")
            # the flagged minutes carry a wild value: were they averaged, the hour would exceed
            objects.append(obj("cp-kiln", t, "min", {"a21026": (150 if flag == "N" else 5000, flag), "a19001": 10}))
    await send(settings, "cp-kiln", objects)
    await drain(settings)
    got = await verdicts(settings, "cp-kiln", "a21026", "hour")
    assert got[DAY.replace(hour=9)]["verdict"] == "compliant"
    assert got[DAY.replace(hour=9)]["value_judged"] == pytest.approx(150)
    assert got[DAY.replace(hour=9)]["coverage"]["minutes_valid"] == 45
    short = got[DAY.replace(hour=10)]
    assert short["verdict"] == "insufficient_data"
    assert short["limit_value"] == 200  # the limit it would face is still shown
    assert short["coverage"]["minutes_valid"] == 44
    assert any("44 valid minute(s)" in n and "45 required" in n for n in short["notes"])
    assert got[DAY.replace(hour=11)]["verdict"] == "compliant"


async def test_stack_hour_without_valid_oxygen_is_not_judged(settings: Settings, pipeline: IngestService) -> None:
    h = DAY.replace(hour=14)
    await send(
        settings, "cp-kiln", [obj("cp-kiln", t, "min", {"a21026": 150, "a19001": (9, "D")}) for t in minutes(h, 60)]
    )
    await drain(settings)
    got = (await verdicts(settings, "cp-kiln", "a21026", "hour"))[h]
    assert got["verdict"] == "insufficient_data"
    assert got["coverage"]["o2_valid"] is False
    assert any("O2" in n for n in got["notes"])


async def test_a_stopped_sinter_machine_hour_is_not_judged(settings: Settings, pipeline: IngestService) -> None:
    """A sinter machine (reference 16 % O2) stopped for an hour breathes ambient air: SO2 10 at
    20.9 % O2 would be corrected to 10 x 5 / 0.1 = 500, 2.5 times the limit. Near-ambient O2 is a
    stopped source for every reference (docs/compliance.md): not judged. The next hour, running
    at 16 % O2, is."""
    h = DAY.replace(hour=15)
    stopped = [obj("cp-sinter", t, "min", {"a21026": 10, "a19001": 20.9}) for t in minutes(h, 60)]
    running = [obj("cp-sinter", t, "min", {"a21026": 150, "a19001": 16}) for t in minutes(h + timedelta(hours=1), 60)]
    await send(settings, "cp-sinter", stopped + running)
    await drain(settings)
    got = await verdicts(settings, "cp-sinter", "a21026", "hour")
    assert got[h]["verdict"] == "insufficient_data"
    assert any("stopped or purging" in n for n in got[h]["notes"]), got[h]["notes"]
    assert got[h + timedelta(hours=1)]["verdict"] == "compliant"
    assert got[h + timedelta(hours=1)]["value_judged"] == pytest.approx(150)


async def test_history_from_before_an_editions_transition_is_not_judged_against_it(
    settings: Settings, pipeline: IngestService
) -> None:
    """A 20 t/h in-use coal boiler re-judged for March 2015: GB 13271-2014's Table 1 applied to it
    only from 2015-10-01 (4.1-4.2); the window is not judged, naming GB 13271-2001. Its hour of
    October 2015 is judged against Table 1 (SO2 400 at 9 % O2)."""
    march, october = datetime(2015, 3, 2, 10, tzinfo=CST), datetime(2015, 10, 5, 10, tzinfo=CST)
    await send(
        settings,
        "cp-boiler",
        [obj("cp-boiler", t, "min", {"a21026": 450, "a19001": 9}) for h in (march, october) for t in minutes(h, 60)],
    )
    await drain(settings)
    got = await verdicts(settings, "cp-boiler", "a21026", "hour")
    assert got[march]["verdict"] == "insufficient_data"
    assert any("GB 13271-2001" in n and "2015-10-01" in n for n in got[march]["notes"]), got[march]["notes"]
    assert got[october]["verdict"] == "exceedance" and got[october]["limit_value"] == 400


async def test_stack_over_range_lower_bound_exceeds(settings: Settings, pipeline: IngestService) -> None:
    """T values are no valid average, but a lower bound above the limit is a certain exceedance."""
    h = DAY.replace(hour=15)
    objects = [
        obj("cp-kiln", t, "min", {"a21026": (150, "N") if i < 30 else (500, "T"), "a19001": 10})
        for i, t in enumerate(minutes(h, 60))
    ]
    await send(settings, "cp-kiln", objects)
    await drain(settings)
    got = (await verdicts(settings, "cp-kiln", "a21026", "hour"))[h]
    # 30 valid minutes (< 45), but (30 × 150 + 30 × 500)/60 = 325 > 200 whatever the true T values were
    assert got["verdict"] == "exceedance"
    assert got["value_judged"] == pytest.approx(325)
    assert any("lower bound" in n for n in got["notes"])


async def test_minute_records_cover_their_interval(settings: Settings, pipeline: IngestService) -> None:
    """A 10-minute record (MinInterval 10) covers 10 minutes: 5 valid records make a 50-minute hour."""
    good, short = DAY.replace(hour=8), DAY.replace(hour=9)
    objects = [
        obj("cp-kiln10", t, "min", {"a21026": (120, "N" if i < 5 else "C"), "a19001": 10})
        for i, t in enumerate(minutes(good, 6, every=10))
    ] + [
        obj("cp-kiln10", t, "min", {"a21026": (120, "N" if i < 4 else "C"), "a19001": 10})
        for i, t in enumerate(minutes(short, 6, every=10))
    ]
    await send(settings, "cp-kiln10", objects)
    await drain(settings)
    got = await verdicts(settings, "cp-kiln10", "a21026", "hour")
    assert got[good]["verdict"] == "compliant"
    assert got[good]["coverage"]["minutes_valid"] == 50
    assert got[short]["verdict"] == "insufficient_data"
    assert got[short]["coverage"]["minutes_valid"] == 40


# -- water: the valid, flow-weighted daily average of the local day (GB 18918 4.1.4.2, HJ 356) --


def hourly(station: str, day: datetime, hours: Iterable[int], readings: dict[str, Any]) -> list[dict[str, Any]]:
    """One real-time message per hour at hh:00 local."""
    return [obj(station, day.replace(hour=h), "rtd", readings) for h in hours]


async def test_late_data_change_a_daily_verdict(settings: Settings, pipeline: IngestService) -> None:
    # 12 hours of COD 45 (limit 50, class 1A): a valid day (12 valid hours), compliant.
    await send(settings, "cp-out", hourly("cp-out", DAY, range(12), {"w01018": 45, "w00000": 100}))
    await drain(settings)
    first = (await verdicts(settings, "cp-out", "w01018", "day"))[DAY]
    assert first["verdict"] == "compliant"
    assert first["value_judged"] == pytest.approx(45)
    assert first["coverage"]["hours_valid"] == 12
    assert first["revision"] == 1
    # The afternoon arrives late (a logger back online): COD 70 at three times the flow.
    # Flow-weighted: (45·100·12 + 70·300·12) / (100·12 + 300·12) = 63.75 > 50.
    await send(settings, "cp-out", hourly("cp-out", DAY, range(12, 24), {"w01018": 70, "w00000": 300}))
    await drain(settings)
    late = (await verdicts(settings, "cp-out", "w01018", "day"))[DAY]
    assert late["verdict"] == "exceedance"
    assert late["value_judged"] == pytest.approx(63.75)
    assert late["exceedance_multiple"] == pytest.approx(0.275)
    assert late["coverage"]["hours_valid"] == 24
    assert late["coverage"]["flow_weighted"] is True
    assert late["revision"] == 2
    assert late["window_start"] == DAY
    assert late["window_end"] == DAY + timedelta(days=1)


async def test_verdict_since_moves_only_when_the_verdict_changes(settings: Settings, pipeline: IngestService) -> None:
    """verdict_since is when the window took its verdict: a new value alone keeps it, a new verdict moves it."""
    await send(settings, "cp-out", hourly("cp-out", DAY, range(12), {"w01018": 45, "w00000": 100}))
    await drain(settings)
    first = (await verdicts(settings, "cp-out", "w01018", "day"))[DAY]
    assert first["verdict"] == "compliant"
    assert first["verdict_since"] >= first["first_judged_at"]
    # Two more hours at 48: still compliant, a new mean; the verdict stands since the first time.
    await send(settings, "cp-out", hourly("cp-out", DAY, range(12, 14), {"w01018": 48, "w00000": 100}))
    await drain(settings)
    same = (await verdicts(settings, "cp-out", "w01018", "day"))[DAY]
    assert same["value_judged"] != first["value_judged"]
    assert same["judged_at"] > first["judged_at"]
    assert same["verdict_since"] == first["verdict_since"]
    # The rest of the day far over the limit: an exceedance, known from now on.
    await send(settings, "cp-out", hourly("cp-out", DAY, range(14, 24), {"w01018": 90, "w00000": 300}))
    await drain(settings)
    late = (await verdicts(settings, "cp-out", "w01018", "day"))[DAY]
    assert late["verdict"] == "exceedance"
    assert late["verdict_since"] > same["judged_at"]


async def test_invalid_flags_push_a_day_to_insufficient_data(settings: Settings, pipeline: IngestService) -> None:
    # 11 valid hours of COD 30 and 13 hours under maintenance (M) reading 400: 11 < 12 valid hours.
    objects = hourly("cp-out", DAY, range(11), {"w01018": 30}) + hourly(
        "cp-out", DAY, range(11, 24), {"w01018": (400, "M")}
    )
    await send(settings, "cp-out", objects)
    await drain(settings)
    got = (await verdicts(settings, "cp-out", "w01018", "day"))[DAY]
    assert got["verdict"] == "insufficient_data"
    assert got["coverage"]["hours_valid"] == 11
    assert got["coverage"]["hours_observed"] == 24
    assert got["value"] == pytest.approx(30)  # the M values never entered the average
    assert any("11 valid hour(s)" in n for n in got["notes"])


async def test_winter_ammonia_by_water_temperature(settings: Settings, pipeline: IngestService) -> None:
    """GB 18918 Table 1 NH3-N 1A: 5 above 12 °C, 8 at or below; the day's water temperature decides."""
    warm, cold, unknown = DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)
    await send(
        settings,
        "cp-out",
        hourly("cp-out", warm, range(24), {"w21003": 7, "w01010": 20})
        + hourly("cp-out", cold, range(24), {"w21003": 7, "w01010": 10})
        + hourly("cp-out", unknown, range(24), {"w21003": 7}),
    )
    await drain(settings)
    got = await verdicts(settings, "cp-out", "w21003", "day")
    assert (got[warm]["verdict"], got[warm]["limit_value"]) == ("exceedance", 5)
    assert (got[cold]["verdict"], got[cold]["limit_value"]) == ("compliant", 8)
    assert got[unknown]["verdict"] == "insufficient_data"  # 7 is between the candidate limits
    assert any("water_temp_c" in n for n in got[unknown]["notes"])


async def test_removal_rate_waits_for_the_inlet(settings: Settings, pipeline: IngestService) -> None:
    """GB 18918 class 3 (note ①): influent COD > 350 → judged by removal rate > 60 %, not by 120."""
    await send(settings, "cp-out3", hourly("cp-out3", DAY, range(24), {"w01018": 150}))
    await drain(settings)
    before = (await verdicts(settings, "cp-out3", "w01018", "day"))[DAY]
    assert before["verdict"] == "insufficient_data"  # 150 > 120, unless the influent was above 350
    # The inlet's data arrive afterwards: influent 400, removal 1 − 150/400 = 62.5 % > 60 %.
    await send(settings, "cp-in", hourly("cp-in", DAY, range(24), {"w01018": 400}))
    await drain(settings)
    after = (await verdicts(settings, "cp-out3", "w01018", "day"))[DAY]
    assert after["verdict"] == "compliant"
    assert after["unit"] == "%"
    assert after["value_judged"] == pytest.approx(62.5)
    assert after["revision"] == 2


async def test_permit_limit_overrides_the_standard(settings: Settings, pipeline: IngestService) -> None:
    await send(settings, "cp-permit", hourly("cp-permit", DAY, range(24), {"w01018": 45}))
    await drain(settings)
    got = (await verdicts(settings, "cp-permit", "w01018", "day"))[DAY]
    assert got["verdict"] == "exceedance"  # 45 ≤ 50 (1A) but > 40 (the permit)
    assert got["limit_value"] == 40
    assert got["rule"]["table"] == "permit"


async def test_ph_range_is_judged_on_every_valid_hour(settings: Settings, pipeline: IngestService) -> None:
    objects = hourly("cp-out", DAY, range(23), {"w01001": 7.2}) + hourly("cp-out", DAY, [23], {"w01001": 9.4})
    await send(settings, "cp-out", objects)
    await drain(settings)
    got = (await verdicts(settings, "cp-out", "w01001", "day"))[DAY]
    assert got["verdict"] == "exceedance"  # the daily mean (7.3) is in range, the 23:00 hour is not
    assert got["limit_value"] == [6, 9]
    assert got["value_judged"] == pytest.approx(9.4)


# -- ambient air: 1 h, 24 h, O3 daily maximum 8 h (GB 3095 Table 4) and the AQI (HJ 633) --


def air_hours(day: datetime, hours: Iterable[int], readings: dict[str, Any]) -> list[dict[str, Any]]:
    """Station-reported hourly values (HJ 212 2061) at hh:00 local."""
    return [obj("cp-air", day.replace(hour=h), "hour", readings) for h in hours]


async def aqi_rows(settings: Settings, period: str) -> dict[datetime, dict[str, Any]]:
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        rows = await conn.fetch("SELECT * FROM aqi WHERE period = $1 ORDER BY window_start", period)
    finally:
        await conn.close()
    return {
        r["window_start"].astimezone(CST): {
            **dict(r),
            "iaqi": json.loads(r["iaqi"]),
            "concentrations": json.loads(r["concentrations"]),
        }
        for r in rows
    }


AIR = {"a34004": 80, "a34002": 100, "a21026": 20, "a21004": 40, "a05024": 100, "a21005": 0.8}


async def test_an_o3_day_short_of_windows_whose_highest_exceeds_is_an_exceedance(
    settings: Settings, pipeline: IngestService
) -> None:
    """Ozone valid only 08:00-17:00 (7 of the day's 17 8 h windows, 14 required): at 200 µg/m³ the
    highest window already exceeds 160, so the day exceeds whatever the missing windows held; at
    100 it stays insufficient_data (the missing windows might have been higher)."""
    high, low = DAY + timedelta(days=3), DAY + timedelta(days=4)
    await send(settings, "cp-air", air_hours(high, range(8, 18), {"a05024": 200}))
    await send(settings, "cp-air", air_hours(low, range(8, 18), {"a05024": 100}))
    await drain(settings)
    o3 = await verdicts(settings, "cp-air", "a05024", "8h")
    assert (o3[high]["verdict"], o3[high]["value_judged"]) == ("exceedance", 200)
    assert any("the highest already exceeds" in n for n in o3[high]["notes"]), o3[high]["notes"]
    assert o3[low]["verdict"] == "insufficient_data"


async def test_ambient_day_and_aqi(settings: Settings, pipeline: IngestService) -> None:
    await send(settings, "cp-air", air_hours(DAY, range(24), AIR))
    await drain(settings)
    pm25 = (await verdicts(settings, "cp-air", "a34004", "24h"))[DAY]
    assert pm25["verdict"] == "exceedance"  # 80 > 75 (GB 3095-2012 Table 1, class 2)
    assert pm25["standard"] == "GB3095-2012"
    assert pm25["coverage"]["hours_valid"] == 24
    o3 = (await verdicts(settings, "cp-air", "a05024", "8h"))[DAY]
    assert (o3["verdict"], o3["value_judged"], o3["limit_value"]) == ("compliant", 100, 160)
    so2_hours = await verdicts(settings, "cp-air", "a21026", "1h")
    assert len(so2_hours) == 24
    assert {v["verdict"] for v in so2_hours.values()} == {"compliant"}
    daily = (await aqi_rows(settings, "24h"))[DAY]
    # PM2.5 80: 100 + (150 − 100)/(115 − 75) × (80 − 75) = 106.25 → 107 (HJ 633-2012 6.2, rounded up)
    assert daily["aqi"] == 107
    assert daily["standard"] == "HJ633-2012"
    assert daily["primary_pollutants"] == ["PM2.5"]
    assert daily["category"] == "轻度污染"
    hourly_aqi = await aqi_rows(settings, "1h")
    # 2012 real-time report: PM from the 24 h moving average, which needs 20 valid hours
    assert hourly_aqi[DAY.replace(hour=18)]["iaqi"]["pm25"] is None
    assert hourly_aqi[DAY.replace(hour=19)]["iaqi"]["pm25"] == 107


async def test_ambient_day_short_of_hours(settings: Settings, pipeline: IngestService) -> None:
    """GB 3095 Table 4: a 24 h average needs 20 hourly values; 19 valid ones and 5 calibrations is short."""
    objects = air_hours(DAY, range(19), {"a34004": 80}) + air_hours(DAY, range(19, 24), {"a34004": (300, "C")})
    await send(settings, "cp-air", objects)
    await drain(settings)
    got = (await verdicts(settings, "cp-air", "a34004", "24h"))[DAY]
    assert got["verdict"] == "insufficient_data"
    assert got["coverage"]["hours_valid"] == 19


async def test_edition_by_date(settings: Settings, pipeline: IngestService) -> None:
    """GB3095 with no year: 2012 before 2026-03-01, 2026 after; likewise HJ 633 for the AQI."""
    await send(settings, "cp-air", air_hours(DAY26, range(24), AIR))
    await drain(settings)
    pm25 = (await verdicts(settings, "cp-air", "a34004", "24h"))[DAY26]
    assert pm25["standard"] == "GB3095-2026"
    daily = (await aqi_rows(settings, "24h"))[DAY26]
    assert daily["standard"] == "HJ633-2026"
    # 2026 real-time report: PM indexed from the 1 h value with the daily breakpoints, from the first hour
    assert (await aqi_rows(settings, "1h"))[DAY26]["iaqi"]["pm25"] is not None


async def test_worker_in_the_background_keeps_verdicts_current(settings: Settings, pipeline: IngestService) -> None:
    """The worker as `serve` runs it: polling the queue, no drain."""
    worker = ComplianceWorker(settings.DATABASE_URL)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="test.compliance")
    try:
        await send(settings, "cp-permit", hourly("cp-permit", DAY, range(24), {"w01018": 30}))

        async def verdict() -> str | None:
            got = (await verdicts(settings, "cp-permit", "w01018", "day")).get(DAY)
            return got["verdict"] if got else None

        assert await eventually(verdict, lambda v: v == "compliant", timeout=20) == "compliant"
        assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM rollup_queue") == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


# -- the API: rollups as readings, verdicts, AQI, the catalogue, what-if ---------------------------


@pytest.fixture
async def client(settings: Settings, pipeline: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    """The API over real HTTP, beside the running ingest."""
    async with serving_api(settings, pipeline) as http:
        yield http


async def test_api_rollups_carry_coverage(settings: Settings, client: httpx.AsyncClient) -> None:
    h8 = DAY.replace(hour=8)
    objects = [
        obj("cp-kiln", t, "min", {"a21026": (150, "N" if i < 50 else "C"), "a19001": 10})
        for i, t in enumerate(minutes(h8, 60))
    ]
    await send(settings, "cp-kiln", objects)
    await drain(settings)
    params = {"station_id": "cp-kiln", "parameter": "so2", "start": "2025-06-10", "end": "2025-06-11"}
    hours = (await client.get("/api/v1/readings", params={**params, "interval": "hour"})).json()["results"]
    assert len(hours) == 1
    row = hours[0]
    assert row["ts_local"] == h8.isoformat()
    assert row["value"] == pytest.approx(150)
    assert (row["count"], row["valid_count"], row["source"]) == (60, 50, "min")
    assert row["coverage"] == {"expected_minutes": 60, "observed_minutes": 60, "valid_minutes": 50, "valid": True}
    days = (await client.get("/api/v1/readings", params={**params, "interval": "day"})).json()["results"]
    assert days[0]["date"] == "2025-06-10"
    assert days[0]["coverage"] == {"expected_hours": 24, "observed_hours": 1, "valid_hours": 1}
    # the station's own values stay reachable
    reported = (await client.get("/api/v1/readings", params={**params, "interval": "min"})).json()["results"]
    assert len(reported) == 60


async def test_api_compliance_lists_verdicts(settings: Settings, client: httpx.AsyncClient) -> None:
    await send(settings, "cp-permit", hourly("cp-permit", DAY, range(24), {"w01018": 45}))
    await send(settings, "cp-out", hourly("cp-out", DAY, range(24), {"w01018": 30}))
    await drain(settings)
    resp = await client.get("/api/v1/compliance", params={"park_id": "cp", "start": "2025-06-10", "end": "2025-06-11"})
    assert resp.status_code == 200
    results = resp.json()["results"]
    by_station = {(r["station_id"], r["parameter"]): r for r in results}
    permit = by_station[("cp-permit", "w01018")]
    assert permit["verdict"] == "exceedance"
    assert permit["limit"] == 40
    assert permit["value_judged"] == pytest.approx(45)
    assert permit["unit"] == "mg/L"
    assert permit["window_start"] == "2025-06-09T16:00:00Z"  # the local day, 00:00 +08:00
    assert permit["window_end"] == "2025-06-10T16:00:00Z"
    assert permit["rule"]["table"] == "permit"
    assert by_station[("cp-out", "w01018")]["verdict"] == "compliant"
    only = await client.get(
        "/api/v1/compliance",
        params={"station_id": "cp-out", "verdict": "exceedance", "start": "2025-06-10", "end": "2025-06-11"},
    )
    assert only.json()["results"] == []
    page = await client.get(
        "/api/v1/compliance", params={"park_id": "cp", "start": "2025-06-10", "end": "2025-06-11", "limit": 1}
    )
    assert len(page.json()["results"]) == 1
    rest = await client.get(
        "/api/v1/compliance",
        params={"park_id": "cp", "start": "2025-06-10", "end": "2025-06-11", "cursor": page.json()["next_cursor"]},
    )
    assert len(rest.json()["results"]) == len(results) - 1
    bad = await client.get("/api/v1/compliance", params={"station_id": "nope"})
    assert (bad.status_code, bad.json()["error"]) == (404, "unknown_station")


async def test_api_aqi(settings: Settings, client: httpx.AsyncClient) -> None:
    await send(settings, "cp-air", air_hours(DAY, range(24), AIR))
    await drain(settings)
    got = (
        await client.get("/api/v1/aqi", params={"station_id": "cp-air", "start": "2025-06-10", "end": "2025-06-11"})
    ).json()["results"]
    assert [(r["aqi"], r["primary"], r["color"]) for r in got] == [(107, ["PM2.5"], "橙色")]
    assert got[0]["iaqi"]["pm25"] == 107


async def test_api_standards_and_evaluate(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/v1/standards")).json()["results"]
    assert {"GB18918-2002", "GB3095-2026", "HJ633-2012", "GB4915-2013"} <= {s["id"] for s in listed}
    shown = (await client.get("/api/v1/standards/GB4915-2013")).json()
    assert {"kiln", "kiln-special"} <= set(shown["classes"])
    assert (await client.get("/api/v1/standards/GB0000")).status_code == 404
    question = {
        "standard": "GB4915-2013",
        "class": "kiln",
        "parameter": "a21026",
        "period": "hour",
        "value": 180,
        "date": "2026-06-01",
        "context": {"o2_pct": 12},
    }
    one = (await client.post("/api/v1/evaluate", json=question)).json()
    assert (one["verdict"], one["value_judged"], one["limit"]) == ("exceedance", 220, 200)
    many = (await client.post("/api/v1/evaluate", json=[question, {"standard": "nope"}])).json()["results"]
    assert many[0]["verdict"] == "exceedance"
    assert many[1]["error"] == "unknown_standard"


async def test_metrics_show_the_compliance_backlog(settings: Settings, client: httpx.AsyncClient) -> None:
    await send(settings, "cp-permit", hourly("cp-permit", DAY, range(3), {"w01018": 45}))
    text = (await client.get("/metrics")).text
    assert "parkwatch_compliance_queue_hours 3" in text
    await drain(settings)
    assert "parkwatch_compliance_queue_hours 0" in (await client.get("/metrics")).text


# -- the command line ------------------------------------------------------------------------------


def test_cli_evaluate_lines() -> None:
    lines = "\n".join(
        [
            json.dumps(
                {"standard": "GB18918-2002", "class": "1A", "parameter": "w01018", "period": "day", "value": 55}
            ),
            "not json",
            json.dumps({"standard": "HJ633", "period": "24h", "date": "2026-06-01", "concentrations": {"pm25": 50}}),
            json.dumps({"standard": "GB18918-2002", "class": "9", "parameter": "w01018", "period": "day", "value": 1}),
        ]
    )
    result = run_cli("evaluate", input_text=lines)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 4
    assert (out[0]["verdict"], out[0]["limit"], out[0]["rule"]["table"]) == ("exceedance", 50, "Table 1")
    assert out[1]["error"] == "invalid_json"
    assert out[2]["aqi"] is None  # HJ 633-2026 5.3: a pollutant missing and AQI ≤ 100: not published
    assert out[2]["iaqi"]["pm25"] == 80  # HJ 633-2026 Table 1: 50 + (100 − 50)/(60 − 35) × (50 − 35)
    assert out[3]["error"] == "unknown_class"


def test_cli_standards() -> None:
    listed = run_cli("standards", "list")
    assert listed.returncode == 0
    assert "GB3095-2026" in listed.stdout and "HJ633-2012" in listed.stdout
    shown = run_cli("standards", "show", "GB4915-2013")
    assert "kiln-special" in shown.stdout and "10 %" in shown.stdout
    as_json = json.loads(run_cli("standards", "show", "GB18918", "--json").stdout)
    assert as_json["id"] == "GB18918-2002"
    assert run_cli("standards", "show", "GB0000").returncode == 1


async def test_cli_catch_up_and_rejudge(settings: Settings, pipeline: IngestService) -> None:
    await send(settings, "cp-permit", hourly("cp-permit", DAY, range(24), {"w01018": 45}))
    env = cli_env(settings)
    caught = await asyncio.to_thread(run_cli, "compliance", "catch-up", env=env)
    assert caught.returncode == 0, caught.stderr
    assert "24 station-hour(s)" in caught.stdout
    # the permit is raised to 50: re-judge the day with the new profile
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await conn.execute(
            """UPDATE stations SET attrs = jsonb_set(attrs, '{limits,w01018}', '50'), updated_at = now()
               WHERE id = 'cp-permit'"""
        )
    finally:
        await conn.close()
    queued = await asyncio.to_thread(
        run_cli,
        "compliance",
        "rejudge",
        "--station",
        "cp-permit",
        "--start",
        "2025-06-09",
        "--end",
        "2025-06-12",
        env=env,
    )
    assert "queued 24 station-hour(s)" in queued.stdout, queued.stderr
    await drain(settings)
    got = (await verdicts(settings, "cp-permit", "w01018", "day"))[DAY]
    assert (got["verdict"], got["limit_value"], got["revision"]) == ("compliant", 50, 2)


async def test_one_station_failing_does_not_stop_the_rest(
    settings: Settings, pipeline: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A judgement that raises (fault injected) is logged; other stations and all rollups stay current."""
    real = worker_module.assess

    def failing(profile: Any, *args: Any, **kwargs: Any) -> Any:
        if profile.id == "cp-kiln":
            raise RuntimeError("injected")
        return real(profile, *args, **kwargs)

    monkeypatch.setattr(worker_module, "assess", failing)
    await send(settings, "cp-kiln", [obj("cp-kiln", t, "min", {"a21026": 150, "a19001": 10}) for t in minutes(DAY, 60)])
    await send(settings, "cp-permit", hourly("cp-permit", DAY, range(24), {"w01018": 30}))
    worker = ComplianceWorker(settings.DATABASE_URL)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        assert await worker.drain(conn) == 25
    finally:
        await conn.close()
    assert worker.stats.errors == 1
    assert (await verdicts(settings, "cp-permit", "w01018", "day"))[DAY]["verdict"] == "compliant"
    assert await verdicts(settings, "cp-kiln", "a21026", "hour") == {}
    assert (
        await fetchval(
            settings.DATABASE_URL,
            "SELECT count(*) FROM rollup_hour h JOIN stations s USING (sid) WHERE s.id = 'cp-kiln'",
        )
        == 2
    )


# -- regressions found in review -------------------------------------------------------------------


async def test_minute_data_decide_the_hour_over_the_stations_own_hourly_value(
    settings: Settings, pipeline: IngestService
) -> None:
    """HJ 75 builds the hour from minute data; a logger's hourly record cannot mask them."""
    h8, h9 = DAY.replace(hour=8), DAY.replace(hour=9)
    objects = [
        obj("cp-kiln", t, "min", {"a21026": (250, "N" if i < 50 else "C"), "a19001": 10})
        for i, t in enumerate(minutes(h8, 60))
    ] + [
        obj("cp-kiln", t, "min", {"a21026": (150, "N" if i < 30 else "C"), "a19001": 10})
        for i, t in enumerate(minutes(h9, 60))
    ]
    objects += [obj("cp-kiln", h, "hour", {"a21026": 150, "a19001": 10}) for h in (h8, h9)]
    await send(settings, "cp-kiln", objects)
    await drain(settings)
    got = await verdicts(settings, "cp-kiln", "a21026", "hour")
    assert (got[h8]["verdict"], got[h8]["coverage"]["source"]) == ("exceedance", "min")
    assert got[h9]["verdict"] == "insufficient_data"


async def test_gb8978_sector_rows_and_a_permit_limit_the_standard_lacks(
    settings: Settings, pipeline: IngestService
) -> None:
    """GB 8978 Table 4: a petrochemical unit takes its own COD row and the `other` SS row; TP, which
    GB 8978 does not limit, is judged against the permit."""
    await send(settings, "cp-8978", hourly("cp-8978", DAY, range(24), {"w01018": 55, "w01012": 65, "w21011": 3.0}))
    await drain(settings)
    cod = (await verdicts(settings, "cp-8978", "w01018", "day"))[DAY]
    assert (cod["verdict"], cod["limit_value"]) == ("compliant", 60)  # petrochemical, class 1
    ss = (await verdicts(settings, "cp-8978", "w01012", "day"))[DAY]
    assert (ss["verdict"], ss["limit_value"]) == ("compliant", 70)  # 其他排污单位
    tp = (await verdicts(settings, "cp-8978", "w21011", "day"))[DAY]
    assert (tp["verdict"], tp["limit_value"], tp["rule"]["table"]) == ("exceedance", 0.5, "permit")


async def test_tsp_daily_value_needs_a_full_day(settings: Settings, pipeline: IngestService) -> None:
    """GB 3095 Table 4: TSP's daily value needs 24 h of sampling, not 20 hourly values."""
    await send(settings, "cp-air", air_hours(DAY, range(20), {"a34001": 100, "a34004": 30}))
    await drain(settings)
    assert (await verdicts(settings, "cp-air", "a34001", "24h"))[DAY]["verdict"] == "insufficient_data"
    assert (await verdicts(settings, "cp-air", "a34004", "24h"))[DAY]["verdict"] == "compliant"


async def test_before_any_edition_nothing_is_judged_and_nothing_breaks(
    settings: Settings, pipeline: IngestService
) -> None:
    """GB 3095-2012 and HJ 633-2012 apply from 2016: 2015 data are stored and rolled up, not judged."""
    old = datetime(2015, 12, 31, tzinfo=CST)
    await send(settings, "cp-air", air_hours(old, range(24), AIR))
    worker = ComplianceWorker(settings.DATABASE_URL)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        assert await worker.drain(conn) == 24
        assert await conn.fetchval("SELECT count(*) FROM verdicts") == 0
        assert await conn.fetchval("SELECT count(*) FROM aqi") == 0
        assert await conn.fetchval("SELECT count(*) FROM rollup_day") == len(AIR)
    finally:
        await conn.close()
    assert worker.stats.errors == 0


async def test_a_purging_stack_is_not_judged(settings: Settings, pipeline: IngestService) -> None:
    """At O2 ≥ 19.5 % the correction would multiply NOx 60 by 5.5: the hour is insufficient_data, not an exceedance."""
    h = DAY.replace(hour=3)
    await send(settings, "cp-kiln", [obj("cp-kiln", t, "min", {"a21002": 60, "a19001": 20.5}) for t in minutes(h, 60)])
    await drain(settings)
    got = (await verdicts(settings, "cp-kiln", "a21002", "hour"))[h]
    assert got["verdict"] == "insufficient_data"
    assert any("stopped or purging" in n for n in got["notes"])


async def test_one_worker_at_a_time(settings: Settings, pipeline: IngestService) -> None:
    """A catch-up while another worker leads does nothing (two would each miss the other's hours)."""
    leader = await asyncpg.connect(settings.DATABASE_URL)
    other = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await leader.execute("SELECT pg_advisory_lock($1)", worker_module.LEADER_LOCK)
        await send(settings, "cp-permit", hourly("cp-permit", DAY, range(2), {"w01018": 30}))
        assert await ComplianceWorker(settings.DATABASE_URL).drain(other, wait=False) is None
        assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM rollup_queue") == 2
        await leader.execute("SELECT pg_advisory_unlock($1)", worker_module.LEADER_LOCK)
        assert await ComplianceWorker(settings.DATABASE_URL).drain(other, wait=False) == 2
    finally:
        await leader.close()
        await other.close()


async def test_one_stations_unjudgeable_data_never_stops_another(settings: Settings, pipeline: IngestService) -> None:
    """Values stored before the edge refused them (two of 1.7e308 overflow an hourly mean) are set aside, station
    by station: the kiln's hours in the same batch are judged, and the failure shows until `rejudge` clears it."""
    h8 = DAY.replace(hour=8)
    await send(settings, "cp-kiln", [obj("cp-kiln", t, "min", {"a21026": 100, "a19001": 10}) for t in minutes(h8, 60)])
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        sid = await conn.fetchval("SELECT sid FROM stations WHERE id = 'cp-kiln10'")
        pid = await conn.fetchval("SELECT pid FROM parameters WHERE code = 'a21026'")
        await conn.execute(
            """INSERT INTO readings (sid, pid, iv, ts, value, flag) VALUES ($1, $2, 1, $3, 1.7e308, 'N'),
               ($1, $2, 1, $3 + interval '10 minutes', 1.7e308, 'N')""",
            sid,
            pid,
            h8,
        )
        await conn.execute("INSERT INTO series (sid, pid, iv) VALUES ($1, $2, 1) ON CONFLICT DO NOTHING", sid, pid)
        await conn.execute(
            "INSERT INTO rollup_queue (sid, hour) VALUES ($1, date_trunc('hour', $2::timestamptz))", sid, h8
        )
        worker = ComplianceWorker(settings.DATABASE_URL)
        await worker.drain(conn)
        failures = await conn.fetch("SELECT sid, error, resolved_at FROM compliance_failures")
        assert await conn.fetchval("SELECT count(*) FROM rollup_queue") == 0  # nothing left to fail at every lease
    finally:
        await conn.close()
    so2 = (await verdicts(settings, "cp-kiln", "a21026", "hour"))[h8]
    assert so2["verdict"] == "compliant"  # judged, though it was claimed with the failing station
    [failure] = failures
    assert failure["sid"] == sid and "out of range" in failure["error"] and failure["resolved_at"] is None
    assert worker.stats.set_aside >= 1

    async with serving_api(settings, None) as api:
        body = (await api.get("/healthz")).json()
        metrics = (await api.get("/metrics")).text
    assert body["status"] == "degraded" and body["compliance"]["set_aside_stations"] == 1
    assert "parkwatch_compliance_set_aside_failures 1" in metrics

    done = await asyncio.to_thread(
        run_cli,
        *("compliance", "rejudge", "--station", "cp-kiln10", "--start", "2025-06-01", "--end", "2025-07-01"),
        env=cli_env(settings),
    )
    assert done.returncode == 0, done.stderr
    assert (
        await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM compliance_failures WHERE resolved_at IS NULL") == 0
    )
