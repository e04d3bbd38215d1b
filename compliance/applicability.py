"""Whether an edition applies to a unit at all: required facts, sectors and transition periods (pure)."""

from __future__ import annotations

from datetime import date
from typing import Any

from compliance.context import Context, JudgementError
from schemas.catalogue import Standard


def date_ok(on: date, cond: dict[str, Any]) -> bool:
    """`on` meets a `before` / `on_or_after` condition of the catalogue."""
    if "before" in cond and not on < cond["before"]:
        return False
    return not ("on_or_after" in cond and not on >= cond["on_or_after"])


def check_requires(standard: Standard, ctx: Context) -> None:
    """Refuse a context the edition does not cover (an unknown sector, a unit too old)."""
    if ctx.sector is not None and standard.sectors and ctx.sector not in standard.sectors:
        raise JudgementError(
            "bad_context",
            f"sector {ctx.sector!r} is not one of {standard.id}'s sectors: {', '.join(sorted(standard.sectors))}",
        )
    req = standard.requires.get("construction_date")
    if req and ctx.construction_date is not None and not date_ok(ctx.construction_date, req):
        clause = req.get("clause", {})
        raise JudgementError("not_covered", f"{standard.id}: {clause.get('note', 'not covered')}")


def check_in_force(standard: Standard, cls: str, on: date, ctx: Context) -> None:
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
