"""Unit tests of ingest.validate.decode: one MQTT payload in, rows and problems out (no I/O)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.registry import Registry, StationInfo
from ingest.validate import SHOWN_CHARS, Decoded, Problem, decode
from schemas.parameters import catalog
from schemas.readings import MAX_PAYLOAD_BYTES, Reason
from schemas.stations import StationKind

SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")  # UTC+6 all year, no DST
RECEIVED = datetime(2024, 6, 1, 6, 30, tzinfo=UTC)
TS = "2024-06-01T14:00:00+08:00"  # 06:00 UTC, half an hour before RECEIVED
TS_UTC = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)
VENDOR = "ys1000"

PIDS: dict[str, int] = {code: pid for pid, code in enumerate(sorted(catalog().by_code), start=1)}
PIDS[VENDOR] = 999

# sid, park, topic station of each station in the hand-built registry.
OUT = ("p1-out", "p1")
AIR = ("p1-air", "p1")
STACK = ("p2-stack", "p2")


def make_registry() -> Registry:
    """Three stations: a water outlet and an air station in Shanghai, a stack in Urumqi (park p2)."""
    stations = [
        StationInfo(
            sid=1,
            id="p1-out",
            park_id="p1",
            kind=StationKind.WASTEWATER_OUTLET,
            mn="43010000000101",
            tz=SHANGHAI,
            declared=frozenset({"w01018", "w21003", "w21011", "w00000", "w01001", "w20111", VENDOR}),
            report_units={"w21011": "ug/L"},  # total phosphorus is reported in µg/L unless said
        ),
        StationInfo(
            sid=2,
            id="p1-air",
            park_id="p1",
            kind=StationKind.AMBIENT_AIR,
            mn="43010000000102",
            tz=SHANGHAI,
            declared=frozenset({"a34004", "a21026", "a01001"}),
            report_units={},
        ),
        StationInfo(
            sid=3,
            id="p2-stack",
            park_id="p2",
            kind=StationKind.STACK,
            mn=None,
            tz=URUMQI,
            declared=frozenset({"a21026", "a19001", "a00000", "a01012"}),
            report_units={},
        ),
    ]
    by_id = {s.id: s for s in stations}
    return Registry(stations=by_id, by_mn={s.mn: s for s in stations if s.mn}, pids=dict(PIDS))


@pytest.fixture
def registry() -> Registry:
    """A fresh hand-built registry (StationInfo caches lookups, so one per test)."""
    return make_registry()


def msg(station: str, readings: Any, *, ts: Any = TS, **extra: Any) -> dict[str, Any]:
    """A readings message in the shape of the MQTT contract."""
    return {"station_id": station, "ts": ts, "readings": readings, **extra}


def rd(parameter: Any, value: Any, **extra: Any) -> dict[str, Any]:
    """One reading of a message."""
    return {"parameter": parameter, "value": value, **extra}


def run(
    registry: Registry,
    payload: Any,
    where: tuple[str, str] = OUT,
    *,
    park: str | None = None,
    received_at: datetime = RECEIVED,
) -> Decoded:
    """Decode a payload (bytes as is, anything else as JSON) published on a station's topic."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    station, topic_park = where
    return decode(
        body,
        topic_park=park if park is not None else topic_park,
        topic_station=station,
        registry=registry,
        received_at=received_at,
    )


def only_problem(out: Decoded) -> Problem:
    """The single problem of an outcome that produced no rows."""
    assert out.rows == []
    assert len(out.problems) == 1, out.problems
    return out.problems[0]


def only_row(out: Decoded) -> tuple:
    """The single row of an outcome without problems."""
    assert out.problems == []
    assert len(out.rows) == 1, out.rows
    return out.rows[0]


def raw(station: str, value_text: str) -> bytes:
    """A payload whose COD value is spliced in verbatim (for NaN, Infinity and the like)."""
    reading = f'{{"parameter": "cod", "value": {value_text}}}'
    return f'{{"station_id": "{station}", "ts": "{TS}", "readings": [{reading}]}}'.encode()


# -- a valid message ------------------------------------------------------------------------------


def test_valid_message_gives_one_row_per_reading(registry: Registry) -> None:
    """A well-formed message yields rows (sid, pid, iv, ts, value, flag, received_at, no statistics) in order."""
    out = run(registry, msg("p1-out", [rd("w01018", 20.5), rd("w21003", 3)]))
    assert out.problems == []
    assert out.rows == [
        (1, PIDS["w01018"], 0, TS_UTC, 20.5, "N", RECEIVED, None, None, None, None),
        (1, PIDS["w21003"], 0, TS_UTC, 3.0, "N", RECEIVED, None, None, None, None),
    ]
    assert all(type(r[4]) is float for r in out.rows)


def test_received_at_is_passed_into_every_row(registry: Registry) -> None:
    """Every row carries the received_at given to decode, whatever the message's own ts."""
    received = datetime(2024, 6, 1, 6, 31, 7, 123456, tzinfo=UTC)
    payload = [
        msg("p1-out", [rd("cod", 1), rd("tp", 2)]),
        msg("p1-out", [rd("nh3n", 3)], ts="2024-06-01T06:20:00Z"),
    ]
    out = run(registry, payload, received_at=received)
    assert out.problems == []
    assert len(out.rows) == 3
    assert {r[6] for r in out.rows} == {received}


# -- invalid_json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b'{"station_id": "p1-out", "ts": ',
        b"",
        b"{'station_id': 'p1-out'}",
        b'{"station_id": "p1-out",}',
        b"\xff\xfe not utf-8",
        b'{"station_id": "p1-out\xe9", "ts": "2024-06-01T14:00:00+08:00", "readings": []}',
        b"\xc3\x28",
    ],
    ids=["truncated", "empty", "single-quotes", "trailing-comma", "bom-garbage", "latin-1", "bad-utf8"],
)
def test_invalid_json(registry: Registry, payload: bytes) -> None:
    """Unparseable or non-UTF-8 payloads are refused whole as invalid_json."""
    problem = only_problem(run(registry, payload))
    assert problem.reason is Reason.INVALID_JSON
    assert problem.message.startswith("not valid JSON")


def test_utf16_json_is_invalid_json(registry: Registry) -> None:
    """A payload in UTF-16 is not UTF-8 JSON and must be refused as invalid_json, not stored."""
    payload = json.dumps(msg("p1-out", [rd("cod", 1)])).encode("utf-16")
    problem = only_problem(run(registry, payload))
    assert problem.reason is Reason.INVALID_JSON


def test_deeply_nested_payload_does_not_raise(registry: Registry) -> None:
    """Nesting deeper than orjson allows is refused as invalid_json instead of raising."""
    problem = only_problem(run(registry, b"[" * 5000))
    assert problem.reason is Reason.INVALID_JSON


# -- schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b'"just a string"', b"42", b"null", b"true", b"[]"],
    ids=["string", "number", "null", "bool", "empty-array"],
)
def test_schema_top_level_not_object_or_array(registry: Registry, payload: bytes) -> None:
    """The payload must be an object or a non-empty array of objects."""
    problem = only_problem(run(registry, payload))
    assert problem.reason is Reason.SCHEMA
    assert problem.at == ""


def test_schema_array_of_non_objects(registry: Registry) -> None:
    """Each element of an array that is not an object is one schema problem at its index."""
    out = run(registry, [1, "two", None])
    assert out.rows == []
    assert [(p.reason, p.at) for p in out.problems] == [
        (Reason.SCHEMA, "[0]"),
        (Reason.SCHEMA, "[1]"),
        (Reason.SCHEMA, "[2]"),
    ]


@pytest.mark.parametrize(
    ("payload", "at"),
    [
        ({"ts": TS, "readings": [rd("cod", 1)]}, ".station_id"),
        ({"station_id": 7, "ts": TS, "readings": [rd("cod", 1)]}, ".station_id"),
        ({"station_id": "", "ts": TS, "readings": [rd("cod", 1)]}, ".station_id"),
        ({"station_id": "p1-out", "readings": [rd("cod", 1)]}, ".ts"),
        (msg("p1-out", [rd("cod", 1)], ts=1717221600), ".ts"),
        (msg("p1-out", [rd("cod", 1)], interval="week"), ".interval"),
        (msg("p1-out", [rd("cod", 1)], interval=2), ".interval"),
        (msg("p1-out", [rd("cod", 1)], interval="HOUR"), ".interval"),
        ({"station_id": "p1-out", "ts": TS}, ".readings"),
        (msg("p1-out", []), ".readings"),
        (msg("p1-out", {"cod": 1}), ".readings"),
        (msg("p1-out", [5]), ".readings[0]"),
        (msg("p1-out", [{"value": 1}]), ".readings[0].parameter"),
        (msg("p1-out", [rd("", 1)]), ".readings[0].parameter"),
        (msg("p1-out", [rd(12, 1)]), ".readings[0].parameter"),
        (msg("p1-out", [{"parameter": "cod"}]), ".readings[0].value"),
        (msg("p1-out", [rd("cod", "12.5")]), ".readings[0].value"),
        (msg("p1-out", [rd("cod", None)]), ".readings[0].value"),
        (msg("p1-out", [rd("cod", [1])]), ".readings[0].value"),
        (msg("p1-out", [rd("cod", 1, unit=5)]), ".readings[0].unit"),
    ],
    ids=[
        "no-station",
        "station-not-str",
        "station-empty",
        "no-ts",
        "ts-number",
        "interval-unknown",
        "interval-int",
        "interval-upper",
        "no-readings",
        "readings-empty",
        "readings-object",
        "reading-not-object",
        "no-parameter",
        "parameter-empty",
        "parameter-not-str",
        "no-value",
        "value-string",
        "value-null",
        "value-array",
        "unit-not-str",
    ],
)
def test_schema_problems_point_at_the_field(registry: Registry, payload: dict, at: str) -> None:
    """Each schema violation is reported once, as schema, at the path of the offending field."""
    problem = only_problem(run(registry, payload))
    assert problem.reason is Reason.SCHEMA
    assert problem.at == at


@pytest.mark.parametrize("value", [True, False])
def test_bool_value_is_refused(registry: Registry, value: bool) -> None:
    """JSON true/false are not numbers here, although bool is an int in Python."""
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", value)])))
    assert problem.reason is Reason.SCHEMA
    assert problem.at == ".readings[0].value"


# -- unknown_station, station_mismatch ------------------------------------------------------------


def test_unknown_station(registry: Registry) -> None:
    """A station that is not registered is refused as unknown_station."""
    problem = only_problem(run(registry, msg("ghost", [rd("cod", 1)]), ("ghost", "p1")))
    assert problem.reason is Reason.UNKNOWN_STATION
    assert problem.at == ".station_id"
    assert "ghost" in problem.message


def test_station_mismatch_payload_station_differs_from_topic(registry: Registry) -> None:
    """A station may only publish for itself: payload station_id must equal the topic's."""
    problem = only_problem(run(registry, msg("p1-air", [rd("pm25", 1)]), OUT))
    assert problem.reason is Reason.STATION_MISMATCH
    assert problem.at == ".station_id"


def test_station_mismatch_unregistered_payload_station(registry: Registry) -> None:
    """The topic check comes first: another station's id is a mismatch even if it is unknown."""
    problem = only_problem(run(registry, msg("ghost", [rd("cod", 1)]), OUT))
    assert problem.reason is Reason.STATION_MISMATCH


def test_station_mismatch_park_differs_from_topic(registry: Registry) -> None:
    """A registered station published under another park's topic is a mismatch, at 'topic'."""
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 1)]), OUT, park="p2"))
    assert problem.reason is Reason.STATION_MISMATCH
    assert problem.at == "topic"
    assert "p1" in problem.message
    assert "p2" in problem.message


def test_station_mismatch_park_in_array_points_at_element(registry: Registry) -> None:
    """In an array the park mismatch points at the element rather than 'topic'."""
    out = run(registry, [msg("p2-stack", [rd("so2", 1)])], STACK, park="p1")
    problem = only_problem(out)
    assert problem.reason is Reason.STATION_MISMATCH
    assert problem.at == "[0]"


# -- unknown_parameter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "name"),
    [
        (OUT, "w99999"),
        (OUT, "pm25"),  # an air alias at a water outlet
        (OUT, "so2"),
        (OUT, "o2"),
        (OUT, "02"),  # a 2005 gas code at a water outlet
        (OUT, "chlorophyll"),
        (AIR, "cod"),
        (AIR, "flow"),  # flow is only an alias at water outlets and stacks
        (AIR, "o2"),  # o2 is a stack alias
        (AIR, VENDOR),  # a vendor code is only known where it is declared
        (STACK, "011"),  # a 2005 water code at a stack
        (STACK, "nh3-n"),
    ],
)
def test_unknown_parameter(registry: Registry, where: tuple[str, str], name: str) -> None:
    """A name that is no code, 2005 code or alias for the station's kind is unknown_parameter."""
    problem = only_problem(run(registry, msg(where[0], [rd(name, 1)]), where))
    assert problem.reason is Reason.UNKNOWN_PARAMETER
    assert problem.at == ".readings[0].parameter"


@pytest.mark.parametrize(("where", "name"), [(OUT, "a34004"), (OUT, "A21026"), (STACK, "w01018"), (AIR, "w21003")])
def test_unknown_parameter_code_of_the_other_medium(registry: Registry, where: tuple[str, str], name: str) -> None:
    """An air code (e.g. PM2.5's a34004) at a water outlet, or a water code at a gas station, is unknown."""
    problem = only_problem(run(registry, msg(where[0], [rd(name, 1)]), where))
    assert problem.reason is Reason.UNKNOWN_PARAMETER


# -- bad_timestamp --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "1999-12-31T23:59:59+08:00",
        "1999-12-31T23:59:59.999999Z",
        "1970-01-01T00:00:00Z",
        "2000-01-01T07:59:59",  # naive, read in Shanghai: 1999-12-31T23:59:59Z
    ],
)
def test_bad_timestamp_before_2000(registry: Registry, ts: str) -> None:
    """A timestamp before 2000-01-01T00:00Z is a reset logger clock."""
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 1)], ts=ts)))
    assert problem.reason is Reason.BAD_TIMESTAMP
    assert problem.at == ".ts"


def test_timestamp_at_2000_is_accepted(registry: Registry) -> None:
    """2000-01-01T00:00Z itself (here written naive in Shanghai time) is the earliest accepted."""
    row = only_row(run(registry, msg("p1-out", [rd("cod", 1)], ts="2000-01-01T08:00:00")))
    assert row[3] == datetime(2000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("ahead", [timedelta(minutes=10, microseconds=1), timedelta(minutes=11), timedelta(days=365)])
def test_bad_timestamp_future(registry: Registry, ahead: timedelta) -> None:
    """More than ten minutes ahead of received_at is refused."""
    ts = (RECEIVED + ahead).isoformat()
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 1)], ts=ts)))
    assert problem.reason is Reason.BAD_TIMESTAMP
    assert problem.at == ".ts"


def test_future_is_relative_to_received_at(registry: Registry) -> None:
    """The same ts is accepted when received later: skew is judged against received_at."""
    ts = (RECEIVED + timedelta(minutes=11)).isoformat()
    out = run(registry, msg("p1-out", [rd("cod", 1)], ts=ts), received_at=RECEIVED + timedelta(minutes=2))
    assert only_row(out)[3] == RECEIVED + timedelta(minutes=11)


def test_exactly_ten_minutes_ahead_is_accepted(registry: Registry) -> None:
    """The limit is inclusive: exactly ten minutes ahead of received_at is stored."""
    ts = RECEIVED + timedelta(minutes=10)
    row = only_row(run(registry, msg("p1-out", [rd("cod", 1)], ts=ts.isoformat())))
    assert row[3] == ts


@pytest.mark.parametrize(
    "ts",
    ["26/11/2026 08:00", "", "yesterday", "2024-13-01T00:00:00Z", "2024-06-01T25:00:00", "2024-06-01 14h"],
)
def test_bad_timestamp_unparseable(registry: Registry, ts: str) -> None:
    """A ts string that is not ISO 8601 is bad_timestamp (not schema)."""
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 1)], ts=ts)))
    assert problem.reason is Reason.BAD_TIMESTAMP
    assert problem.at == ".ts"


# -- time zones -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "name", "expected_utc_hour"),
    [(OUT, "cod", 4), (AIR, "pm25", 4), (STACK, "so2", 6)],
)
def test_naive_timestamp_is_read_in_station_time_zone(
    registry: Registry, where: tuple[str, str], name: str, expected_utc_hour: int
) -> None:
    """12:00 without an offset is 04:00Z in Shanghai and 06:00Z at the Urumqi stack."""
    row = only_row(run(registry, msg(where[0], [rd(name, 1)], ts="2024-06-01T12:00:00"), where))
    assert row[3] == datetime(2024, 6, 1, expected_utc_hour, tzinfo=UTC)
    assert row[3].tzinfo is not None


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-06-01T12:00:00+08:00", datetime(2024, 6, 1, 4, tzinfo=UTC)),
        ("2024-06-01T05:00:00Z", datetime(2024, 6, 1, 5, tzinfo=UTC)),
        ("2024-06-01T05:00:00+00:00", datetime(2024, 6, 1, 5, tzinfo=UTC)),
        ("2024-06-01T01:30:00-03:30", datetime(2024, 6, 1, 5, tzinfo=UTC)),
        ("2024-06-01T05:00:00.123456Z", datetime(2024, 6, 1, 5, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_explicit_offset_wins_over_station_time_zone(registry: Registry, ts: str, expected: datetime) -> None:
    """An explicit offset or 'Z' is honoured as given, even at the Urumqi stack."""
    row = only_row(run(registry, msg("p2-stack", [rd("so2", 1)], ts=ts), STACK))
    assert row[3] == expected


# -- non_finite, too_large ------------------------------------------------------------------------


@pytest.mark.parametrize("value_text", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite(registry: Registry, value_text: str) -> None:
    """NaN, ±Infinity and overflowing numbers are refused per reading as non_finite."""
    problem = only_problem(run(registry, raw("p1-out", value_text)))
    assert problem.reason is Reason.NON_FINITE
    assert problem.at == ".readings[0].value"


def test_non_finite_only_refuses_its_reading(registry: Registry) -> None:
    """A NaN next to a good reading leaves the good one stored."""
    readings = '[{"parameter": "cod", "value": NaN}, {"parameter": "nh3n", "value": 2.5}]'
    payload = f'{{"station_id": "p1-out", "ts": "{TS}", "readings": {readings}}}'.encode()
    out = run(registry, payload)
    assert [(p.reason, p.at) for p in out.problems] == [(Reason.NON_FINITE, ".readings[0].value")]
    assert [(r[1], r[4]) for r in out.rows] == [(PIDS["w21003"], 2.5)]


def test_huge_integer_value_does_not_raise(registry: Registry) -> None:
    """A 400-digit integer (beyond any double) is refused as a problem, not raised."""
    problem = only_problem(run(registry, raw("p1-out", "1" + "0" * 400)))
    assert problem.reason in {Reason.NON_FINITE, Reason.SCHEMA}
    assert problem.at == ".readings[0].value"


def test_value_that_overflows_on_conversion_is_not_stored(registry: Registry) -> None:
    """1e306 mg/L of mercury (stored in µg/L) is 1e309 = inf and must not become a row."""
    out = run(registry, msg("p1-out", [rd("w20111", 1e306, unit="mg/L")]))
    assert all(math.isfinite(r[4]) for r in out.rows)
    assert [p.reason for p in out.problems] == [Reason.NON_FINITE]


def _padded(size: int) -> bytes:
    body = orjson.dumps(msg("p1-out", [rd("cod", 1)]))
    return body + b" " * (size - len(body))


def test_payload_of_exactly_the_limit_is_decoded(registry: Registry) -> None:
    """A payload of exactly 256 KiB is within the limit."""
    payload = _padded(256 * 1024)
    assert len(payload) == MAX_PAYLOAD_BYTES
    row = only_row(run(registry, payload))
    assert row[1] == PIDS["w01018"]


def test_too_large(registry: Registry) -> None:
    """One byte over 256 KiB is refused whole as too_large, even when it is valid JSON."""
    problem = only_problem(run(registry, _padded(256 * 1024 + 1)))
    assert problem.reason is Reason.TOO_LARGE
    assert str(256 * 1024 + 1) in problem.message


def test_too_large_is_checked_before_parsing(registry: Registry) -> None:
    """An oversized payload of garbage is too_large, not invalid_json."""
    problem = only_problem(run(registry, b"\xff" * (MAX_PAYLOAD_BYTES + 1)))
    assert problem.reason is Reason.TOO_LARGE


# -- aliases and codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "name", "code"),
    [
        (OUT, "cod", "w01018"),
        (OUT, "CODcr", "w01018"),
        (OUT, "nh3-n", "w21003"),
        (OUT, "NH3N", "w21003"),
        (OUT, "NH3-N", "w21003"),
        (OUT, "W01018", "w01018"),
        (OUT, " w01018 ", "w01018"),
        (OUT, "011", "w01018"),
        (OUT, "060", "w21003"),
        (OUT, "B01", "w00000"),
        (OUT, "flow", "w00000"),
        (OUT, "pH", "w01001"),
        (OUT, "tp", "w21011"),
        (AIR, "PM2.5", "a34004"),
        (AIR, "pm25", "a34004"),
        (AIR, "Pm_2.5", "a34004"),
        (AIR, "so2", "a21026"),
        (AIR, "SO2", "a21026"),
        (AIR, "temp", "a01001"),
        (STACK, "so2", "a21026"),
        (STACK, "02", "a21026"),
        (STACK, "o2", "a19001"),
        (STACK, "O2", "a19001"),
        (STACK, "flow", "a00000"),
        (STACK, "B02", "a00000"),
        (STACK, "temp", "a01012"),
        (STACK, "A21026", "a21026"),
    ],
)
def test_aliases_and_codes_resolve(registry: Registry, where: tuple[str, str], name: str, code: str) -> None:
    """Codes in any case, 2005 codes and aliases map to the HJ 212-2017 code for the station's kind."""
    row = only_row(run(registry, msg(where[0], [rd(name, 1)]), where))
    assert row[1] == PIDS[code]
    assert row[0] == registry.stations[where[0]].sid


def test_declared_vendor_code_is_stored_as_is(registry: Registry) -> None:
    """A vendor code declared by the station is stored under its own pid, unconverted."""
    row = only_row(run(registry, msg("p1-out", [rd(VENDOR, 7.25)])))
    assert row[1] == 999
    assert row[4] == 7.25


def test_vendor_code_with_a_unit_is_refused(registry: Registry) -> None:
    """A vendor code has no stored unit to convert into, so an explicit unit is refused."""
    problem = only_problem(run(registry, msg("p1-out", [rd(VENDOR, 1, unit="mg/L")])))
    assert problem.reason is Reason.SCHEMA
    assert problem.at == ".readings[0].unit"


# -- flags and intervals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_flag", "stored"),
    [(None, "N"), ("N", "N"), ("n", "N"), ("f", "F"), ("M", "M"), ("d", "D"), ("T", "T"), ("P", "P")],
)
def test_flags_accepted_and_upper_cased(registry: Registry, given_flag: str | None, stored: str) -> None:
    """The flag defaults to N; HJ 212 flags (and P) are accepted in either case and stored upper-case."""
    reading = rd("cod", 1) if given_flag is None else rd("cod", 1, flag=given_flag)
    row = only_row(run(registry, msg("p1-out", [reading])))
    assert row[5] == stored


@pytest.mark.parametrize("flag", ["Z", "x", "", "NF", "NN", 1, None, True])
def test_unknown_flag_refused(registry: Registry, flag: Any) -> None:
    """Anything but one HJ 212 data-flag letter is a schema problem at the flag."""
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 1, flag=flag)])))
    assert problem.reason is Reason.SCHEMA
    assert problem.at == ".readings[0].flag"


@pytest.mark.parametrize(("interval", "iv"), [("rtd", 0), ("min", 1), ("hour", 2), ("day", 3)])
def test_interval_mapping(registry: Registry, interval: str, iv: int) -> None:
    """Interval names map onto the small integer stored in readings.iv."""
    row = only_row(run(registry, msg("p1-out", [rd("cod", 1)], interval=interval)))
    assert row[2] == iv


def test_interval_defaults_to_rtd(registry: Registry) -> None:
    """A message without an interval is real-time data (iv 0)."""
    assert only_row(run(registry, msg("p1-out", [rd("cod", 1)])))[2] == 0


# -- units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "name", "value", "unit", "expected"),
    [
        (OUT, "cod", 1500, "ug/L", 1.5),
        (OUT, "cod", 1500, "µg/L", 1.5),  # micro sign
        (OUT, "cod", 1500, "μg/L", 1.5),  # Greek mu
        (OUT, "cod", 12.5, "mg/L", 12.5),
        (OUT, "cod", 12.5, "MG/L", 12.5),
        (OUT, "flow", 36, "m3/h", 10.0),
        (OUT, "flow", 36, "m³/h", 10.0),
        (OUT, "flow", 0.5, "m3/s", 500.0),
        (OUT, "flow", 7, "L/s", 7.0),
        (OUT, "w20111", 0.002, "mg/L", 2.0),  # mercury is stored in µg/L
        (OUT, "ph", 7.2, "pH", 7.2),
        (STACK, "flow", 3600, "m3/h", 1.0),
        (STACK, "so2", 10, "ppm", 10 * 64.066 / 22.414),
        (STACK, "so2", 35, "mg/Nm3", 35.0),
        (AIR, "pm25", 0.035, "mg/m3", 35.0),  # ambient PM2.5 is stored in µg/m³
        (AIR, "pm25", 35, "ug/m3", 35.0),
    ],
)
def test_unit_conversion(
    registry: Registry, where: tuple[str, str], name: str, value: float, unit: str, expected: float
) -> None:
    """A reported unit is converted into the unit stored for the parameter at that kind of station."""
    row = only_row(run(registry, msg(where[0], [rd(name, value, unit=unit)]), where))
    assert row[4] == pytest.approx(expected, rel=1e-11)  # stored to 12 significant digits


def test_same_unit_leaves_value_bit_identical(registry: Registry) -> None:
    """Reporting in the stored unit does not multiply (no rounding noise)."""
    row = only_row(run(registry, msg("p1-out", [rd("cod", 0.1 + 0.2, unit="mg/L")])))
    assert row[4] == 0.1 + 0.2


def test_station_default_unit_applies_when_message_has_none(registry: Registry) -> None:
    """The station's declared report unit (TP in µg/L) is used when a reading names no unit."""
    out = run(registry, msg("p1-out", [rd("tp", 250), rd("tp", 0.25, unit="mg/L")], interval="hour"))
    assert out.problems == []
    assert [r[4] for r in out.rows] == [pytest.approx(0.25), 0.25]


@pytest.mark.parametrize(
    ("where", "name", "unit"),
    [
        (AIR, "so2", "ppm"),  # ppm → µg/m³ is only defined at stacks
        (OUT, "cod", "furlongs"),
        (OUT, "cod", "mg/m3"),  # a real unit of the wrong dimension
        (STACK, "o2", "ppm"),  # no molar mass for O2
        (OUT, "flow", "kg"),
    ],
)
def test_unconvertible_unit_is_schema(registry: Registry, where: tuple[str, str], name: str, unit: str) -> None:
    """A unit that cannot be converted into the stored unit is a schema problem at the unit."""
    problem = only_problem(run(registry, msg(where[0], [rd(name, 1, unit=unit)]), where))
    assert problem.reason is Reason.SCHEMA
    assert problem.at == ".readings[0].unit"
    assert unit in problem.message


# -- partial acceptance ---------------------------------------------------------------------------


def test_partial_acceptance_in_an_array(registry: Registry) -> None:
    """Good readings of a message are kept; each bad one becomes a problem with its array path."""
    payload = [
        msg("p1-out", [rd("cod", 10), rd("nh3n", 1.5)]),
        msg(
            "p1-out",
            [rd("cod", "x"), rd("tp", 0.3, unit="mg/L"), rd("w99999", 1), rd("cod", 11, flag="Q")],
            ts="2024-06-01T13:00:00+08:00",
            interval="min",
        ),
        msg("p1-out", [rd("cod", 12)], ts="not a time"),
        msg("p1-air", [rd("pm25", 1)]),
        msg("p1-out", [rd("ph", 7, unit="furlongs"), rd("flow", 3.6, unit="m3/h")], interval="hour"),
    ]
    out = run(registry, payload)
    assert [(p.reason, p.at) for p in out.problems] == [
        (Reason.SCHEMA, "[1].readings[0].value"),
        (Reason.UNKNOWN_PARAMETER, "[1].readings[2].parameter"),
        (Reason.SCHEMA, "[1].readings[3].flag"),
        (Reason.BAD_TIMESTAMP, "[2].ts"),
        (Reason.STATION_MISMATCH, "[3].station_id"),
        (Reason.SCHEMA, "[4].readings[0].unit"),
    ]
    assert [(r[1], r[2], r[4]) for r in out.rows] == [
        (PIDS["w01018"], 0, 10.0),
        (PIDS["w21003"], 0, 1.5),
        (PIDS["w21011"], 1, 0.3),
        (PIDS["w00000"], 2, pytest.approx(1.0)),
    ]
    assert out.rows[2][3] == datetime(2024, 6, 1, 5, tzinfo=UTC)


def test_partial_acceptance_in_an_object(registry: Registry) -> None:
    """Without an array the paths start at '.readings[j]'."""
    out = run(registry, msg("p1-out", [rd("cod", 1), rd("cod", True), rd("pm25", 2), rd("tn", 3)]))
    assert [(p.reason, p.at) for p in out.problems] == [
        (Reason.SCHEMA, ".readings[1].value"),
        (Reason.UNKNOWN_PARAMETER, ".readings[2].parameter"),
    ]
    assert [r[1] for r in out.rows] == [PIDS["w01018"], PIDS["w21001"]]


def test_problem_as_json(registry: Registry) -> None:
    """A problem serialises to the dead-letter form with the reason's string value."""
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 1)], ts="bad")))
    assert problem.as_json() == {"reason": "bad_timestamp", "message": problem.message, "at": ".ts"}


# -- property -------------------------------------------------------------------------------------

_REGISTRY = make_registry()  # shared across examples, like the service's one snapshot

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
near_readings = st.fixed_dictionaries(
    {"parameter": st.sampled_from(["cod", "W01018", "pm25", "so2", "flow", VENDOR, "", "x"]) | json_values},
    optional={
        "value": st.floats() | st.integers() | json_values,
        "flag": st.sampled_from(["N", "n", "P", "Z", ""]) | json_values,
        "unit": st.sampled_from(["mg/L", "ug/L", "ppm", "m3/h", "furlongs"]) | json_values,
    },
)
near_messages = st.fixed_dictionaries(
    {"station_id": st.sampled_from(["p1-out", "p1-air", "p2-stack", "ghost"]) | json_values},
    optional={
        "ts": st.sampled_from([TS, "2024-06-01T12:00:00", "1999-01-01T00:00:00Z", "2030-01-01T00:00:00Z"])
        | st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat)
        | json_values,
        "interval": st.sampled_from(["rtd", "min", "hour", "day", "week"]) | json_values,
        "readings": st.lists(near_readings | json_values, max_size=4) | json_values,
    },
)
payloads = (
    st.binary(max_size=600)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_messages.map(lambda v: json.dumps(v).encode())
    | st.lists(near_messages, min_size=1, max_size=3).map(lambda v: json.dumps(v).encode())
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=payloads,
    where=st.sampled_from([OUT, AIR, STACK, ("ghost", "p1")]),
    park=st.sampled_from([None, "p1", "p2"]),
)
def test_decode_never_raises(payload: bytes, where: tuple[str, str], park: str | None) -> None:
    """For arbitrary bytes decode returns rows and reasoned problems and never raises."""
    out = run(_REGISTRY, payload, where, park=park)
    assert isinstance(out, Decoded)
    for row in out.rows:
        sid, pid, iv, ts, value, flag, received_at, *stats = row
        assert stats == [None, None, None, None]
        assert sid == _REGISTRY.stations[where[0]].sid
        assert pid in PIDS.values()
        assert iv in {0, 1, 2, 3}
        assert ts.tzinfo is not None
        assert isinstance(value, float)
        assert flag in set("NFMSDCTBP")
        assert received_at == RECEIVED
    for problem in out.problems:
        assert isinstance(problem, Problem)
        assert isinstance(problem.reason, Reason)
        assert problem.reason is not Reason.REJECTED_BY_DATABASE
        assert isinstance(problem.message, str)
        assert isinstance(problem.at, str)


def test_sent_at_is_read_in_the_stations_zone_and_kept_for_delivery_timing(registry: Registry) -> None:
    out = run(registry, msg("p1-out", [rd("cod", 30)], sent_at="2024-06-01T14:29:59.250"))
    only_row(out)
    assert out.sent_at == datetime(2024, 6, 1, 6, 29, 59, 250000, tzinfo=UTC)
    assert run(registry, msg("p1-out", [rd("cod", 30)])).sent_at is None


@pytest.mark.parametrize("bad", ["yesterday", 1717223400, ""])
def test_malformed_sent_at_is_refused_like_a_bad_ts(registry: Registry, bad: Any) -> None:
    problem = only_problem(run(registry, msg("p1-out", [rd("cod", 30)], sent_at=bad)))
    assert problem.reason is Reason.BAD_TIMESTAMP
    assert problem.at == ".sent_at"


# -- out_of_range ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "code", "value"),
    [
        (OUT, "cod", 1.7e308),  # finite, but two of them overflow an hourly average
        (OUT, "cod", -2e9),
        (OUT, "ph", 14.5),
        (OUT, "ph", -0.1),
        (STACK, "o2", -1.0),  # would halve a corrected value (GB 4915's formula)
        (STACK, "o2", 30.0),
    ],
    ids=["huge", "huge-negative", "ph-over-14", "ph-negative", "o2-negative", "o2-over-25"],
)
def test_values_no_instrument_can_report_are_out_of_range(
    registry: Registry, where: tuple[str, str], code: str, value: float
) -> None:
    problem = only_problem(run(registry, msg(where[0], [rd(code, value)]), where))
    assert problem.reason is Reason.OUT_OF_RANGE
    assert problem.at == ".readings[0].value"


def test_values_at_the_edges_of_their_ranges_are_accepted(registry: Registry) -> None:
    assert len(run(registry, msg("p1-out", [rd("ph", 0), rd("ph", 14), rd("cod", 1e9)])).rows) == 3
    assert len(run(registry, msg("p2-stack", [rd("o2", 0), rd("o2", 25), rd("so2", -0.3)]), STACK).rows) == 3


def test_a_station_instrument_range_refuses_what_its_instrument_cannot_read(registry: Registry) -> None:
    registry.stations["p1-out"].ranges["w01018"] = (0.0, 500.0)
    out = run(registry, msg("p1-out", [rd("cod", 499.0), rd("cod", 501.0), rd("tp", 501.0)]))
    assert len(out.rows) == 2
    [problem] = out.problems
    assert problem.reason is Reason.OUT_OF_RANGE and "instrument range 0 … 500" in problem.message


def test_made_up_parameter_names_are_remembered_only_up_to_a_bound(registry: Registry) -> None:
    """A flood of unknown names does not grow the station's lookup cache without bound; known names stay cached."""
    station = registry.stations["p1-out"]
    for i in range(3000):
        run(registry, msg("p1-out", [rd(f"made-up-{i}", 1.0)]))
    run(registry, msg("p1-out", [rd("x" * 200_000, 1.0)]))
    assert len(station._slots) <= 512
    assert only_row(run(registry, msg("p1-out", [rd("cod", 1.0)])))[1] == PIDS["w01018"]
    assert "cod" in station._slots


# -- found by `parkwatch fuzz` ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        msg("p1-out", [rd("x" * 70_000, 1.0)]),
        msg("p1-out", [rd("cod", 1.0)], ts="9" * 70_000),
        msg("p1-out", [rd("cod", 1.0)], sent_at="z" * 70_000),
        msg("y" * 70_000, [rd("cod", 1.0)]),
        msg("p1-out", [rd("cod", 1.0, unit="u" * 70_000)]),
    ],
    ids=["parameter", "ts", "sent_at", "station_id", "unit"],
)
def test_a_problem_quotes_a_hostile_value_only_in_part(registry: Registry, payload: dict[str, Any]) -> None:
    """Refusals once copied a 70 KB value into every log line and API answer about them."""
    out = run(registry, payload)
    assert out.problems
    for problem in out.problems:
        assert len(problem.message) < SHOWN_CHARS + 200, problem.message[:300]
        assert "chars)" in problem.message, problem.message
