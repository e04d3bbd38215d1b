"""Physical ranges: values no instrument can report, refused at the edge with a reason (docs/mqtt.md).

Such a value is an encoding error or a forgery, not a measurement; stored, it would be averaged
into an hour and a day. Two values of 1.7e308 (finite, so accepted) once overflowed an hourly
average in PostgreSQL and stopped the compliance worker's whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping

# No quantity parkwatch stores reaches this magnitude in its stored unit: the largest are
# flue-gas flows (~10³ m³/s), daily cumulative volumes (~10⁷ m³) and particle or coliform counts
# (~10⁸ per L). Beyond it a value is an error, and a few of them summed overflow a double.
MAX_MAGNITUDE = 1e9

# Quantities bounded by nature, in the unit they are stored in (schemas/data/*.csv).
PHYSICAL: dict[str, tuple[float, float]] = {
    "w01001": (0.0, 14.0),  # pH
    "a19001": (0.0, 25.0),  # O2 %: 21 in air; analysers read a little over it, never under 0
    "a01002": (0.0, 100.0),  # ambient humidity %
    "a01014": (0.0, 100.0),  # flue-gas moisture %
}


def problem(code: str, value: float, instrument: Mapping[str, tuple[float, float]] | None = None) -> str | None:
    """Why `value` of `code` cannot be a measurement, or None when it can."""
    if abs(value) > MAX_MAGNITUDE:
        return f"{value:g} is beyond any measurement (|value| ≤ {MAX_MAGNITUDE:g})"
    physical = PHYSICAL.get(code)
    if physical is not None and not physical[0] <= value <= physical[1]:
        return f"{value:g} is outside the physical range {physical[0]:g} … {physical[1]:g}"
    limits = instrument.get(code) if instrument else None
    if limits is not None and not limits[0] <= value <= limits[1]:
        return f"{value:g} is outside the station's instrument range {limits[0]:g} … {limits[1]:g}"
    return None
