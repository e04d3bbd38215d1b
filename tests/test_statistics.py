"""The statistics of docs/kpis.md worked by hand: HJ 663 percentiles, GB 3095 annual figures and data
capture, the ultra-low monthly 95 % test and HJ 75-2017 substitution, through the worker and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from compliance.annual_rules import Span, capture, percentile, year_span
from compliance.statistics import ambient_annual, ultra_low
from compliance.substitution import hourly_loads, substituted_loads
from ingest.registry import load_registry_file
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.registry import parse_registry
from tests.conftest import ingest_for
from tests.helpers import serving_api
from tests.test_compliance import CST, drain, obj, send

REGISTRY = b"""
parks:
  - {id: cp, name: test park, city: Changsha}
stations:
  - {id: st-air, park_id: cp, kind: ambient_air, standard: GB3095, class: "2",
     parameters: [a34004, a34002, a21026, a21004, a05024, a21005]}
  - {id: st-air1, park_id: cp, kind: ambient_air, standard: GB3095, class: "1", parameters: [a34004]}
  - {id: st-sinter, park_id: cp, kind: stack, standard: ULE-STEEL-2019, class: sinter-head,
     parameters: [a21026, a21002, a34013, a19001, a00000]}
  - {id: st-kiln, park_id: cp, kind: stack, standard: GB4915-2013, class: kiln, parameters: [a21026, a19001, a00000]}
"""
HOUR = timedelta(hours=1)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """The statistics registry loaded; a connection to the test's database."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, parse_registry(REGISTRY, "YAML", "test"))
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def stats_pipeline(settings: Settings) -> AsyncIterator[IngestService]:
    """The statistics registry loaded and the ingest running."""
    async with ingest_for(settings, parse_registry(REGISTRY, "YAML", "test")) as service:
        yield service


async def ids(conn: asyncpg.Connection, station: str, *codes: str) -> tuple[int, ...]:
    sid = await conn.fetchval("SELECT sid FROM stations WHERE id = $1", station)
    pids = [await conn.fetchval("SELECT pid FROM parameters WHERE code = $1", c) for c in codes]
    return (sid, *pids)


# -- the HJ 663 percentile (compliance/percentile.py) --


def test_percentile_worked_by_hand() -> None:
    """HJ 663 rank rule as docs/kpis.md chose it: k = 1 + (n − 1)·p, X(s) + (X(s+1) − X(s))·(k − s).
    Ten values 10 … 100: P95 k = 9.55 → 90 + 10 × 0.55 = 95.5; P98 k = 9.82 → 98.2; P90 k = 9.1 → 91."""
    tens = [50, 10, 100, 30, 20, 60, 40, 90, 80, 70]  # the rule sorts
    assert percentile(tens, 0.95) == 95.5
    assert percentile(tens, 0.98) == 98.2
    assert percentile(tens, 0.90) == 91
    assert percentile(tens, 1.0) == 100 and percentile(tens, 0.0) == 10
    assert percentile([42.0], 0.98) == 42.0
    assert percentile([], 0.95) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile(tens, 98)


def test_capture_february_with_24_valid_days_fails() -> None:
    """GB 3095 Table 4: ≥ 324 valid daily values a year, ≥ 27 a month, February ≥ 25. A 2025 with
    361 valid days (1-4 February invalid) passes the year and fails February: not met."""
    span = year_span(2025, date(2026, 12, 2))
    assert span == Span(2025, date(2026, 1, 1)) and span.complete
    every = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    days = [d for d in every if not (d.month == 2 and d.day <= 4)]
    got = capture(days, span)
    assert (got["valid_days"], got["year_passes"], got["failing_months"], got["met"]) == (361, True, ["2025-02"], False)
    assert got["months"][1] == {"month": "2025-02", "valid_days": 24, "required": 25, "passes": False}
    assert capture([d for d in every if not (d.month == 2 and d.day <= 3)], span)["met"] is True
    # the year to date: a month under way neither passes nor fails yet, the year's 324 waits for December
    ytd = capture([d for d in every if d < date(2025, 3, 15)], Span(2025, date(2025, 3, 15)))
    assert [m["passes"] for m in ytd["months"]] == [True, True, None]
    assert ytd["year_passes"] is None and ytd["met"] is True
    assert year_span(2025, date(2025, 3, 15)) == Span(2025, date(2025, 3, 15))
    assert year_span(2026, date(2026, 1, 1)) is None and year_span(2027, date(2026, 6, 1)) is None


# -- ambient annual statistics from daily rollups --


async def insert_days(conn: asyncpg.Connection, sid: int, pid: int, days: Iterable[tuple[date, int, float]]) -> None:
    """rollup_day rows (the daily rollup path is tested in test_compliance.py): (day, valid hours, mean)."""
    rows = [
        (sid, pid, d, datetime(d.year, d.month, d.day, tzinfo=CST), 24, 24, hv, 24 * 60, hv * 60, avg, None, avg, avg)
        for d, hv, avg in days
    ]
    await conn.copy_records_to_table(
        "rollup_day",
        records=rows,
        columns=["sid", "pid", "day", "day_start", "hours_expected", "hours_observed", "hours_valid", "n_observed",
                 "n_valid", "avg", "avg_flow_weighted", "vmin", "vmax"],
    )  # fmt: skip


def year_2025(invalid_february_days: int, high: dict[date, float], base: float) -> list[tuple[date, int, float]]:
    """Every day of 2025 at `base`, but `high`; the first February days have 19 valid hours (and a wild mean)."""
    out = []
    for i in range(365):
        d = date(2025, 1, 1) + timedelta(days=i)
        if d.month == 2 and d.day <= invalid_february_days:
            out.append((d, 19, 999.0))  # short of 20 valid hours: not a daily value, whatever its mean
        else:
            out.append((d, 24, high.get(d, base)))
    return out


@pytest.mark.parametrize("invalid_february_days", [4, 3])
async def test_ambient_year_worked_by_hand(
    settings: Settings, db: asyncpg.Connection, invalid_february_days: int
) -> None:
    """SO2 daily values of 2025: 10 every valid day but 1-10 July at 101 … 110.
    4 invalid February days: n = 361, mean = (351 × 10 + 1,055) / 361 = 12.645429; P98 (HJ 663,
    k = 1 + 360 × 0.98 = 353.8) = X(353) + 0.8 × (X(354) − X(353)) = 102 + 0.8 = 102.8; February's
    24 valid days fail GB 3095 Table 4 (≥ 25), so both figures are insufficient_data.
    3 invalid days: n = 362, mean = 4,575 / 362 = 12.638122; P98 k = 354.78 → 102 + 0.78 = 102.78;
    capture met: compliant with GB 3095-2012 Table 1 class 2 (annual 60, 24 h 150). PM2.5 40 every
    valid day: annual mean 40 > 35, an exceedance of (40 − 35) / 35 = 0.1429; its P95 40 ≤ 75."""
    sid, so2, pm25 = await ids(db, "st-air", "a21026", "a34004")
    highs = {date(2025, 7, k): 100.0 + k for k in range(1, 11)}
    await insert_days(db, sid, so2, year_2025(invalid_february_days, highs, 10.0))
    await insert_days(db, sid, pm25, year_2025(invalid_february_days, {}, 40.0))
    [station] = await ambient_annual(db, year=2025, station_id="st-air")
    assert (station["standard"], station["class"], station["complete_year"]) == ("GB3095-2012", "2", True)
    got = {p["parameter"]: p for p in station["pollutants"]}
    s, pm = got["a21026"], got["a34004"]
    if invalid_february_days == 4:
        assert s["valid_days"] == 361
        assert s["annual_mean"] == pytest.approx(4565 / 361, abs=1e-8)
        assert s["percentile"]["p"] == 98 and s["percentile"]["value"] == pytest.approx(102.8, abs=1e-9)
        assert s["capture"]["failing_months"] == ["2025-02"] and s["capture"]["met"] is False
        for verdict, limit in ((s["annual_mean_verdict"], 60), (s["percentile_verdict"], 150)):
            assert verdict["verdict"] == "insufficient_data" and verdict["limit"] == limit
            assert any("2025-02" in n for n in verdict["notes"])
        return
    assert s["valid_days"] == 362 and s["capture"]["met"] is True
    assert s["annual_mean"] == pytest.approx(4575 / 362, abs=1e-8)
    assert s["percentile"]["value"] == pytest.approx(102.78, abs=1e-9)
    assert (s["annual_mean_verdict"]["verdict"], s["annual_mean_verdict"]["limit"]) == ("compliant", 60)
    assert s["annual_mean_verdict"]["rule"]["table"] == "Table 1" and s["annual_mean_verdict"]["period"] == "annual"
    assert (s["percentile_verdict"]["verdict"], s["percentile_verdict"]["limit"]) == ("compliant", 150)
    assert (pm["annual_mean"], pm["percentile"]["p"], pm["percentile"]["value"]) == (40, 95, 40)
    assert pm["annual_mean_verdict"]["verdict"] == "exceedance"
    assert pm["annual_mean_verdict"]["exceedance_multiple"] == pytest.approx(0.1429)
    assert pm["percentile_verdict"]["verdict"] == "compliant" and pm["percentile_verdict"]["limit"] == 75
    co = got["a21005"]
    assert co["annual_mean"] is None and co["annual_mean_verdict"] is None and co["valid_days"] == 0

    async with serving_api(settings, None) as api:
        page: dict[str, str | int] = {"year": 2025, "park_id": "cp", "limit": 1}
        answer = await api.get("/api/v1/statistics/ambient-annual", params=page)
        assert answer.status_code == 200, answer.text
        [row] = answer.json()["results"]
        so2 = next(p for p in row["pollutants"] if p["parameter"] == "a21026")
        assert so2["percentile"]["value"] == pytest.approx(102.78) and row["class"] == "2"
        cursor = answer.json()["next_cursor"]
        following = await api.get("/api/v1/statistics/ambient-annual", params={**page, "cursor": cursor})
        [other] = following.json()["results"]  # class 1, no data: no figures, no verdicts
        assert (other["station_id"], other["class"], following.json()["next_cursor"]) == ("st-air1", "1", None)
        assert {p["valid_days"] for p in other["pollutants"]} == {0}
        assert {p["percentile_verdict"] is None for p in other["pollutants"]} == {True}
        queries: list[tuple[dict[str, str | int], int, str]] = [
            ({"year": 2099}, 422, "future_year"),
            ({"year": 2025, "station_id": "nowhere"}, 404, "unknown_station"),
            ({"year": 2025, "station_id": "st-kiln"}, 422, "wrong_station_kind"),
            ({"year": 1999}, 422, "invalid_request"),
        ]
        for query, status, code in queries:
            bad = await api.get("/api/v1/statistics/ambient-annual", params=query)
            assert (bad.status_code, bad.json()["error"]) == (status, code), bad.text


async def test_year_to_date_takes_the_edition_in_force_at_its_end(db: asyncpg.Connection) -> None:
    """2026 to 14 March (now 15 March): January and February pass Table 4, March runs (no verdict
    on it yet), the year's 324 waits for December; judged by GB 3095-2026 (from 2026-03-01),
    whose class 2 PM2.5 annual transition limit is 30: a mean of 32 exceeds, provisionally."""
    sid, pm25 = await ids(db, "st-air", "a34004")
    days = [(date(2026, 1, 1) + timedelta(days=i), 24, 32.0) for i in range(31 + 28 + 14)]
    await insert_days(db, sid, pm25, days)
    now = datetime(2026, 3, 15, 12, tzinfo=CST)
    [station] = await ambient_annual(db, year=2026, station_id="st-air", now=now)
    assert (station["complete_year"], station["standard"]) == (False, "GB3095-2026")
    assert station["span"] == {"first_day": "2026-01-01", "last_day": "2026-03-14"}
    pm = next(p for p in station["pollutants"] if p["parameter"] == "a34004")
    assert [m["passes"] for m in pm["capture"]["months"]] == [True, True, None]
    assert pm["capture"]["year_passes"] is None and pm["valid_days"] == 73
    verdict = pm["annual_mean_verdict"]
    assert (verdict["verdict"], verdict["limit"]) == ("exceedance", 30)
    assert any("provisional" in n for n in verdict["notes"])


async def test_ambient_statistics_from_published_readings(settings: Settings, stats_pipeline: IngestService) -> None:
    """Hourly readings through the ingest and the compliance worker, 10-12 June 2025. PM2.5 daily
    means 30, 50, 70: mean 50, P95 (k = 1 + 2 × 0.95 = 2.9) = 50 + 0.9 × 20 = 68. O3 flat at 100,
    then 120, then 80 until noon and 160 after: daily maxima 8 h 100, 120, 160 (the window
    12:00-20:00 is all 160), P90 (k = 2.8) = 120 + 0.8 × 40 = 152. Three valid days in June and
    none elsewhere fail every month of GB 3095 Table 4: insufficient_data."""
    first = datetime(2025, 6, 10, tzinfo=CST)
    objects = []
    o3_by_day = ([100] * 24, [120] * 24, [80] * 12 + [160] * 12)
    for k, (pm, o3) in enumerate(zip((30, 50, 70), o3_by_day, strict=True)):
        day = first + timedelta(days=k)
        objects += [obj("st-air", day.replace(hour=h), "hour", {"a34004": pm, "a05024": o3[h]}) for h in range(24)]
    await send(settings, "st-air", objects)
    await drain(settings)
    async with serving_api(settings, stats_pipeline) as api:
        answer = await api.get("/api/v1/statistics/ambient-annual", params={"year": 2025, "station_id": "st-air"})
    assert answer.status_code == 200, answer.text
    got = {p["parameter"]: p for p in answer.json()["results"][0]["pollutants"]}
    pm, o3 = got["a34004"], got["a05024"]
    assert (pm["valid_days"], pm["annual_mean"], pm["percentile"]["value"]) == (3, 50, pytest.approx(68))
    assert (o3["valid_days"], o3["annual_mean"], o3["percentile"]["p"]) == (3, None, 90)
    assert o3["percentile"]["value"] == pytest.approx(152) and o3["percentile"]["period"] == "8h"
    assert o3["percentile_verdict"]["verdict"] == "insufficient_data" and o3["percentile_verdict"]["limit"] == 160
    assert len(pm["capture"]["failing_months"]) == 12


# -- the ultra-low monthly test from hourly verdicts --


async def test_ultra_low_months_of_96_and_94_percent(settings: Settings, stats_pipeline: IngestService) -> None:
    """Steel ultra-low (docs/reference/standards.md A5, B6 [S2]): ≥ 95 % of a month's hours meet the
    hourly values; sinter head SO2 35 mg/m³ at 16 % O2. June 2025: 46 hours at 30, 2 at 20 (within),
    one at 30 with 17 % O2 (30 × 5 / 4 = 37.5, over once corrected), one at 40 (over), one at 20.9 %
    O2 (a stopped machine, not judged): 48 / 50 = 96 %, passes. July: 47 at 30 and 3 at 40:
    47 / 50 = 94 %, fails."""
    june, july = datetime(2025, 6, 2, tzinfo=CST), datetime(2025, 7, 2, tzinfo=CST)
    june_hours = [(30, 16)] * 46 + [(20, 16)] * 2 + [(30, 17), (40, 16), (5, 20.9)]
    july_hours = [(30, 16)] * 47 + [(40, 16)] * 3
    objects = [
        obj("st-sinter", start + HOUR * i, "hour", {"a21026": so2, "a19001": o2})
        for start, hours in ((june, june_hours), (july, july_hours))
        for i, (so2, o2) in enumerate(hours)
    ]
    await send(settings, "st-sinter", objects)
    await drain(settings)
    async with serving_api(settings, stats_pipeline) as api:
        answer = await api.get("/api/v1/statistics/ultra-low", params={"month": "2025-06", "park_id": "cp"})
        assert answer.status_code == 200, answer.text
        [row] = answer.json()["results"]  # st-kiln is judged by GB 4915, not an ultra-low programme
        for query, status, code in (
            ({"month": "2025-13"}, 422, "bad_month"),
            ({"month": "2099-01"}, 422, "future_month"),
            ({"month": "2025-06", "station_id": "st-kiln"}, 422, "not_ultra_low"),
            ({"month": "2025-06", "station_id": "st-air"}, 422, "wrong_station_kind"),
        ):
            bad = await api.get("/api/v1/statistics/ultra-low", params=query)
            assert (bad.status_code, bad.json()["error"]) == (status, code), bad.text
    assert (row["station_id"], row["standard"], row["class"], row["final"]) == (
        "st-sinter",
        "ULE-STEEL-2019",
        "sinter-head",
        True,
    )
    assert row["rule"]["confidence"] == "S2"
    so2 = next(p for p in row["pollutants"] if p["parameter"] == "a21026")
    assert (so2["limit"], so2["hours_in_month"], so2["valid_hours"], so2["hours_within"]) == (35, 720, 50, 48)
    assert (so2["share"], so2["required_share"], so2["passes"]) == (0.96, 0.95, True)
    nox = next(p for p in row["pollutants"] if p["parameter"] == "a21002")
    assert (nox["valid_hours"], nox["share"], nox["passes"]) == (0, None, None)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        [july_row] = await ultra_low(conn, month=date(2025, 7, 1), station_id="st-sinter")
    finally:
        await conn.close()
    so2 = next(p for p in july_row["pollutants"] if p["parameter"] == "a21026")
    assert (so2["hours_in_month"], so2["valid_hours"], so2["hours_within"]) == (744, 50, 47)
    assert (so2["share"], so2["passes"]) == (0.94, False)


# -- HJ 75-2017 substitution of invalid hours --

Q3 = datetime(2025, 7, 1, tzinfo=CST)  # 92 days: 2,208 hours
Q4 = datetime(2025, 10, 1, tzinfo=CST)


async def insert_hours(
    conn: asyncpg.Connection, sid: int, pid: int, hours: Iterable[tuple[datetime, int, float | None]]
) -> None:
    """rollup_hour rows from minute data (the hourly rollup is tested in test_compliance.py): (start, valid minutes, mean)."""
    rows = [(sid, pid, t, 1, 60, vm, 0, 60, vm, vm, avg, avg, avg, avg) for t, vm, avg in hours]
    await conn.copy_records_to_table(
        "rollup_hour",
        records=rows,
        columns=["sid", "pid", "hour", "source_iv", "n_observed", "n_valid", "n_over_range", "observed_minutes",
                 "valid_minutes", "measured_minutes", "avg", "vmin", "vmax", "avg_lower"],
    )  # fmt: skip


async def stack_quarters(conn: asyncpg.Connection) -> tuple[int, int]:
    """st-kiln SO2 and flow (a00000, 10 m³/s), hour i of 2025-Q3 counted from 1 July 00:00:
    100 mg/m³ (3.6 kg/h) but 300 at i = 300 (10.8 kg/h) and 150 at i = 400 (5.4 kg/h);
    i = 500-509 invalid (500-504 missing, 505-509 30 valid minutes); i = 600-623 stopped (flag F);
    i = 1000-1029 SO2 valid but no flow. 2025-Q4: i = 0-299 missing, the rest at 3.6 kg/h."""
    sid, so2, flow = await ids(conn, "st-kiln", "a21026", "a00000")
    conc: list[tuple[datetime, int, float | None]] = []
    flows: list[tuple[datetime, int, float | None]] = []
    for i in range(2208):
        t = Q3 + HOUR * i
        if 500 <= i < 505:
            continue
        if 505 <= i < 510:
            conc.append((t, 30, 100.0))
            flows.append((t, 30, 10.0))
        elif 600 <= i < 624:
            conc.append((t, 0, None))
            flows.append((t, 0, None))
        else:
            conc.append((t, 60, {300: 300.0, 400: 150.0}.get(i, 100.0)))
            if not 1000 <= i < 1030:
                flows.append((t, 60, 10.0))
    for i in range(300, 2208):
        conc.append((Q4 + HOUR * i, 60, 100.0))
        flows.append((Q4 + HOUR * i, 60, 10.0))
    await insert_hours(conn, sid, so2, conc)
    await insert_hours(conn, sid, flow, flows)
    stopped = [(sid, so2, 1, Q3 + HOUR * i + timedelta(minutes=m), 0.0, "F") for i in range(600, 624) for m in (0, 30)]
    await conn.executemany(
        "INSERT INTO readings (sid, pid, iv, ts, value, flag) VALUES ($1, $2, $3, $4, $5, $6)", stopped
    )
    return sid, so2


async def test_substitution_gaps_short_and_long(settings: Settings, db: asyncpg.Connection) -> None:
    """HJ 75-2017 (docs/reference/standards.md A7 [S1]); loads G = C × Q × 10⁻⁶ (B8), Q = 10 m³/s =
    36,000 m³/h: 100 mg/m³ → 3.6 kg/h. 2025-Q3: 2,208 hours, 24 shut down, 40 invalid:
    α = 2,144 / 2,184 = 0.981685 ≥ 90 %. The 10 h gap at i = 500 (≤ 24 h) takes the highest of the
    180 valid hours before it (i = 320-499): 5.4 (i = 400). The 30 h gap at i = 1000 takes the
    highest of the 720 valid hours before it (i = 246-999 less the gap and the stop): 10.8
    (i = 300). Measured 2,142 × 3.6 + 10.8 + 5.4 = 7,727.4 kg; substituted 10 × 5.4 + 30 × 10.8 =
    378 kg; total 8,105.4 kg."""
    sid, so2 = await stack_quarters(db)
    loads = await substituted_loads(db, station_id="st-kiln", code="a21026", quarter_start=date(2025, 7, 1))
    [q] = loads.quarters
    assert (q.hours, q.shutdown_hours, q.invalid_hours) == (2208, 24, 40)
    assert float(q.alpha or 0) == pytest.approx(2144 / 2184)
    at = {round((h.start - Q3) / HOUR): h for h in loads.hours}
    assert len(at) == 2208
    assert (at[0].status, at[0].load_kg, at[0].flow_m3_h) == ("measured", 3.6, 36000)
    assert (at[503].status, at[503].load_kg, at[503].rule, at[503].gap_hours, at[503].reference_hours) == (
        "substituted", 5.4, "alpha_90_gap_24", 10, 180)  # fmt: skip
    assert (at[1029].load_kg, at[1029].rule, at[1029].gap_hours, at[1029].reference_hours) == (
        10.8, "alpha_90_long_gap", 30, 720)  # fmt: skip
    assert (at[610].status, at[610].load_kg) == ("shutdown", 0.0)
    totals = loads.totals()
    assert totals["measured_kg"] == pytest.approx(7727.4)
    assert totals["substituted_kg"] == pytest.approx(378)
    assert totals["total_kg"] == pytest.approx(8105.4)
    assert totals["hours"] == {"measured": 2144, "substituted": 40, "shutdown": 24, "unknown": 0}

    # The cap code's view: any span, its gaps judged whole. i = 505-1004: 5 hours of the 10 h gap,
    # the stop, 5 of the 30 h gap; measured 466 × 3.6 = 1,677.6, substituted 27 + 54 = 81.
    part = await hourly_loads(db, sid, so2, Q3 + HOUR * 505, Q3 + HOUR * 1005)
    assert len(part.hours) == 500 and part.hours[0].gap_hours == 10 and part.hours[-1].gap_hours == 30
    assert part.totals()["measured_kg"] == pytest.approx(1677.6)
    assert part.totals()["substituted_kg"] == pytest.approx(81)

    async with serving_api(settings, None) as api:
        answer = await api.get(
            "/api/v1/statistics/cems-substitution",
            params={"station_id": "st-kiln", "parameter": "SO2", "quarter": "2025-Q3"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["parameter"] == "a21026" and body["capture"]["alpha"] == pytest.approx(0.981685)
        assert body["totals"]["total_kg"] == pytest.approx(8105.4)
        hour = body["hours"][503]
        assert (hour["substituted"], hour["load_kg"], hour["rule"]) == (True, 5.4, "alpha_90_gap_24")
        assert "180 valid hours" in body["rules"]["alpha_90_gap_24"]
        for query, status, code in (
            ({"station_id": "st-kiln", "parameter": "a21026", "quarter": "2025-Q5"}, 422, "bad_quarter"),
            ({"station_id": "st-air", "parameter": "a21026", "quarter": "2025-Q3"}, 422, "not_a_stack"),
            ({"station_id": "st-kiln", "parameter": "a21002", "quarter": "2025-Q3"}, 422, "parameter_not_declared"),
            ({"station_id": "nowhere", "parameter": "a21026", "quarter": "2025-Q3"}, 404, "unknown_station"),
            ({"station_id": "st-kiln", "parameter": "a21026", "quarter": "2099-Q1"}, 422, "future_quarter"),
        ):
            bad = await api.get("/api/v1/statistics/cems-substitution", params=query)
            assert (bad.status_code, bad.json()["error"]) == (status, code), bad.text


async def test_substitution_between_75_and_90_percent_and_below(db: asyncpg.Connection) -> None:
    """2025-Q4: its first 300 hours missing, α = 1,908 / 2,208 = 0.864130: 75 % ≤ α < 90 %, the
    highest of the 2,160 valid hours before the gap (HJ 75-2017 [S1]); Q3 holds only 2,144, among
    them 10.8 kg (i = 300): 300 × 10.8 = 3,240 kg substituted, 1,908 × 3.6 = 6,868.8 measured.
    2026-Q1 without data: α = 0, below 75 %, where the table as read has no rule: the most
    conservative, the highest of the 2,160 valid hours before (all 3.6 kg): 2,160 × 3.6 = 7,776 kg."""
    await stack_quarters(db)
    loads = await substituted_loads(db, station_id="st-kiln", code="a21026", quarter_start=date(2025, 10, 1))
    [q] = loads.quarters
    assert float(q.alpha or 0) == pytest.approx(1908 / 2208)
    first = loads.hours[0]
    assert (first.status, first.load_kg, first.rule, first.gap_hours, first.reference_hours) == (
        "substituted", 10.8, "alpha_75", 300, 2144)  # fmt: skip
    assert loads.totals()["substituted_kg"] == pytest.approx(3240)
    assert loads.totals()["measured_kg"] == pytest.approx(6868.8)
    empty = await substituted_loads(db, station_id="st-kiln", code="a21026", quarter_start=date(2026, 1, 1))
    assert empty.quarters[0].alpha == 0 and len(empty.hours) == 2160
    assert {(h.rule, h.load_kg, h.reference_hours) for h in empty.hours} == {("alpha_below_75", 3.6, 2160)}
    assert empty.totals()["total_kg"] == pytest.approx(7776)
    assert empty.quarters[0].end == datetime(2026, 3, 31, 16, tzinfo=UTC)
