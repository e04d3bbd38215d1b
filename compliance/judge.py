"""Judge one value against a standard: the limit for the class and date, corrections, the clause (pure).

The caller has already built the value the regulator judges (a valid hourly average, a daily
average...); this module picks the limit row, applies the reference-oxygen correction and the
special rules, and says which clause decided. Where a condition the limit depends on is unknown
(water temperature for GB 18918 NH3-N, the construction date for TP), the value is judged under
every candidate limit: when they agree that is the verdict, when they disagree it is
insufficient_data, never a guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any, Literal

from schemas.catalogue import CatalogError, Limit, Standard, catalogue
from schemas.units import UnitError, converter

Verdict = Literal["compliant", "exceedance", "insufficient_data"]
COMPLIANT: Verdict = "compliant"
EXCEEDANCE: Verdict = "exceedance"
INSUFFICIENT: Verdict = "insufficient_data"
# O2 at or above this is near-ambient air (20.9 %): the source is stopped or purging, the factor
# (21 - ref) / (21 - O2) only multiplies noise, and such hours are not judged
# (docs/reference/standards.md B5). A standard lowers it with `validity: o2_max` (19.5 % for
# boilers and kilns); the rest, sinter and pellet plants (16-18 % reference) among them, stop at
# 20 %, where a stopped sinter machine's 10 mg/m³ of SO2 would otherwise be corrected to 500
# (found by the standards audit). A running pellet machine at 19 % (correction x3) is judged.
O2_CEILING = 20.0
# A class description that opens with its table: "Table 2 — new coal-fired boilers".
_CLASS_TABLE = re.compile(r"^(Table \d+)\b")


class JudgementError(Exception):
    """The question cannot be answered as asked; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Context:
    """What a limit may depend on, beyond the value itself."""

    water_temp_c: float | None = None
    o2_pct: float | None = None
    influent: dict[str, float] = field(default_factory=dict)  # daily influent value by parameter
    construction_date: date | None = None
    sector: str | None = None
    capacity_t_h: float | None = None  # a boiler's rated steam output (GB 13271's transition dates)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Context:
        """The `context` object of an evaluate request."""
        known = {
            "water_temp_c", "o2_pct", "influent_cod", "influent_bod", "construction_date", "sector", "capacity_t_h",
        }  # fmt: skip
        unknown = sorted(set(doc) - known)
        if unknown:
            raise JudgementError(
                "bad_context", f"unknown context keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        influent = {}
        if doc.get("influent_cod") is not None:
            influent["w01018"] = _number(doc["influent_cod"], "context.influent_cod")
        if doc.get("influent_bod") is not None:
            influent["w01017"] = _number(doc["influent_bod"], "context.influent_bod")
        built = doc.get("construction_date")
        if built is not None and not isinstance(built, str):
            raise JudgementError("bad_context", "context.construction_date must be a date string YYYY-MM-DD")
        sector = doc.get("sector")
        if sector is not None and not isinstance(sector, str):
            raise JudgementError("bad_context", "context.sector must be a string")
        try:
            built_on = date.fromisoformat(built) if isinstance(built, str) else None
        except ValueError:
            raise JudgementError("bad_context", f"context.construction_date {built!r} is not YYYY-MM-DD") from None
        return cls(
            water_temp_c=_number(doc["water_temp_c"], "context.water_temp_c")
            if doc.get("water_temp_c") is not None
            else None,
            o2_pct=_number(doc["o2_pct"], "context.o2_pct") if doc.get("o2_pct") is not None else None,
            influent=influent,
            construction_date=built_on,
            sector=doc.get("sector"),
            capacity_t_h=_number(doc["capacity_t_h"], "context.capacity_t_h")
            if doc.get("capacity_t_h") is not None
            else None,
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JudgementError("bad_context", f"{where} must be a finite number")
    return float(value)


def _exact(value: float) -> Fraction:
    """The decimal a float was written as (0.1 is 1/10), for comparisons at a limit."""
    return Fraction(repr(float(value)))


@dataclass
class Judgement:
    """A verdict and everything that decided it."""

    verdict: Verdict
    parameter: str
    period: str
    limit: float | list[float] | None
    unit: str
    value: float | None  # as given, in the limit's unit
    value_judged: float | None  # after corrections (O2), in the limit's unit
    exceedance_multiple: float | None
    rule: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The object evaluate prints and the API returns."""
        return {
            "verdict": self.verdict,
            "parameter": self.parameter,
            "period": self.period,
            "limit": self.limit,
            "unit": self.unit,
            "value": self.value,
            "value_judged": self.value_judged,
            "exceedance_multiple": self.exceedance_multiple,
            "rule": self.rule,
            "notes": self.notes,
        }


def _table(standard: Standard, limit: Limit, cls: str) -> str | None:
    """The one table a class reads from, where a row names several ("Table 1 / Table 2")."""
    table = limit.clause.table
    if table and ("/" in table or table.startswith("Tables")):
        match = _CLASS_TABLE.match(standard.classes.get(cls, ""))
        if match:
            return match.group(1)
    return table


def _rule(standard: Standard, limit: Limit, cls: str, *, note: str | None = None) -> dict[str, Any]:
    clause = limit.clause
    notes = [n for n in (clause.note, note) if n]
    return {
        "standard": standard.id,
        "number": standard.number,
        "class": cls,
        "table": _table(standard, limit, cls),
        "item": clause.item,
        "note": "; ".join(notes) or None,
        "period": limit.period,
        "confidence": limit.confidence,
        **({"source": limit.source} if limit.source else {}),
    }


def _matches_when(limit: Limit, on: date, ctx: Context, named: set[str]) -> bool | None:
    """True/False when the row's conditions hold or not; None when an unknown fact decides.

    `named` are the sectors other rows of the parameter name: a row for `other` (其他排污单位)
    covers every sector they do not.
    """
    unknown = False
    for key, cond in limit.when.items():
        if key == "date":
            if not _date_ok(on, cond):
                return False
        elif key == "sector":
            sector = ctx.sector
            listed = sector is not None and sector in cond
            other = "other" in cond and (sector is None or sector == "other" or sector not in named)
            if not (listed or other):
                return False
        elif key == "water_temp_c":
            if ctx.water_temp_c is None:
                unknown = True
            elif not _number_ok(ctx.water_temp_c, cond):
                return False
        elif key == "construction_date":
            if ctx.construction_date is None:
                unknown = True
            elif not _date_ok(ctx.construction_date, cond):
                return False
        else:
            raise CatalogError(limit.parameter, f"unknown condition {key!r}")
    return None if unknown else True


def _date_ok(on: date, cond: dict[str, Any]) -> bool:
    if "before" in cond and not on < cond["before"]:
        return False
    return not ("on_or_after" in cond and not on >= cond["on_or_after"])


def _number_ok(value: float, cond: dict[str, Any]) -> bool:
    if "gt" in cond and not value > cond["gt"]:
        return False
    return not ("le" in cond and not value <= cond["le"])


def candidates(
    standard: Standard, cls: str, parameter: str, period: str, *, on: date, ctx: Context
) -> list[tuple[Limit, bool]]:
    """Limit rows that may apply: (row, certain); `certain` is False when an unknown fact decides."""
    out = []
    named = {
        sector
        for limit in standard.limits
        if limit.parameter == parameter
        for sector in limit.when.get("sector", ())
        if sector != "other"
    }
    for limit in standard.limits:
        if limit.parameter != parameter or limit.period != period or cls not in limit.values:
            continue
        ok = _matches_when(limit, on, ctx, named)
        if ok is False:
            continue
        out.append((limit, ok is True))
    return out


def _compare(value: float, bound: float | tuple[float, float]) -> tuple[Verdict, float | None]:
    """Verdict of a value against a maximum (equal is compliant) or a range, and the multiple."""
    if isinstance(bound, tuple | list):
        low, high = bound
        return (COMPLIANT, None) if low <= value <= high else (EXCEEDANCE, None)
    if value <= bound:
        return COMPLIANT, 0.0
    # 超标倍数 = (C - C_limit) / C_limit
    return EXCEEDANCE, round((value - bound) / bound, 4) if bound else None


def _limit_value(bound: float | tuple[float, float]) -> float | list[float]:
    return list(bound) if isinstance(bound, tuple | list) else bound


def _corrected(standard: Standard, cls: str, value: float, ctx: Context, notes: list[str]) -> tuple[float, str | None]:
    ref = standard.reference_o2.get(cls)
    if ref is None:
        return value, None
    if ctx.o2_pct is None:
        raise JudgementError(
            "missing_o2",
            f"{standard.id} class {cls} judges at {ref.value:g} % O2: give context.o2_pct (measured O2, %)",
        )
    if ctx.o2_pct < 0:
        raise JudgementError("o2_invalid", f"O2 of {ctx.o2_pct:g} % is below 0: not a measurement")
    ceiling = standard.setting("o2_max", O2_CEILING)
    if ctx.o2_pct >= ceiling:
        raise JudgementError(
            "o2_out_of_range",
            f"O2 of {ctx.o2_pct:g} % (≥ {ceiling:g} %) is a stopped or purging source: the correction to "
            f"{ref.value:g} % would multiply the value by {(21 - ref.value) / max(21 - ctx.o2_pct, 1e-9):.1f}",
        )
    o2, ref_o2 = ctx.o2_pct, ref.value
    # 21 × 11 / 7.7 is 30, not the 30.000000000000004 of binary floats: rounded to 12 significant
    # digits (far below any analyser's resolution), a value at the limit stays compliant.
    corrected = float(f"{value * (21 - ref_o2) / (21 - o2):.12g}")
    notes.append(f"corrected to {ref_o2:g} % O2 from measured {o2:g} %: C × (21 − {ref_o2:g}) / (21 − {o2:g})")
    return corrected, ref.clause


def judge(
    standard: Standard,
    cls: str,
    parameter: str,
    period: str,
    value: float,
    *,
    on: date,
    unit: str | None = None,
    ctx: Context | None = None,
    permit_limit: float | None = None,
) -> Judgement:
    """The verdict of one value, with the rule that decided it."""
    ctx = ctx or Context()
    if cls not in standard.classes:
        raise JudgementError(
            "unknown_class", f"{standard.id} has no class {cls!r}; its classes: {', '.join(standard.classes)}"
        )
    _requires(standard, ctx)
    _class_in_force(standard, cls, on, ctx)
    rows = candidates(standard, cls, parameter, period, on=on, ctx=ctx)
    if not rows and permit_limit is None:
        periods = sorted({lim.period for lim in standard.limits if lim.parameter == parameter and cls in lim.values})
        if periods:
            raise JudgementError(
                "no_limit", f"{standard.id} class {cls} limits {parameter} over {', '.join(periods)}, not over {period}"
            )
        raise JudgementError("no_limit", f"{standard.id} class {cls} sets no limit for {parameter}")
    # A permit limit for a parameter the standard does not limit is in the unit it is given in.
    limit_unit = rows[0][0].unit if rows else (unit or "")
    given = _in_unit(value, unit, limit_unit, parameter, standard) if rows else value
    notes: list[str] = []
    judged, o2_clause = _corrected(standard, cls, given, ctx, notes) if standard.medium == "stack" else (given, None)

    if permit_limit is not None:
        verdict, multiple = _compare(judged, permit_limit)
        rule = _permit_rule(standard, cls, parameter, period, rows)
        return Judgement(verdict, parameter, period, permit_limit, limit_unit, given, judged, multiple, rule, notes)

    special = next((lim.special for lim, _ in rows if lim.special and cls in lim.special.classes), None)
    if special is not None:
        decided = _removal_rule(
            standard, cls, rows=rows, special=special, judged=judged, given=given, ctx=ctx, notes=notes
        )
        if decided is not None:
            return decided

    outcomes = []
    for limit, _certain in rows:
        bound = limit.values[cls]
        verdict, multiple = _compare(judged, bound)
        outcomes.append((verdict, multiple, limit))
    if len(outcomes) == 1:
        verdict, multiple, limit = outcomes[0]
        rule = _rule(standard, limit, cls, note=o2_clause)
        return Judgement(
            verdict,
            parameter,
            period,
            _limit_value(limit.values[cls]),
            limit.unit,
            given,
            judged,
            multiple,
            rule,
            notes,
        )
    return _bracket(
        standard,
        cls,
        parameter,
        period,
        outcomes=outcomes,
        given=given,
        judged=judged,
        notes=notes,
        o2_clause=o2_clause,
    )


def _permit_rule(
    standard: Standard, cls: str, parameter: str, period: str, rows: list[tuple[Limit, bool]]
) -> dict[str, Any]:
    base = rows[0][0] if rows else None
    return {
        "standard": standard.id,
        "number": standard.number,
        "class": cls,
        "table": "permit",
        "item": parameter,
        "note": "permit-specific limit (排污许可) in place of "
        + (f"{base.clause.table} {base.clause.item}: {_limit_value(base.values[cls])}" if base else "the standard"),
        "period": period,
        "confidence": "P",
    }


def insufficient(
    standard: Standard,
    cls: str,
    parameter: str,
    period: str,
    *,
    on: date,
    reason: str,
    ctx: Context | None = None,
    permit_limit: float | None = None,
    value: float | None = None,
) -> Judgement:
    """The verdict of a window short of valid data: insufficient_data, with the limit it would face."""
    ctx = ctx or Context()
    rows = candidates(standard, cls, parameter, period, on=on, ctx=ctx)
    if permit_limit is not None:
        unit = rows[0][0].unit if rows else ""
        rule = _permit_rule(standard, cls, parameter, period, rows)
        return Judgement(INSUFFICIENT, parameter, period, permit_limit, unit, value, None, None, rule, [reason])
    if not rows:
        rule = {
            "standard": standard.id,
            "number": standard.number,
            "class": cls,
            "table": None,
            "item": parameter,
            "note": f"no {period} limit for this class and context",
            "period": period,
            "confidence": None,
        }
        return Judgement(INSUFFICIENT, parameter, period, None, "", value, None, None, rule, [reason])
    first = rows[0][0]
    limit = _limit_value(first.values[cls]) if len(rows) == 1 else None
    return Judgement(
        INSUFFICIENT, parameter, period, limit, first.unit, value, None, None, _rule(standard, first, cls), [reason]
    )


def limited(standard: Standard, cls: str, period: str) -> set[str]:
    """The parameters a standard limits for a class over a period."""
    return {lim.parameter for lim in standard.limits if lim.period == period and cls in lim.values}


def _bracket(
    standard: Standard,
    cls: str,
    parameter: str,
    period: str,
    *,
    outcomes: list[tuple[Verdict, float | None, Limit]],
    given: float,
    judged: float,
    notes: list[str],
    o2_clause: str | None,
) -> Judgement:
    """Several rows apply depending on a fact we do not know: agree, or say it cannot be decided."""
    deciding = sorted({k for _, _, lim in outcomes for k in lim.when if k not in ("date", "sector")})
    listing = ", ".join(
        f"{_limit_value(lim.values[cls])} ({lim.clause.note or lim.clause.item})" for _, _, lim in outcomes
    )
    verdicts = {v for v, _, _ in outcomes}
    if len(verdicts) == 1:
        verdict = verdicts.pop()
        # compliant: report the strictest limit met; exceedance: the most lenient one exceeded
        pick = min if verdict == COMPLIANT else max
        chosen = pick(outcomes, key=lambda o: _strictness(o[2].values[cls]))
        notes.append(f"{' and '.join(deciding)} unknown: the same verdict under every candidate limit ({listing})")
        rule = _rule(standard, chosen[2], cls, note=o2_clause)
        return Judgement(
            verdict,
            parameter,
            period,
            _limit_value(chosen[2].values[cls]),
            chosen[2].unit,
            given,
            judged,
            chosen[1],
            rule,
            notes,
        )
    notes.append(f"the limit depends on {' and '.join(deciding)}, which is unknown: candidates {listing}")
    first = outcomes[0][2]
    rule = _rule(standard, first, cls, note=o2_clause)
    rule["note"] = f"limit undetermined without {' and '.join(deciding)}"
    return Judgement(INSUFFICIENT, parameter, period, None, first.unit, given, judged, None, rule, notes)


def _strictness(bound: float | tuple[float, float]) -> float:
    return bound[1] - bound[0] if isinstance(bound, tuple | list) else bound


def _removal_rule(
    standard: Standard,
    cls: str,
    *,
    rows: list[tuple[Limit, bool]],
    special: Any,
    judged: float,
    given: float,
    ctx: Context,
    notes: list[str],
) -> Judgement | None:
    """GB 18918 Table 1 note ①: above an influent threshold, class 3 is judged by removal rate."""
    limit = rows[0][0]
    influent = ctx.influent.get(special.influent)
    bound = limit.values[cls]
    if influent is None:
        verdict, _ = _compare(judged, bound)
        if verdict == COMPLIANT:
            notes.append(
                f"influent {special.influent} unknown: compliant both by the limit and by any removal rate "
                f"(influent above {special.influent_above:g} means removal above "
                f"{1 - float(bound) / special.influent_above:.1%})"  # type: ignore[arg-type]
            )
            return None
        notes.append(
            f"influent {special.influent} unknown: above {special.influent_above:g} mg/L the removal rate decides"
        )
        rule = _rule(standard, limit, cls, note=special.clause.note)
        return Judgement(
            INSUFFICIENT, limit.parameter, limit.period, None, limit.unit, given, judged, None, rule, notes
        )
    if influent <= special.influent_above:
        notes.append(f"influent {influent:g} mg/L ≤ {special.influent_above:g}: the concentration limit applies")
        return None
    # Strictly above the minimum (注①: "去除率应大于60%"), decided exactly: C < I × (1 − min).
    removal = 1 - judged / influent if influent else 0.0
    met = _exact(judged) < _exact(influent) * (1 - _exact(special.min_removal))
    verdict = COMPLIANT if met else EXCEEDANCE
    notes.append(
        f"influent {influent:g} mg/L > {special.influent_above:g}: judged by removal rate 1 − {judged:g}/{influent:g}"
    )
    rule = {
        "standard": standard.id,
        "number": standard.number,
        "class": cls,
        "table": special.clause.table,
        "item": special.clause.item,
        "note": special.clause.note,
        "period": limit.period,
        "confidence": limit.confidence,
    }
    return Judgement(
        verdict,
        limit.parameter,
        limit.period,
        round(special.min_removal * 100, 6),
        "%",
        given,
        round(removal * 100, 6),
        None,
        rule,
        notes,
    )


def _requires(standard: Standard, ctx: Context) -> None:
    if ctx.sector is not None and standard.sectors and ctx.sector not in standard.sectors:
        raise JudgementError(
            "bad_context",
            f"sector {ctx.sector!r} is not one of {standard.id}'s sectors: {', '.join(sorted(standard.sectors))}",
        )
    req = standard.requires.get("construction_date")
    if req and ctx.construction_date is not None and not _date_ok(ctx.construction_date, req):
        clause = req.get("clause", {})
        raise JudgementError("not_covered", f"{standard.id}: {clause.get('note', 'not covered')}")


def _class_in_force(standard: Standard, cls: str, on: date, ctx: Context) -> None:
    """Refuse a window from before the class's limits applied to this unit (the standards audit).

    Existing units kept the earlier edition for a while (GB 13271-2014 4.1-4.2, GB 4915-2013
    4.1.1). parkwatch does not ship those editions: such a window is not judged, naming the edition
    that applied, and where the date depends on a fact not given, naming the fact.
    """
    rule = standard.class_from.get(cls)
    if rule is None or on >= rule.from_:
        return
    if rule.built_before is not None:
        if ctx.construction_date is not None and ctx.construction_date >= rule.built_before:
            return  # a new unit: this edition from its start
        if ctx.construction_date is None:
            raise JudgementError(
                "missing_construction_date",
                f"{standard.id} applied to units built before {rule.built_before} only from {rule.from_} "
                f"({rule.clause}); before, {rule.earlier}, which parkwatch does not ship: give the construction date",
            )
    start = rule.from_
    if rule.larger is not None:
        larger = rule.larger
        if ctx.capacity_t_h is None and on >= larger.from_:
            raise JudgementError(
                "missing_capacity",
                f"{standard.id} class {cls} applied from {larger.from_} to units over {larger.above_t_h:g} t/h and "
                f"from {rule.from_} to smaller ones ({rule.clause}): give the capacity (capacity_t_h)",
            )
        if ctx.capacity_t_h is not None and ctx.capacity_t_h > larger.above_t_h:
            start = larger.from_
    if on < start:
        raise JudgementError(
            "earlier_edition",
            f"{standard.id} class {cls} applied to this unit from {start} ({rule.clause}); on {on} {rule.earlier} "
            "applied, which parkwatch does not ship: not judged",
        )


def _in_unit(value: float, unit: str | None, limit_unit: str, parameter: str, standard: Standard) -> float:
    if unit is None or unit == limit_unit:
        return value
    try:
        factor = converter(unit, limit_unit, parameter, stack=standard.medium == "stack")
    except UnitError as exc:
        raise JudgementError("bad_unit", str(exc)) from None
    return float(f"{value * factor:.12g}")


def standard_for(ident: str, on: date) -> Standard:
    """The edition to judge with: an id with its year, or a family resolved by date."""
    try:
        return catalogue().resolve(ident, on)
    except CatalogError as exc:
        raise JudgementError("unknown_standard", str(exc)) from None
