"""Unit spellings, and conversion of a reported value into the unit we store."""

from __future__ import annotations

import re

# Spellings seen from stations and data loggers, folded to the symbols of the code tables.
_SPELLINGS: dict[str, str] = {
    "mg/l": "mg/L",
    "ug/l": "µg/L",
    "μg/l": "µg/L",
    "µg/l": "µg/L",
    "mg/m3": "mg/m³",
    "mg/nm3": "mg/m³",  # 标干 (standard state, dry) is how stack concentrations are reported
    "ug/m3": "µg/m³",
    "μg/m3": "µg/m³",
    "µg/m3": "µg/m³",
    "ng/m3": "ng/m³",
    "l/s": "L/s",
    "m3/s": "m³/s",
    "m3/h": "m³/h",
    "m3/d": "m³/d",
    "nm3/h": "m³/h",
    "nm3/s": "m³/s",
    "°c": "°C",
    "℃": "°C",
    "degc": "°C",
    "c": "°C",
    "%": "%",
    "pct": "%",
    "%vol": "%",
    "kpa": "kPa",
    "pa": "Pa",
    "m/s": "m/s",
    "m2": "m²",
    "°": "°",
    "deg": "°",
    "us/cm": "µS/cm",
    "μs/cm": "µS/cm",
    "µs/cm": "µS/cm",
    "ppm": "ppm",
    "mpn/l": "MPN/L",
    "个/l": "MPN/L",
    "degree": "degree",
    "倍": "degree",
    "": "",
    "ph": "",
    "dimensionless": "",
    "无量纲": "",
}

# (from, to) → factor: value_in_to = value_in_from × factor.
_FACTORS: dict[tuple[str, str], float] = {
    ("µg/L", "mg/L"): 1e-3,
    ("mg/L", "µg/L"): 1e3,
    ("µg/m³", "mg/m³"): 1e-3,
    ("mg/m³", "µg/m³"): 1e3,
    ("ng/m³", "µg/m³"): 1e-3,
    ("ng/m³", "mg/m³"): 1e-6,
    ("m³/h", "L/s"): 1000 / 3600,
    ("m³/s", "L/s"): 1000.0,
    ("m³/d", "L/s"): 1000 / 86400,
    ("m³/h", "m³/s"): 1 / 3600,
    ("Pa", "kPa"): 1e-3,
}

# Molar masses (g/mol) for ppm → mg/m³ at the standard state of the emission standards
# (273.15 K, 101.325 kPa, dry gas: GB 4915-2013 3.9), where one mole occupies 22.414 L.
_MOLAR_MASS: dict[str, float] = {
    "a21026": 64.066,  # SO2
    "a21002": 46.006,  # NOx, expressed as NO2 by every emission standard
    "a21003": 30.006,  # NO
    "a21004": 46.006,  # NO2
    "a21005": 28.010,  # CO
    "a21028": 34.08,  # H2S
    "a21024": 36.46,  # HCl
    "a21001": 17.031,  # NH3
}
_MOLAR_VOLUME_STP = 22.414

_SPACE_RE = re.compile(r"\s+")


UNIT_SHOWN = 40


class UnitError(ValueError):
    """A reported unit that cannot be converted into the stored unit."""

    def __init__(self, unit: str, target: str, code: str) -> None:
        self.unit = unit
        self.target = target
        self.code = code
        # A hostile unit of 70 KB must not be copied into every message about it (found by fuzzing).
        shown = repr(unit) if len(unit) <= UNIT_SHOWN else f"{unit[:UNIT_SHOWN]!r}… ({len(unit)} chars)"
        super().__init__(f"unit {shown} cannot be converted to {target or 'dimensionless'!r} for {code}")


def normalise(unit: str) -> str | None:
    """The canonical spelling of a unit, or None when the spelling is unknown."""
    key = _SPACE_RE.sub("", unit).replace("³", "3").replace("²", "2").lower()
    return _SPELLINGS.get(key)


def converter(unit: str, target: str, code: str, *, stack: bool) -> float:
    """The factor that turns a value in `unit` into `target`, or raise UnitError."""
    canon = normalise(unit)
    if canon is None:
        raise UnitError(unit, target, code)
    if canon == target:
        return 1.0
    factor = _FACTORS.get((canon, target))
    if factor is not None:
        return factor
    if canon == "ppm" and target == "mg/m³" and stack and code in _MOLAR_MASS:
        return _MOLAR_MASS[code] / _MOLAR_VOLUME_STP
    raise UnitError(unit, target, code)
