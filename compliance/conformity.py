"""Compliance rates (达标率): the share of valid judged windows that are compliant, by station, park, city, province.

docs/kpis.md#compliance-rate: no national formula was found (docs/reference/standards.md B7,
[M]); parkwatch counts the closed windows a station is judged by — a water outlet's days, a
stack's hours, an ambient station's 24 h means — whose verdict is compliant, over those judged
compliant or in exceedance. Windows without enough valid data are not valid values and are
counted apart. A park's `treated_water_compliance_rate` (the plan's "treated water 100 %
compliant") counts its plants' outlets alone; its `compliance_rate` every discharge (plant
outlets, enterprise outlets and stacks); ambient stations judge the air, not a discharge, and
have a rate of their own only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

# The window each kind of station is judged by for the rate (docs/compliance.md): water by the
# valid daily average, stacks by the valid hourly average, ambient air by its daily values.
RATE_WINDOW = {"wastewater_outlet": "day", "stack": "hour", "ambient_air": "24h"}

STATION_WINDOWS = """
SELECT s.id AS station_id, s.park_id, p.city, s.kind,
       (s.kind = 'wastewater_outlet' AND s.attrs->>'discharges_to' IS NULL) AS plant_outlet,
       count(*) FILTER (WHERE v.verdict = 'compliant') AS compliant,
       count(*) FILTER (WHERE v.verdict = 'exceedance') AS exceedance,
       count(*) FILTER (WHERE v.verdict = 'insufficient_data') AS insufficient
FROM stations s
JOIN parks p ON p.id = s.park_id
JOIN verdicts v ON v.sid = s.sid AND v.closed
     AND v.window_kind = ($6::jsonb->>s.kind)
     AND v.window_start >= ($1::date)::timestamp AT TIME ZONE s.timezone
     AND v.window_start < (($1::date) + $2::text::interval)::timestamp AT TIME ZONE s.timezone
WHERE ($3::text IS NULL OR s.park_id = $3) AND ($4::text IS NULL OR p.city = $4)
  AND ($5::text IS NULL OR s.id = $5)
GROUP BY s.sid, p.city
"""


@dataclass
class Windows:
    """Judged windows counted: compliant, in exceedance, and without enough valid data."""

    compliant: int = 0
    exceedance: int = 0
    insufficient: int = 0
    stations: int = 0

    def add(self, r: asyncpg.Record) -> None:
        """Count one station's windows in."""
        self.compliant += r["compliant"]
        self.exceedance += r["exceedance"]
        self.insufficient += r["insufficient"]
        self.stations += 1

    @property
    def rate(self) -> float | None:
        """Compliant / valid judged windows; None when no window was valid."""
        valid = self.compliant + self.exceedance
        return round(self.compliant / valid, 6) if valid else None

    def as_json(self) -> dict[str, int]:
        """The counts behind the rate."""
        return {
            "windows_compliant": self.compliant,
            "windows_exceedance": self.exceedance,
            "windows_insufficient_data": self.insufficient,
            "stations": self.stations,
        }


@dataclass
class Conformity:
    """One row's compliance rates: every discharge, and the plants' outlets alone."""

    level: str
    id: str
    all: Windows
    treated: Windows

    def as_json(self) -> dict[str, Any]:
        """The rates by name and their counts."""
        out: dict[str, Any] = {
            "compliance_rate": self.all.rate,
            "inputs": {"compliance": self.all.as_json()},
        }
        if self.level != "station":
            out["treated_water_compliance_rate"] = self.treated.rate
            out["inputs"]["treated_water_compliance"] = self.treated.as_json()
        return out


async def conformity(
    conn: asyncpg.Connection,
    *,
    start: date,
    interval: str,
    level: str,
    park_id: str | None = None,
    city: str | None = None,
    station_id: str | None = None,
) -> dict[str, Conformity]:
    """Compliance rates by station, park, city or province id, over the period [start, start + interval)."""
    rows = await conn.fetch(STATION_WINDOWS, start, interval, park_id, city, station_id, json.dumps(RATE_WINDOW))
    out: dict[str, Conformity] = {}
    for r in rows:
        key = {"station": r["station_id"], "park": r["park_id"], "city": r["city"], "province": "province"}[level]
        row = out.get(key)
        if row is None:
            row = out[key] = Conformity(level=level, id=key, all=Windows(), treated=Windows())
        if level == "station" or r["kind"] != "ambient_air":
            row.all.add(r)
        if r["plant_outlet"]:
            row.treated.add(r)
    return out
