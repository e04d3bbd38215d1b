"""The registry: `stations load` upserts parks and stations, refuses bad files whole, and the running
ingest sees changes at once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from ingest.registry import ensure_parameters, load_registry_file
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.registry import MAX_REGISTRY_BYTES, MAX_REGISTRY_VALUES, RegistryFileError, parse_registry
from simulators.fleet import kiln_fleet
from tests.helpers import cli_env, count_readings, eventually, fetch, message, publish, recent, run_cli

REGISTRY = """
parks:
  - {id: cs-etdz, name: 长沙经济技术开发区, city: 长沙, tier: national}
stations:
  - {id: cs-etdz-wwtp-out, park_id: cs-etdz, kind: wastewater_outlet, mn: "43010000000001",
     parameters: [w01018, w21003, w21011, w21001, w01001, w00000],
     standard: GB18918-2002, class: 1A, limits: {w01018: 40}}
  - {id: cs-etdz-air, park_id: cs-etdz, kind: ambient_air, parameters: [pm25, PM10, so2, no2, o3, co],
     units: {pm25: mg/m3}}
"""


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=cli_env(settings))


def test_load_yaml_then_update(settings: Settings, tmp_path: Path) -> None:
    """Parks and stations are upserted; aliases become codes; extra keys are kept in attrs."""
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    result = _cli(settings, "stations", "load", str(path))
    assert result.returncode == 0, result.stderr
    assert "loaded 1 park(s) and 2 station(s)" in result.stdout
    assert "kept extra keys verbatim for later use: tier" in result.stderr  # the one key the registry does not know

    listed = _cli(settings, "stations", "list", "--json")
    stations = {json.loads(line)["id"]: json.loads(line) for line in listed.stdout.splitlines()}
    assert stations["cs-etdz-wwtp-out"]["mn"] == "43010000000001"
    assert stations["cs-etdz-air"]["timezone"] == "Asia/Shanghai"

    path.write_text(
        REGISTRY.replace('mn: "43010000000001"', 'mn: "43010000000009"').replace("tier: national", "tier: provincial")
    )
    assert _cli(settings, "stations", "load", str(path)).returncode == 0
    listed = _cli(settings, "stations", "list", "--json")
    assert {json.loads(line)["mn"] for line in listed.stdout.splitlines()} == {"43010000000009", None}


async def test_registry_rows(settings: Settings, tmp_path: Path) -> None:
    """What the database holds after a load: codes, units, attrs."""
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(yaml.safe_load(REGISTRY), ensure_ascii=False))
    assert _cli(settings, "stations", "load", str(path)).returncode == 0
    rows = await fetch(
        settings.DATABASE_URL,
        """SELECT s.id, p.code, sp.unit, s.attrs FROM stations s JOIN station_parameters sp USING (sid)
           JOIN parameters p USING (pid) ORDER BY s.id, p.code""",
    )
    air = [(r["code"], r["unit"]) for r in rows if r["id"] == "cs-etdz-air"]
    assert air == [
        ("a05024", None),
        ("a21004", None),
        ("a21005", None),
        ("a21026", None),
        ("a34002", None),
        ("a34004", "mg/m3"),
    ]
    out_attrs = json.loads(next(r["attrs"] for r in rows if r["id"] == "cs-etdz-wwtp-out"))
    assert out_attrs == {"standard": "GB18918-2002", "class": "1A", "limits": {"w01018": 40.0}, "min_interval": 1}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "stations:\n  - {id: a, park_id: nowhere, kind: stack}\n",
            "park_id 'nowhere' is neither in the file nor registered",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: boiler}\n",
            "stations.0.kind",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, timezone: Mars/Base}\n",
            "unknown IANA time zone",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack}\n  - {id: a, park_id: p, kind: stack}\n",
            "station id 'a' appears twice",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, mn: '1'}\n  - {id: b, park_id: p, kind: stack, mn: '1'}\n",
            "station mn '1' appears twice",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: 'a/b', park_id: p, kind: stack}\n",
            "stations.0.id",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, parameters: ['so2', 'SO2']}\n",
            "listed twice",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, parameters: [so2], units: {so2: bananas}}\n",
            "not a unit parkwatch knows",
        ),
        ("parks: [{id: p, name: P, city: C}\n", "not valid YAML"),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, standard: GB9999}\n",
            "no such standard",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, standard: GB4915-2013, class: 1A}\n",
            "class must be one of",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: stack, standard: GB18918-2002, class: 1A}\n",
            "not a stack station",
        ),
        (
            "parks: [{id: p, name: P, city: C}]\nstations:\n  - {id: a, park_id: p, kind: wastewater_outlet, standard: GB8978-1996, class: 1, sector: bakery}\n",
            "not one of GB8978-1996's sectors",
        ),
        ("parks: [{id: p, name: P, city: C}]\nrivers: []\n", "rivers"),
    ],
)
async def test_bad_registry_is_refused_whole(settings: Settings, tmp_path: Path, text: str, problem: str) -> None:
    """A bad file is refused with the problem named, exit status 1, and nothing loaded."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _cli(settings, "stations", "load", str(path))
    assert result.returncode == 1
    assert "refused, nothing loaded" in result.stderr
    assert problem in result.stderr
    assert await fetch(settings.DATABASE_URL, "SELECT id FROM parks") == []


async def test_mn_owned_by_another_station_is_refused(settings: Settings, registry: None, tmp_path: Path) -> None:
    """An MN already registered to another station cannot be taken over silently."""
    path = tmp_path / "steal.yaml"
    path.write_text("stations:\n  - {id: thief, park_id: p1, kind: stack, mn: '43010000000101'}\n")
    result = _cli(settings, "stations", "load", str(path))
    assert result.returncode == 1
    assert "already belongs to station 'p1-out'" in result.stderr


async def test_running_ingest_sees_a_new_station_at_once(
    settings: Settings, ingest: IngestService, tmp_path: Path
) -> None:
    """After `stations load`, the new station's readings are accepted without a restart."""
    path = tmp_path / "new.yaml"
    path.write_text("stations:\n  - {id: p1-new, park_id: p1, kind: ambient_air, parameters: [pm25]}\n")
    assert _cli(settings, "stations", "load", str(path)).returncode == 0
    await eventually(lambda: _known(ingest, "p1-new"), bool, timeout=5)
    await publish(settings, "p1", "p1-new", message("p1-new", recent(1), {"pm25": 41.0}))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    assert await fetch(settings.DATABASE_URL, "SELECT id FROM dead_letters") == []


async def _known(service: IngestService, station_id: str) -> bool:
    return station_id in service.registry.current.stations


async def test_registry_api(api: httpx.AsyncClient) -> None:
    """GET /parks, /parks/{id}, /stations (filters) and /stations/{id}, with 404s that say what."""
    parks = (await api.get("/api/v1/parks")).json()["results"]
    assert [(p["id"], p["city"], p["stations"]) for p in parks] == [("p1", "长沙", 3), ("p2", "株洲", 1)]
    park = (await api.get("/api/v1/parks/p1")).json()
    assert sorted(s["id"] for s in park["stations"]) == ["p1-air", "p1-out", "p1-stack"]
    stacks = (await api.get("/api/v1/stations", params={"kind": "stack"})).json()["results"]
    assert [s["id"] for s in stacks] == ["p1-stack"]
    one = (await api.get("/api/v1/stations/p2-out")).json()
    assert one["timezone"] == "Asia/Urumqi"
    assert "ys1000" in one["parameters"] and "w01018" in one["parameters"]
    missing = await api.get("/api/v1/stations/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "unknown_station"
    assert (await api.get("/api/v1/stations", params={"kind": "volcano"})).status_code == 422


# -- found by `parkwatch fuzz` ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "raw", "says"),
    [
        ("YAML", REGISTRY.encode() + b"\xff\xfe", "not UTF-8 text"),
        ("JSON", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("YAML", b"parks: " + b"9" * 5000, "not valid YAML"),
        ("JSON", b'{"parks": ' + b"9" * 5000 + b"}", "not valid JSON"),
        ("YAML", b"x" * (MAX_REGISTRY_BYTES + 1), "larger than a registry can be"),
    ],
    ids=["not-utf8", "deep-nesting", "huge-int-yaml", "huge-int-json", "too-large"],
)
def test_a_hostile_registry_is_refused_with_a_problem_not_a_traceback(fmt: str, raw: bytes, says: str) -> None:
    with pytest.raises(RegistryFileError) as caught:
        parse_registry(raw, fmt, "fuzzed.yaml")
    assert any(says in p for p in caught.value.problems), caught.value.problems


def test_registry_problems_quote_a_hostile_value_only_in_part() -> None:
    doc = yaml.safe_load(REGISTRY)
    doc["stations"][0]["id"] = "x" * 5000
    doc["stations"][0]["kind"] = "y" * 5000
    with pytest.raises(RegistryFileError) as caught:
        parse_registry(json.dumps(doc).encode(), "JSON", "fuzzed.json")
    assert caught.value.problems and all(len(p) <= 400 for p in caught.value.problems), caught.value.problems


def test_extra_keys_nested_deeper_than_eight_levels_are_refused() -> None:
    """A park's or station's keys of its own are stored and served as they are: flat facts, never
    the deep documents that make the JSON encoder serving them write past its buffer."""
    doc = yaml.safe_load(REGISTRY)
    deep: object = "permit"
    for _ in range(9):
        deep = [deep]
    doc["stations"][0]["permit"] = deep
    with pytest.raises(RegistryFileError) as caught:
        parse_registry(json.dumps(doc).encode(), "JSON", "deep.json")
    assert any("nests deeper than 8 levels" in p for p in caught.value.problems), caught.value.problems
    doc["stations"][0]["permit"] = {"no": "HN-2026-001", "issued": ["2026-01-01", {"by": "bureau"}]}
    doc["parks"][0]["operator"] = {"name": "园区管委会", "phones": ["0731-1234"]}
    parse_registry(json.dumps(doc).encode(), "JSON", "flat.json")


def test_a_billion_laughs_registry_is_refused_at_once() -> None:
    """Nine levels of ten YAML aliases: a few hundred bytes that expand to a billion values, which
    held the loader for hours; refused once validation would walk more than MAX_REGISTRY_VALUES."""
    levels = "\n".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9))
    text = f"l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n{levels}\n"
    text += "parks: [{id: p1, name: P, city: C}]\nstations: [{id: s1, park_id: p1, kind: stack, extra: *l8}]\n"
    with pytest.raises(RegistryFileError) as caught:
        parse_registry(text.encode(), "YAML", "laughs.yaml")
    assert caught.value.problems == [
        f"the document holds more than {MAX_REGISTRY_VALUES:,} values once its YAML aliases are expanded"
    ]


async def test_reloading_a_large_registry_draws_no_parameter_ids(settings: Settings) -> None:
    """Parameter ids are a smallint sequence: loading a registry again, or meeting a device's code
    again, must not draw ids for codes already there (50,000 stations once ran it out)."""
    registry = kiln_fleet([(f"p{i % 5}", f"s{i:04d}") for i in range(300)], label="Ids")
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, registry)
        drawn = await conn.fetchval("SELECT last_value FROM parameters_pid_seq")
        for _ in range(3):
            await load_registry_file(conn, registry)
        await ensure_parameters(conn, ["x90001", "x90002"])
        assert await conn.fetchval("SELECT last_value FROM parameters_pid_seq") == drawn + 2
        pids = await ensure_parameters(conn, ["x90001", "x90002", "a21026"])
        await ensure_parameters(conn, ["x90001", "x90002"])
        assert await conn.fetchval("SELECT last_value FROM parameters_pid_seq") == drawn + 2
        assert set(pids) == {"x90001", "x90002", "a21026"}
        assert await conn.fetchval("SELECT count(*) FROM station_parameters") == 300 * 8
    finally:
        await conn.close()
