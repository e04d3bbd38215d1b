"""Station kinds and the medium (water or gas) each one measures."""

from __future__ import annotations

from enum import StrEnum


class CrcVariant(StrEnum):
    """The CRC routine a station's HJ 212 logger computes; the standard's unless configured."""

    HJ212 = "hj212"
    # CRC-16/MODBUS printed high byte first, and printed low byte first ("swapped"): both seen
    # from real devices (docs/reference/hj212.md §9.1).
    MODBUS = "modbus"
    MODBUS_SWAPPED = "modbus-swapped"


class StationKind(StrEnum):
    """What a monitoring station watches; decides which code table and units apply."""

    WASTEWATER_OUTLET = "wastewater_outlet"
    WASTEWATER_INLET = "wastewater_inlet"
    AMBIENT_AIR = "ambient_air"
    STACK = "stack"

    @property
    def medium(self) -> str:
        """'water' for wastewater stations, 'gas' for air and stacks (HJ 212 tables B.1/B.2)."""
        return "water" if self in (StationKind.WASTEWATER_OUTLET, StationKind.WASTEWATER_INLET) else "gas"

    @property
    def alias_scopes(self) -> tuple[str, ...]:
        """Alias scopes searched for this kind, most specific first."""
        if self is StationKind.STACK:
            return ("stack", "gas")
        if self is StationKind.AMBIENT_AIR:
            return ("ambient", "gas")
        return ("water",)
