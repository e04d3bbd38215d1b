"""The KPI targets a park is held to: the province's (settings) unless the park's registry entry sets its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parkwatch.settings import Settings
from schemas.kpis import TARGET_NAMES


def province_targets(settings: Settings) -> dict[str, float]:
    """The targets of the provincial plan as configured (docs/kpis.md#targets)."""
    return {
        "treatment_rate": settings.TARGET_TREATMENT_RATE,
        "treated_water_compliance_rate": settings.TARGET_TREATED_WATER_COMPLIANCE_RATE,
        "solid_waste_rate": settings.TARGET_SOLID_WASTE_RATE,
        "effective_transmission_rate": settings.TARGET_EFFECTIVE_TRANSMISSION_RATE,
    }


def park_targets(defaults: Mapping[str, float], park_attrs: Mapping[str, Any] | None) -> dict[str, float]:
    """A park's targets: its own where its registry entry names them, the province's otherwise."""
    own = (park_attrs or {}).get("targets") or {}
    return {name: float(own.get(name, defaults[name])) for name in TARGET_NAMES}


def shortfalls(figures: Mapping[str, Any], targets: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The figures below their target (a figure that could not be computed is not a shortfall)."""
    out = {}
    for name, target in targets.items():
        value = figures.get(name)
        if isinstance(value, int | float) and value < target:
            out[name] = {"value": float(value), "target": target}
    return out
