"""HJ 633 air quality index: IAQI per pollutant, AQI, level, category, colour, primary pollutants.

Exact arithmetic (fractions of the decimal inputs), so that rounding up (全部进位取整数) never
turns 50 into 51 through binary floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from schemas.catalogue import AqiTable, Standard

# Input keys and how HJ 633 names the pollutant (primary pollutant lists).
LABELS = {
    "so2": "SO2",
    "no2": "NO2",
    "co": "CO",
    "pm10": "PM10",
    "pm25": "PM2.5",
    "o3_1h": "O3",
    "o3_8h": "O3",
}
INPUTS = frozenset(LABELS) | {"so2_24h"}


class AqiError(Exception):
    """An AQI question that cannot be answered as asked; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class AqiResult:
    """The index of one report (hourly or daily)."""

    standard: str
    period: str
    aqi: int | None
    iaqi: dict[str, int | None]
    level: str | None
    level_roman: str | None
    category: str | None
    category_en: str | None
    color: str | None
    color_en: str | None
    rgb: tuple[int, int, int] | None
    primary: list[str]
    exceeding: list[str] = field(default_factory=list)  # 2012: IAQI > 100 (超标污染物)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The object evaluate prints."""
        return {
            "standard": self.standard,
            "period": self.period,
            "aqi": self.aqi,
            "iaqi": self.iaqi,
            "level": self.level,
            "level_roman": self.level_roman,
            "category": self.category,
            "category_en": self.category_en,
            "color": self.color,
            "color_en": self.color_en,
            "rgb": list(self.rgb) if self.rgb else None,
            "primary": self.primary,
            "exceeding": self.exceeding,
            "notes": self.notes,
        }


def gbt8170(value: float, decimals: int) -> Decimal:
    """GB/T 8170-2008 rounding: half to even (四舍六入五成双), from the value's decimal form."""
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)


@lru_cache(maxsize=64)
def _exact(breakpoints: tuple[float, ...]) -> tuple[Fraction, ...]:
    return tuple(Fraction(str(b)) for b in breakpoints)


def _iaqi(c: Fraction, breakpoints: list[float], iaqi: list[int]) -> tuple[int | None, bool]:
    """(IAQI rounded up, whether c lies above the table) — formula (1) of HJ 633."""
    bps = _exact(tuple(breakpoints))
    if c < 0:
        return None, False
    for i in range(1, len(bps)):
        if c <= bps[i]:
            lo_c, hi_c = bps[i - 1], bps[i]
            lo_i, hi_i = iaqi[i - 1], iaqi[i]
            value = Fraction(hi_i - lo_i) / (hi_c - lo_c) * (c - lo_c) + lo_i
            return math.ceil(value), False
    return None, True


def compute(standard: Standard, period: str, concentrations: dict[str, float | None]) -> AqiResult:
    """The AQI of one report of this HJ 633 edition; missing pollutants are NA (2026 5.3)."""
    table: AqiTable | None = standard.aqi
    if table is None:
        raise AqiError("not_aqi", f"{standard.id} is not an AQI standard")
    if period not in table.reports:
        raise AqiError("bad_period", f"{standard.id} reports AQI over {', '.join(table.reports)}, not {period!r}")
    unknown = sorted(set(concentrations) - INPUTS)
    if unknown:
        raise AqiError(
            "bad_input", f"unknown concentrations: {', '.join(unknown)} (known: {', '.join(sorted(INPUTS))})"
        )
    report = table.reports[period]
    notes: list[str] = []
    decimals: dict[str, int] = (
        table.rounding.get("decimals", {}) if table.rounding.get("concentrations") == "gbt8170" else {}
    )
    values: dict[str, Fraction] = {}
    for key, raw in concentrations.items():
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise AqiError("bad_input", f"concentration {key} must be a finite number")
        if raw < 0:
            raise AqiError("bad_input", f"concentration {key} is negative")
        if key in decimals:
            rounded = gbt8170(raw, decimals[key])
            if rounded != Decimal(repr(float(raw))):
                notes.append(f"{key} {raw:g} rounded to {rounded} (GB/T 8170)")
            values[key] = Fraction(rounded)
        else:
            values[key] = Fraction(repr(float(raw)))
    iaqi: dict[str, int | None] = {}
    for key, bp_name in report.items():
        if key not in values:
            iaqi[key] = None
            continue
        value, above = _iaqi(values[key], table.breakpoints[bp_name], table.iaqi)
        if above:
            value = _beyond(table, key, bp_name, values, notes)
        iaqi[key] = value
    missing = [k for k, v in iaqi.items() if v is None and k not in values]
    if missing:
        notes.append(f"not given (NA): {', '.join(missing)}")
    present = {k: v for k, v in iaqi.items() if v is not None}
    if not present:
        return AqiResult(standard.id, period, None, iaqi, None, None, None, None, None, None, None, [], notes=notes)
    aqi = max(present.values())
    if missing and table.missing_publish_above is not None and aqi <= table.missing_publish_above:
        notes.append(
            f"AQI {aqi} from incomplete data is not published (NA): with a pollutant missing, only an AQI "
            f"above {table.missing_publish_above} is ({table.missing})"
        )
        return AqiResult(standard.id, period, None, iaqi, None, None, None, None, None, None, None, [], notes=notes)
    band = next(c for c in table.categories if c.max is None or aqi <= c.max)
    primary: list[str] = []
    if aqi > table.primary_above:
        for key, value in present.items():
            if value == aqi and LABELS[key] not in primary:
                primary.append(LABELS[key])
    exceeding = sorted({LABELS[k] for k, v in present.items() if v > 100}) if standard.id == "HJ633-2012" else []
    return AqiResult(
        standard.id,
        period,
        aqi,
        iaqi,
        band.level,
        band.level_roman,
        band.category,
        band.category_en,
        band.color,
        band.color_en,
        band.rgb,
        primary,
        exceeding,
        notes,
    )


def _beyond(table: AqiTable, key: str, bp_name: str, values: dict[str, Fraction], notes: list[str]) -> int | None:
    """A concentration above its breakpoint table: the special rules, else capped at 500."""
    if bp_name == "so2_1h" and "so2_1h_above_800" in table.special:
        rule = table.special["so2_1h_above_800"]
        if rule.action == "iaqi_200":
            notes.append(f"SO2 1 h above 800: IAQI 200 ({rule.clause.note})")
            return 200
        if "so2_24h" not in values:
            notes.append(f"SO2 1 h above 800 and no so2_24h given: SO2 IAQI is NA ({rule.clause.note})")
            return None
        value, above = _iaqi(values["so2_24h"], table.breakpoints["so2_24h"], table.iaqi)
        notes.append(f"SO2 1 h above 800: IAQI from the 24 h average ({rule.clause.note})")
        return 500 if above else value
    if bp_name == "o3_8h" and "o3_8h_above_800" in table.special:
        rule = table.special["o3_8h_above_800"]
        if rule.action == "iaqi_300":
            notes.append(f"O3 8 h above 800: IAQI 300 ({rule.clause.note})")
            return 300
        if "o3_1h" not in values:
            notes.append(f"O3 8 h above 800 and no o3_1h given: O3 8 h IAQI is NA ({rule.clause.note})")
            return None
        value, above = _iaqi(values["o3_1h"], table.breakpoints["o3_1h"], table.iaqi)
        notes.append(f"O3 8 h above 800: IAQI from the 1 h value ({rule.clause.note})")
        return 500 if above else value
    # Not defined by the standard: cap at the table's top (docs/reference/standards.md B4, an implementation choice).
    notes.append(f"{key} above the last breakpoint: IAQI capped at 500")
    return 500
