"""Judge one value against a standard: the limit for the class and date, corrections, the clause (pure).

The caller has already built the value the regulator judges (a valid hourly average, a daily
average...); this module picks the limit row, applies the reference-oxygen correction and the
special rules, and says which clause decided. Where a condition the limit depends on is unknown
(water temperature for GB 18918 NH3-N, the construction date for TP), the value is judged under
every candidate limit: when they agree that is the verdict, when they disagree it is
insufficient_data, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any, Literal

from compliance.applicability import check_in_force, check_requires, date_ok
from compliance.context import Context, JudgementError
from compliance.oxygen import corrected
from schemas.catalogue import CatalogError, Limit, Standard, catalogue
from schemas.units import UnitError, converter

Verdict = Literal["compliant", "exceedance", "insufficient_data"]
COMPLIANT: Verdict = "compliant"
EXCEEDANCE: Verdict = "exceedance"
INSUFFICIENT: Verdict = "insufficient_data"
# A class description that opens with its table: "Table 2 — new coal-fired boilers".
_CLASS_TABLE = re.compile(r"^(Table \d+)\b")


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
            if not date_ok(on, cond):
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
            elif not date_ok(ctx.construction_date, cond):
                return False
        else:
            raise CatalogError(limit.parameter, f"unknown condition {key!r}")
    return None if unknown else True


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
    check_requires(standard, ctx)
    check_in_force(standard, cls, on, ctx)
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
    judged, o2_clause = corrected(standard, cls, given, ctx, notes) if standard.medium == "stack" else (given, None)

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
