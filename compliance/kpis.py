"""Every KPI of a station, park, city or the province over a period, in one row each, with the inputs behind them.

The figures come from their own modules (docs/kpis.md): data delivery (delivery.py), compliance
rates (conformity.py), treatment (treatment.py); this module lines them up by whom they are
about, and sets a park's figures against its targets (targets.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import asyncpg

from compliance.conformity import conformity
from compliance.delivery import PERIOD_INTERVAL, Level, Period, Progress, delivery, period_end, period_start
from compliance.solidwaste_rates import solid_waste_rates
from compliance.targets import park_targets, shortfalls
from compliance.treatment import treatment

PARK_ATTRS = "SELECT id, attrs FROM parks WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR city = $2)"


async def kpis(
    conn: asyncpg.Connection,
    *,
    period: Period,
    on: date,
    level: Level = "park",
    park_id: str | None = None,
    city: str | None = None,
    station_id: str | None = None,
    now: datetime,
    targets: Mapping[str, float] | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """The KPI rows selected; `targets` (the province's) adds each park's targets and shortfalls."""
    step = progress or (lambda _stage, _done, _total: None)
    step("data delivery", 0, 4)
    start = period_start(period, on)
    end = period_end(period, start)
    rows: dict[str, dict[str, Any]] = {}
    for d in await delivery(conn, period=period, on=on, level=level, park_id=park_id, city=city, station_id=station_id):
        rows[d.id] = {
            "level": level,
            "id": d.id,
            "park_id": d.park_id,
            "city": d.city,
            "period": period,
            "period_start": start.isoformat(),
            **d.figures(),
            "inputs": {"delivery": d.inputs()},
            "reasons": {},
        }
    step("compliance rates", 1, 4)
    rates = await conformity(
        conn,
        start=start,
        interval=PERIOD_INTERVAL[period],
        level=level,
        park_id=park_id,
        city=city,
        station_id=station_id,
    )
    for key, c in rates.items():
        if key in rows:
            figures = c.as_json()
            rows[key]["inputs"].update(figures.pop("inputs"))
            rows[key].update(figures)
    step("treatment", 2, 4)
    if level != "station" and station_id is None:
        for t in await treatment(conn, start=start, end=end, level=level, park_id=park_id, city=city, now=now):
            if t.id in rows:
                figures = t.as_json()
                rows[t.id]["inputs"]["treatment"] = figures.pop("inputs")
                if reasons := figures.pop("reasons"):
                    rows[t.id]["reasons"]["treatment_rate"] = reasons
                rows[t.id].update(figures)
    step("solid waste", 3, 4)
    if level != "station" and station_id is None and period != "day":
        await _add_solid_waste(conn, rows, period=period, on=on, level=level, park_id=park_id, city=city)
    if level == "park" and targets is not None:
        attrs = {r["id"]: jsonb(r["attrs"]) for r in await conn.fetch(PARK_ATTRS, park_id, city)}
        for row in rows.values():
            own = park_targets(targets, attrs.get(row["id"]))
            row["targets"] = own
            row["shortfalls"] = shortfalls(row, own)
    step("KPIs", 4, 4)
    return list(rows.values())


async def _add_solid_waste(
    conn: asyncpg.Connection,
    rows: dict[str, dict[str, Any]],
    *,
    period: Period,
    on: date,
    level: Level,
    park_id: str | None,
    city: str | None,
) -> None:
    """Solid waste is reported by month: a park's rates as solidwaste.py gives them, a city's from its parks' tonnes."""
    sums: dict[str, dict[str, float]] = {}
    for w in await solid_waste_rates(conn, period=period, on=on, park_id=park_id, city=city):
        key = {"park": w.park_id, "city": w.city, "province": "province"}[level]
        if key not in rows:
            continue
        if level == "park":
            rows[key]["solid_waste_rate"] = w.disposal_utilisation_rate
            rows[key]["solid_waste_utilisation_rate"] = w.comprehensive_utilisation_rate
            rows[key]["hazardous_waste_dumped"] = w.hazardous_dumped
            rows[key]["inputs"]["solid_waste"] = w.inputs
            if "disposal_utilisation_rate" in w.reasons:
                rows[key]["reasons"]["solid_waste_rate"] = [w.reasons["disposal_utilisation_rate"]]
            continue
        total = sums.setdefault(key, {"part": 0.0, "whole": 0.0, "parks": 0.0})
        total["part"] += float(w.inputs["utilised_t"]) + float(w.inputs["disposed_t"])
        total["whole"] += (
            float(w.inputs["generated_t"])
            + float(w.inputs["utilised_from_prior_stock_t"])
            + float(w.inputs["disposed_from_prior_stock_t"])
        )
        total["parks"] += 1 if w.inputs["reports"] else 0
    for key, total in sums.items():
        rate = round(min(1.0, total["part"] / total["whole"]), 6) if total["whole"] > 0 else None
        rows[key]["solid_waste_rate"] = rate
        rows[key]["inputs"]["solid_waste"] = {
            "utilised_and_disposed_t": round(total["part"], 6),
            "generated_and_prior_stock_t": round(total["whole"], 6),
            "parks_reporting": int(total["parks"]),
        }


def jsonb(value: Any) -> Any:
    """A jsonb column as asyncpg hands it over (text) → Python."""
    return json.loads(value) if isinstance(value, str) else value
