"""The regulators' averaging windows built from hourly rollups: valid hours, days, O3 8 h (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

HOUR = timedelta(hours=1)
# Interval codes of readings.iv (schemas/readings.py) an hour can be built from.
IV_RTD, IV_MIN, IV_HOUR = 0, 1, 2
SOURCE_NAMES = {IV_RTD: "rtd", IV_MIN: "min", IV_HOUR: "hour"}

# Defaults where a station has no standard, or its standard file states none.
# HJ 75-2017 and GB 3095 Table 4: a valid hourly average needs ≥ 45 minutes of valid data.
HOUR_MIN_MINUTES = 45
# GB 3095 Table 4: a daily (24 h) average needs ≥ 20 hourly values.
AMBIENT_DAY_MIN_HOURS = 20
# HJ 356-2019's minimum share of a day was not obtained (docs/reference/standards.md A7, [M]): 12 hours with a
# valid value is what an analyser measuring every 2 h gives in a full day.
WATER_DAY_MIN_HOURS = 12
# Early warnings (docs/alerts.md), not a regulator's rule: a stack hour still running whose
# mean over at least a quarter of an hour of valid minutes is already over its limit, and a
# water day still running whose mean over at least two valid hours is.
EARLY_WARNING_MINUTES = 15
EARLY_WARNING_HOURS = 2
# GB 3095 Table 4: an O3 8 h average needs ≥ 6 hourly values.
O3_8H_MIN_HOURS = 6
# The O3 daily maximum 8 h is taken over the 8 h windows that start 00:00 … 16:00 (end 08:00 …
# 24:00), 17 of them; HJ 663-2013 (not read, [M]) asks for 14 valid windows.
O3_DAY_WINDOWS = 17
O3_DAY_MIN_WINDOWS = 14
# 24 h moving averages (HJ 633-2012 real-time report) take the GB 3095 daily minimum.
MOVING_24H_MIN_HOURS = AMBIENT_DAY_MIN_HOURS


def clean(value: float | None) -> float | None:
    """A computed average without binary noise (50.000000000000007 is 50): never flips a verdict at a limit."""
    return None if value is None else float(f"{value:.10g}")


@dataclass(frozen=True, slots=True)
class HourStat:
    """One station parameter's clock hour, as stored in rollup_hour."""

    start: datetime  # start of the local clock hour (aware)
    source_iv: int
    n_observed: int
    n_valid: int
    n_over_range: int
    observed_minutes: int
    valid_minutes: int
    measured_minutes: int
    avg: float | None  # over valid (N) values
    vmin: float | None
    vmax: float | None
    avg_lower: float | None  # over valid and over-range (N, T) values: a lower bound of the truth

    @classmethod
    def from_record(cls, r: Mapping[str, Any] | Any) -> HourStat:
        """From a rollup_hour row."""
        return cls(
            r["hour"],
            r["source_iv"],
            r["n_observed"],
            r["n_valid"],
            r["n_over_range"],
            r["observed_minutes"],
            r["valid_minutes"],
            r["measured_minutes"],
            r["avg"],
            r["vmin"],
            r["vmax"],
            r["avg_lower"],
        )


@dataclass(frozen=True, slots=True)
class HourRule:
    """When an hour has a valid value: a minute count (stacks, ambient air) or any valid value (water)."""

    min_minutes: int | None  # None: one valid value makes the hour (water analysers measure every 1-2 h)

    def valid(self, h: HourStat) -> bool:
        """True when the hour's average counts."""
        if h.avg is None:
            return False
        return h.n_valid > 0 if self.min_minutes is None else h.valid_minutes >= self.min_minutes

    def measured(self, h: HourStat) -> bool:
        """True when the hour counts once over-range values are taken as the lower bounds they are."""
        if h.avg_lower is None:
            return False
        if self.min_minutes is None:
            return h.n_valid + h.n_over_range > 0
        return h.measured_minutes >= self.min_minutes

    def coverage(self, h: HourStat) -> dict[str, Any]:
        """What the hour held against what it needed."""
        out: dict[str, Any] = {
            "source": SOURCE_NAMES.get(h.source_iv, str(h.source_iv)),
            "minutes_expected": 60,
            "minutes_observed": h.observed_minutes,
            "minutes_valid": h.valid_minutes,
            "values": h.n_observed,
            "values_valid": h.n_valid,
        }
        if h.n_over_range:
            out["values_over_range"] = h.n_over_range
        if self.min_minutes is not None:
            out["minutes_required"] = self.min_minutes
        return out


@dataclass(frozen=True, slots=True)
class DayStat:
    """One station parameter's local day, as stored in rollup_day."""

    day: date
    day_start: datetime
    hours_expected: int
    hours_observed: int
    hours_valid: int
    hours_measured: int  # valid, or valid once over-range values count as lower bounds
    n_observed: int
    n_valid: int
    avg: float | None  # mean of the valid hours' averages
    avg_flow_weighted: float | None  # Σ(C_h·Q_h)/ΣQ_h over the valid hours, when every one has a flow
    avg_lower: float | None  # mean over the measured hours of their lower-bound averages
    vmin: float | None  # extremes of the valid values
    vmax: float | None
    hour_min: float | None  # extremes of the valid hours' averages (pH is judged on these)
    hour_max: float | None
    flow_hours_missing: int  # valid hours without a valid flow (no flow weighting then)

    def as_row(self, sid: int, pid: int) -> tuple[Any, ...]:
        """The rollup_day row."""
        return (
            sid,
            pid,
            self.day,
            self.day_start,
            self.hours_expected,
            self.hours_observed,
            self.hours_valid,
            self.n_observed,
            self.n_valid,
            self.avg,
            self.avg_flow_weighted,
            self.vmin,
            self.vmax,
        )


def local_days(starts: Iterable[datetime], tz: Any) -> set[date]:
    """The local dates the given instants fall on."""
    return {s.astimezone(tz).date() for s in starts}


def day_bounds(day: date, tz: Any) -> tuple[datetime, datetime]:
    """Start and end of a local day, as aware instants (23 or 25 hours long across a DST change)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return start, end


def hours_in(start: datetime, end: datetime) -> int:
    """Whole hours between two instants (in UTC: same-zone arithmetic is wall-clock arithmetic)."""
    return int((end.astimezone(UTC) - start.astimezone(UTC)) / HOUR)


def day_stat(
    day: date,
    tz: Any,
    hours: Mapping[datetime, HourStat],
    rule: HourRule,
    flow: Mapping[datetime, HourStat] | None = None,
) -> DayStat | None:
    """The day's statistics from its hours; None when the day holds no hour at all."""
    start, end = day_bounds(day, tz)
    inside = [h for t, h in hours.items() if start <= t < end]
    if not inside:
        return None
    valid = [h for h in inside if rule.valid(h)]
    measured = [h for h in inside if rule.measured(h)]
    avg = clean(sum(h.avg for h in valid if h.avg is not None) / len(valid)) if valid else None
    lower = clean(sum(h.avg_lower for h in measured if h.avg_lower is not None) / len(measured)) if measured else None
    weighted, missing = None, 0
    if flow is not None and valid:
        weighted, missing = _flow_weighted(valid, flow, rule)
    mins = [h.vmin for h in valid if h.vmin is not None]
    maxs = [h.vmax for h in valid if h.vmax is not None]
    means = [h.avg for h in valid if h.avg is not None]
    return DayStat(
        day,
        start,
        hours_in(start, end),
        len(inside),
        len(valid),
        len(measured),
        sum(h.n_observed for h in inside),
        sum(h.n_valid for h in inside),
        avg,
        weighted,
        lower,
        min(mins) if mins else None,
        max(maxs) if maxs else None,
        min(means) if means else None,
        max(means) if means else None,
        missing,
    )


def _flow_weighted(
    valid: list[HourStat], flow: Mapping[datetime, HourStat], rule: HourRule
) -> tuple[float | None, int]:
    """HJ 356-2019: C_day = Σ(C_i·Q_i) / ΣQ_i, Q_i the flow of the interval value i represents."""
    num = den = 0.0
    missing = 0
    for h in valid:
        q = flow.get(h.start)
        if q is None or not rule.valid(q) or q.avg is None or q.avg < 0:
            missing += 1
            continue
        num += (h.avg or 0.0) * q.avg
        den += q.avg
    if missing or den <= 0:
        return None, missing
    return clean(num / den), 0


def moving_mean(
    values: Mapping[datetime, float], last: datetime, span: int, min_hours: int
) -> tuple[float | None, int]:
    """Mean of the valid hourly values in the `span` hours ending with hour `last`, and their count."""
    last = last.astimezone(UTC)  # real hours, also across a daylight-saving change
    got = [values[t] for t in (last - HOUR * k for k in range(span)) if t in values]
    if len(got) < min_hours:
        return None, len(got)
    return clean(sum(got) / len(got)), len(got)


# Per-code hours and days of one station.
Hours = dict[str, dict[datetime, HourStat]]
Days = dict[str, dict[date, DayStat]]


def o3_8h_means(values: Mapping[datetime, float], day_start: datetime, *, min_hours: int) -> list[float]:
    """The day's valid 8 h moving averages (windows starting 00:00 … 16:00)."""
    means = []
    day_start = day_start.astimezone(UTC)
    for k in range(O3_DAY_WINDOWS):
        mean, _ = moving_mean(values, day_start + HOUR * (k + 7), 8, min_hours)
        if mean is not None:
            means.append(mean)
    return means


def o3_daily_max_8h(
    values: Mapping[datetime, float], day_start: datetime, *, min_hours: int, min_windows: int
) -> tuple[float | None, int]:
    """The day's maximum 8 h moving average and its valid windows (None when too few)."""
    means = o3_8h_means(values, day_start, min_hours=min_hours)
    if len(means) < min_windows:
        return None, len(means)
    return max(means), len(means)


def valid_values(hours: Mapping[datetime, HourStat], rule: HourRule) -> dict[datetime, float]:
    """Hour start → average, for the valid hours only."""
    return {t: h.avg for t, h in hours.items() if h.avg is not None and rule.valid(h)}
