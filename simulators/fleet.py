"""A simulated province: the 14 cities of Hunan, a few parks each, and each park's stations."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from schemas.registry import ParkSpec, RegistryFile, StationSpec
from schemas.stations import StationKind
from simulators.loadgen import BENCH_CODES

# (id prefix, city) for the 14 prefecture-level divisions of Hunan.
CITIES: tuple[tuple[str, str], ...] = (
    ("cs", "长沙"),
    ("zz", "株洲"),
    ("xt", "湘潭"),
    ("hy", "衡阳"),
    ("sy", "邵阳"),
    ("yy", "岳阳"),
    ("cd", "常德"),
    ("zjj", "张家界"),
    ("yiy", "益阳"),
    ("cz", "郴州"),
    ("yz", "永州"),
    ("hh", "怀化"),
    ("ld", "娄底"),
    ("xx", "湘西"),
)
# Each city's centre on the dashboard's map (api/static/dashboard/maps/hunan.json, GCJ-02): the
# simulated parks stand around it.
CITY_CENTRES: dict[str, tuple[float, float]] = {
    "长沙": (113.1584, 28.2238), "株洲": (113.5228, 27.1155), "湘潭": (112.6086, 27.7283),
    "衡阳": (112.5797, 26.791), "邵阳": (110.8796, 26.91), "岳阳": (113.2599, 29.0633),
    "常德": (111.5251, 29.297), "张家界": (110.5318, 29.3897), "益阳": (111.9567, 28.572),
    "郴州": (113.1417, 25.8113), "永州": (111.7347, 25.7703), "怀化": (110.08, 27.5451),
    "娄底": (111.6185, 27.7357), "湘西": (109.7318, 28.6918),
}  # fmt: skip
# How far from its city's centre the n-th park of a city stands (degrees), turning by the golden
# angle so that a city's parks never sit on one another.
PARK_SPREAD = 0.07
GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))
WATER = ["w01018", "w21003", "w21011", "w21001", "w01001", "w00000", "w01010"]
AIR = ["a34004", "a34002", "a21026", "a21004", "a05024", "a21005"]
STACK = ["a21026", "a21002", "a34013", "a19001", "a00000", "a01012", "a01014"]
# A park's stations in the order --stations-per-park takes them: the treatment plant first (its
# outlet is what the provincial targets judge), an enterprise discharging to it, then the air
# station, then the key enterprises' stacks.
ROSTER: tuple[tuple[str, dict[str, Any]], ...] = (
    ("wwtp-in", {"kind": "wastewater_inlet", "parameters": ["w01018", "w21003", "w21011", "w21001", "w00000"]}),
    ("wwtp-out", {"kind": "wastewater_outlet", "parameters": WATER, "standard": "GB18918-2002", "class": "1A"}),
    # An enterprise's wastewater outlet discharging to the plant (GB 8978 class 3: into a sewer
    # that leads to a treatment plant), its annual COD cap in kg: the park's treatment rate and
    # total-quantity control (docs/kpis.md).
    (
        "ent-w1",
        {
            "kind": "wastewater_outlet",
            "parameters": ["w01018", "w21003", "w00000"],
            "standard": "GB8978-1996",
            "class": "3",
            "construction_date": "2015-01-01",
            "caps": {"w01018": 150000},
        },
    ),
    ("air", {"kind": "ambient_air", "parameters": AIR, "standard": "GB3095", "class": "2"}),
    (
        "cement-k1",
        {
            "kind": "stack",
            "parameters": STACK,
            "standard": "GB4915-2013",
            "class": "kiln",
            "model": "cement",
            "caps": {"a21026": 400000, "a21002": 1200000},
        },
    ),
    (
        "steel-s1",
        {"kind": "stack", "parameters": STACK, "standard": "GB28662-2012", "class": "sinter", "model": "steel"},
    ),
    (
        "power-b1",
        {"kind": "stack", "parameters": STACK, "standard": "GB13223-2011", "class": "coal-new", "model": "power"},
    ),
)


def province(*, parks: int = 2 * len(CITIES), stations_per_park: int = 6) -> RegistryFile:
    """The registry of a simulated province, loadable with `parkwatch stations load`.

    Parks are dealt to the 14 cities in turn (park 15 is Changsha's second); each park takes the
    first `stations_per_park` stations of ROSTER, cycling for more.
    """
    park_specs: list[ParkSpec] = []
    stations: list[StationSpec] = []
    serial = 0
    for n in range(parks):
        c, p = n % len(CITIES), n // len(CITIES)
        prefix, city = CITIES[c]
        park_id = f"{prefix}-p{p + 1}"
        lon, lat = CITY_CENTRES[city]
        radius, angle = PARK_SPREAD * math.sqrt(p + 1), GOLDEN_ANGLE * p
        location = (round(lon + radius * math.cos(angle), 4), round(lat + radius * math.sin(angle), 4))
        park_specs.append(ParkSpec(id=park_id, name=f"{city}第{p + 1}工业园区", city=city, location=location))
        for k in range(stations_per_park):
            role, spec = ROSTER[k % len(ROSTER)]
            copy = k // len(ROSTER)
            suffix = f"-{copy + 1}" if copy else ""
            serial += 1
            doc: dict[str, Any] = {
                "id": f"{park_id}-{role}{suffix}",
                "park_id": park_id,
                "mn": f"43{c:02d}{p:02d}{serial:010d}",
                "name": f"{city} {park_id} {role}{suffix}",
                **spec,
            }
            if role == "wwtp-out":
                doc["inlet"] = f"{park_id}-wwtp-in{suffix}"  # the roster puts the inlet just before
            if role == "ent-w1":
                doc["discharges_to"] = f"{park_id}-wwtp-in{suffix}"
                doc["construction_date"] = "2012-06-01"
            stations.append(StationSpec.model_validate(doc))
    return RegistryFile(parks=park_specs, stations=stations)


def as_yaml_doc(registry: RegistryFile) -> dict[str, Any]:
    """The registry as the document `stations load` reads."""
    return {
        "parks": [p.model_dump(exclude_none=True) for p in registry.parks],
        "stations": [
            {**s.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True), **s.extra()}
            | {"id": s.id, "park_id": s.park_id, "kind": s.kind.value}
            for s in registry.stations
        ],
    }


def kiln_fleet(stations: Iterable[tuple[str, str]], *, label: str) -> RegistryFile:
    """A registry of cement kiln stacks reporting the benchmark's parameters, as (park, station) pairs."""
    pairs = list(stations)
    return RegistryFile(
        parks=[ParkSpec(id=p, name=f"{label} park {p}", city="长沙") for p in sorted({p for p, _ in pairs})],
        stations=[
            StationSpec.model_validate(
                {
                    "id": s,
                    "park_id": p,
                    "kind": StationKind.STACK,
                    "parameters": BENCH_CODES,
                    "standard": "GB4915-2013",
                    "class": "kiln",
                }
            )
            for p, s in pairs
        ],
    )
