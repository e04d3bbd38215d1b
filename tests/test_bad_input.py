"""Every class of bad input lands in dead letters with its reason; the service keeps going."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ingest.registry import load_registry_file
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.registry import RegistryFile, StationSpec
from schemas.stations import StationKind
from tests.helpers import cli_env, count_readings, eventually, fetch, message, publish, recent, run_cli

NOW = datetime.now(UTC)

# (reason, park, topic station, payload) — one payload per reason code of the contract.
BAD_INPUTS: list[tuple[str, str, str, bytes | dict | list]] = [
    ("invalid_json", "p1", "p1-out", b'{"station_id": "p1-out", "ts": '),
    ("invalid_json", "p1", "p1-out", b"\xff\xfe not utf-8"),
    ("schema", "p1", "p1-out", {"station_id": "p1-out", "readings": [{"parameter": "cod", "value": 1}]}),
    ("schema", "p1", "p1-out", {"station_id": "p1-out", "ts": NOW.isoformat(), "readings": []}),
    (
        "schema",
        "p1",
        "p1-out",
        {
            "station_id": "p1-out",
            "ts": NOW.isoformat(),
            "interval": "week",
            "readings": [{"parameter": "cod", "value": 1}],
        },
    ),
    (
        "schema",
        "p1",
        "p1-out",
        {"station_id": "p1-out", "ts": NOW.isoformat(), "readings": [{"parameter": "cod", "value": "12.5"}]},
    ),
    (
        "schema",
        "p1",
        "p1-out",
        {
            "station_id": "p1-out",
            "ts": NOW.isoformat(),
            "readings": [{"parameter": "cod", "value": 1, "flag": "Z"}],
        },
    ),
    (
        "schema",
        "p1",
        "p1-out",
        {
            "station_id": "p1-out",
            "ts": NOW.isoformat(),
            "readings": [{"parameter": "cod", "value": 1, "unit": "furlongs"}],
        },
    ),
    ("schema", "p1", "p1-out", [1, 2, 3]),
    ("schema", "p1", "p1-out", b'"just a string"'),
    ("unknown_station", "p1", "ghost", message("ghost", NOW, {"cod": 1})),
    ("unknown_parameter", "p1", "p1-out", message("p1-out", NOW, {"w99999": 1})),
    (
        "unknown_parameter",
        "p1",
        "p1-out",
        message("p1-out", NOW, {"pm25": 1}),
    ),  # an air code at a water outlet
    (
        "station_mismatch",
        "p1",
        "p1-out",
        message("p1-air", NOW, {"pm25": 1}),
    ),  # publishing for another station
    ("station_mismatch", "p2", "p1-out", message("p1-out", NOW, {"cod": 1})),  # wrong park in the topic
    ("bad_timestamp", "p1", "p1-out", message("p1-out", "1999-12-31T23:59:59+08:00", {"cod": 1})),
    ("bad_timestamp", "p1", "p1-out", message("p1-out", NOW + timedelta(hours=6), {"cod": 1})),
    ("bad_timestamp", "p1", "p1-out", message("p1-out", "26/11/2026 08:00", {"cod": 1})),
    (
        "non_finite",
        "p1",
        "p1-out",
        b'{"station_id": "p1-out", "ts": "%s", "readings": [{"parameter": "cod", "value": NaN}]}'
        % NOW.isoformat().encode(),
    ),
    (
        "non_finite",
        "p1",
        "p1-out",
        b'{"station_id": "p1-out", "ts": "%s", "readings": [{"parameter": "cod", "value": Infinity}]}'
        % NOW.isoformat().encode(),
    ),
    (
        "non_finite",
        "p1",
        "p1-out",
        b'{"station_id": "p1-out", "ts": "%s", "readings": [{"parameter": "cod", "value": 1e999}]}'
        % NOW.isoformat().encode(),
    ),
    # what PostgreSQL's text cannot hold is refused here, not at the database (no batch bisection)
    (
        "schema",
        "p1",
        "p1-out",
        b'{"station_id": "p1-out\\u0000", "ts": "%s", "readings": [{"parameter": "cod", "value": 1}]}'
        % NOW.isoformat().encode(),
    ),
    (
        "schema",
        "p1",
        "p1-out",
        b'{"station_id": "p1-out", "ts": "%s", "readings": [{"parameter": "cod", "value": 1, "unit": "mg/L\\u0000"}]}'
        % NOW.isoformat().encode(),
    ),
    (
        "invalid_json",
        "p1",
        "p1-out",
        b'{"station_id": "p1-out", "ts": "%s", "readings": [{"parameter": "\\ud800", "value": NaN}]}'
        % NOW.isoformat().encode(),
    ),
    # finite, so once accepted: two of them overflowed the hourly average and stopped judging
    (
        "out_of_range",
        "p1",
        "p1-out",
        {"station_id": "p1-out", "ts": NOW.isoformat(), "readings": [{"parameter": "cod", "value": 1.7e308}]},
    ),
    ("too_large", "p1", "p1-out", b"[" + b" " * (256 * 1024) + b"]"),
]


async def test_every_bad_input_is_dead_lettered_and_ingest_goes_on(settings: Settings, ingest: IngestService) -> None:
    """Each bad payload becomes one dead letter with its reason; a good one after them is stored."""
    for _reason, park, station, payload in BAD_INPUTS:
        await publish(settings, park, station, payload)
    await publish(settings, "p1", "p1-out", message("p1-out", recent(1), {"cod": 20.0}))

    rows = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, message, topic, payload FROM dead_letters ORDER BY id"),
        lambda r: len(r) == len(BAD_INPUTS),
    )
    assert [r["reason"] for r in rows] == [b[0] for b in BAD_INPUTS]
    assert all(r["message"] for r in rows)
    assert rows[-1]["topic"] == f"{settings.TOPIC_PREFIX}/p1/p1-out/readings"
    assert len(bytes(rows[-1]["payload"])) > 256 * 1024  # raw bytes kept even when too large
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    assert sum(ingest.stats.dead_letters.values()) == len(BAD_INPUTS)


async def test_partly_bad_message_keeps_its_good_readings(settings: Settings, ingest: IngestService) -> None:
    """Good readings of a message are stored; the refused ones are dead-lettered with details."""
    payload = {
        "station_id": "p1-out",
        "ts": recent(5).isoformat(),
        "readings": [
            {"parameter": "cod", "value": 30},
            {"parameter": "nope", "value": 1},
            {"parameter": "tp", "value": float("nan")},
            {"parameter": "tn", "value": 9.5},
        ],
    }
    await publish(settings, "p1", "p1-out", json.dumps(payload).encode())
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)
    [dead] = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, problems FROM dead_letters"),
        lambda r: len(r) == 1,
    )
    problems = json.loads(dead["problems"])
    assert dead["reason"] == "unknown_parameter"
    assert [(p["reason"], p["at"]) for p in problems] == [
        ("unknown_parameter", ".readings[1].parameter"),
        ("non_finite", ".readings[2].value"),
    ]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=cli_env(settings))


async def test_dead_letters_list_and_replay_after_registering(settings: Settings, ingest: IngestService) -> None:
    """A station's readings refused as unknown are stored by `dead-letters replay` once it is registered."""
    ts0 = recent(300)
    for i in range(3):
        await publish(
            settings,
            "p2",
            "p2-new",
            message("p2-new", ts0 + timedelta(seconds=i), {"cod": 10 + i, "nh3n": 0.5}),
        )
    await publish(settings, "p1", "p1-out", b"not json")
    await eventually(lambda: fetch(settings.DATABASE_URL, "SELECT id FROM dead_letters"), lambda r: len(r) == 4)

    listed = await asyncio.to_thread(_cli, settings, "dead-letters", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [line["reason"] for line in lines] == ["unknown_station"] * 3 + ["invalid_json"]
    for line in lines:
        assert {"id", "reason", "topic", "received_at", "message"} <= line.keys()
    assert lines[0]["topic"].endswith("/p2/p2-new/readings")

    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(
            conn,
            RegistryFile(
                stations=[
                    StationSpec(
                        id="p2-new",
                        park_id="p2",
                        kind=StationKind.WASTEWATER_OUTLET,
                        parameters=["cod", "nh3n"],
                    )
                ]
            ),
        )
    finally:
        await conn.close()

    replay = await asyncio.to_thread(_cli, settings, "dead-letters", "replay", "--reason", "unknown_station")
    assert replay.returncode == 0, replay.stderr
    assert "examined 3: 3 resolved, 0 still refused; 6 readings stored" in replay.stdout
    assert await count_readings(settings.DATABASE_URL) == 6

    # replaying again (e.g. --all) adds nothing and leaves the invalid JSON open
    again = await asyncio.to_thread(_cli, settings, "dead-letters", "replay", "--all")
    assert "examined 1: 0 resolved, 1 still refused; 0 readings stored" in again.stdout
    assert await count_readings(settings.DATABASE_URL) == 6
    still_open = await asyncio.to_thread(_cli, settings, "dead-letters", "list", "--json")
    assert [json.loads(line)["reason"] for line in still_open.stdout.splitlines()] == ["invalid_json"]


@pytest.mark.parametrize("args", [["dead-letters", "replay"]])
def test_replay_needs_a_selection(settings: Settings, args: list[str]) -> None:
    """replay without --id/--reason/--all refuses with usage status 2."""
    result = _cli(settings, *args)
    assert result.returncode == 2
    assert "needs --id, --reason or --all" in result.stderr
