"""What a judgement may depend on beyond the value (its context), and the one error it raises."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any


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
            influent["w01018"] = number(doc["influent_cod"], "context.influent_cod")
        if doc.get("influent_bod") is not None:
            influent["w01017"] = number(doc["influent_bod"], "context.influent_bod")
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
            water_temp_c=number(doc["water_temp_c"], "context.water_temp_c")
            if doc.get("water_temp_c") is not None
            else None,
            o2_pct=number(doc["o2_pct"], "context.o2_pct") if doc.get("o2_pct") is not None else None,
            influent=influent,
            construction_date=built_on,
            sector=doc.get("sector"),
            capacity_t_h=number(doc["capacity_t_h"], "context.capacity_t_h")
            if doc.get("capacity_t_h") is not None
            else None,
        )


def number(value: Any, where: str) -> float:
    """A context value as a finite float, or bad_context."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JudgementError("bad_context", f"{where} must be a finite number")
    return float(value)
