"""Plausible values per station kind and parameter: a daily cycle plus a bounded random walk."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

from schemas.stations import StationKind

# (typical value, relative daily swing, relative noise) in the stored unit of the code at that
# kind of station. Outlet values sit under GB 18918 class 1A (COD 50, NH3-N 5, TP 0.5, TN 15);
# air under GB 3095 class 2; stacks under GB 4915 kiln limits (SO2 200, NOx 400, dust 30).
TYPICAL: dict[StationKind, dict[str, tuple[float, float, float]]] = {
    StationKind.WASTEWATER_INLET: {
        "w01018": (280.0, 0.25, 0.05),
        "w21003": (28.0, 0.2, 0.05),
        "w21011": (4.0, 0.2, 0.05),
        "w21001": (38.0, 0.2, 0.05),
        "w01001": (7.3, 0.02, 0.01),
        "w00000": (120.0, 0.4, 0.05),
    },
    StationKind.WASTEWATER_OUTLET: {
        "w01018": (24.0, 0.15, 0.05),
        "w21003": (0.9, 0.3, 0.08),
        "w21011": (0.18, 0.2, 0.05),
        "w21001": (8.5, 0.15, 0.05),
        "w01001": (7.1, 0.02, 0.01),
        "w00000": (115.0, 0.4, 0.05),
    },
    StationKind.AMBIENT_AIR: {
        "a34004": (38.0, 0.35, 0.08),
        "a34002": (65.0, 0.3, 0.08),
        "a21026": (9.0, 0.3, 0.08),
        "a21004": (32.0, 0.4, 0.08),
        "a05024": (70.0, 0.8, 0.08),
        "a21005": (0.8, 0.3, 0.05),
    },
    StationKind.STACK: {
        "a21026": (45.0, 0.1, 0.06),
        "a21002": (210.0, 0.1, 0.05),
        "a34013": (9.0, 0.1, 0.08),
        "a19001": (10.5, 0.03, 0.02),
        "a00000": (95.0, 0.1, 0.03),
        "a01012": (135.0, 0.05, 0.02),
        "a01014": (8.0, 0.1, 0.05),
    },
}
# Peak hour of the daily cycle: flow and loads follow morning use, O3 the afternoon sun.
PEAK_HOUR = {"a05024": 15.0, "w00000": 10.0}
DEFAULT_PEAK_HOUR = 9.0


@dataclass
class Series:
    """One parameter's evolving value at one station."""

    typical: float
    swing: float
    noise: float
    peak_hour: float
    walk: float = 0.0

    def next(self, when: datetime, rng: random.Random) -> float:
        """The value at `when` (local time), stepping the random walk once."""
        self.walk = max(-0.3, min(0.3, self.walk * 0.9 + rng.gauss(0, self.noise)))
        hour = when.hour + when.minute / 60
        cycle = math.cos((hour - self.peak_hour) / 24 * 2 * math.pi)
        return max(0.0, self.typical * (1 + self.swing * cycle + self.walk))


@dataclass
class StationModel:
    """Every parameter of one simulated station."""

    kind: StationKind
    codes: list[str]
    series: dict[str, Series] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table = TYPICAL[self.kind]
        for code in self.codes:
            typical, swing, noise = table.get(code, (1.0, 0.1, 0.05))
            self.series[code] = Series(typical, swing, noise, PEAK_HOUR.get(code, DEFAULT_PEAK_HOUR))

    def sample(self, when: datetime, rng: random.Random) -> dict[str, float]:
        """One reading of every parameter, rounded as instruments report."""
        return {code: round(s.next(when, rng), 3) for code, s in self.series.items()}
