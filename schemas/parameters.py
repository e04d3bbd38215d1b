"""The pollutant-code catalogue: HJ 212 codes, their 2005 codes, aliases and storage units."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from schemas.stations import StationKind

# Codes are matched after folding case and dropping punctuation, so "PM2.5", "pm25" and "Pm_2.5"
# are one alias, and "W01018" (an upper-case code seen from real devices) is w01018.
_FOLD_RE = re.compile(r"[^0-9a-z]")
# HJ 212-2017 codes (table B.1/B.2 and the i/e/g process codes): a letter and five digits.
_CODE_RE = re.compile(r"^[a-z][0-9]{5}$")


def fold(name: str) -> str:
    """The form in which aliases are compared."""
    return _FOLD_RE.sub("", name.lower())


@dataclass(frozen=True, slots=True)
class Parameter:
    """One pollutant or auxiliary factor of the HJ 212 code tables."""

    code: str
    medium: str
    name: str
    name_zh: str
    unit: str
    ambient_unit: str
    old_code: str
    cou_unit: str
    note: str

    def unit_for(self, kind: StationKind) -> str:
        """The unit we store this parameter in at a station of this kind."""
        if kind is StationKind.AMBIENT_AIR and self.ambient_unit:
            return self.ambient_unit
        return self.unit


class Catalog:
    """Lookup of parameters by code, 2005 code or alias, scoped by the station's kind."""

    def __init__(self, parameters: list[Parameter], aliases: list[tuple[str, str, str]]) -> None:
        self.by_code: dict[str, Parameter] = {p.code: p for p in parameters}
        self._old: dict[tuple[str, str], str] = {
            (p.medium, p.old_code.lower()): p.code for p in parameters if p.old_code
        }
        self._alias: dict[tuple[str, str], str] = {}
        for alias, scope, code in aliases:
            if code not in self.by_code:
                raise ValueError(f"alias {alias!r} points at unknown code {code!r}")
            self._alias[(scope, fold(alias))] = code

    def resolve(self, name: str, kind: StationKind) -> str | None:
        """The HJ 212-2017 code for a code, 2005 code or alias reported by a station of this kind."""
        lowered = name.strip().lower()
        param = self.by_code.get(lowered)
        if param is not None:
            # A water code at a stack (or an air code at an outlet) is a wiring mistake, not data.
            return lowered if param.medium == kind.medium else None
        folded = fold(lowered)
        for scope in kind.alias_scopes:
            code = self._alias.get((scope, folded))
            if code is not None:
                return code
        return self._old.get((kind.medium, lowered))

    def old_code(self, old: str) -> str | None:
        """The 2017 code for an HJ/T 212-2005 code; the water and gas code sets do not overlap."""
        key = old.strip().lower()
        return self._old.get(("water", key)) or self._old.get(("gas", key))

    def resolve_any(self, name: str) -> str | None:
        """Resolve a code or alias without a station kind (API filters): codes first, then aliases."""
        lowered = name.strip().lower()
        if lowered in self.by_code:
            return lowered
        folded = fold(lowered)
        hits = {code for (_, alias), code in self._alias.items() if alias == folded}
        return hits.pop() if len(hits) == 1 else None

    @staticmethod
    def looks_like_code(name: str) -> bool:
        """True for the shape of an HJ 212-2017 code (a letter and five digits)."""
        return bool(_CODE_RE.match(name.strip().lower()))


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("schemas").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The catalogue built from schemas/data/*.csv (read once)."""
    params = []
    for medium, file in (("water", "hj212_water.csv"), ("gas", "hj212_gas.csv")):
        for row in _read_csv(file):
            params.append(
                Parameter(
                    code=row["code"],
                    medium=medium,
                    name=row["name"],
                    name_zh=row["name_zh"],
                    unit=row["unit"],
                    ambient_unit=row.get("ambient_unit", "") or "",
                    old_code=row["old_code"],
                    cou_unit=row["cou_unit"],
                    note=row["note"],
                )
            )
    aliases = [(r["alias"], r["applies_to"], r["code"]) for r in _read_csv("aliases.csv")]
    return Catalog(params, aliases)
