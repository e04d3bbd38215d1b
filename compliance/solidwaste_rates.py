"""The parks' solid-waste rates (处置利用率, 综合利用率) over a month, quarter or year, from the monthly reports.

docs/kpis.md#solid-waste-处置利用率-综合利用率 holds the formulas (docs/reference/standards.md B7);
compliance/solidwaste.py checks and keeps the reports they are computed from.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import asyncpg

from compliance.delivery import Period, period_start
from compliance.solidwaste import CATEGORIES, MONTHS, QUANTITIES, Report, SolidWasteError, report_from_row

# Every park selected, with its reports of the period and, per series, the stock it held at the
# period's start (month NULL): one statement, so one snapshot.
SELECT_PERIOD = """
SELECT p.id AS park_id, p.city, r.*
FROM parks p
LEFT JOIN LATERAL (
    SELECT enterprise, category, month, generated_t, utilised_t, disposed_t, stored_t, utilised_from_stock_t,
           disposed_from_stock_t, dumped_t, reported_by, note, NULL::double precision AS opening_t
    FROM solid_waste_reports WHERE park_id = p.id AND month >= $3 AND month < $4
    UNION ALL
    SELECT enterprise, category, NULL, 0, 0, 0, 0, 0, 0, 0, NULL, NULL,
           sum(stored_t - utilised_from_stock_t - disposed_from_stock_t)
    FROM solid_waste_reports WHERE park_id = p.id AND month < $3
    GROUP BY enterprise, category
) r ON true
WHERE ($1::text IS NULL OR p.id = $1) AND ($2::text IS NULL OR p.city = $2)
ORDER BY p.id, r.month NULLS FIRST
"""


@dataclass
class Totals:
    """Summed tonnes of the reports used for a park (or one category) over a period."""

    generated: float = 0.0
    utilised: float = 0.0
    disposed: float = 0.0
    stored: float = 0.0
    utilised_from_stock: float = 0.0
    disposed_from_stock: float = 0.0
    dumped: float = 0.0
    # The part of the draws that came out of stock held before the period (see _prior_draws):
    # what the rates' denominators add.
    utilised_from_prior_stock: float = 0.0
    disposed_from_prior_stock: float = 0.0
    reports: int = 0
    months: set[date] = field(default_factory=set)

    def add(self, r: Report, prior: tuple[float, float]) -> None:
        """Count one report, with the parts of its draws that came from stock held before the period."""
        for q in QUANTITIES:
            setattr(self, q, getattr(self, q) + getattr(r, q))
        self.utilised_from_prior_stock += prior[0]
        self.disposed_from_prior_stock += prior[1]
        self.reports += 1
        self.months.add(r.month)

    def rates(self, what: str) -> tuple[float | None, float | None, dict[str, str]]:
        """(处置利用率, 综合利用率, why each missing one is null)."""
        reasons: dict[str, str] = {}
        if not self.reports:
            why = f"no {what} was reported for the period"
            return None, None, {"disposal_utilisation_rate": why, "comprehensive_utilisation_rate": why}
        whole = self.generated + self.utilised_from_prior_stock + self.disposed_from_prior_stock
        disposal = _ratio(self.utilised + self.disposed, whole)
        if disposal is None:
            reasons["disposal_utilisation_rate"] = "the reports show nothing generated and no earlier stock drawn"
        comprehensive = _ratio(self.utilised, self.generated + self.utilised_from_prior_stock)
        if comprehensive is None:
            reasons["comprehensive_utilisation_rate"] = (
                "the reports show nothing generated and no earlier stock utilised"
            )
        return disposal, comprehensive, reasons

    def inputs(self) -> dict[str, float | int]:
        """The summed tonnes (reported and as the rates use them) and the reports behind them."""
        out: dict[str, float | int] = {
            f"{q}_t": round(getattr(self, q), 6)
            for q in (*QUANTITIES, "utilised_from_prior_stock", "disposed_from_prior_stock")
        }
        out["reports"] = self.reports
        out["months_reported"] = len(self.months)
        return out


@dataclass(frozen=True)
class CategoryRates:
    """The rates of one category (general or hazardous) of a park."""

    disposal_utilisation_rate: float | None
    comprehensive_utilisation_rate: float | None
    reasons: dict[str, str]
    inputs: dict[str, float | int]


@dataclass(frozen=True)
class SolidWasteRate:
    """A park's solid-waste rates over a period, all industrial solid waste (general + hazardous)."""

    park_id: str
    city: str
    period: Period
    period_start: str
    disposal_utilisation_rate: float | None  # 处置利用率, a fraction; None: see reasons
    comprehensive_utilisation_rate: float | None  # 综合利用率, a fraction; None: see reasons
    reasons: dict[str, str]  # why a rate is None, by its name
    hazardous_dumped: bool | None  # None: no hazardous-waste report in the period
    inputs: dict[str, float | int]
    categories: dict[str, CategoryRates]

    def as_json(self) -> dict[str, Any]:
        """The row by name (rates as fractions), its categories' rates included."""
        return asdict(self)


def add_months(first: date, months: int) -> date:
    """The first of the month `months` after `first`."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_expected(start: date, end: date, today: date) -> int:
    """Months of [start, end) that have ended by `today`: a month is reported once it is over."""
    last = min(end, today.replace(day=1))
    return max(0, (last.year - start.year) * 12 + last.month - start.month)


def _prior_draws(reports: list[Report], opening: float) -> dict[date, tuple[float, float]]:
    """Per month, the (utilised, disposed) tonnes drawn from the stock held before the period.

    Stock is drawn oldest first: the first `opening` tonnes drawn in the period are earlier stock,
    the rest is this period's own storage, already counted as generated. Within a month the draws
    split between utilised and disposed in proportion.
    """
    left = max(opening, 0.0)
    out: dict[date, tuple[float, float]] = {}
    for r in sorted(reports, key=lambda x: x.month):
        old = min(r.drawn, left)
        left -= old
        share = r.utilised_from_stock / r.drawn if r.drawn else 0.0
        out[r.month] = (old * share, old - old * share)
    return out


async def solid_waste_rates(
    conn: asyncpg.Connection,
    *,
    period: Period,
    on: date,
    park_id: str | None = None,
    city: str | None = None,
    today: date | None = None,
) -> list[SolidWasteRate]:
    """The rates of every park selected for the month, quarter or year that holds `on`.

    A park's month and category counts its enterprises' reports when it has any, else its
    park-level report: a park-level report beside enterprise reports is taken as their total (or
    a partial one) and is set aside, never added to them (inputs.park_reports_set_aside).
    """
    if period not in MONTHS:
        raise SolidWasteError("bad_period", f"period {period!r}: solid waste is reported by month, quarter or year")
    start = period_start(period, on)
    end = add_months(start, MONTHS[period])
    expected = months_expected(start, end, today or date.today())
    rows = await conn.fetch(SELECT_PERIOD, park_id, city, start, end)
    parks: dict[str, str] = {}
    opening: dict[tuple[str, str | None, str], float] = {}
    series: dict[tuple[str, str | None, str], list[Report]] = defaultdict(list)
    for r in rows:
        parks[r["park_id"]] = r["city"]
        if r["category"] is None:
            continue  # a park without reports
        key = (r["park_id"], r["enterprise"], r["category"])
        if r["month"] is None:
            opening[key] = r["opening_t"]
        else:
            series[key].append(report_from_row(r))
    # A (park, month, category) that has enterprise reports sets its park-level report aside.
    with_enterprises = {(k[0], r.month, k[2]) for k, reps in series.items() if k[1] is not None for r in reps}
    whole = {p: Totals() for p in parks}
    by_category = {p: {c: Totals() for c in CATEGORIES} for p in parks}
    set_aside: Counter[str] = Counter()
    for key, reports in series.items():
        prior = _prior_draws(reports, opening.get(key, 0.0))
        for rep in reports:
            if rep.enterprise is None and (rep.park_id, rep.month, rep.category) in with_enterprises:
                set_aside[rep.park_id] += 1
                continue
            whole[rep.park_id].add(rep, prior[rep.month])
            by_category[rep.park_id][rep.category].add(rep, prior[rep.month])
    out = []
    for park, city_name in parks.items():
        disposal, comprehensive, reasons = whole[park].rates("solid waste")
        hazardous = by_category[park]["hazardous"]
        inputs = whole[park].inputs()
        inputs.update(months_expected=expected, park_reports_set_aside=set_aside[park])
        categories = {}
        for name, t in by_category[park].items():
            c_disposal, c_comprehensive, c_reasons = t.rates(f"{name} solid waste")
            categories[name] = CategoryRates(c_disposal, c_comprehensive, c_reasons, t.inputs())
        out.append(
            SolidWasteRate(
                park_id=park,
                city=city_name,
                period=period,
                period_start=start.isoformat(),
                disposal_utilisation_rate=disposal,
                comprehensive_utilisation_rate=comprehensive,
                reasons=reasons,
                hazardous_dumped=hazardous.dumped > 0 if hazardous.reports else None,
                inputs=inputs,
                categories=categories,
            )
        )
    return out


def _ratio(part: float, whole: float) -> float | None:
    # The identity's tolerance can carry a rate a hair above 1; more than all is all.
    return round(min(part / whole, 1.0), 6) if whole > 0 else None
