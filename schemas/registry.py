"""The registry file `parkwatch stations load` takes: parks, stations and alert routing (YAML or JSON)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.alerting import ChannelSpec, RouteSpec
from schemas.catalogue import CatalogError, catalogue
from schemas.kpis import TARGET_NAMES
from schemas.parameters import catalog
from schemas.stations import CrcVariant, StationKind
from schemas.units import normalise

# Ids become MQTT topic levels and URL path segments: no '/', '+', '#' or spaces.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# HJ 212 MN: 24 hex characters by the 2017 text, 14 in 2005, 7-24 with letters and '_' in the field.
MN_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
# Vendor factor codes a station may declare beyond the HJ 212 tables ('a99054', 'ys1000', ...).
VENDOR_CODE_PATTERN = r"^[A-Za-z0-9_.-]{1,24}$"
SM4_KEY_BYTES = 16


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks (or single addresses); raises ValueError naming the bad one."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (e.g. 10.20.0.0/16)") from None
    return tuple(out)


# libyaml's safe loader where PyYAML was built with it: the pure-Python scanner is quadratic in
# nested flow collections ([[[[...), minutes for a hostile file of a few hundred kilobytes.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A province's registry (10,000 stations of a few hundred bytes) is a few megabytes; a file far
# larger is a mistake, and parsing it would hold the loader for minutes.
MAX_REGISTRY_BYTES = 32 * 2**20
# Values a registry may hold, counted as validation walks them: each use of a YAML alias counts
# again. 10,000 stations of 200 values each fit; nine nested levels of ten aliases (a "billion
# laughs") would hold the loader for hours (found looking into the registry fuzz run, docs/testing.md).
MAX_REGISTRY_VALUES = 2_000_000


class RegistryFileError(Exception):
    """The registry file cannot be read or does not validate; `problems` lists each one."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


# Keys of its own a park or station carries are stored and served as they are; they are flat
# facts (an operator, a permit number). Deeper nesting is refused: orjson, which serves them,
# writes past its buffer on some documents nested ~200 deep (found by `parkwatch fuzz`,
# docs/testing.md#fuzzing).
MAX_EXTRA_DEPTH = 8


def _extra_depth(value: Any, depth: int = 0) -> int:
    if depth > MAX_EXTRA_DEPTH:
        return depth  # deep enough to refuse: no need to walk the rest
    if isinstance(value, dict):
        return max((_extra_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((_extra_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


def _check_extra(extra: dict[str, Any] | None) -> None:
    for key, value in (extra or {}).items():
        if _extra_depth(value) > MAX_EXTRA_DEPTH:
            raise ValueError(f"{key!r} nests deeper than {MAX_EXTRA_DEPTH} levels; keep extra keys flat")


class ParkSpec(BaseModel):
    """A park as written in the registry file."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    city: str = Field(min_length=1)
    # Source networks the park's data loggers may reach the HJ 212 gateway from; absent: any
    # (docs/data-loggers.md#who-may-send-as-an-mn).
    gateway_networks: list[str] | None = None
    # The park's own KPI targets where they differ from the province's (docs/kpis.md#targets),
    # a figure's name → its threshold as a fraction.
    targets: dict[str, float] = Field(default_factory=dict)
    # Where the dashboard's map draws it: [longitude, latitude] in degrees, in the map's datum
    # (GCJ-02, as Chinese web maps use; docs/dashboard.md#the-map). Absent: at its city's centre.
    location: tuple[float, float] | None = None

    @field_validator("location")
    @classmethod
    def _location(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (-180 <= value[0] <= 180 and -90 <= value[1] <= 90):
            raise ValueError(f"location is [longitude, latitude] in degrees, not {list(value)}")
        return value

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if name not in TARGET_NAMES:
                raise ValueError(f"targets names {name!r}; the figures with a target are {', '.join(TARGET_NAMES)}")
            if not 0 < threshold <= 1:
                raise ValueError(f"target {name} must be a fraction in (0, 1], not {threshold}")
        return value

    @field_validator("gateway_networks")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_networks(value)
        return value

    @model_validator(mode="after")
    def _flat_extra(self) -> ParkSpec:
        _check_extra(self.model_extra)
        return self

    def attrs(self) -> dict[str, Any]:
        """What is stored in parks.attrs: the gateway's networks and keys beyond the known ones, verbatim."""
        networks = {"gateway_networks": self.gateway_networks} if self.gateway_networks is not None else {}
        targets = {"targets": self.targets} if self.targets else {}
        location = {"location": list(self.location)} if self.location is not None else {}
        return {**(self.model_extra or {}), **networks, **targets, **location}


class Hj212Profile(BaseModel):
    """How the platform speaks to one station's data logger (docs/data-loggers.md#dialects).

    Loggers that check the platform's replies accept only their own dialect: a logger computing
    a MODBUS CRC rejects a reply with the standard's CRC and sends its data again for ever.
    """

    model_config = ConfigDict(extra="forbid")

    # The CRC routine of replies; by default the station's own (`crc`).
    reply_crc: CrcVariant | None = None
    # ST of replies: "91" as the standard says, or "echo" the request's (some loggers check it).
    reply_st: Literal["91", "echo"] = "91"
    # Where a reply carries the request's QN: in the header (2017), or inside CP as HJ/T 212-2005
    # loggers expect (`CP=&&QN=…;QnRtn=1&&`).
    reply_qn: Literal["header", "cp"] = "header"
    # Codes the station did not declare: stored with an `undeclared_code` finding (False), or
    # refused (True) with the same finding, kept in the packet log.
    strict_codes: bool = False

    def stored(self) -> dict[str, Any]:
        """What differs from the defaults, as kept in stations.attrs."""
        return self.model_dump(mode="json", exclude_defaults=True)


class StationSpec(BaseModel):
    """A station as written in the registry file."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    park_id: str = Field(pattern=ID_PATTERN)
    kind: StationKind
    name: str | None = None
    mn: str | None = Field(default=None, pattern=MN_PATTERN)
    timezone: str = "Asia/Shanghai"
    parameters: list[str] = Field(default_factory=list)
    # code → the unit the station reports in when a message does not say (HJ 212 never does).
    units: dict[str, str] = Field(default_factory=dict)
    # HJ 212: the access password the logger must send (checked when set), and its CRC routine.
    pw: str | None = Field(default=None, min_length=1, max_length=32)
    crc: CrcVariant = CrcVariant.HJ212
    hj212: Hj212Profile = Field(default_factory=Hj212Profile)
    # HJ 212-2025: the SM4 key the logger encrypts its data areas with, as 32 hex digits or as
    # 16 ASCII characters (the standard's example key is sixteen '0's); stored as hex.
    sm4_key: str | None = None
    # Compliance profile: the standard and class the station is judged by, permit-specific
    # limits (排污许可) that replace the standard's, and the facts some limits depend on.
    standard: str | None = None
    class_: str | None = Field(default=None, alias="class")
    limits: dict[str, float] = Field(default_factory=dict)
    construction_date: date | None = None
    sector: str | None = None
    # A boiler's rated steam output, t/h: GB 13271-2014 applied to in-use boilers by size.
    capacity_t_h: float | None = Field(default=None, gt=0, le=10_000)
    # A wastewater outlet's inlet station: its daily influent decides GB 18918 class 3's removal rule.
    inlet: str | None = Field(default=None, pattern=ID_PATTERN)
    # An enterprise's wastewater outlet: the inlet station of the treatment plant it discharges
    # to, whose metered volume the park's treatment rate sets against this outlet's (docs/kpis.md).
    discharges_to: str | None = Field(default=None, pattern=ID_PATTERN)
    # Permitted annual emissions (总量控制), code → kg a calendar year (docs/kpis.md#loads).
    caps: dict[str, float] = Field(default_factory=dict)
    # Minutes one minute-data record covers (HJ 212 MinInterval): 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30.
    min_interval: int = Field(default=1, ge=1, le=60)
    # Minutes without data after which the station is offline (default PARKWATCH_ALERT_OFFLINE_AFTER).
    offline_after: float | None = Field(default=None, gt=0, le=7 * 24 * 60)
    # The instruments' measuring ranges, code → [low, high] in the stored unit: a value outside
    # is refused as out_of_range (schemas/ranges.py).
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("class_", mode="before")
    @classmethod
    def _class_text(cls, value: Any) -> Any:
        # YAML reads `class: 1` (GB 8978, GB 3095) as a number; classes are names.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("sm4_key")
    @classmethod
    def _sm4_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if re.fullmatch(r"[0-9A-Fa-f]{32}", value):
            return value.lower()
        if len(value) == SM4_KEY_BYTES and value.isascii():
            return value.encode("ascii").hex()
        raise ValueError("an SM4 key is 32 hex digits or 16 ASCII characters")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _codes(self) -> StationSpec:
        codes = []
        for name in self.parameters:
            code = catalog().resolve(name, self.kind)
            if code is None:
                if not _is_vendor_code(name):
                    raise ValueError(f"parameter {name!r} is neither an HJ 212 code, an alias nor a code")
                code = name
            if code in codes:
                raise ValueError(f"parameter {name!r} is listed twice (as {code})")
            codes.append(code)
        self.parameters = codes
        units = {}
        for name, unit in self.units.items():
            code = catalog().resolve(name, self.kind) or name
            if code not in codes:
                raise ValueError(f"units names {name!r}, which is not among the station's parameters")
            if normalise(unit) is None:
                raise ValueError(f"unit {unit!r} of {name!r} is not a unit parkwatch knows")
            units[code] = unit
        self.units = units
        ranges = {}
        for name, (low, high) in self.ranges.items():
            code = catalog().resolve(name, self.kind) or name
            if code not in codes:
                raise ValueError(f"ranges names {name!r}, which is not among the station's parameters")
            if not low < high:
                raise ValueError(f"range of {name!r} must be [low, high] with low < high")
            ranges[code] = (low, high)
        self.ranges = ranges
        caps = {}
        for name, kg in self.caps.items():
            code = catalog().resolve(name, self.kind) or name
            if code not in codes:
                raise ValueError(f"caps names {name!r}, which is not among the station's parameters")
            if not 0 < kg < 1e12:
                raise ValueError(f"cap of {name!r} must be a positive number of kg a year")
            caps[code] = kg
        self.caps = caps
        if caps and self.kind not in (StationKind.STACK, StationKind.WASTEWATER_OUTLET):
            raise ValueError("caps belong to a stack or a wastewater outlet")
        if self.discharges_to is not None and self.kind != StationKind.WASTEWATER_OUTLET:
            raise ValueError("discharges_to belongs to an enterprise's wastewater outlet")
        self._check_profile()
        return self

    def _check_profile(self) -> None:
        if self.standard is None:
            if self.class_ is not None or self.limits:
                raise ValueError("class and limits need a standard")
            return
        try:
            editions = catalogue().editions(self.standard)
        except CatalogError as exc:
            raise ValueError(str(exc)) from None
        medium = {StationKind.STACK: "stack", StationKind.AMBIENT_AIR: "ambient"}.get(self.kind, "water")
        if any(e.medium != medium for e in editions):
            raise ValueError(f"standard {self.standard} is for {editions[0].medium}, not a {self.kind.value} station")
        classes = set.intersection(*(set(e.classes) for e in editions))
        if self.class_ is None or str(self.class_) not in classes:
            raise ValueError(f"class must be one of {', '.join(sorted(classes))} for {self.standard}")
        self.class_ = str(self.class_)
        sectors = set().union(*(set(e.sectors) for e in editions))
        if self.sector is not None and self.sector not in sectors:
            listed = ", ".join(sorted(sectors)) or "none"
            raise ValueError(f"sector {self.sector!r} is not one of {self.standard}'s sectors ({listed})")
        limits = {}
        for name, value in self.limits.items():
            code = catalog().resolve(name, self.kind)
            if code is None:
                raise ValueError(f"limits names {name!r}, which is not a parameter of a {self.kind.value} station")
            limits[code] = value
        self.limits = limits

    def profile(self) -> dict[str, Any]:
        """The compliance profile as stored with the station (in its attrs)."""
        if self.standard is None:
            return {}
        out: dict[str, Any] = {"standard": self.standard, "class": self.class_, "min_interval": self.min_interval}
        if self.limits:
            out["limits"] = self.limits
        if self.construction_date:
            out["construction_date"] = self.construction_date.isoformat()
        if self.sector:
            out["sector"] = self.sector
        if self.capacity_t_h is not None:
            out["capacity_t_h"] = self.capacity_t_h
        if self.inlet:
            out["inlet"] = self.inlet
        return out

    @model_validator(mode="after")
    def _flat_extra(self) -> StationSpec:
        _check_extra(self.model_extra)
        return self

    def extra(self) -> dict[str, Any]:
        """Keys the registry does not know, kept verbatim."""
        return dict(self.model_extra or {})

    def attrs(self) -> dict[str, Any]:
        """What is stored in stations.attrs: the compliance profile and unknown keys."""
        alerting = {"offline_after": self.offline_after} if self.offline_after is not None else {}
        ranges = {"ranges": {code: list(r) for code, r in self.ranges.items()}} if self.ranges else {}
        dialect = {"hj212": self.hj212.stored()} if self.hj212.stored() else {}
        kpis: dict[str, Any] = {"caps": self.caps} if self.caps else {}
        if self.discharges_to:
            kpis["discharges_to"] = self.discharges_to
        return {**self.extra(), **self.profile(), **alerting, **ranges, **dialect, **kpis}


def _is_vendor_code(name: str) -> bool:
    return bool(re.match(VENDOR_CODE_PATTERN, name))


class RegistryFile(BaseModel):
    """The whole file: parks, then stations."""

    model_config = ConfigDict(extra="forbid")

    parks: list[ParkSpec] = Field(default_factory=list)
    stations: list[StationSpec] = Field(default_factory=list)
    # Where alert notices go (docs/alerts.md). A file that lists routes replaces every route;
    # channels are added or updated by id.
    channels: list[ChannelSpec] = Field(default_factory=list)
    routes: list[RouteSpec] | None = None

    @model_validator(mode="after")
    def _unique(self) -> RegistryFile:
        for label, values in (
            ("park id", [p.id for p in self.parks]),
            ("station id", [s.id for s in self.stations]),
            ("station mn", [s.mn for s in self.stations if s.mn]),
            ("channel id", [c.id for c in self.channels]),
        ):
            seen: set[str] = set()
            for value in values:
                if value in seen:
                    raise ValueError(f"{label} {value!r} appears twice")
                seen.add(value)
        kinds = {s.id: s.kind for s in self.stations}
        for s in self.stations:
            # A receiving plant named in the same file must be an inlet; one not in the file is
            # checked against the database when the file is loaded.
            if s.discharges_to is not None and kinds.get(s.discharges_to, StationKind.WASTEWATER_INLET) != (
                StationKind.WASTEWATER_INLET
            ):
                raise ValueError(f"station {s.id}: discharges_to {s.discharges_to!r} is not a wastewater inlet")
        return self


def read_registry(path: Path) -> RegistryFile:
    """Parse and validate a registry file (YAML, or JSON by its .json suffix)."""
    try:
        size = path.stat().st_size
        if size > MAX_REGISTRY_BYTES:
            raise RegistryFileError(str(path), [_too_large(size)])
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryFileError(str(path), [exc.strerror or str(exc)]) from None
    return parse_registry(data, "JSON" if path.suffix.lower() == ".json" else "YAML", str(path))


def _expands_beyond(data: Any, budget: int) -> bool:
    """True when walking `data` (shared lists and dicts once per reference) visits more than budget values."""
    stack = [data]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > budget:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _too_large(size: int) -> str:
    return f"{size:,} bytes: larger than a registry can be ({MAX_REGISTRY_BYTES:,})"


def parse_registry(raw: bytes, fmt: str, source: str) -> RegistryFile:
    """Parse and validate a registry's bytes (fmt JSON or YAML); problems name `source`."""
    if len(raw) > MAX_REGISTRY_BYTES:
        raise RegistryFileError(source, [_too_large(len(raw))])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryFileError(source, [f"not UTF-8 text: byte {exc.start} cannot be decoded"]) from None
    try:
        data = json.loads(text) if fmt == "JSON" else yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RegistryFileError(source, [f"not valid {fmt}: {str(exc)[:500]}"]) from None
    except RecursionError:
        raise RegistryFileError(source, [f"not valid {fmt}: nested too deeply"]) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RegistryFileError(source, [f"not valid {fmt}: {str(exc)[:200]}"]) from None
    if data is None:
        data = {}
    if _expands_beyond(data, MAX_REGISTRY_VALUES):
        raise RegistryFileError(
            source, [f"the document holds more than {MAX_REGISTRY_VALUES:,} values once its YAML aliases are expanded"]
        )
    try:
        return RegistryFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(_clip(f"{where}: {err['msg'].removeprefix('Value error, ')}"))
        raise RegistryFileError(source, problems) from None


# A problem quotes what the file says; a value of thousands of characters is cut in the middle,
# keeping the start of the sentence and its end (what was expected).
PROBLEM_CHARS = 400


def _clip(text: str) -> str:
    if len(text) <= PROBLEM_CHARS:
        return text
    return f"{text[: PROBLEM_CHARS - 150]} … ({len(text) - PROBLEM_CHARS + 3} chars) … {text[-130:]}"
