"""The park assessment: a scorecard per park over a month, quarter or year, a ranking, the bottom three's yellow cards.

docs/kpis.md#assessment holds the rules. In short: each indicator scores 0-100 against its target
(higher-is-better figures: 100 × value / target, at most 100; energy intensity, lower being
better: 100 × the best park's value / this park's); a park's score is the weighted mean of the
scores it has, when those carry at least MIN_WEIGHT_SHARE of the weight (else it is listed as
insufficient_data, not ranked); ties are broken by TIE_BREAK; the three lowest-ranked parks of
the province get a yellow card, with the indicators that cost them most.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import asyncpg

from compliance.delivery import Progress, delivery, period_end, period_start
from compliance.kpis import kpis
from compliance.loads import cap_positions

AssessedPeriod = Literal["month", "quarter", "year"]

# Default weights (points out of 100): the plan's targets first. A choice, configurable through
# PARKWATCH_ASSESSMENT_WEIGHTS; no provincial weighting was found (docs/kpis.md#assessment).
DEFAULT_WEIGHTS: dict[str, float] = {
    "monitoring_coverage": 15,
    "treatment_rate": 20,
    "treated_water_compliance_rate": 20,
    "compliance_rate": 10,
    "within_caps": 10,
    "solid_waste_rate": 10,
    "effective_transmission_rate": 5,
    "facility_coverage": 5,
    "energy_intensity": 5,
}
# Indicators no sensor measures: reported through the API per park and period.
REPORTED = {
    "facility_coverage": "share of enterprises whose environmental facilities are built and running (fraction)",
    "energy_intensity": "energy use per 10,000 yuan of industrial value added (tce / 10⁴ yuan); lower is better",
}
LOWER_IS_BETTER = frozenset({"energy_intensity"})
# A park is ranked only on indicators that carry at least this share of the weight: a score
# from one or two figures would rank it on what happened to be measured (a choice).
MIN_WEIGHT_SHARE = 0.7
YELLOW_CARDS = 3
# Equal scores are ordered by these figures, higher first, then by park id (which says nothing
# of merit: such parks are marked tied).
TIE_BREAK = ("treated_water_compliance_rate", "treatment_rate", "monitoring_coverage", "effective_transmission_rate")

PARKS = """
SELECT id, name, city FROM parks WHERE ($1::text IS NULL OR city = $1) ORDER BY id
"""
# A plant's online monitoring: its inlet and outlet stations, whose effective transmission
# rate says whether they are installed and operating.
PLANT_STATIONS = """
SELECT s.id, s.park_id FROM stations s
WHERE s.kind = 'wastewater_inlet'
   OR (s.kind = 'wastewater_outlet' AND s.attrs->>'discharges_to' IS NULL AND s.attrs ? 'inlet')
"""
INPUTS = """
SELECT park_id, indicator, value, reported_by, reported_at, note FROM assessment_inputs
WHERE period = $1 AND period_start = $2
"""
SAVE_INPUT = """
WITH old AS (
    INSERT INTO assessment_input_history (park_id, period, period_start, indicator, value, reported_by, reported_at,
                                          note)
    SELECT park_id, period, period_start, indicator, value, reported_by, reported_at, note FROM assessment_inputs
    WHERE park_id = $1 AND period = $2 AND period_start = $3 AND indicator = $4
)
INSERT INTO assessment_inputs (park_id, period, period_start, indicator, value, reported_by, note)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (park_id, period, period_start, indicator) DO UPDATE SET
    value = EXCLUDED.value, reported_by = EXCLUDED.reported_by, note = EXCLUDED.note, reported_at = clock_timestamp()
RETURNING park_id, period, period_start, indicator, value, reported_by, reported_at, note
"""
PARK_EXISTS = "SELECT 1 FROM parks WHERE id = $1"


class AssessmentInputError(Exception):
    """A reported indicator refused: `code` says why."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


@dataclass
class Scorecard:
    """One park's indicators, scores and place."""

    park_id: str
    park_name: str
    city: str
    indicators: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    score: float | None = None
    rank: int | None = None
    city_rank: int | None = None
    tied: bool = False
    yellow_card: bool = False
    card_reasons: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """ranked, or insufficient_data when too little of the weight could be scored."""
        return "ranked" if self.score is not None else "insufficient_data"

    def key(self) -> tuple[Any, ...]:
        """Sort key: score, then TIE_BREAK's figures, higher first; then park id."""
        figures = [self.indicators.get(n, {}).get("value") for n in TIE_BREAK]
        return (-(self.score or 0.0), *(-(v if v is not None else -1.0) for v in figures), self.park_id)

    def as_json(self) -> dict[str, Any]:
        """The scorecard by name."""
        return {
            "park_id": self.park_id,
            "park_name": self.park_name,
            "city": self.city,
            "status": self.status,
            "score": self.score,
            "rank": self.rank,
            "city_rank": self.city_rank,
            "tied": self.tied,
            "yellow_card": self.yellow_card,
            "card_reasons": self.card_reasons,
            "indicators": self.indicators,
            "missing": self.missing,
        }


@dataclass
class Assessment:
    """Every park's scorecard over a period, ranked."""

    period: AssessedPeriod
    period_start: date
    weights: dict[str, float]
    cards: list[Scorecard]

    def as_json(self) -> dict[str, Any]:
        """The assessment: its rules and the parks, ranked first, then those not ranked."""
        return {
            "period": self.period,
            "period_start": self.period_start.isoformat(),
            "weights": self.weights,
            "min_weight_share": MIN_WEIGHT_SHARE,
            "tie_break": [*TIE_BREAK, "park_id"],
            "results": [c.as_json() for c in self.cards],
        }


def weights_from(overrides: Mapping[str, float] | None) -> dict[str, float]:
    """The default weights with the configured ones over them; an unknown indicator is an error."""
    unknown = sorted(set(overrides or {}) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown assessment indicator(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_WEIGHTS)}")
    merged = {**DEFAULT_WEIGHTS, **(overrides or {})}
    if any(w < 0 for w in merged.values()) or not sum(merged.values()):
        raise ValueError("assessment weights must be non-negative and not all zero")
    return merged


async def assessment(
    conn: asyncpg.Connection,
    *,
    period: AssessedPeriod,
    on: date,
    now: datetime,
    targets: Mapping[str, float],
    weights: Mapping[str, float] | None = None,
    city: str | None = None,
    progress: Progress | None = None,
) -> Assessment:
    """Score, rank and card every park (of a city, or of the province) over the period that holds `on`."""
    weight = weights_from(weights)
    start = period_start(period, on)
    rows = {r["id"]: r for r in await kpis(conn, period=period, on=on, level="park", city=city, now=now,
                                           targets=targets, progress=progress)}  # fmt: skip
    coverage = await _coverage(conn, period, on, targets)
    at = min(now, _end_instant(period, start, now))
    caps = _caps(await cap_positions(conn, year=start.year, now=at, progress=progress))
    reported = {(r["park_id"], r["indicator"]): r for r in await conn.fetch(INPUTS, period, start)}
    cards = []
    for park in await conn.fetch(PARKS, city):
        row = rows.get(park["id"], {})
        own = row.get("targets") or dict(targets)
        card = Scorecard(park_id=park["id"], park_name=park["name"], city=park["city"])
        values: dict[str, tuple[float | None, float | None, str]] = {
            "monitoring_coverage": (coverage.get(park["id"]), 1.0, "measured"),
            "treatment_rate": (row.get("treatment_rate"), own.get("treatment_rate"), "measured"),
            "treated_water_compliance_rate": (
                row.get("treated_water_compliance_rate"), own.get("treated_water_compliance_rate"), "measured",
            ),
            "compliance_rate": (row.get("compliance_rate"), 1.0, "measured"),
            "within_caps": (caps.get(park["id"]), 1.0, "measured"),
            "solid_waste_rate": (row.get("solid_waste_rate"), own.get("solid_waste_rate"), "measured"),
            "effective_transmission_rate": (
                row.get("effective_transmission_rate"), own.get("effective_transmission_rate"), "measured",
            ),
        }  # fmt: skip
        for name in REPORTED:
            got = reported.get((park["id"], name))
            values[name] = (got["value"] if got else None, None, "reported")
        card = build_card(card, values, weight)
        for name in REPORTED:
            if got := reported.get((park["id"], name)):
                card.indicators[name].update(reported_by=got["reported_by"], reported_at=got["reported_at"])
        cards.append(card)
    score_and_rank(cards, weight)
    return Assessment(period=period, period_start=start, weights=weight, cards=cards)


def build_card(
    card: Scorecard, values: Mapping[str, tuple[float | None, float | None, str]], weight: Mapping[str, float]
) -> Scorecard:
    """The card's indicators from (value, target, source) by name; the missing ones listed."""
    for name, (value, target, source) in values.items():
        card.indicators[name] = {"value": value, "target": target, "weight": weight[name], "source": source,
                                 "score": None}  # fmt: skip
        if name == "within_caps" and value is None:
            card.indicators[name]["source"] = "not_applicable"  # no capped station in the park
        elif value is None:
            card.missing.append(name)
    return card


def score_and_rank(cards: list[Scorecard], weight: Mapping[str, float]) -> None:
    """Score each card, rank the scored ones, card the bottom three; `cards` ends sorted by rank."""
    _score(cards, weight)
    _rank(cards)


def _score(cards: list[Scorecard], weight: Mapping[str, float]) -> None:
    best = {
        name: min((c.indicators[name]["value"] for c in cards if c.indicators[name]["value"]), default=None)
        for name in LOWER_IS_BETTER
    }
    for card in cards:
        total = sum(weight[n] for n, i in card.indicators.items() if i["source"] != "not_applicable")
        points = weighed = 0.0
        for name, ind in card.indicators.items():
            value = ind["value"]
            if value is None:
                continue
            if name in LOWER_IS_BETTER:
                score = 100.0 * min(1.0, best[name] / value) if value > 0 and best[name] else 100.0
            else:
                target = ind["target"] or 1.0
                score = 100.0 * min(1.0, max(0.0, value) / target)
            ind["score"] = round(score, 4)
            points += score * weight[name]
            weighed += weight[name]
        if weighed and weighed >= MIN_WEIGHT_SHARE * total:
            card.score = round(points / weighed, 4)


def _rank(cards: list[Scorecard]) -> None:
    ranked = sorted((c for c in cards if c.score is not None), key=Scorecard.key)
    for n, card in enumerate(ranked, start=1):
        card.rank = n
    for a, b in itertools.pairwise(ranked):
        if a.key()[:-1] == b.key()[:-1]:
            a.tied = b.tied = True
    by_city: dict[str, int] = {}
    for card in ranked:
        by_city[card.city] = by_city.get(card.city, 0) + 1
        card.city_rank = by_city[card.city]
    for card in ranked[-YELLOW_CARDS:] if len(ranked) > YELLOW_CARDS else []:
        card.yellow_card = True
        lost = sorted(
            ((n, i) for n, i in card.indicators.items() if i["score"] is not None and i["score"] < 100),
            key=lambda item: (item[1]["score"] - 100) * item[1]["weight"],
        )
        card.card_reasons = [
            f"{n}: {_shown(n, i['value'])} (score {i['score']:.1f} of 100, weight {i['weight']:g})" for n, i in lost[:3]
        ] or [f"rank {card.rank} of {len(ranked)}"]
    ranked_ids = {c.park_id for c in ranked}
    cards.sort(key=lambda c: (c.park_id not in ranked_ids, c.rank or 0, c.park_id))


async def _coverage(
    conn: asyncpg.Connection, period: AssessedPeriod, on: date, targets: Mapping[str, float]
) -> dict[str, float]:
    """Per park: the share of its plant stations (inlets, plant outlets) that deliver valid data at the target rate.

    A park without a plant station has none covered: 0, the plan's first target unmet.
    """
    stations = {r["id"]: r["park_id"] for r in await conn.fetch(PLANT_STATIONS)}
    rates = {d.id: d.figures()["effective_transmission_rate"] for d in await delivery(
        conn, period=period, on=on, level="station")}  # fmt: skip
    parks: dict[str, list[bool]] = {}
    for station, park in stations.items():
        rate = rates.get(station)
        parks.setdefault(park, []).append(rate is not None and rate >= targets["effective_transmission_rate"])
    out = {park: sum(ok) / len(ok) for park, ok in parks.items()}
    for park in await conn.fetch("SELECT id FROM parks"):
        out.setdefault(park["id"], 0.0)
    return out


def _caps(positions: list[Any]) -> dict[str, float]:
    """Per park with caps: the share of its capped station-pollutants within their cap so far."""
    parks: dict[str, list[bool]] = {}
    for p in positions:
        parks.setdefault(p.park_id, []).append(p.cumulative_kg <= p.cap_kg)
    return {park: sum(ok) / len(ok) for park, ok in parks.items()}


def _end_instant(period: AssessedPeriod, start: date, now: datetime) -> datetime:
    """The end of the period as an instant (the caps are counted up to it)."""
    end = period_end(period, start)
    return datetime(end.year, end.month, end.day, tzinfo=now.tzinfo)


def _shown(indicator: str, value: Any) -> str:
    # rates are fractions, shown as percentages; energy intensity is tce per 10,000 yuan, whatever its size
    if indicator in LOWER_IS_BETTER or not isinstance(value, float) or value > 1:
        return f"{value:g}" if isinstance(value, float) else str(value)
    return f"{value:.1%}"


async def report_input(
    conn: asyncpg.Connection,
    *,
    park_id: str,
    period: AssessedPeriod,
    on: date,
    indicator: str,
    value: float,
    reported_by: str,
    note: str | None,
) -> asyncpg.Record:
    """Store a reported indicator for a park and period; the value it replaces goes to the history."""
    if indicator not in REPORTED:
        raise AssessmentInputError("unknown_indicator", f"{indicator!r}: reported indicators are {', '.join(REPORTED)}")
    if indicator == "facility_coverage" and not 0 <= value <= 1:
        raise AssessmentInputError("bad_value", "facility_coverage is a fraction between 0 and 1")
    if indicator == "energy_intensity" and not 0 < value < 1000:
        raise AssessmentInputError("bad_value", "energy_intensity is a positive number of tce per 10,000 yuan")
    async with conn.transaction():
        if await conn.fetchval(PARK_EXISTS, park_id) is None:
            raise AssessmentInputError("unknown_park", f"not registered: {park_id}")
        row = await conn.fetchrow(SAVE_INPUT, park_id, period, period_start(period, on), indicator, value,
                                  reported_by, note)  # fmt: skip
    if row is None:  # an upsert returns its row; this would be a bug
        raise RuntimeError("assessment_inputs upsert returned no row")
    return row
