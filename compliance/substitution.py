"""HJ 75-2017 substitution of a stack's invalid hours: hourly loads with substitutes, the quarter's capture rate α.

Rules and choices in docs/kpis.md (sources: docs/reference/standards.md A7, B8). A valid hour's load
is G = C × Q × 10⁻⁶ kg, C its measured mean (mg/m³, not O2-corrected: the correction normalises for
compliance, it does not change the mass) and Q its mean flow (a00000, stored in m³/s), both valid
hours. A not-valid hour whose pollutant or flow values the station flagged F (停运) is shut down:
0 kg, out of α's denominator. Every other hour is invalid and takes the substitute that the
quarter's α and the length of its gap (a run without a valid load) select.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any, Literal

import asyncpg

from compliance.assess import hour_rule
from compliance.profiles import Profile
from compliance.windows import HOUR, clean, day_bounds

FLOW = "a00000"
# a00000 is stored in m³/s (schemas/data/hj212_gas.csv): mg/m³ × m³/s × 3,600 s/h × 10⁻⁶ kg/mg.
KG_PER_HOUR = 3600 * 1e-6
# HJ 75-2017's table for out-of-control and missing hours, tagged [S1] (docs/reference/standards.md
# A7: one third-party implementation; D6: the wording is unconfirmed). A text that differs
# changes these figures only.
FULL_CAPTURE = Fraction(90, 100)
PARTIAL_CAPTURE = Fraction(75, 100)
SHORT_GAP_HOURS = 24
SHORT_GAP_REFERENCE = 180
LONG_GAP_REFERENCE = 720
PARTIAL_REFERENCE = 2160
# Below 75 % the table as read sets no substitute. Leaving the hours out would understate the
# load a cap is checked against; the largest reference (2,160 valid hours) is the most
# conservative figure the table has, and the quarter says its α is short. A choice (docs/kpis.md).
LOW_CAPTURE_REFERENCE = 2160
LOOKBACK = max(SHORT_GAP_REFERENCE, LONG_GAP_REFERENCE, PARTIAL_REFERENCE, LOW_CAPTURE_REFERENCE)

_MAX = "the highest hourly load of the {} valid hours before the gap"
RULES = {
    "alpha_90_gap_24": f"α ≥ 90 %, gap ≤ {SHORT_GAP_HOURS} h: {_MAX.format(SHORT_GAP_REFERENCE)} (HJ 75-2017 [S1])",
    "alpha_90_long_gap": f"α ≥ 90 %, gap > {SHORT_GAP_HOURS} h: {_MAX.format(LONG_GAP_REFERENCE)} (HJ 75-2017 [S1])",
    "alpha_75": f"75 % ≤ α < 90 %: {_MAX.format(PARTIAL_REFERENCE)} (HJ 75-2017 [S1])",
    "alpha_below_75": f"α < 75 %: HJ 75 as read has no substitute; {_MAX.format(LOW_CAPTURE_REFERENCE)} (a choice)",
    "no_reference": "no valid hour before the gap: no substitute, the load is unknown",
}

# The pollutant's and the flow's hours over [$3, $4) with their validity (≥ $5 valid minutes), a
# not-valid hour marked stopped when the station flagged a value in it F; then the latest $6 valid
# loads before $3, the reference of a gap at the span's start. Every lookup is a primary-key range.
SELECT_HOURS = """
WITH flow AS (SELECT pid FROM parameters WHERE code = 'a00000'),
c AS (SELECT hour, avg, valid_minutes FROM rollup_hour WHERE sid = $1 AND pid = $2 AND hour >= $3 AND hour < $4),
q AS (SELECT hour, avg, valid_minutes FROM rollup_hour
      WHERE sid = $1 AND pid = (SELECT pid FROM flow) AND hour >= $3 AND hour < $4),
span AS (
    SELECT coalesce(c.hour, q.hour) AS hour, c.avg AS conc, q.avg AS flow,
           coalesce(c.avg IS NOT NULL AND c.valid_minutes >= $5 AND q.avg >= 0 AND q.valid_minutes >= $5, false)
               AS valid
    FROM c FULL JOIN q ON q.hour = c.hour
)
SELECT hour, conc, flow, valid,
       NOT valid AND EXISTS (
           SELECT 1 FROM readings r
           WHERE r.sid = $1 AND r.pid IN ($2, (SELECT pid FROM flow)) AND r.iv IN (0, 1, 2)
             AND r.ts >= span.hour AND r.ts < span.hour + interval '1 hour' AND r.flag = 'F'
       ) AS stopped
FROM span
UNION ALL
(SELECT c.hour, c.avg, q.avg, true, false
 FROM rollup_hour c JOIN rollup_hour q ON q.sid = c.sid AND q.pid = (SELECT pid FROM flow) AND q.hour = c.hour
 WHERE c.sid = $1 AND c.pid = $2 AND c.hour < $3 AND c.avg IS NOT NULL AND c.valid_minutes >= $5
   AND q.avg >= 0 AND q.valid_minutes >= $5
 ORDER BY c.hour DESC LIMIT $6)
ORDER BY hour
"""
SELECT_STATION = """
SELECT s.sid, s.id, s.park_id, s.kind, s.timezone, s.attrs, NULL::integer AS inlet_sid,
       (SELECT pid FROM parameters WHERE code = $2) AS pid,
       EXISTS (SELECT 1 FROM station_parameters sp JOIN parameters p USING (pid)
               WHERE sp.sid = s.sid AND p.code = $2) AS declared,
       EXISTS (SELECT 1 FROM station_parameters sp JOIN parameters p USING (pid)
               WHERE sp.sid = s.sid AND p.code = 'a00000') AS has_flow
FROM stations s WHERE s.id = $1 OR s.sid = $3
"""

Status = Literal["measured", "substituted", "shutdown", "unknown"]
STATUSES: tuple[Status, ...] = ("measured", "substituted", "shutdown", "unknown")


class SubstitutionError(Exception):
    """Loads that cannot be computed as asked; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class HourLoad:
    """One hour's load: measured, substituted (with its rule), a shut-down hour's 0, or unknown."""

    start: datetime
    status: Status
    load_kg: float | None
    concentration: float | None = None  # the measured hourly mean, mg/m³ (valid hours)
    flow_m3_h: float | None = None
    rule: str | None = None  # a key of RULES
    gap_hours: int | None = None  # invalid hours in the gap the hour belongs to
    reference_hours: int | None = None  # valid hours the substitute's maximum was taken over


@dataclass(frozen=True, slots=True)
class Capture:
    """A local quarter's capture rate α, over its hours up to its end or the last complete hour."""

    start: datetime
    end: datetime
    hours: int
    shutdown_hours: int
    invalid_hours: int

    @property
    def alpha(self) -> Fraction | None:
        """(hours − shut-down − invalid) / (hours − shut-down); None when every hour was shut down."""
        running = self.hours - self.shutdown_hours
        return Fraction(running - self.invalid_hours, running) if running > 0 else None


@dataclass
class Loads:
    """The hourly loads of a span and the capture of the quarters that decided its substitutes."""

    hours: list[HourLoad] = field(default_factory=list)
    quarters: list[Capture] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        """Measured, substituted and total kg, and hours by status."""
        measured = math.fsum(h.load_kg or 0.0 for h in self.hours if h.status == "measured")
        substituted = math.fsum(h.load_kg or 0.0 for h in self.hours if h.status == "substituted")
        return {
            "measured_kg": clean(measured),
            "substituted_kg": clean(substituted),
            "total_kg": clean(measured + substituted),
            "hours": {s: sum(1 for h in self.hours if h.status == s) for s in STATUSES},
        }


def quarter_of(day: date) -> date:
    """The first day of the calendar quarter that holds the day."""
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def next_quarter(first: date) -> date:
    """The first day of the following quarter."""
    return date(first.year + 1, 1, 1) if first.month == 10 else date(first.year, first.month + 3, 1)


def _rule(alpha: Fraction | None, gap: int) -> tuple[str, int]:
    if alpha is not None and alpha >= FULL_CAPTURE:
        return (
            ("alpha_90_gap_24", SHORT_GAP_REFERENCE)
            if gap <= SHORT_GAP_HOURS
            else ("alpha_90_long_gap", LONG_GAP_REFERENCE)
        )
    if alpha is not None and alpha >= PARTIAL_CAPTURE:
        return "alpha_75", PARTIAL_REFERENCE
    return "alpha_below_75", LOW_CAPTURE_REFERENCE


async def hourly_loads(
    conn: asyncpg.Connection,
    sid: int,
    pid: int,
    lo: datetime,
    hi: datetime,
    *,
    profile: Profile | None = None,
    now: datetime | None = None,
) -> Loads:
    """The load of every hour of [lo, hi) of a stack's pollutant, substitutes filled in (contract: docs/kpis.md).

    Hours are the station's local clock hours, up to the last complete one; each is measured,
    substituted, shutdown (0 kg) or unknown (no valid hour before its gap). α is that of the
    local quarter holding the hour, so the whole quarters [lo, hi) touches are read, and a gap's
    reference may reach back before them. One statement, two when no `profile` is given (pass
    the worker's Profiles.by_sid[sid] when computing for many stations).
    """
    if hi <= lo:
        return Loads()
    if profile is None:
        row = await conn.fetchrow(SELECT_STATION, None, FLOW, sid)
        if row is None:
            raise SubstitutionError("unknown_station", f"no station with sid {sid}")
        profile = Profile.from_record(row)
    tz, now = profile.tz, now or datetime.now(UTC)
    first = quarter_of(lo.astimezone(tz).date())
    bounds = [day_bounds(first, tz)[0].astimezone(UTC)]
    while bounds[-1] < hi:  # the local quarters [lo, hi) touches
        first = next_quarter(first)
        bounds.append(day_bounds(first, tz)[0].astimezone(UTC))
    horizon = min(bounds[-1], now.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC))
    minutes = hour_rule(profile, profile.standard_on(lo.astimezone(tz).date())).min_minutes or 1
    rows = await conn.fetch(SELECT_HOURS, sid, pid, bounds[0], bounds[-1], minutes, LOOKBACK)
    back = [r for r in rows if r["hour"] < bounds[0]]
    by_hour = {r["hour"]: r for r in rows if r["hour"] >= bounds[0]}
    got = [by_hour.get(bounds[0] + HOUR * i) for i in range(max(0, int((horizon - bounds[0]) / HOUR)))]
    status = ["valid" if r is not None and r["valid"] else "shutdown" if r is not None and r["stopped"] else "invalid"
              for r in got]  # fmt: skip
    quarters = _captures(status, bounds, horizon)
    alphas = [q.alpha for q in quarters]
    gaps = _gap_lengths(status, int((bounds[0] - back[-1]["hour"]) / HOUR) - 1 if back else 0)
    loads = [_load(r["conc"], r["flow"]) for r in back]  # every valid load so far, oldest first
    maxima: dict[tuple[int, int], float | None] = {}  # (valid loads so far, reference size) → the highest
    chosen: dict[tuple[int, int], tuple[str, int]] = {}  # (quarter, gap length) → its rule: exact α compares are slow
    out = Loads(quarters=[q for q in quarters if q.end > lo and q.start < hi])
    q = 0
    for i, (r, state) in enumerate(zip(got, status, strict=True)):
        start = bounds[0] + HOUR * i
        while start >= quarters[q].end:
            q += 1
        if r is not None and state == "valid":
            loads.append(_load(r["conc"], r["flow"]))
            hour = HourLoad(start, "measured", loads[-1], r["conc"], round(r["flow"] * 3600, 6))
        elif state == "shutdown":
            hour = HourLoad(start, "shutdown", 0.0)
        else:  # no valid load arrives during a gap: the loads so far are those before it
            rule, size = chosen.get((q, gaps[i])) or chosen.setdefault((q, gaps[i]), _rule(alphas[q], gaps[i]))
            key = (len(loads), size)
            if key not in maxima:
                maxima[key] = max(loads[-size:], default=None)
            value = maxima[key]
            hour = HourLoad(
                start,
                "substituted" if value is not None else "unknown",
                value,
                rule=rule if value is not None else "no_reference",
                gap_hours=gaps[i],
                reference_hours=min(len(loads), size),
            )
        if lo <= start < hi:
            out.hours.append(hour)
    return out


def _load(conc: float, flow: float) -> float:
    """G = C × Q × 10⁻⁶ kg with Q in m³/s × 3,600 (docs/reference/standards.md B8), without binary noise."""
    return round(conc * flow * KG_PER_HOUR, 9)


def _captures(status: list[str], bounds: list[datetime], horizon: datetime) -> list[Capture]:
    """Each quarter's hours, shut-down and invalid hours (`status` is hour by hour from bounds[0])."""
    out = []
    for start, following in itertools.pairwise(bounds):
        end = min(following, horizon)
        if start < end:
            part = status[int((start - bounds[0]) / HOUR) : int((end - bounds[0]) / HOUR)]
            out.append(Capture(start, end, len(part), part.count("shutdown"), part.count("invalid")))
    return out


def _gap_lengths(status: list[str], before: int) -> list[int]:
    """The invalid hours of the gap each hour belongs to (0 for valid hours).

    A gap open at the first hour read also counts the `before` hours since the last valid hour.
    """
    out: list[int] = []
    for valid, group in itertools.groupby(status, key=lambda state: state == "valid"):
        run = list(group)
        out += [0 if valid else run.count("invalid") + (before if not out else 0)] * len(run)
    return out


async def substituted_loads(
    conn: asyncpg.Connection, *, station_id: str, code: str, quarter_start: date, now: datetime | None = None
) -> Loads:
    """A stack pollutant's loads over a local quarter, substitutes filled in, with the quarter's α."""
    if quarter_of(quarter_start) != quarter_start:
        raise SubstitutionError("bad_quarter", f"{quarter_start} is not the first day of a quarter")
    row = await conn.fetchrow(SELECT_STATION, station_id, code, None)
    if row is None:
        raise SubstitutionError("unknown_station", f"station {station_id!r} is not registered")
    profile = Profile.from_record(row)
    if profile.medium != "stack":
        raise SubstitutionError("not_a_stack", f"station {station_id!r} is a {profile.kind.value}, not a stack")
    if row["pid"] is None or not row["declared"]:
        raise SubstitutionError("parameter_not_declared", f"station {station_id!r} does not declare {code}")
    if not row["has_flow"]:
        raise SubstitutionError("no_flow", f"station {station_id!r} declares no flue-gas flow ({FLOW}): no loads")
    lo = day_bounds(quarter_start, profile.tz)[0]
    hi = day_bounds(next_quarter(quarter_start), profile.tz)[0]
    if lo >= (now or datetime.now(UTC)):
        raise SubstitutionError("future_quarter", f"the quarter from {quarter_start} has not begun")
    return await hourly_loads(conn, profile.sid, row["pid"], lo, hi, profile=profile, now=now)
