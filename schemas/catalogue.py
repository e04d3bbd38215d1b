"""The catalogue of standards: one versioned YAML file per edition in schemas/standards/."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

Medium = Literal["water", "stack", "ambient", "aqi"]
Period = Literal["hour", "day", "1h", "8h", "24h", "annual"]
Confidence = Literal["P", "S2", "S1", "M"]
Average = Literal["1h", "8h_moving", "24h_moving", "24h", "day_max_1h", "day_max_8h"]


class CatalogError(Exception):
    """A standard file is missing or does not validate; `standard` names it."""

    def __init__(self, standard: str, detail: str) -> None:
        self.standard = standard
        self.detail = detail
        super().__init__(f"{standard}: {detail}")


class Clause(BaseModel):
    """Where in the standard a value is written."""

    model_config = ConfigDict(extra="forbid")

    table: str | None = None
    item: str | None = None
    note: str | None = None


class Special(BaseModel):
    """A rule beyond a plain limit: GB 18918 class 3's removal rate (Table 1 note ①)."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["removal_rate"]
    classes: list[str]
    influent: str  # the influent parameter whose daily value decides
    influent_above: float
    min_removal: float  # the removal rate must be strictly above this fraction
    clause: Clause


class Limit(BaseModel):
    """One limit row: a parameter, an averaging period, a value per class, and when it applies."""

    model_config = ConfigDict(extra="forbid")

    parameter: str
    period: Period
    unit: str
    # a maximum, or a [low, high] range (pH); a class missing here has no limit ("—")
    values: dict[str, float | tuple[float, float]]
    when: dict[str, Any] = Field(default_factory=dict)
    clause: Clause
    confidence: Confidence = "P"
    source: str | None = None
    special: Special | None = None
    # the window's own validity minimum where it differs from the standard's (GB 3095 Table 4:
    # TSP, Pb and BaP daily values need 24 h of sampling, not 20 hourly values)
    min_valid_hours: int | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class Setting(BaseModel):
    """A validity minimum or a reference value, with its source."""

    model_config = ConfigDict(extra="forbid")

    value: float
    clause: str | None = None
    confidence: Confidence = "P"
    note: str | None = None


class AqiCategory(BaseModel):
    """One AQI band of HJ 633 Table 2."""

    model_config = ConfigDict(extra="forbid")

    max: int | None
    level: str
    level_roman: str
    category: str
    category_en: str
    color: str
    color_en: str
    rgb: tuple[int, int, int]


class AqiSpecial(BaseModel):
    """What to do past a breakpoint table's end (HJ 633 Table 1 notes)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["use_24h", "use_1h", "iaqi_200", "iaqi_300"]
    clause: Clause


class AqiTable(BaseModel):
    """HJ 633's index: breakpoints, reports, special rules, rounding and categories."""

    model_config = ConfigDict(extra="forbid")

    iaqi: list[int]
    breakpoints: dict[str, list[float]]
    reports: dict[Literal["1h", "24h"], dict[str, str]]
    # which average feeds each input of a report, for indexing stored data
    averages: dict[Literal["1h", "24h"], dict[str, Average]]
    special: dict[str, AqiSpecial]
    rounding: dict[str, Any]
    level_one_from: int
    categories: list[AqiCategory]
    primary_above: int
    missing: str | None = None
    # with a pollutant missing, the AQI is published only above this (HJ 633-2026 5.3)
    missing_publish_above: int | None = None


class Larger(BaseModel):
    """Larger units a class's limits applied to earlier (GB 13271: boilers over 10 t/h)."""

    model_config = ConfigDict(extra="forbid")

    above_t_h: float
    from_: date = Field(alias="from")


class ClassFrom(BaseModel):
    """When a class's limits began to apply to existing units, and what applied before.

    Re-judging history before that date against this edition would be wrong; parkwatch does not
    ship the earlier edition, so such windows are not judged (compliance/applicability.py).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date = Field(alias="from")
    earlier: str  # the edition that applied before, e.g. "GB 13271-2001"
    clause: str
    # Only units built (EIA approved) before this date waited: newer ones applied it at once.
    built_before: date | None = None
    larger: Larger | None = None


class Standard(BaseModel):
    """One edition of a standard."""

    model_config = ConfigDict(extra="forbid")

    id: str
    family: str
    number: str
    title: str
    title_en: str
    medium: Medium
    effective_from: date
    effective_to: date | None = None
    classes: dict[str, str] = Field(default_factory=dict)
    sectors: dict[str, str] = Field(default_factory=dict)
    judgement: dict[str, Any] = Field(default_factory=dict)
    reference_o2: dict[str, Setting] = Field(default_factory=dict)
    validity: dict[str, Setting] = Field(default_factory=dict)
    requires: dict[str, Any] = Field(default_factory=dict)
    class_from: dict[str, ClassFrom] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    confidence_note: str | None = None
    limits: list[Limit] = Field(default_factory=list)
    aqi: AqiTable | None = None

    @field_validator("classes", mode="before")
    @classmethod
    def _class_keys(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    def in_force(self, on: date) -> bool:
        """True when this edition applies on that date."""
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def setting(self, name: str, default: float) -> float:
        """A validity minimum from the file, or the default."""
        entry = self.validity.get(name)
        return entry.value if entry else default

    def summary(self) -> dict[str, Any]:
        """The catalogue line of this edition."""
        return {
            "id": self.id,
            "family": self.family,
            "number": self.number,
            "title": self.title,
            "title_en": self.title_en,
            "medium": self.medium,
            "effective_from": self.effective_from.isoformat(),
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "classes": list(self.classes),
        }


class Catalog:
    """Every edition, by id and by family."""

    def __init__(self, standards: list[Standard]) -> None:
        self.by_id = {s.id: s for s in standards}
        self.families: dict[str, list[Standard]] = {}
        for s in sorted(standards, key=lambda s: s.effective_from):
            self.families.setdefault(s.family, []).append(s)

    def editions(self, ident: str) -> list[Standard]:
        """Every edition an id names: one for 'GB18918-2002', all of the family for 'GB3095'."""
        key = ident.strip().upper().replace(" ", "")
        exact = [s for sid, s in self.by_id.items() if sid.upper() == key]
        if exact:
            return exact
        editions = next((v for k, v in self.families.items() if k.upper() == key), None)
        if editions is None:
            raise CatalogError(ident, f"no such standard; the catalogue has {', '.join(sorted(self.by_id))}")
        return editions

    def resolve(self, ident: str, on: date | None = None) -> Standard:
        """An edition by its id ('GB18918-2002'), or by family ('GB3095') as in force on `on`."""
        key = ident.strip().upper().replace(" ", "")
        for sid, standard in self.by_id.items():
            if sid.upper() == key:
                return standard
        editions = next((v for k, v in self.families.items() if k.upper() == key), None)
        if editions is None:
            known = ", ".join(sorted(self.by_id))
            raise CatalogError(ident, f"no such standard; the catalogue has {known}")
        if on is None:
            return editions[-1]
        for edition in reversed(editions):
            if edition.in_force(on):
                return edition
        first = editions[0]
        raise CatalogError(
            ident, f"no edition in force on {on.isoformat()} (the first, {first.id}, from {first.effective_from})"
        )


def _load() -> list[Standard]:
    standards = []
    folder = resources.files("schemas").joinpath("standards")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            standard = Standard.model_validate(yaml.safe_load(entry.read_text(encoding="utf-8")))
        except Exception as exc:
            raise CatalogError(entry.name, str(exc)) from exc
        if f"{standard.id}.yaml" != entry.name:
            raise CatalogError(entry.name, f"the file of {standard.id} must be named {standard.id}.yaml")
        standards.append(standard)
    return standards


@lru_cache(maxsize=1)
def catalogue() -> Catalog:
    """The catalogue of standards (read once)."""
    return Catalog(_load())
