"""Treatment figures of the parks' wastewater plants: treatment rate, water balance and removal efficiency.

docs/kpis.md#treatment holds the formulas and the choices behind them:

- a station's volume on a local day is its mean valid flow (w00000, L/s) × the day's length,
  when at least WATER_DAY_MIN_HOURS hours of the day have a valid flow (a metered day); a day
  without one takes the volume reported through the API for it (spread evenly over the days of
  the report);
- the treatment rate (污水处理率) of a park = what its plants' inlet meters measured / what the
  enterprise outlets that name those plants (`discharges_to`) discharged, over the days on
  which every one of those stations has a volume; with fewer such days than MIN_COMPARED_SHARE
  of the period the rate is null and says which stations lack volumes;
- the water balance of a plant = its outlets' volume / its inlet's volume, on the same terms;
- the removal efficiency of a pollutant = (C_in − C_out) / C_in, each side the flow-weighted
  mean over the days both have a valid daily value (HJ 356-2019's flow weighting).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from compliance.windows import WATER_DAY_MIN_HOURS

# L/s over one hour is 3.6 m³ (3,600 s / 1,000 L).
M3_PER_LS_HOUR = 3.6
WATER_FLOW = "w00000"
# A rate over a month that compares only a few days would be a guess: at least three days in
# four must have a volume on every side (a choice; docs/kpis.md#treatment).
MIN_COMPARED_SHARE = 0.75
# The pollutants a plant removes, whose removal efficiency is reported (GB 18918 Table 1).
REMOVED = ("w01018", "w21003", "w21011", "w21001")

# The wastewater stations and how they connect: plants' inlets, their outlets (`inlet`), and the
# enterprise outlets that discharge to them (`discharges_to`).
TOPOLOGY = """
SELECT s.sid, s.id, s.park_id, p.city, s.kind, s.timezone,
       s.attrs->>'discharges_to' AS discharges_to, s.attrs->>'inlet' AS inlet
FROM stations s JOIN parks p ON p.id = s.park_id
WHERE s.kind IN ('wastewater_inlet', 'wastewater_outlet')
"""
# Daily flow and the daily means of the removed pollutants, for these stations and days.
DAY_VALUES = """
SELECT d.sid, d.day, p.code, coalesce(d.avg_flow_weighted, d.avg) AS value, d.hours_valid, d.hours_expected
FROM rollup_day d JOIN parameters p ON p.pid = d.pid
WHERE d.sid = any($1::integer[]) AND d.day >= $2 AND d.day < $3 AND p.code = any($4::text[])
  AND d.avg IS NOT NULL
"""
REPORTED = """
SELECT sid, first_day, last_day, volume_m3 FROM reported_volumes
WHERE sid = any($1::integer[]) AND last_day >= $2 AND first_day < $3
"""


@dataclass(frozen=True, slots=True)
class WaterStation:
    """A wastewater station and what it connects to."""

    sid: int
    id: str
    park_id: str
    city: str
    kind: str
    timezone: str
    discharges_to: str | None
    inlet: str | None


@dataclass
class Volumes:
    """A station's volume per local day, and where each came from."""

    metered: dict[date, float] = field(default_factory=dict)
    reported: dict[date, float] = field(default_factory=dict)

    def on(self, day: date) -> float | None:
        """The day's volume in m³: metered if the meter covered the day, else reported, else None."""
        value = self.metered.get(day)
        return value if value is not None else self.reported.get(day)


@dataclass
class Plant:
    """One wastewater plant: its inlet station, its outlets, and the enterprises discharging to it."""

    inlet: WaterStation
    outlets: list[WaterStation] = field(default_factory=list)
    enterprises: list[WaterStation] = field(default_factory=list)


@dataclass
class PlantFigures:
    """One plant's volumes and pollutant loads over the complete days of a period."""

    inlet: str
    park_id: str
    city: str
    days: int
    outlets: list[str]
    enterprises: list[str]
    treated_m3: float = 0.0  # inlet volume over the compared days
    discharged_m3: float = 0.0  # enterprise outlets' volume over the same days
    compared_days: int = 0
    inlet_m3: float = 0.0  # over the days inlet and outlets all have volumes
    outlet_m3: float = 0.0
    balance_days: int = 0
    reported_station_days: int = 0  # station-days whose volume was reported, not metered
    missing: list[str] = field(default_factory=list)  # stations without a volume on some day
    # per pollutant: (Σ C_in·w, Σ w_in, Σ C_out·w, Σ w_out) over the days both sides have a valid mean
    sums: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        """Why this plant's treatment rate cannot be given, or None."""
        if not self.enterprises:
            return f"no_discharges_declared: no enterprise outlet names {self.inlet} in discharges_to"
        if not self.days:
            return "no_complete_day: the period has no complete local day yet"
        if self.compared_days < MIN_COMPARED_SHARE * self.days or not self.discharged_m3:
            missing = f" (missing: {', '.join(self.missing[:20])})" if self.missing else ""
            return (
                f"insufficient_metering: {self.compared_days} of {self.days} days of {self.inlet} have a volume "
                f"for the inlet and every enterprise{missing}"
            )
        return None

    def as_json(self) -> dict[str, Any]:
        """The plant's figures and inputs."""
        return {
            "inlet": self.inlet,
            "outlets": self.outlets,
            "enterprises": self.enterprises,
            "treatment_rate": None if self.reason else _capped(self.treated_m3, self.discharged_m3),
            "water_balance": _ratio(self.outlet_m3, self.inlet_m3),
            "removal_efficiency": removal(self.sums),
            "treated_m3": round(self.treated_m3, 3),
            "discharged_m3": round(self.discharged_m3, 3),
            "compared_days": self.compared_days,
            "inlet_m3": round(self.inlet_m3, 3),
            "outlet_m3": round(self.outlet_m3, 3),
            "balance_days": self.balance_days,
            "reported_station_days": self.reported_station_days,
            "reason": self.reason,
        }


@dataclass
class Treatment:
    """A park's, a city's or the province's treatment figures over a period: its plants added up.

    A park's rate needs every plant of it to compare; a city or the province adds the parks whose
    rate stands and lists the others (docs/kpis.md#treatment).
    """

    level: str
    id: str
    park_id: str | None
    city: str | None
    plants: list[PlantFigures] = field(default_factory=list)

    def _counted(self) -> tuple[list[PlantFigures], list[str]]:
        by_park: dict[str, list[PlantFigures]] = defaultdict(list)
        for p in self.plants:
            by_park[p.park_id].append(p)
        counted: list[PlantFigures] = []
        reasons: list[str] = []
        for park, plants in sorted(by_park.items()):
            bad = [p.reason for p in plants if p.reason]
            if bad:
                reasons += [r if self.level == "park" else f"{park}: {r}" for r in bad if r]
            else:
                counted += plants
        return counted, reasons

    def as_json(self) -> dict[str, Any]:
        """The figures by name and the inputs behind them."""
        counted, reasons = self._counted()
        treated = sum(p.treated_m3 for p in counted)
        discharged = sum(p.discharged_m3 for p in counted)
        sums: dict[str, tuple[float, float, float, float]] = {}
        for p in self.plants:
            for code, four in p.sums.items():
                old = sums.get(code, (0.0, 0.0, 0.0, 0.0))
                sums[code] = (old[0] + four[0], old[1] + four[1], old[2] + four[2], old[3] + four[3])
        inlet_m3 = sum(p.inlet_m3 for p in self.plants)
        outlet_m3 = sum(p.outlet_m3 for p in self.plants)
        return {
            "treatment_rate": _capped(treated, discharged) if counted else None,
            "water_balance": _ratio(outlet_m3, inlet_m3),
            "removal_efficiency": removal(sums),
            "inputs": {
                "treated_m3": round(treated, 3),
                "discharged_m3": round(discharged, 3),
                "ratio_uncapped": _ratio(treated, discharged),
                "inlet_m3": round(inlet_m3, 3),
                "outlet_m3": round(outlet_m3, 3),
                "plants": [p.as_json() for p in self.plants] if self.level == "park" else len(self.plants),
                "plants_counted": len(counted),
            },
            "reasons": reasons,
        }


def removal(sums: dict[str, tuple[float, float, float, float]]) -> dict[str, float | None]:
    """(C_in − C_out) / C_in per pollutant from the weighted sums; None where C_in is not positive."""
    out: dict[str, float | None] = {}
    for code in REMOVED:
        if code not in sums or not sums[code][1] or not sums[code][3]:
            continue
        c_in = sums[code][0] / sums[code][1]
        c_out = sums[code][2] / sums[code][3]
        out[code] = round((c_in - c_out) / c_in, 6) if c_in > 0 else None
    return out


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def _capped(treated: float, discharged: float) -> float | None:
    # An inlet takes domestic sewage, rain and unmetered enterprises too: the rate tops out at 1
    # and ratio_uncapped shows the measured ratio.
    return round(min(1.0, treated / discharged), 6) if discharged else None


async def water_stations(conn: asyncpg.Connection) -> list[WaterStation]:
    """Every wastewater station with its connections."""
    return [WaterStation(**dict(r)) for r in await conn.fetch(TOPOLOGY)]


def plants_of(stations: Iterable[WaterStation]) -> dict[str, Plant]:
    """The plants by inlet station id, each with its outlets and its enterprises."""
    stations = list(stations)
    plants = {s.id: Plant(inlet=s) for s in stations if s.kind == "wastewater_inlet"}
    for s in stations:
        if s.discharges_to in plants:
            plants[s.discharges_to].enterprises.append(s)
        elif s.discharges_to is None and s.inlet in plants:
            plants[s.inlet].outlets.append(s)
    return plants


def period_days(start: date, end: date, zone: str, now: datetime) -> list[date]:
    """The complete local days of [start, end): a period under way stops at yesterday."""
    today = now.astimezone(ZoneInfo(zone)).date()
    last = min(end, today)
    return [start + timedelta(days=k) for k in range((last - start).days)]


async def volumes(conn: asyncpg.Connection, sids: list[int], lo: date, hi: date) -> dict[int, Volumes]:
    """Each station's metered and reported volume per day of [lo, hi)."""
    out: dict[int, Volumes] = defaultdict(Volumes)
    for r in await conn.fetch(DAY_VALUES, sids, lo, hi, [WATER_FLOW]):
        if r["hours_valid"] >= WATER_DAY_MIN_HOURS:
            out[r["sid"]].metered[r["day"]] = r["value"] * M3_PER_LS_HOUR * r["hours_expected"]
    for r in await conn.fetch(REPORTED, sids, lo, hi):
        span = (r["last_day"] - r["first_day"]).days + 1
        for k in range(span):
            day = r["first_day"] + timedelta(days=k)
            if lo <= day < hi:
                out[r["sid"]].reported[day] = r["volume_m3"] / span
    return out


async def daily_values(
    conn: asyncpg.Connection, sids: list[int], lo: date, hi: date, codes: list[str]
) -> dict[tuple[int, str], dict[date, float]]:
    """Valid daily means (flow-weighted where flow is reported) of these codes, (sid, code) → day → value."""
    out: dict[tuple[int, str], dict[date, float]] = defaultdict(dict)
    for r in await conn.fetch(DAY_VALUES, sids, lo, hi, codes):
        if r["hours_valid"] >= WATER_DAY_MIN_HOURS:
            out[(r["sid"], r["code"])][r["day"]] = r["value"]
    return out


async def treatment(
    conn: asyncpg.Connection,
    *,
    start: date,
    end: date,
    level: str = "park",
    park_id: str | None = None,
    city: str | None = None,
    now: datetime,
) -> list[Treatment]:
    """The treatment figures of every park (or city, or the province) with a plant, over [start, end)."""
    plants = [
        p
        for p in plants_of(await water_stations(conn)).values()
        if (park_id is None or p.inlet.park_id == park_id) and (city is None or p.inlet.city == city)
    ]
    sids = sorted({s.sid for p in plants for s in (p.inlet, *p.outlets, *p.enterprises)})
    vols = await volumes(conn, sids, start, end)
    means = await daily_values(conn, sids, start, end, list(REMOVED))
    rows: dict[str, Treatment] = {}
    for plant in sorted(plants, key=lambda p: p.inlet.id):
        key = {"park": plant.inlet.park_id, "city": plant.inlet.city, "province": "province"}[level]
        row = rows.get(key)
        if row is None:
            row = rows[key] = Treatment(
                level=level,
                id=key,
                park_id=plant.inlet.park_id if level == "park" else None,
                city=plant.inlet.city if level != "province" else None,
            )
        days = period_days(start, end, plant.inlet.timezone, now)
        row.plants.append(plant_figures(plant, days, vols, means))
    return list(rows.values())


def plant_figures(
    plant: Plant,
    days: list[date],
    vols: dict[int, Volumes],
    means: dict[tuple[int, str], dict[date, float]],
) -> PlantFigures:
    """A plant's volumes compared day by day, and its pollutants' weighted sums."""
    none = Volumes()
    inlet = vols.get(plant.inlet.sid, none)
    f = PlantFigures(
        inlet=plant.inlet.id,
        park_id=plant.inlet.park_id,
        city=plant.inlet.city,
        days=len(days),
        outlets=[o.id for o in plant.outlets],
        enterprises=[e.id for e in plant.enterprises],
    )
    missing: set[str] = set()
    for day in days:
        v_in = inlet.on(day)
        sides = [vols.get(e.sid, none).on(day) for e in plant.enterprises]
        outs = [vols.get(o.sid, none).on(day) for o in plant.outlets]
        for s, v in [(plant.inlet, v_in), *zip(plant.enterprises, sides, strict=True)]:
            if v is None:
                missing.add(s.id)
            elif day not in vols.get(s.sid, none).metered:
                f.reported_station_days += 1
        if v_in is not None and sides and all(v is not None for v in sides):
            f.compared_days += 1
            f.treated_m3 += v_in
            f.discharged_m3 += sum(v for v in sides if v is not None)
        if v_in is not None and outs and all(v is not None for v in outs):
            f.balance_days += 1
            f.inlet_m3 += v_in
            f.outlet_m3 += sum(v for v in outs if v is not None)
    f.missing = sorted(missing)
    for code in REMOVED:
        c_in = means.get((plant.inlet.sid, code), {})
        for o in plant.outlets:
            c_out = means.get((o.sid, code), {})
            both = sorted(day for day in c_in.keys() & c_out.keys() if day in set(days))
            pairs = [(inlet.on(day), vols.get(o.sid, none).on(day)) for day in both]
            # Flow-weighted where every day has both volumes; otherwise day by day alike.
            weighted = all(a is not None and b is not None for a, b in pairs)
            old = f.sums.get(code, (0.0, 0.0, 0.0, 0.0))
            s_in, w_in, s_out, w_out = old
            for day, (a, b) in zip(both, pairs, strict=True):
                wa = a if weighted and a is not None else 1.0
                wb = b if weighted and b is not None else 1.0
                s_in, w_in, s_out, w_out = s_in + c_in[day] * wa, w_in + wa, s_out + c_out[day] * wb, w_out + wb
            if both:
                f.sums[code] = (s_in, w_in, s_out, w_out)
    return f


class VolumeReportError(Exception):
    """A reported volume refused: `code` says why, machine-readable."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


# The station's row is locked so that two reports cannot both pass the overlap check.
LOCK_WATER_STATION = "SELECT sid, kind FROM stations WHERE id = $1 FOR UPDATE"
OVERLAPPING = """
SELECT first_day, last_day FROM reported_volumes
WHERE sid = $1 AND first_day <> $2 AND first_day <= $3 AND last_day >= $2
"""
UPSERT_VOLUME = """
INSERT INTO reported_volumes (sid, first_day, last_day, volume_m3, reported_by, note)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (sid, first_day) DO UPDATE SET
    last_day = EXCLUDED.last_day, volume_m3 = EXCLUDED.volume_m3, reported_by = EXCLUDED.reported_by,
    note = EXCLUDED.note, reported_at = clock_timestamp()
RETURNING first_day, last_day, volume_m3, reported_by, reported_at, note
"""
LIST_VOLUMES = """
SELECT s.id AS station_id, v.first_day, v.last_day, v.volume_m3, v.reported_by, v.reported_at, v.note
FROM reported_volumes v JOIN stations s USING (sid)
WHERE ($1::text IS NULL OR s.id = $1) AND ($2::text IS NULL OR s.park_id = $2)
  AND (s.id, v.first_day) > ($3, $4)
ORDER BY s.id, v.first_day
LIMIT $5
"""


async def report_volume(
    conn: asyncpg.Connection,
    *,
    station_id: str,
    first_day: date,
    last_day: date,
    volume_m3: float,
    reported_by: str,
    note: str | None,
) -> asyncpg.Record:
    """Store (or replace, for the same first day) a station's volume over [first_day, last_day]."""
    async with conn.transaction():
        station = await conn.fetchrow(LOCK_WATER_STATION, station_id)
        if station is None:
            raise VolumeReportError("unknown_station", f"not registered: {station_id}")
        if station["kind"] not in ("wastewater_inlet", "wastewater_outlet"):
            raise VolumeReportError("not_a_water_station", f"{station_id} is a {station['kind']} station")
        if last_day < first_day or (last_day - first_day).days >= 366:
            raise VolumeReportError("bad_span", "last_day must fall on or after first_day, within a year")
        clash = await conn.fetchrow(OVERLAPPING, station["sid"], first_day, last_day)
        if clash is not None:
            raise VolumeReportError(
                "overlapping_report",
                f"{station_id} has a report for {clash['first_day']}..{clash['last_day']}, which overlaps",
            )
        row = await conn.fetchrow(UPSERT_VOLUME, station["sid"], first_day, last_day, volume_m3, reported_by, note)
        if row is None:  # an upsert returns its row; this would be a bug
            raise RuntimeError("reported_volumes upsert returned no row")
        return row
