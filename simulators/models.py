"""Plausible station values: treatment plants, ambient air with its seasons, enterprise stacks.

Every model is deterministic for a seed and steps once per sample, in time order. Values sit
under the limits of the standards the fleet is registered with (mostly compliant): outlets under
GB 18918 class 1A, ambient air under GB 3095 class 2, stacks under their sector's standard after
correction to its reference oxygen. Scenario episodes (simulators/scenario.py) push them over.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

from schemas.registry import StationSpec
from schemas.stations import StationKind

# Stack sectors a simulated enterprise can belong to (registry key `model`), with (typical
# measured value, relative noise) per code at the stack: corrected to the reference O2 they sit
# at 30-60 % of the standard's limit (GB 4915 kiln, GB 28662 sinter, GB 13223 new coal units).
STACKS: dict[str, dict[str, tuple[float, float]]] = {
    "cement": {  # kiln tail, ~10.5 % O2 against a 10 % reference
        "a21026": (70.0, 0.08),
        "a21002": (220.0, 0.06),
        "a34013": (11.0, 0.1),
        "a19001": (10.5, 0.005),
        "a00000": (116.7, 0.03),  # m³/s (HJ 212 B02), 420,000 m³/h
        "a01012": (120.0, 0.02),
        "a01014": (9.0, 0.05),
    },
    "steel": {  # sinter machine head, ~15.5 % O2 against a 16 % reference
        "a21026": (95.0, 0.08),
        "a21002": (160.0, 0.06),
        "a34013": (18.0, 0.1),
        "a19001": (15.5, 0.005),
        "a00000": (250.0, 0.03),  # 900,000 m³/h
        "a01012": (140.0, 0.02),
        "a01014": (11.0, 0.05),
    },
    "power": {  # coal boiler after desulphurisation, ~6.5 % O2 against a 6 % reference
        "a21026": (32.0, 0.08),
        "a21002": (48.0, 0.06),
        "a34013": (6.0, 0.1),
        "a19001": (6.5, 0.005),
        "a00000": (416.7, 0.03),  # 1,500,000 m³/h
        "a01012": (50.0, 0.02),
        "a01014": (13.0, 0.04),
    },
}
# Largest relative drift of a stack's O2 (see StationModel._walk).
O2_BOUND = 0.03
# A wastewater plant: influent (typical, diurnal swing) and the share each process removes.
INFLUENT: dict[str, tuple[float, float]] = {
    "w01018": (280.0, 0.2),  # COD
    "w21003": (28.0, 0.15),  # NH3-N
    "w21011": (4.0, 0.15),  # TP
    "w21001": (38.0, 0.15),  # TN
    "w01017": (120.0, 0.2),  # BOD5
    "w01012": (180.0, 0.25),  # SS
}
REMOVAL = {"w01018": 0.92, "w21003": 0.96, "w21011": 0.95, "w21001": 0.76, "w01017": 0.96, "w01012": 0.97}
# Nitrification slows in cold water: below this many °C the NH3-N removal falls towards 85 %
# (GB 18918 allows 8 instead of 5 mg/L at or below 12 °C for that reason).
COLD_WATER_C = 12.0
# Ambient air, µg/m³ (CO mg/m³): typical level, relative winter excess, rush-hour or sun swing.
AMBIENT: dict[str, tuple[float, float, float]] = {
    "a34004": (30.0, 0.5, 0.25),  # PM2.5, worse in winter, rush hours
    "a34002": (52.0, 0.4, 0.25),  # PM10
    "a21026": (9.0, 0.4, 0.2),  # SO2
    "a21004": (28.0, 0.3, 0.35),  # NO2, rush hours
    "a05024": (50.0, -0.5, 0.6),  # O3, summer and afternoon
    "a21005": (0.7, 0.3, 0.2),  # CO
}


def _season(when: datetime) -> float:
    """+1 in mid-January, −1 in mid-July."""
    day = when.timetuple().tm_yday
    return math.cos((day - 15) / 365.25 * 2 * math.pi)


def _hour(when: datetime) -> float:
    return when.hour + when.minute / 60


def water_temperature(when: datetime) -> float:
    """A treatment plant's water, °C: 10 in winter to 26 in summer, a little warmer by day."""
    return 18.0 - 8.0 * _season(when) + 0.5 * math.cos((_hour(when) - 15) / 24 * 2 * math.pi)


@dataclass
class Walk:
    """A bounded AR(1) wander around 1.0: instruments and processes drift, not jump."""

    noise: float
    bound: float = 0.3
    level: float = 0.0

    def step(self, rng: random.Random) -> float:
        """The next relative factor."""
        self.level = max(-self.bound, min(self.bound, self.level * 0.95 + rng.gauss(0, self.noise)))
        return 1.0 + self.level


@dataclass
class Plant:
    """One wastewater plant: its inlet and outlet stations sample the same influent."""

    rng: random.Random
    walks: dict[str, Walk] = field(default_factory=dict)
    last: datetime | None = None
    influent: dict[str, float] = field(default_factory=dict)

    def at(self, when: datetime) -> dict[str, float]:
        """Influent concentrations and flow at `when` (stepped once per instant)."""
        if when != self.last:
            self.last = when
            h = _hour(when)
            morning = math.cos((h - 10) / 24 * 2 * math.pi)
            self.influent = {"w00000": 120.0 * (1 + 0.35 * morning) * self._walk("w00000", 0.02)}
            for code, (typical, swing) in INFLUENT.items():
                self.influent[code] = typical * (1 + swing * morning) * self._walk(code, 0.02)
        return self.influent

    def _walk(self, code: str, noise: float) -> float:
        return self.walks.setdefault(code, Walk(noise)).step(self.rng)


@dataclass
class StationModel:
    """Every parameter of one simulated station."""

    station: StationSpec
    rng: random.Random
    plant: Plant | None = None
    walks: dict[str, Walk] = field(default_factory=dict)

    def sample(self, when: datetime) -> dict[str, float]:
        """One value of every declared parameter at `when` (local time), rounded as instruments report."""
        kind = self.station.kind
        if kind is StationKind.STACK:
            values = self._stack(when)
        elif kind is StationKind.AMBIENT_AIR:
            values = self._ambient(when)
        else:
            values = self._water(when, outlet=kind is StationKind.WASTEWATER_OUTLET)
        return {code: round(values.get(code, self._other(code)), 3) for code in self.station.parameters}

    def _walk(self, code: str, noise: float) -> float:
        # O2 is held tight: the reference-oxygen correction (21 − ref)/(21 − O2) amplifies its
        # drift, and a sinter stack at 15.5 % would swing its corrected values by half.
        bound = O2_BOUND if code == "a19001" else 0.3
        return self.walks.setdefault(code, Walk(noise, bound)).step(self.rng)

    def _other(self, code: str) -> float:
        return 1.0 * self._walk(code, 0.02)

    def _water(self, when: datetime, *, outlet: bool) -> dict[str, float]:
        plant = self.plant or Plant(self.rng)
        self.plant = plant
        influent = plant.at(when)
        temp = water_temperature(when)
        out = {"w00000": influent["w00000"] * (0.97 if outlet else 1.0), "w01010": temp}
        for code, conc in influent.items():
            if code == "w00000":
                continue
            if not outlet:
                out[code] = conc
                continue
            removal = REMOVAL[code]
            if code == "w21003" and temp <= COLD_WATER_C:
                removal -= 0.1 * (COLD_WATER_C - temp) / 2
            out[code] = conc * (1 - removal) * self._walk(code, 0.03)
        out["w01001"] = (7.1 if outlet else 7.4) + 0.15 * (self._walk("w01001", 0.05) - 1) * 4
        return out

    def _ambient(self, when: datetime) -> dict[str, float]:
        season, h = _season(when), _hour(when)
        rush = max(math.cos((h - 8) / 24 * 4 * math.pi), 0.0)  # peaks at 08:00 and 20:00
        sun = max(math.cos((h - 15) / 24 * 2 * math.pi), -0.6)  # peaks at 15:00
        out = {}
        for code, (typical, winter, swing) in AMBIENT.items():
            daily = sun if code == "a05024" else rush
            out[code] = typical * (1 + winter * season) * (1 + swing * daily) * self._walk(code, 0.03)
        return out

    def _stack(self, when: datetime) -> dict[str, float]:
        sector = str((self.station.model_extra or {}).get("model", "cement"))
        table = STACKS.get(sector, STACKS["cement"])
        load = 1 + 0.05 * math.cos((_hour(when) - 14) / 24 * 2 * math.pi)
        return {code: typical * load * self._walk(code, noise) for code, (typical, noise) in table.items()}


def models_for(stations: list[StationSpec], seed: int) -> dict[str, StationModel]:
    """A model per station; a plant's inlet and outlet (linked by the outlet's `inlet`) share it."""
    plants: dict[str, Plant] = {}
    out = {}
    for s in stations:
        rng = random.Random(f"{seed}:{s.id}")
        plant = None
        if s.kind is StationKind.WASTEWATER_OUTLET and s.inlet:
            plant = plants.setdefault(s.inlet, Plant(random.Random(f"{seed}:plant:{s.inlet}")))
        elif s.kind is StationKind.WASTEWATER_INLET:
            plant = plants.setdefault(s.id, Plant(random.Random(f"{seed}:plant:{s.id}")))
        out[s.id] = StationModel(s, rng, plant)
    return out
