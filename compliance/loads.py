"""Total-quantity control (总量控制): each capped station's emissions of the year against its cap, and a projection.

docs/kpis.md#loads holds the rules:

- a stack's load is the sum of its hourly loads, HJ 75-2017 substitutes filled in for invalid
  hours (compliance/substitution.py);
- a wastewater outlet's load is the sum of its daily loads C_day × V_day × 10⁻³ kg (C the valid
  flow-weighted daily mean in mg/L, V the day's volume in m³, docs/reference/standards.md B8);
  days without both are counted as missing, not substituted (HJ 356's substitution rules were
  not obtained: docs/reference/standards.md D7);
- the projection to the year's end is the run rate so far carried over the rest of the year:
  cumulative + cumulative / counted × (year − elapsed), `counted` the hours (days) that have a
  load; hours before a station's first valid hour have none (it was not monitored yet) and are
  not projected from. It is given once MIN_PROJECTION_DAYS of loads are counted, or when the
  year is over (then it is the cumulative).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from compliance.delivery import Progress
from compliance.profiles import Profile, Profiles
from compliance.substitution import hourly_loads
from compliance.treatment import daily_values, period_days, volumes
from compliance.windows import clean

# A run rate over the first days of January would swing with a single bad day; a week is the
# shortest stretch whose rate is worth projecting (a choice, docs/kpis.md#loads).
MIN_PROJECTION_DAYS = 7

CAPPED = """
SELECT s.sid, s.id, s.park_id, s.kind, s.timezone, c.key AS code, c.value::float8 AS cap_kg, p.pid
FROM stations s
CROSS JOIN LATERAL jsonb_each_text(s.attrs->'caps') c
JOIN parameters p ON p.code = c.key
WHERE s.attrs ? 'caps' AND ($1::text IS NULL OR s.park_id = $1) AND ($2::text IS NULL OR s.id = $2)
ORDER BY s.id, c.key
"""


@dataclass
class CapPosition:
    """A station's emissions of one pollutant in a calendar year against its cap."""

    sid: int
    pid: int
    station_id: str
    park_id: str
    code: str
    year: int
    cap_kg: float
    cumulative_kg: float
    substituted_kg: float
    elapsed: timedelta  # of the year, to the last complete hour (stacks) or day (water)
    year_length: timedelta
    missing: int  # hours (stacks) or days (water) without a load
    unit: str  # of `missing`: hours or days

    @property
    def counted(self) -> timedelta:
        """The time that has a load: elapsed less the missing hours or days."""
        return self.elapsed - timedelta(**{self.unit: self.missing})

    @property
    def projected_kg(self) -> float | None:
        """The year's emissions at the run rate so far; None before MIN_PROJECTION_DAYS of loads."""
        rest = self.year_length - self.elapsed
        if rest <= timedelta(0):
            return clean(self.cumulative_kg)
        if self.counted < timedelta(days=MIN_PROJECTION_DAYS):
            return None
        return clean(self.cumulative_kg + self.cumulative_kg * (rest / self.counted))

    def as_json(self) -> dict[str, Any]:
        """The figures and their inputs."""
        projected = self.projected_kg
        return {
            "station_id": self.station_id,
            "park_id": self.park_id,
            "parameter": self.code,
            "year": self.year,
            "cap_kg": self.cap_kg,
            "cumulative_kg": clean(self.cumulative_kg),
            "substituted_kg": clean(self.substituted_kg),
            "share_of_cap": round(self.cumulative_kg / self.cap_kg, 6),
            "projected_kg": projected,
            "projected_share": round(projected / self.cap_kg, 6) if projected is not None else None,
            "elapsed_days": round(self.elapsed / timedelta(days=1), 4),
            "counted_days": round(self.counted / timedelta(days=1), 4),
            f"missing_{self.unit}": self.missing,
            "over_cap": self.cumulative_kg > self.cap_kg,
            "projected_over_cap": projected is not None and projected > self.cap_kg,
        }


async def cap_positions(
    conn: asyncpg.Connection,
    *,
    year: int,
    now: datetime,
    park_id: str | None = None,
    station_id: str | None = None,
    progress: Progress | None = None,
) -> list[CapPosition]:
    """Every capped station and pollutant selected, for the calendar year (local time) as of `now`."""
    out = []
    capped = await conn.fetch(CAPPED, park_id, station_id)
    profiles = Profiles()
    if any(r["kind"] == "stack" for r in capped):
        await profiles.refresh(conn)  # one read for every stack, not one a cap
    for n, r in enumerate(capped, start=1):
        zone = ZoneInfo(r["timezone"])
        lo = datetime(year, 1, 1, tzinfo=zone)
        hi = datetime(year + 1, 1, 1, tzinfo=zone)
        if r["kind"] == "stack":
            position = await _stack(conn, r, lo, hi, now, profile=profiles.by_sid.get(r["sid"]))
        else:
            position = await _water(conn, r, lo, hi, now)
        out.append(position)
        if progress is not None:
            progress("loads against caps", n, len(capped))
    return out


def _position(r: asyncpg.Record, lo: datetime, hi: datetime, **figures: Any) -> CapPosition:
    return CapPosition(
        sid=r["sid"],
        pid=r["pid"],
        station_id=r["id"],
        park_id=r["park_id"],
        code=r["code"],
        year=lo.year,
        cap_kg=r["cap_kg"],
        year_length=hi - lo,
        **figures,
    )


async def _stack(
    conn: asyncpg.Connection, r: asyncpg.Record, lo: datetime, hi: datetime, now: datetime, *, profile: Profile | None
) -> CapPosition:
    loads = await hourly_loads(
        conn, r["sid"], r["pid"], lo.astimezone(UTC), hi.astimezone(UTC), now=now, profile=profile
    )
    totals = loads.totals()
    hours = totals["hours"]
    return _position(
        r,
        lo,
        hi,
        cumulative_kg=totals["total_kg"],
        substituted_kg=totals["substituted_kg"],
        elapsed=timedelta(hours=len(loads.hours)),
        missing=hours.get("unknown", 0),
        unit="hours",
    )


async def _water(conn: asyncpg.Connection, r: asyncpg.Record, lo: datetime, hi: datetime, now: datetime) -> CapPosition:
    days = period_days(lo.date(), hi.date(), r["timezone"], now)
    vols = (await volumes(conn, [r["sid"]], lo.date(), hi.date())).get(r["sid"])
    means = (await daily_values(conn, [r["sid"]], lo.date(), hi.date(), [r["code"]])).get((r["sid"], r["code"]), {})
    total = 0.0
    missing = 0
    for day in days:
        volume = vols.on(day) if vols is not None else None
        if volume is None or day not in means:
            missing += 1
            continue
        total += means[day] * volume * 1e-3  # mg/L × m³ × 10⁻³ = kg
    return _position(
        r, lo, hi, cumulative_kg=total, substituted_kg=0.0, elapsed=timedelta(days=len(days)), missing=missing,
        unit="days",
    )  # fmt: skip
