"""Ambient annual statistics (GB 3095, HJ 663) and the ultra-low programmes' monthly 95 % test, from rollups.

Ambient (docs/kpis.md; docs/reference/standards.md A7, B3): per ambient station and pollutant over a
calendar year, or the year to date, the valid daily values (a day with ≥ 20 valid hours, as
rollup_day.hours_valid counts them; O3 the daily maximum 8 h of compliance/windows.py), their
annual mean and HJ 663 percentile, GB 3095 Table 4's data-capture test per month and year, and
both figures judged against the GB 3095 limits of the station's class in the edition in force on
the span's last day. A statistic short of data capture is insufficient_data, never compliant.

Ultra-low (docs/reference/standards.md A5, B6): per stack judged by an ultra-low programme and
pollutant over a local month, the share of its judged hours whose O2-corrected value
(verdicts.value_judged, compliance/oxygen.py) meets the ultra-low hourly limit, against 95 %.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

import asyncpg

from compliance.annual_rules import (
    ANNUAL_MEAN_CODES,
    ANNUAL_PERCENTILES,
    METHOD,
    O3,
    PERCENTILE_PERIOD,
    YEAR_MIN_DAYS,
    Span,
    capture,
    percentile,
    year_span,
)
from compliance.assess import hour_rule
from compliance.context import JudgementError
from compliance.judge import candidates, insufficient, judge, limited
from compliance.profiles import Profile
from compliance.windows import (
    AMBIENT_DAY_MIN_HOURS,
    O3_8H_MIN_HOURS,
    O3_DAY_MIN_WINDOWS,
    HourStat,
    clean,
    day_bounds,
    hours_in,
    o3_daily_max_8h,
    valid_values,
)
from schemas.parameters import catalog
from schemas.stations import StationKind

# The ultra-low programmes' monthly test: ≥ 95 % of a month's hours meet the hourly values.
# Steel (2019) [S2], cement (2024, "production hours") [S1] (docs/reference/standards.md B6); the
# power programme states no monthly share and is not tested. Family → (share, confidence).
ULE_MONTHLY_SHARE: dict[str, tuple[str, str]] = {"ULE-STEEL": ("0.95", "S2"), "ULE-CEMENT": ("0.95", "S1")}

SELECT_STATIONS = """
SELECT s.sid, s.id, s.park_id, p.city, s.kind, s.timezone, s.attrs, NULL::integer AS inlet_sid
FROM stations s JOIN parks p ON p.id = s.park_id
WHERE s.kind = $1 AND ($2::text IS NULL OR s.id = $2) AND ($3::text IS NULL OR s.park_id = $3)
  AND ($4::text IS NULL OR p.city = $4) AND s.id > $5
  AND ($6::text[] IS NULL OR upper(replace(s.attrs->>'standard', ' ', '')) LIKE any($6::text[]))
ORDER BY s.id LIMIT $7
"""
SELECT_DAYS = """
SELECT d.sid, p.code, d.day, d.hours_valid, d.avg
FROM rollup_day d JOIN parameters p ON p.pid = d.pid
WHERE d.sid = any($1::integer[]) AND p.code = any($2::text[]) AND d.day >= $3 AND d.day < $4
"""
SELECT_HOURS = """
SELECT h.* FROM unnest($1::integer[], $2::timestamptz[], $3::timestamptz[]) AS w(sid, lo, hi)
JOIN rollup_hour h ON h.sid = w.sid AND h.pid = (SELECT pid FROM parameters WHERE code = $4)
 AND h.hour >= w.lo AND h.hour < w.hi
"""
# Judged hours (compliant or exceedance) of each (station, pollutant, edition, class) in its local
# month; an exceedance decided on over-range values (T) counts as a judged hour not within.
COUNT_HOURS = """
WITH w AS (
    SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[],
                         $7::timestamptz[]) AS w(sid, standard, cls, code, lim, lo, hi)
)
SELECT w.sid, w.code,
       count(v.verdict) FILTER (WHERE v.verdict <> 'insufficient_data' AND v.value_judged IS NOT NULL) AS judged,
       count(v.verdict) FILTER (WHERE v.verdict <> 'insufficient_data' AND v.value_judged <= w.lim) AS within
FROM w JOIN parameters p ON p.code = w.code
LEFT JOIN verdicts v ON v.sid = w.sid AND v.pid = p.pid AND v.window_kind = 'hour' AND v.standard = w.standard
     AND v.class = w.cls AND v.window_start >= w.lo AND v.window_start < w.hi
GROUP BY w.sid, w.code
"""


class StatisticsError(Exception):
    """A statistic that cannot be computed as asked; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def pollutant_statistics(profile: Profile, code: str, daily: Mapping[date, float], span: Span) -> dict[str, Any]:
    """One pollutant's annual mean, percentile, capture and their verdicts."""
    days = sorted(daily)
    values = [daily[d] for d in days]
    mean = clean(math.fsum(values) / len(values)) if values and code in ANNUAL_MEAN_CODES else None
    p = ANNUAL_PERCENTILES[code]
    value = clean(percentile(values, p))
    cap = capture(days, span)
    out: dict[str, Any] = {
        "parameter": code,
        "unit": _unit(code),
        "valid_days": len(values),
        "annual_mean": mean,
        "percentile": {"p": round(p * 100), "value": value, "period": PERCENTILE_PERIOD[code], "method": METHOD},
        "capture": cap,
        "annual_mean_verdict": _verdict(profile, code, "annual", mean, span=span, cap=cap)
        if code in ANNUAL_MEAN_CODES
        else None,
        "percentile_verdict": _verdict(profile, code, PERCENTILE_PERIOD[code], value, span=span, cap=cap),
    }
    return out


def _unit(code: str) -> str | None:
    parameter = catalog().by_code.get(code)
    return parameter.unit_for(StationKind.AMBIENT_AIR) if parameter is not None else None


def _verdict(
    profile: Profile, code: str, period: str, value: float | None, *, span: Span, cap: dict[str, Any]
) -> dict[str, Any] | None:
    """The figure judged against the class's limit; insufficient_data when data capture fails."""
    std = profile.standard_on(span.last)
    if std is None or profile.cls is None or value is None:
        return None
    ctx = profile.context()
    try:
        if not cap["met"]:
            reason = "data capture short of GB 3095 Table 4: " + (
                f"months {', '.join(cap['failing_months'])} below their minimum"
                if cap["failing_months"]
                else f"{cap['valid_days']} valid daily values, {YEAR_MIN_DAYS} required"
            )
            j = insufficient(std, profile.cls, code, period, on=span.last, reason=reason, ctx=ctx, value=value)
        else:
            j = judge(std, profile.cls, code, period, value, on=span.last, unit=_unit(code), ctx=ctx)
    except JudgementError as exc:
        return {"verdict": "insufficient_data", "notes": [f"not judged: {exc}"]}
    if not span.complete:
        j.notes.append("year to date: provisional until the year ends")
    return j.as_json()


async def ambient_annual(
    conn: asyncpg.Connection,
    *,
    year: int,
    station_id: str | None = None,
    park_id: str | None = None,
    city: str | None = None,
    after: str = "",
    limit: int = 100,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The annual (or year-to-date) statistics of each ambient station selected, by station id after `after`."""
    now = now or datetime.now(UTC)
    rows = await conn.fetch(SELECT_STATIONS, "ambient_air", station_id, park_id, city, after, None, limit)
    if not rows:
        return []
    profiles = {r["sid"]: Profile.from_record(r) for r in rows}
    spans = {}
    for sid, p in profiles.items():
        span = year_span(year, now.astimezone(p.tz).date())
        if span is None:
            raise StatisticsError("future_year", f"no day of {year} has ended yet at station {p.id}")
        spans[sid] = span
    daily: dict[tuple[int, str], dict[date, float]] = {}
    codes = [c for c in ANNUAL_PERCENTILES if c != O3]
    for r in await conn.fetch(SELECT_DAYS, list(profiles), codes, date(year, 1, 1), date(year + 1, 1, 1)):
        sid, day = r["sid"], r["day"]
        if day < spans[sid].end and r["avg"] is not None and r["hours_valid"] >= _day_minimum(profiles[sid], day):
            daily.setdefault((sid, r["code"]), {})[day] = r["avg"]
    ranges = [
        (sid, day_bounds(date(year, 1, 1), p.tz)[0], day_bounds(spans[sid].end, p.tz)[0]) for sid, p in profiles.items()
    ]
    hours: dict[int, dict[datetime, HourStat]] = {}
    for r in await conn.fetch(SELECT_HOURS, *(list(c) for c in zip(*ranges, strict=True)), O3):
        hours.setdefault(r["sid"], {})[r["hour"]] = HourStat.from_record(r)
    out = []
    for r in rows:
        profile, station_city, span = profiles[r["sid"]], r["city"], spans[r["sid"]]
        daily[(profile.sid, O3)] = _o3_daily(profile, hours.get(profile.sid, {}), span)
        out.append(
            {
                "station_id": profile.id,
                "park_id": profile.park_id,
                "city": station_city,
                "year": year,
                "span": {"first_day": span.first.isoformat(), "last_day": span.last.isoformat()},
                "complete_year": span.complete,
                "standard": (std.id if (std := profile.standard_on(span.last)) else None),
                "class": profile.cls,
                "pollutants": [
                    pollutant_statistics(profile, code, daily.get((profile.sid, code), {}), span)
                    for code in ANNUAL_PERCENTILES
                ],
            }
        )
    return out


def _day_minimum(profile: Profile, day: date) -> int:
    std = profile.standard_on(day)
    return int(std.setting("day_min_valid_hours", AMBIENT_DAY_MIN_HOURS)) if std else AMBIENT_DAY_MIN_HOURS


def _o3_daily(profile: Profile, series: dict[datetime, HourStat], span: Span) -> dict[date, float]:
    """The O3 daily maximum 8 h of each day with enough valid windows (GB 3095 Table 4; windows.py)."""
    out: dict[date, float] = {}
    if not series:
        return out
    values = valid_values(series, hour_rule(profile, profile.standard_on(span.last)))
    day = span.first
    while day < span.end:
        std = profile.standard_on(day)
        min_hours = int(std.setting("o3_8h_min_hours", O3_8H_MIN_HOURS)) if std else O3_8H_MIN_HOURS
        min_windows = int(std.setting("o3_daily_max_min_windows", O3_DAY_MIN_WINDOWS)) if std else O3_DAY_MIN_WINDOWS
        value, _ = o3_daily_max_8h(values, day_bounds(day, profile.tz)[0], min_hours=min_hours, min_windows=min_windows)
        if value is not None:
            out[day] = value
        day += timedelta(days=1)
    return out


async def ultra_low(
    conn: asyncpg.Connection,
    *,
    month: date,
    station_id: str | None = None,
    park_id: str | None = None,
    after: str = "",
    limit: int = 100,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The monthly share of judged hours within the ultra-low limit, per ULE stack and pollutant."""
    now = now or datetime.now(UTC)
    patterns = [f"{family}%" for family in ULE_MONTHLY_SHARE]
    rows = await conn.fetch(SELECT_STATIONS, "stack", station_id, park_id, None, after, patterns, limit)
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    out: list[dict[str, Any]] = []
    asks: list[tuple[Any, ...]] = []
    for r in rows:
        p = Profile.from_record(r)
        lo, hi = day_bounds(month, p.tz)[0], day_bounds(following, p.tz)[0]
        if lo >= now:
            raise StatisticsError("future_month", f"{month:%Y-%m} has not begun at station {p.id}")
        on = min(following - timedelta(days=1), now.astimezone(p.tz).date())
        std = p.standard_on(on)
        if std is None or std.family not in ULE_MONTHLY_SHARE or p.cls is None:
            continue
        share, confidence = ULE_MONTHLY_SHARE[std.family]
        pollutants: list[dict[str, Any]] = []
        for code in sorted(limited(std, p.cls, "hour")):
            found = candidates(std, p.cls, code, "hour", on=on, ctx=p.context())
            bound = found[0][0].values[p.cls] if found else None
            if isinstance(bound, int | float):
                asks.append((p.sid, std.id, p.cls, code, float(bound), lo, hi))
                pollutants.append(
                    {"parameter": code, "limit": float(bound), "unit": found[0][0].unit,
                     "hours_in_month": max(0, hours_in(lo, min(hi, now))), "required_share": float(share)}
                )  # fmt: skip
        rule = {"programme": std.number, "clause": std.judgement.get("clause"), "confidence": confidence,
                "source": "docs/reference/standards.md A5, B6"}  # fmt: skip
        out.append(
            {"sid": p.sid, "station_id": p.id, "park_id": p.park_id, "month": f"{month:%Y-%m}", "final": hi <= now,
             "standard": std.id, "class": p.cls, "rule": rule, "pollutants": pollutants}
        )  # fmt: skip
    counts = {}
    if asks:
        for r in await conn.fetch(COUNT_HOURS, *(list(c) for c in zip(*asks, strict=True))):
            counts[(r["sid"], r["code"])] = (r["judged"], r["within"])
    for station in out:
        for row in station["pollutants"]:
            judged, within = counts.get((station["sid"], row["parameter"]), (0, 0))
            got = Fraction(within, judged) if judged else None
            row.update(
                valid_hours=judged,
                hours_within=within,
                share=round(float(got), 6) if got is not None else None,
                passes=got >= Fraction(repr(row["required_share"])) if got is not None else None,
            )
        del station["sid"]
    return out
