"""HJ 75-2017 substitution of a stack's invalid hours: hourly loads with substitutes, the quarter's capture rate α.

The rules (docs/kpis.md; docs/reference/standards.md A7, B8):

- load of a valid hour G = C × Q × 10⁻⁶ kg, C the hour's measured mean (mg/m³, not O2-corrected:
  the correction normalises for compliance, it does not change the mass) and Q its mean flow
  (a00000, stored in m³/s, so × 3,600 for m³/h). The load is valid when both C and Q are valid
  hours (≥ 45 valid minutes, the rollups' hourly rule);
- a shut-down hour is not valid and holds values of the pollutant or of the flow that the
  station flagged F (HJ 212 table 8, 停运): no load, no substitute, out of α's denominator;
- every other hour is invalid (missing, short of minutes, flagged D, M, C, ...) and gets the
  HJ 75 substitute chosen by the quarter's α = (hours − shut-down − invalid) / (hours − shut-down)
  and the length of its gap (a run of hours without a valid load; the shut-down hours in a run
  neither count towards its length nor end it).
"""

from __future__ import annotations

import math
from collections import deque
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
KG_PER_HOUR = Fraction(3600, 10**6)
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

RULES = {
    "alpha_90_gap_24": f"α ≥ 90 %, gap ≤ {SHORT_GAP_HOURS} h: the highest hourly load of the "
    f"{SHORT_GAP_REFERENCE} valid hours before the gap (HJ 75-2017 [S1])",
    "alpha_90_long_gap": f"α ≥ 90 %, gap > {SHORT_GAP_HOURS} h: the highest hourly load of the "
    f"{LONG_GAP_REFERENCE} valid hours before the gap (HJ 75-2017 [S1])",
    "alpha_75": f"75 % ≤ α < 90 %: the highest hourly load of the {PARTIAL_REFERENCE} valid hours before the "
    "gap (HJ 75-2017 [S1])",
    "alpha_below_75": f"α < 75 %: no HJ 75 substitute as read; the highest hourly load of the {LOW_CAPTURE_REFERENCE} "
    "valid hours before the gap, the table's most conservative figure (a choice)",
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


class _Reference:
    """The highest load of the latest `size` valid hours, kept as loads arrive (a monotonic queue)."""

    def __init__(self, size: int) -> None:
        self.size, self.seen, self.queue = size, 0, deque[tuple[int, float]]()

    def push(self, load: float) -> None:
        while self.queue and self.queue[-1][1] <= load:
            self.queue.pop()
        self.queue.append((self.seen, load))
        self.seen += 1
        while self.queue[0][0] <= self.seen - 1 - self.size:
            self.queue.popleft()

    def peek(self) -> tuple[float | None, int]:
        return (self.queue[0][1] if self.queue else None), min(self.seen, self.size)


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
    if profile is None:
        row = await conn.fetchrow(SELECT_STATION, None, FLOW, sid)
        if row is None:
            raise SubstitutionError("unknown_station", f"no station with sid {sid}")
        profile = Profile.from_record(row)
    tz = profile.tz
    now = now or datetime.now(UTC)
    q_lo = day_bounds(quarter_of(lo.astimezone(tz).date()), tz)[0].astimezone(UTC)
    q_hi = day_bounds(next_quarter(quarter_of((hi - HOUR).astimezone(tz).date())), tz)[0].astimezone(UTC)
    horizon = min(q_hi, now.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC))
    minutes = hour_rule(profile, profile.standard_on(lo.astimezone(tz).date())).min_minutes or 1
    rows = await conn.fetch(SELECT_HOURS, sid, pid, q_lo, q_hi, minutes, LOOKBACK)
    back = [r for r in rows if r["hour"] < q_lo]
    span = {r["hour"]: r for r in rows if r["hour"] >= q_lo}
    starts, status = [], []
    t = q_lo
    while t < horizon:
        r = span.get(t)
        starts.append(t)
        status.append(
            "valid" if r is not None and r["valid"] else "shutdown" if r is not None and r["stopped"] else "invalid"
        )
        t += HOUR
    quarters = _captures(starts, status, tz, horizon)
    gaps = _gap_lengths(status, back[-1]["hour"] if back else None, q_lo)
    references = {size: _Reference(size) for size in {SHORT_GAP_REFERENCE, LONG_GAP_REFERENCE, PARTIAL_REFERENCE}}
    for r in back:
        for ref in references.values():
            ref.push(_load(r["conc"], r["flow"]))
    out = Loads(quarters=[q for q in quarters if q.end > lo.astimezone(UTC) and q.start < hi.astimezone(UTC)])
    snapshot: dict[int, tuple[float | None, int]] = {}
    for i, (start, state) in enumerate(zip(starts, status, strict=True)):
        r = span.get(start)
        if r is not None and state == "valid":
            load = _load(r["conc"], r["flow"])
            for ref in references.values():
                ref.push(load)
            hour = HourLoad(start, "measured", load, r["conc"], clean(r["flow"] * 3600))
        else:
            if i == 0 or status[i - 1] == "valid":
                snapshot = {size: ref.peek() for size, ref in references.items()}
            if state == "shutdown":
                hour = HourLoad(start, "shutdown", 0.0)
            else:
                alpha = next(q.alpha for q in quarters if q.start <= start < q.end)
                rule, size = _rule(alpha, gaps[i])
                value, n = snapshot[size]
                hour = HourLoad(
                    start,
                    "substituted" if value is not None else "unknown",
                    value,
                    rule=rule if value is not None else "no_reference",
                    gap_hours=gaps[i],
                    reference_hours=n,
                )
        if lo <= start < hi:
            out.hours.append(hour)
    return out


def _load(conc: float, flow: float) -> float:
    """G = C × Q × 10⁻⁶ kg with Q in m³/s × 3,600 (docs/reference/standards.md B8), from the decimal inputs."""
    return float(Fraction(repr(float(conc))) * Fraction(repr(float(flow))) * KG_PER_HOUR)


def _captures(starts: list[datetime], status: list[str], tz: Any, horizon: datetime) -> list[Capture]:
    """Each local quarter's hours, shut-down and invalid hours, over the hours read."""
    out: list[Capture] = []
    for start, state in zip(starts, status, strict=True):
        if not out or start >= out[-1].end:
            first = quarter_of(start.astimezone(tz).date())
            q_start = day_bounds(first, tz)[0].astimezone(UTC)
            q_end = min(day_bounds(next_quarter(first), tz)[0].astimezone(UTC), horizon)
            out.append(Capture(q_start, q_end, 0, 0, 0))
        q = out[-1]
        out[-1] = Capture(
            q.start,
            q.end,
            q.hours + 1,
            q.shutdown_hours + (state == "shutdown"),
            q.invalid_hours + (state == "invalid"),
        )
    return out


def _gap_lengths(status: list[str], last_valid: datetime | None, first: datetime) -> list[int]:
    """The invalid hours of the gap each hour belongs to (0 for valid hours).

    A gap open at the first hour read began after the last valid hour before it: the hours
    between, not read, count as invalid.
    """
    out = [0] * len(status)
    i = 0
    while i < len(status):
        if status[i] == "valid":
            i += 1
            continue
        j = i
        while j < len(status) and status[j] != "valid":
            j += 1
        length = sum(1 for k in range(i, j) if status[k] == "invalid")
        if i == 0 and last_valid is not None:
            length += int((first - last_valid) / HOUR) - 1
        for k in range(i, j):
            out[k] = length
        i = j
    return out


async def substituted_loads(
    conn: asyncpg.Connection, *, station_id: str, code: str, quarter_start: date, now: datetime | None = None
) -> tuple[Profile, Loads]:
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
    return profile, await hourly_loads(conn, profile.sid, row["pid"], lo, hi, profile=profile, now=now)
