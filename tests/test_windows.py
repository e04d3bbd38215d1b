"""Averaging windows from hourly rollups (pure): valid hours, flow weighting, O3 8 h, local hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from compliance.windows import (
    HOUR,
    HourRule,
    HourStat,
    clean,
    day_stat,
    moving_mean,
    o3_daily_max_8h,
)
from compliance.worker import local_hours

CST = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="session", autouse=True)
def _services() -> None:
    """Pure tests: no database, no broker."""


def hour(start: datetime, avg: float | None, *, valid_minutes: int = 60, n_valid: int = 60, **kw: float) -> HourStat:
    return HourStat(
        start=start,
        source_iv=1,
        n_observed=60,
        n_valid=n_valid,
        n_over_range=int(kw.get("n_over_range", 0)),
        observed_minutes=60,
        valid_minutes=valid_minutes,
        measured_minutes=int(kw.get("measured_minutes", valid_minutes)),
        avg=avg,
        vmin=avg,
        vmax=avg,
        avg_lower=kw.get("avg_lower", avg),
    )


def test_hour_rule_minutes_and_water() -> None:
    start = datetime(2026, 6, 1, 8, tzinfo=CST)
    stack = HourRule(45)
    assert stack.valid(hour(start, 10, valid_minutes=45))
    assert not stack.valid(hour(start, 10, valid_minutes=44))
    water = HourRule(None)
    assert water.valid(hour(start, 10, valid_minutes=1, n_valid=1))
    assert not water.valid(hour(start, None, valid_minutes=0, n_valid=0))


def test_day_flow_weighted_and_its_fallback() -> None:
    day = date(2026, 6, 1)
    start = datetime(2026, 6, 1, tzinfo=CST)
    rule = HourRule(None)
    conc = {start + HOUR * h: hour(start + HOUR * h, 40 if h < 12 else 80) for h in range(24)}
    flow = {start + HOUR * h: hour(start + HOUR * h, 100 if h < 12 else 300) for h in range(24)}
    stat = day_stat(day, CST, conc, rule, flow)
    assert stat is not None
    assert stat.avg == 60  # arithmetic
    assert stat.avg_flow_weighted == 70  # (40·100 + 80·300) / 400
    assert stat.hours_valid == 24 and stat.hours_expected == 24
    del flow[start + HOUR * 5]
    partial = day_stat(day, CST, conc, rule, flow)
    assert partial is not None
    assert partial.avg_flow_weighted is None  # a valid hour without flow: no weighting, say so
    assert partial.flow_hours_missing == 1


def test_day_excludes_hours_outside_the_local_day() -> None:
    start = datetime(2026, 6, 1, tzinfo=CST)
    hours = {start + HOUR * h: hour(start + HOUR * h, 10) for h in range(-3, 27)}
    stat = day_stat(date(2026, 6, 1), CST, hours, HourRule(45))
    assert stat is not None and stat.hours_observed == 24


def test_moving_mean_needs_its_minimum() -> None:
    t0 = datetime(2026, 6, 1, tzinfo=CST)
    values = {t0 + HOUR * h: float(h) for h in range(8) if h != 3}
    assert moving_mean(values, t0 + HOUR * 7, 8, 6) == (pytest.approx(25 / 7), 7)  # (0+1+2+4+5+6+7)/7
    assert moving_mean(values, t0 + HOUR * 7, 8, 8) == (None, 7)


def test_o3_daily_max_8h_windows() -> None:
    """GB 3095 Table 4: ≥ 6 hours per 8 h window; 17 windows start 00:00 … 16:00; 14 must be valid."""
    t0 = datetime(2026, 6, 1, tzinfo=CST)
    values = {t0 + HOUR * h: 100.0 for h in range(24)}
    values[t0 + HOUR * 14] = 260.0  # one high hour: the windows containing it average 120
    got, windows = o3_daily_max_8h(values, t0, min_hours=6, min_windows=14)
    assert (got, windows) == (pytest.approx(120.0), 17)
    sparse = {t: v for t, v in values.items() if (t - t0) < timedelta(hours=12)}
    got, windows = o3_daily_max_8h(sparse, t0, min_hours=6, min_windows=14)
    assert got is None and windows < 14


def test_local_hours_of_a_utc_hour() -> None:
    utc = datetime(2026, 6, 1, 2, tzinfo=UTC)
    assert local_hours(utc, CST) == {utc}
    # India is UTC+05:30: one UTC hour overlaps two local clock hours
    kolkata = local_hours(utc, ZoneInfo("Asia/Kolkata"))
    assert kolkata == {datetime(2026, 6, 1, 1, 30, tzinfo=UTC), datetime(2026, 6, 1, 2, 30, tzinfo=UTC)}


def test_clean_removes_binary_noise_only() -> None:
    assert clean(0.1 + 0.2) == 0.3
    assert clean(50.000000000000007) == 50
    assert clean(50.0001) == 50.0001
    assert clean(None) is None


def test_windows_count_real_hours_across_daylight_saving() -> None:
    """A zone with DST: the spring day has 23 hours, and an 8 h window is 8 real hours."""
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 8, tzinfo=ny)  # clocks go forward at 02:00
    hours = {start.astimezone(UTC) + HOUR * h: hour(start.astimezone(UTC) + HOUR * h, 10) for h in range(23)}
    stat = day_stat(date(2026, 3, 8), ny, hours, HourRule(45))
    assert stat is not None and stat.hours_expected == 23 and stat.hours_observed == 23
    values = dict.fromkeys(hours, 10.0)
    assert moving_mean(values, start.astimezone(UTC) + HOUR * 7, 8, 8) == (10.0, 8)
