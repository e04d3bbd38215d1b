"""What-if evaluation for inspectors: one JSON request in, one JSON answer out, never an exception.

A request is either a limit question
    {"standard", "class", "parameter", "period", "value", "unit", "date", "context"}
or an AQI question
    {"standard": "HJ633[-yyyy]", "period": "1h"|"24h", "date", "concentrations": {...}}.
A request that cannot be answered gets {"error": code, "message": ...} instead.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from compliance import aqi
from compliance.context import Context, JudgementError
from compliance.judge import judge, standard_for
from schemas.parameters import catalog as parameters

LIMIT_KEYS = {"standard", "class", "parameter", "period", "value", "unit", "date", "context", "limit"}
AQI_KEYS = {"standard", "period", "date", "concentrations"}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message}


def _date(doc: dict[str, Any]) -> date:
    raw = doc.get("date")
    if raw is None:
        return date.today()
    if not isinstance(raw, str):
        raise JudgementError("bad_date", "date must be an ISO date string (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise JudgementError("bad_date", f"date {raw!r} is not YYYY-MM-DD") from None


def evaluate(doc: Any) -> dict[str, Any]:
    """Answer one request."""
    if not isinstance(doc, dict):
        return _error("bad_request", "each request must be a JSON object")
    try:
        ident = _standard_id(doc)
        on = _date(doc)
        standard = standard_for(ident, on)
        result = _aqi(doc, standard, on) if standard.medium == "aqi" else _limit(doc, standard, on)
        if not standard.in_force(on):
            result.setdefault("notes", []).append(
                f"{standard.id} was not in force on {on.isoformat()} (in force from {standard.effective_from}"
                + (f" to {standard.effective_to}" if standard.effective_to else "")
                + "): judged with it as asked"
            )
    except (JudgementError, aqi.AqiError) as exc:
        return _error(exc.code, str(exc))
    return result


def _standard_id(doc: dict[str, Any]) -> str:
    ident = doc.get("standard")
    if not isinstance(ident, str) or not ident:
        raise JudgementError("bad_request", "standard is required, e.g. GB18918-2002, GB3095 or HJ633-2026")
    return ident


def _aqi(doc: dict[str, Any], standard: Any, on: date) -> dict[str, Any]:
    unknown = sorted(set(doc) - AQI_KEYS)
    if unknown:
        raise JudgementError("bad_request", f"unknown keys for an AQI request: {', '.join(unknown)}")
    conc = doc.get("concentrations")
    if not isinstance(conc, dict) or not conc:
        raise JudgementError(
            "bad_request", "concentrations is required: an object keyed so2, no2, co, pm10, pm25, o3_1h, o3_8h"
        )
    period = doc.get("period")
    if period not in ("1h", "24h"):
        raise JudgementError("bad_period", "period must be 1h (real-time report) or 24h (daily report) for an AQI")
    result = aqi.compute(standard, period, conc).as_json()
    result["date"] = on.isoformat()
    return result


def _limit(doc: dict[str, Any], standard: Any, on: date) -> dict[str, Any]:
    unknown = sorted(set(doc) - LIMIT_KEYS)
    if unknown:
        raise JudgementError("bad_request", f"unknown keys: {', '.join(unknown)}")
    cls = doc.get("class")
    if cls is None:
        raise JudgementError("bad_request", f"class is required; {standard.id} has {', '.join(standard.classes)}")
    name = doc.get("parameter")
    if not isinstance(name, str) or not name:
        raise JudgementError("bad_request", "parameter is required (an HJ 212 code, e.g. w01018)")
    code = parameters().resolve_any(name) or name.strip().lower()
    period = doc.get("period")
    if not isinstance(period, str):
        raise JudgementError(
            "bad_period", "period is required: hour (stacks), day (water), 1h, 8h or 24h (ambient air)"
        )
    value = doc.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JudgementError("bad_value", "value is required and must be a finite number")
    unit = doc.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise JudgementError("bad_unit", "unit must be a string")
    context = doc.get("context") or {}
    if not isinstance(context, dict):
        raise JudgementError("bad_context", "context must be an object")
    permit = doc.get("limit")
    if permit is not None and (
        isinstance(permit, bool) or not isinstance(permit, int | float) or not math.isfinite(permit) or permit < 0
    ):
        raise JudgementError("bad_request", "limit (a permit-specific limit) must be a number")
    result = judge(
        standard,
        str(cls),
        code,
        period,
        float(value),
        on=on,
        unit=unit,
        ctx=Context.from_json(context),
        permit_limit=float(permit) if permit is not None else None,
    ).as_json()
    result["date"] = on.isoformat()
    return result
