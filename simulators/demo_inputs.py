"""What the demo's parks report, so that its assessment ranks them at once (docs/kpis.md).

No sensor gives a park's monthly wastewater volumes where the meters have not covered a day, its
solid waste or its reported indicators: parks report them. A fresh demo has a few hours of
readings, so without reports every park of its assessment would be `insufficient_data`. Before it
serves, the demo stores, for every park, the previous month and the month under way:

- the **volumes** of its plant's inlet and outlet and of the enterprise outlet discharging to it,
  one report per station and calendar month (what `POST /api/v1/volumes` stores), near the
  simulated plant's flow so that a day its meters do cover looks alike;
- its **solid waste**, general and hazardous, one park-level report each (`POST /api/v1/solid-waste`);
- its **facility coverage** and **energy intensity** (`POST /api/v1/assessment/inputs`).

Every value comes from a random generator seeded with the park's id and the month, so a demo
always reports the same. Three parks, drawn by the seed, lag: a plant that receives too little of
what its enterprise discharges (treatment rate under 95 %), waste left in storage (disposal and
utilisation under 90 %), or some of both, each with fewer facilities running and more energy
used. The others meet their targets, and differ in what is scored above them (facilities,
energy), so the ranking is not a tie and those three take its yellow cards.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg

from compliance.assessment import YELLOW_CARDS, report_input
from compliance.solidwaste import make_report, submit_report
from compliance.treatment import report_volume
from schemas.registry import RegistryFile
from schemas.stations import StationKind

logger = logging.getLogger(__name__)

REPORTER = "demo"
# The simulated plant's mean inflow (simulators/models.py, Plant: 120 L/s) as m³ a day.
PLANT_M3_PER_DAY = 120.0 * 86.4
# The ways a lagging park falls short, dealt to the laggards in turn.
TREATMENT, SOLID_WASTE, BOTH = "treatment", "solid_waste", "both"
LAGGING = (TREATMENT, SOLID_WASTE, BOTH)
# What a park reports, drawn from these ranges by how it lags (None: it does not):
# - received: the plant inlet's volume over what its enterprise discharges, the treatment rate
#   when under 1 (an inlet takes a little more than its enterprise: the sim's flows 0.97 of an
#   inlet's; a lagging plant less, through a leaking sewer or a bypass);
# - stored: the share of the month's solid waste left in storage, what keeps 处置利用率 under 1;
# - facilities: the share of enterprises whose facilities are built and running;
# - energy: tce per 10,000 yuan of industrial value added, as parks with cement kilns, sinter
#   plants and coal boilers use.
# A laggard's own shortfall (treatment, storage) costs it more points than its facilities and
# energy, and its shortfalls together more than a park that meets its targets can lose (facilities,
# energy, the kiln's exceedance hours): the three are the bottom three, carded for that shortfall.
RANGES: dict[str | None, dict[str, tuple[float, float]]] = {
    None: {"received": (0.97, 1.06), "stored": (0.01, 0.07), "facilities": (0.94, 1.0), "energy": (1.05, 1.25)},
    TREATMENT: {"received": (0.84, 0.87), "stored": (0.01, 0.07), "facilities": (0.85, 0.92), "energy": (1.15, 1.3)},
    SOLID_WASTE: {"received": (0.97, 1.06), "stored": (0.24, 0.28), "facilities": (0.85, 0.92), "energy": (1.15, 1.3)},
    BOTH: {"received": (0.87, 0.9), "stored": (0.16, 0.2), "facilities": (0.85, 0.92), "energy": (1.15, 1.3)},
}


@dataclass(frozen=True)
class Waste:
    """One month's solid waste of a category, in tonnes: nothing drawn from stock, nothing dumped."""

    utilised: float
    disposed: float
    stored: float

    @property
    def generated(self) -> float:
        """What the month produced: the identity with nothing from stock and nothing dumped."""
        return round(self.utilised + self.disposed + self.stored, 2)

    @property
    def rate(self) -> float:
        """The disposal and utilisation rate (处置利用率) the report gives."""
        return (self.utilised + self.disposed) / self.generated


@dataclass(frozen=True)
class ParkMonth:
    """What a park reports for a month."""

    park_id: str
    month: date
    lagging: str | None
    volumes_m3: dict[str, float]  # station id → the month's volume
    treatment_rate: float  # the inlet's volume over the enterprises' (at most 1)
    general: Waste
    hazardous: Waste
    enterprises: int
    facilities_running: int
    energy_intensity: float  # tce / 10⁴ yuan

    @property
    def facility_coverage(self) -> float:
        """The share of the park's enterprises whose facilities are built and running."""
        return round(self.facilities_running / self.enterprises, 4)


@dataclass(frozen=True)
class Stored:
    """What the demo stored: the months, the parks' reports and which parks lag."""

    months: list[date]
    reports: list[ParkMonth]
    laggards: list[str]


def months_reported(today: date) -> list[date]:
    """The previous month and the month under way, by their first days."""
    current = today.replace(day=1)
    return [(current - timedelta(days=1)).replace(day=1), current]


def laggards(park_ids: list[str], seed: int) -> list[str]:
    """The parks that lag, drawn by the seed; none when too few parks are ranked to card any."""
    if len(park_ids) <= YELLOW_CARDS:
        return []
    return sorted(random.Random(f"{seed}:laggards").sample(sorted(park_ids), YELLOW_CARDS))


def _waste(generated: float, stored_share: float, utilised_share: float) -> Waste:
    stored = round(generated * stored_share, 2)
    utilised = round((generated - stored) * utilised_share, 2)
    return Waste(utilised=utilised, disposed=round(generated - stored - utilised, 2), stored=stored)


def plan(registry: RegistryFile, months: list[date], seed: int) -> list[ParkMonth]:
    """Every park's reports for these months: plausible, seeded by park and month."""
    # none lag when too few parks are ranked to card any (the zip is then empty)
    chosen = laggards([p.id for p in registry.parks], seed)
    lagging = dict(zip(chosen, LAGGING[: len(chosen)], strict=True))
    out: list[ParkMonth] = []
    for park in registry.parks:
        stations = [s for s in registry.stations if s.park_id == park.id]
        sized = random.Random(f"{seed}:{park.id}")
        scale = sized.uniform(0.92, 1.08)  # the plant's size against the simulated one
        tonnage = sized.uniform(9_000, 26_000)  # general solid waste a month: slag, dust, ash
        enterprises = sized.randint(18, 60)
        how = lagging.get(park.id)
        ranges = RANGES[how]
        for month in months:
            rng = random.Random(f"{seed}:{park.id}:{month:%Y-%m}")
            days = calendar.monthrange(month.year, month.month)[1]
            received = rng.uniform(*ranges["received"])
            volumes: dict[str, float] = {}
            for s in stations:
                if s.kind is StationKind.WASTEWATER_INLET:
                    volumes[s.id] = round(PLANT_M3_PER_DAY * scale * days * rng.uniform(0.97, 1.03))
            for s in stations:
                if s.kind is not StationKind.WASTEWATER_OUTLET:
                    continue
                if s.discharges_to in volumes:  # an enterprise's outlet: what the plant should receive
                    volumes[s.id] = round(volumes[s.discharges_to] / received)
                elif s.inlet in volumes:  # the plant's outlet: a little less than it took in
                    volumes[s.id] = round(volumes[s.inlet] * rng.uniform(0.955, 0.985))
            stored = rng.uniform(*ranges["stored"])
            general = _waste(round(tonnage * rng.uniform(0.9, 1.1), 2), stored, rng.uniform(0.7, 0.88))
            hazardous = _waste(round(rng.uniform(25, 140), 2), stored * rng.uniform(0.5, 1.2), rng.uniform(0.05, 0.2))
            running = round(enterprises * rng.uniform(*ranges["facilities"]))
            energy = round(rng.uniform(*ranges["energy"]), 3)
            out.append(
                ParkMonth(
                    park_id=park.id,
                    month=month,
                    lagging=how,
                    volumes_m3=volumes,
                    treatment_rate=round(min(1.0, received), 4),
                    general=general,
                    hazardous=hazardous,
                    enterprises=enterprises,
                    facilities_running=running,
                    energy_intensity=energy,
                )
            )
    return out


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Hold a logger to warnings for the block: a line per report would bury the demo's first lines."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


async def store_inputs(conn: asyncpg.Connection, registry: RegistryFile, *, today: date, seed: int) -> Stored:
    """Store every park's reports for the previous month and the month under way, as the API does (one transaction)."""
    months = months_reported(today)
    reports = plan(registry, months, seed)
    async with conn.transaction():
        with _quiet("compliance.solidwaste"):
            await _store(conn, reports, today)
    stored = Stored(months=months, reports=reports, laggards=laggards([p.id for p in registry.parks], seed))
    logger.info(
        "demo: %d parks' volumes, solid waste and indicators reported for %s; lagging: %s",
        len(registry.parks), ", ".join(f"{m:%Y-%m}" for m in months), ", ".join(stored.laggards) or "none",
    )  # fmt: skip
    return stored


async def _store(conn: asyncpg.Connection, reports: list[ParkMonth], today: date) -> None:
    for r in reports:
        last = date(r.month.year, r.month.month, calendar.monthrange(r.month.year, r.month.month)[1])
        # A month under way is reported whole, as expected: only its complete days are counted,
        # and a day that the meters cover (the demo running past midnight) takes the metered volume.
        whole = "the month's volume" if last < today else "the month's expected volume"
        for station_id, volume in r.volumes_m3.items():
            await report_volume(
                conn, station_id=station_id, first_day=r.month, last_day=last, volume_m3=volume,
                reported_by=REPORTER, note=f"demo: {whole}, from the plant's ledger",
            )  # fmt: skip
        for category, waste in (("general", r.general), ("hazardous", r.hazardous)):
            report = make_report(
                park_id=r.park_id, month=r.month, category=category, generated=waste.generated,
                utilised=waste.utilised, disposed=waste.disposed, stored=waste.stored, reported_by=REPORTER,
                note="demo: the park's monthly ledger",
            )  # fmt: skip
            await submit_report(conn, report, today=today)
        await report_input(
            conn, park_id=r.park_id, period="month", on=r.month, indicator="facility_coverage",
            value=r.facility_coverage, reported_by=REPORTER,
            note=f"demo: {r.facilities_running} of {r.enterprises} enterprises' facilities built and running",
        )  # fmt: skip
        await report_input(
            conn, park_id=r.park_id, period="month", on=r.month, indicator="energy_intensity",
            value=r.energy_intensity, reported_by=REPORTER, note="demo: tce per 10,000 yuan of industrial value added",
        )  # fmt: skip
