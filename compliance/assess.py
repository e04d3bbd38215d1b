"""One station's dirty windows judged from its hourly rollups: daily rollups, verdicts and AQI (pure).

Which window a medium is judged on (docs/reference/standards.md B1, B3, B6): stacks by each valid clock hour after
oxygen correction, water outlets by the valid (flow-weighted) daily average of the local day,
ambient air by 1 h, 24 h and the O3 daily maximum 8 h. A window short of valid data is
insufficient_data, never compliant. Over-range values (flag T) are not valid concentrations, but a
window whose lower bound (T values counted at their reported value) already exceeds the limit is
an exceedance: that is certain, and missing it would hide the worst hours.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from compliance.aqi_reports import AQI_REACH_HOURS, day_report, hour_report
from compliance.context import Context, JudgementError
from compliance.judge import (
    EXCEEDANCE,
    Judgement,
    candidates,
    insufficient,
    judge,
    limited,
)
from compliance.profiles import Profile
from compliance.windows import (
    AMBIENT_DAY_MIN_HOURS,
    EARLY_WARNING_HOURS,
    EARLY_WARNING_MINUTES,
    HOUR,
    HOUR_MIN_MINUTES,
    O3_8H_MIN_HOURS,
    O3_DAY_MIN_WINDOWS,
    O3_DAY_WINDOWS,
    WATER_DAY_MIN_HOURS,
    Days,
    DayStat,
    HourRule,
    Hours,
    HourStat,
    day_bounds,
    day_stat,
    o3_8h_means,
    valid_values,
)
from schemas.catalogue import Standard
from schemas.parameters import catalog

logger = logging.getLogger(__name__)

O2 = "a19001"
WATER_FLOW = "w00000"
WATER_TEMP = "w01010"
INFLUENT = ("w01018", "w01017")  # COD and BOD5: GB 18918 class 3 removal rule


@dataclass
class Assessment:
    """What the worker writes for one station."""

    verdicts: list[tuple[Any, ...]] = field(default_factory=list)
    aqi: list[tuple[Any, ...]] = field(default_factory=list)


def hour_rule(profile: Profile, standard: Standard | None) -> HourRule:
    """When an hour of this station counts: 45 valid minutes (stacks, air), any valid value (water)."""
    if profile.medium == "water":
        return HourRule(None)
    minutes = standard.setting("hour_min_minutes", HOUR_MIN_MINUTES) if standard else HOUR_MIN_MINUTES
    return HourRule(int(minutes))


def compute_days(profile: Profile, hours: Hours, days: set[date]) -> Days:
    """Daily rollups of the given local days, for every parameter with data."""
    out: Days = {}
    flow = hours.get(WATER_FLOW) if profile.medium == "water" else None
    for day in days:
        rule = hour_rule(profile, profile.standard_on(day))
        for code, series in hours.items():
            weigh = flow if flow is not None and code != WATER_FLOW else None
            stat = day_stat(day, profile.tz, series, rule, weigh)
            if stat is not None:
                out.setdefault(code, {})[day] = stat
    return out


def assess(
    profile: Profile,
    hours: Hours,
    days: Days,
    *,
    dirty_hours: set[datetime],
    dirty_days: set[date],
    influent: Mapping[date, dict[str, float]],
    pids: Mapping[str, int],
    now: datetime,
) -> Assessment:
    """Verdicts (and AQI for ambient stations) of the windows the dirty hours and days touch."""
    out = Assessment()
    judge_ = _Judge(profile, pids, now, out)
    if profile.medium == "stack":
        for t in sorted(dirty_hours):
            judge_.stack_hour(t, hours)
    elif profile.medium == "water":
        for day in sorted(dirty_days):
            judge_.water_day(day, days, influent.get(day, {}))
    else:
        for t in sorted(dirty_hours):
            judge_.ambient_hour(t, hours)
        for day in sorted(dirty_days):
            judge_.ambient_day(day, hours, days)
        reach = {t + HOUR * k for t in dirty_hours for k in range(AQI_REACH_HOURS + 1)}
        observed = {t for series in hours.values() for t in series}
        rule = hour_rule(profile, profile.standard_on(min(dirty_days))) if dirty_days else HourRule(HOUR_MIN_MINUTES)
        values = {code: valid_values(series, rule) for code, series in hours.items()}
        for t in sorted(reach & observed):
            out.aqi += hour_report(profile, t, values, now)
        for day in sorted(dirty_days):
            out.aqi += day_report(profile, day, values, days, now)
    return out


@dataclass(frozen=True)
class _Ask:
    """One question to the standard: a parameter over a period, on a date, with what is known."""

    std: Standard
    code: str
    period: str
    on: date
    ctx: Context


class _Judge:
    """Builds verdict and AQI rows for one station."""

    def __init__(self, profile: Profile, pids: Mapping[str, int], now: datetime, out: Assessment) -> None:
        self.p = profile
        self.cls = profile.cls or ""
        self.pids = pids
        self.now = now
        self.out = out

    # -- stacks ---------------------------------------------------------------------------------

    def stack_hour(self, t: datetime, hours: Hours) -> None:
        on = t.astimezone(self.p.tz).date()
        std = self.p.standard_on(on)
        if std is None or not self.cls:
            return
        rule = hour_rule(self.p, std)
        o2_hour = hours.get(O2, {}).get(t)
        o2 = o2_hour.avg if o2_hour is not None and rule.valid(o2_hour) else None
        reference = std.reference_o2.get(self.cls)
        ctx = replace(self.p.context(), o2_pct=o2)
        for code in sorted(self._judged(std, "hour", on, ctx)):
            h = hours.get(code, {}).get(t)
            if h is None:
                continue
            ask = _Ask(std, code, "hour", on, ctx)
            coverage = rule.coverage(h)
            if reference is not None:
                coverage["o2_valid"] = o2 is not None
            if reference is not None and o2 is None and (rule.valid(h) or rule.measured(h)):
                j = self._insufficient(
                    ask,
                    f"no valid hourly O2 ({O2}): the correction to {reference.value:g} % O2 cannot be made",
                    h.avg,
                )
            else:
                j = self._valid_or_lower(ask, h, rule)
            early = False
            if t + HOUR > self.now and j.verdict != EXCEEDANCE and h.valid_minutes >= EARLY_WARNING_MINUTES:
                # the hour so far, corrected with its O2 so far
                o2_now = o2_hour.avg if o2_hour is not None and o2_hour.valid_minutes >= EARLY_WARNING_MINUTES else None
                if reference is None or o2_now is not None:
                    early = self._running_over(replace(ask, ctx=replace(ctx, o2_pct=o2_now)), h.avg)
                if early:
                    j.notes.append(f"early warning: the mean of the hour's {h.valid_minutes} valid minutes is over")
            self._verdict(ask, t, t + HOUR, j, coverage, early=early)

    def _valid_or_lower(self, ask: _Ask, h: HourStat, rule: HourRule) -> Judgement:
        j = self._judge(ask, h.avg) if rule.valid(h) and h.avg is not None else None
        if h.n_over_range and rule.measured(h) and h.avg_lower is not None:
            lower = self._judge(ask, h.avg_lower)
            if lower.verdict == EXCEEDANCE and (j is None or j.verdict != EXCEEDANCE):
                lower.notes.append(
                    f"{h.n_over_range} over-range value(s) (T) counted at their reported value: "
                    "the hour's lower bound already exceeds the limit"
                )
                return lower
            if j is not None:
                j.notes.append(f"{h.n_over_range} over-range value(s) (T) excluded from the average")
        if j is not None:
            return j
        need = rule.min_minutes or 1
        return self._insufficient(ask, f"{h.valid_minutes} valid minute(s) in the hour, {need} required", h.avg)

    # -- water ----------------------------------------------------------------------------------

    def water_day(self, day: date, days: Days, influent: dict[str, float]) -> None:
        std = self.p.standard_on(day)
        if std is None or not self.cls:
            return
        start, end = day_bounds(day, self.p.tz)
        required = int(std.setting("day_min_valid_hours", WATER_DAY_MIN_HOURS))
        temp = days.get(WATER_TEMP, {}).get(day)
        water_temp = temp.avg if temp is not None and temp.hours_valid >= required else None
        ctx = replace(self.p.context(), water_temp_c=water_temp, influent=dict(influent))
        for code in sorted(self._judged(std, "day", day, ctx)):
            d = days.get(code, {}).get(day)
            if d is None:
                continue
            ask = _Ask(std, code, "day", day, ctx)
            coverage = _day_coverage(d, required)
            coverage["flow_weighted"] = d.avg_flow_weighted is not None
            if d.hours_valid < required:
                j = self._short_day(ask, d, required)
            elif self._is_range(ask):
                j = self._range_day(ask, d)
            else:
                value = d.avg_flow_weighted if d.avg_flow_weighted is not None else d.avg
                j = self._judge(ask, value)
                if d.avg_flow_weighted is not None:
                    j.notes.append("flow-weighted daily average Σ(C·Q)/ΣQ of the valid hours (HJ 356-2019)")
                elif d.flow_hours_missing:
                    j.notes.append(f"arithmetic daily average: {d.flow_hours_missing} valid hour(s) have no valid flow")
                if code == "w21003" and water_temp is not None:
                    j.notes.append(f"water temperature {water_temp:g} °C (daily average of {WATER_TEMP})")
                self._lower_bound_day(ask, d, j)
            early = False
            if end > self.now and j.verdict != EXCEEDANCE and d.hours_valid >= EARLY_WARNING_HOURS:
                if self._is_range(ask):
                    early = self._range_day(ask, d).verdict == EXCEEDANCE
                else:
                    early = self._running_over(ask, d.avg_flow_weighted if d.avg_flow_weighted is not None else d.avg)
                if early:
                    j.notes.append(f"early warning: the mean of the day's {d.hours_valid} valid hours is over")
            self._verdict(ask, start, end, j, coverage, early=early)

    def _range_day(self, ask: _Ask, d: DayStat) -> Judgement:
        """pH: every valid hour's average must lie in the range; the day is judged on its extremes."""
        low = self._judge(ask, d.hour_min)
        high = self._judge(ask, d.hour_max)
        j = high if high.verdict == EXCEEDANCE or low.verdict != EXCEEDANCE else low
        j.notes.append(f"range judged on the valid hourly averages' extremes {d.hour_min:g} … {d.hour_max:g}")
        return j

    def _short_day(self, ask: _Ask, d: DayStat, required: int) -> Judgement:
        reason = f"{d.hours_valid} valid hour(s) in the day, {required} required"
        if d.hours_measured >= required and d.avg_lower is not None and not self._is_range(ask):
            lower = self._judge(ask, d.avg_lower)
            if lower.verdict == EXCEEDANCE:
                lower.notes.append(
                    "over-range values (T) counted at their reported value: the day's lower bound "
                    "already exceeds the limit"
                )
                return lower
        return self._insufficient(ask, reason, d.avg)

    def _lower_bound_day(self, ask: _Ask, d: DayStat, j: Judgement) -> None:
        if j.verdict == EXCEEDANCE or d.avg_lower is None or d.hours_measured <= d.hours_valid:
            return
        lower = self._judge(ask, d.avg_lower)
        if lower.verdict == EXCEEDANCE:
            j.verdict = EXCEEDANCE
            j.value, j.value_judged, j.exceedance_multiple = lower.value, lower.value_judged, lower.exceedance_multiple
            j.notes.append("over-range values (T) counted at their reported value: the day's lower bound exceeds")

    # -- ambient air ----------------------------------------------------------------------------

    def ambient_hour(self, t: datetime, hours: Hours) -> None:
        on = t.astimezone(self.p.tz).date()
        std = self.p.standard_on(on)
        if std is None or not self.cls:
            return
        rule = hour_rule(self.p, std)
        for code in sorted(self._judged(std, "1h", on, self.p.context())):
            h = hours.get(code, {}).get(t)
            if h is None:
                continue
            ask = _Ask(std, code, "1h", on, self.p.context())
            self._verdict(ask, t, t + HOUR, self._valid_or_lower(ask, h, rule), rule.coverage(h))

    def ambient_day(self, day: date, hours: Hours, days: Days) -> None:
        std = self.p.standard_on(day)
        if std is None or not self.cls:
            return
        start, end = day_bounds(day, self.p.tz)
        rule = hour_rule(self.p, std)
        default = int(std.setting("day_min_valid_hours", AMBIENT_DAY_MIN_HOURS))
        for code in sorted(self._judged(std, "24h", day, self.p.context())):
            d = days.get(code, {}).get(day)
            if d is None:
                continue
            ask = _Ask(std, code, "24h", day, self.p.context())
            required = _minimum(ask, self.cls, default)
            if d.hours_valid < required:
                j = self._short_day(ask, d, required)
            else:
                j = self._judge(ask, d.avg)
                self._lower_bound_day(ask, d, j)
            self._verdict(ask, start, end, j, _day_coverage(d, required))
        min_hours = int(std.setting("o3_8h_min_hours", O3_8H_MIN_HOURS))
        min_windows = int(std.setting("o3_daily_max_min_windows", O3_DAY_MIN_WINDOWS))
        for code in sorted(self._judged(std, "8h", day, self.p.context())):
            series = hours.get(code, {})
            if not any(start <= t < end for t in series):
                continue
            ask = _Ask(std, code, "8h", day, self.p.context())
            means = o3_8h_means(valid_values(series, rule), start, min_hours=min_hours)
            windows = len(means)
            value = max(means) if windows >= min_windows else None
            coverage = {
                "windows_expected": O3_DAY_WINDOWS,
                "windows_valid": windows,
                "windows_required": min_windows,
                "hours_required_per_window": min_hours,
            }
            short = f"{windows} valid 8 h window(s) in the day, {min_windows} required"
            if value is None and means:
                # The day's maximum is at least the highest window there is: if that exceeds, the
                # day exceeds whatever the missing windows held (docs/compliance.md).
                j = self._judge(ask, max(means))
                if j.verdict == "exceedance":
                    j.notes.append(f"{short}, but the highest already exceeds: the day's maximum can only be higher")
                else:
                    j = self._insufficient(ask, short, None)
            elif value is None:
                j = self._insufficient(ask, short, None)
            else:
                j = self._judge(ask, value)
                j.notes.append("daily maximum 8 h moving average (windows starting 00:00 … 16:00)")
            self._verdict(ask, start, end, j, coverage)

    # -- shared ---------------------------------------------------------------------------------

    def _judged(self, std: Standard, period: str, on: date, ctx: Context) -> set[str]:
        """Parameters judged over this period: the standard's that can apply here, and the permit's."""
        codes = {
            code for code in limited(std, self.cls, period) if candidates(std, self.cls, code, period, on=on, ctx=ctx)
        }
        natural = {"stack": "hour", "water": "day"}.get(self.p.medium)
        if period == natural:
            codes |= set(self.p.limits)
        return codes

    def _permit(self, ask: _Ask) -> float | None:
        return self.p.limits.get(ask.code) if ask.period in {"hour", "day"} else None

    def _judge(self, ask: _Ask, value: float | None) -> Judgement:
        if value is None:
            return self._insufficient(ask, "no value", None)
        try:
            return judge(
                ask.std,
                self.cls,
                ask.code,
                ask.period,
                value,
                on=ask.on,
                unit=self._unit(ask.code),
                ctx=ask.ctx,
                permit_limit=self._permit(ask),
            )
        except JudgementError as exc:
            return self._insufficient(ask, f"not judged: {exc}", value)

    def _insufficient(self, ask: _Ask, reason: str, value: float | None) -> Judgement:
        return insufficient(
            ask.std,
            self.cls,
            ask.code,
            ask.period,
            on=ask.on,
            reason=reason,
            ctx=ask.ctx,
            permit_limit=self._permit(ask),
            value=value,
        )

    def _is_range(self, ask: _Ask) -> bool:
        if ask.code in self.p.limits:
            return False
        rows = candidates(ask.std, self.cls, ask.code, ask.period, on=ask.on, ctx=ask.ctx)
        return any(isinstance(limit.values[self.cls], tuple | list) for limit, _ in rows)

    def _unit(self, code: str) -> str | None:
        parameter = catalog().by_code.get(code)
        return parameter.unit_for(self.p.kind) if parameter is not None else None

    def _running_over(self, ask: _Ask, value: float | None) -> bool:
        """True when a window still running is already over its limit: an early warning."""
        return value is not None and self._judge(ask, value).verdict == EXCEEDANCE

    def _verdict(
        self, ask: _Ask, start: datetime, end: datetime, j: Judgement, coverage: dict[str, Any], *, early: bool = False
    ) -> None:
        pid = self.pids.get(ask.code)
        if pid is None:
            return
        self.out.verdicts.append(
            (
                self.p.sid,
                pid,
                ask.period,
                start,
                end,
                ask.std.id,
                self.cls,
                j.verdict,
                j.value,
                j.value_judged,
                json.dumps(j.limit),
                j.unit,
                j.exceedance_multiple,
                json.dumps(j.rule, ensure_ascii=False),
                json.dumps(coverage),
                json.dumps(j.notes, ensure_ascii=False),
                end <= self.now,
                early,
            )
        )


def _minimum(ask: _Ask, cls: str, default: int) -> int:
    """A window's validity minimum: its limit row's own (TSP: 24 h), else the standard's."""
    rows = candidates(ask.std, cls, ask.code, ask.period, on=ask.on, ctx=ask.ctx)
    own = [lim.min_valid_hours for lim, _ in rows if lim.min_valid_hours is not None]
    return max(own) if own else default


def _day_coverage(d: DayStat, required: int) -> dict[str, Any]:
    return {
        "hours_expected": d.hours_expected,
        "hours_observed": d.hours_observed,
        "hours_valid": d.hours_valid,
        "hours_required": required,
    }
