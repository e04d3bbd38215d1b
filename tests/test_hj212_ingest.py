"""Raw HJ 212 packets over MQTT ({prefix}/hj212/{MN}) go through the same pipeline as JSON."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiomqtt
import asyncpg
import httpx
import pytest

import ingest.registry as registry_module
from alerts.instruments import check_instruments
from ingest.hj212.codec import encode_data, frame_segment
from ingest.hj212.crc import CrcVariant
from ingest.hj212.packet import build_segment
from ingest.hj212.sm4 import encrypt_frame
from ingest.registry import load_registry_file
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.readings import hj212_topic
from schemas.registry import RegistryFile, StationSpec
from schemas.stations import StationKind
from tests.helpers import cli_env, count_readings, eventually, fetch, fetchval, make_key, publish, run_cli

CST = ZoneInfo("Asia/Shanghai")
OUT_MN = "43010000000101"  # p1-out in tests/data/registry.yaml
STACK_MN = "43010000000103"  # p1-stack
MODBUS_MN = "MODBUSLOGGER01"
LOCKED_MN = "LOCKEDLOGGER01"


@pytest.fixture
async def hj212_stations(settings: Settings, registry: None) -> None:
    """Two more stations: one whose logger computes byte-swapped MODBUS CRCs, one with a PW."""
    extra = RegistryFile(
        stations=[
            StationSpec(
                id="p1-modbus", park_id="p1", kind=StationKind.STACK, mn=MODBUS_MN, crc=CrcVariant.MODBUS_SWAPPED
            ),
            StationSpec(id="p1-secret", park_id="p1", kind=StationKind.WASTEWATER_OUTLET, mn=LOCKED_MN, pw="s3cr3t"),
        ]
    )
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, extra)
    finally:
        await conn.close()


async def _publish(settings: Settings, mn: str, *packets: bytes) -> None:
    target = settings.mqtt
    async with aiomqtt.Client(target.host, target.port) as client:
        for packet in packets:
            await client.publish(hj212_topic(settings.TOPIC_PREFIX, mn), packet, qos=1)


def _minute(minute: int, **overrides: object) -> bytes:
    start = datetime(2026, 11, 20, 8, 0) + timedelta(minutes=minute)
    args: dict[str, object] = {
        "cn": "2051",
        "mn": OUT_MN,
        "data_time": start,
        "factors": {
            "w01018": {"Cou": 1.25, "Min": 30.0, "Avg": 32.5 + minute, "Max": 35.0, "Flag": "N"},
            "w21003": {"Min": 0.5, "Avg": 0.8, "Max": 1.1, "Flag": "C"},
            "w00000": {"Cou": 7.2, "Avg": 120.0},
        },
    }
    args.update(overrides)
    return encode_data(**args)  # type: ignore[arg-type]


async def test_minute_packets_become_readings_with_statistics(
    settings: Settings, ingest: IngestService, hj212_stations: None, api: httpx.AsyncClient
) -> None:
    """CN 2051 → interval min; Avg is the value, Min/Max/Cou kept; DataTime read in CST; raw packet logged."""
    await _publish(settings, OUT_MN, _minute(0), _minute(1))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 6)
    rows = await fetch(
        settings.DATABASE_URL,
        """SELECT p.code, r.iv, r.ts, r.value, r.flag, r.vmin, r.vmax, r.cou FROM readings r
           JOIN parameters p USING (pid) WHERE r.ts = $1 ORDER BY p.code""",
        datetime(2026, 11, 20, 0, 0, tzinfo=UTC),
    )
    assert [tuple(r) for r in rows] == [
        ("w00000", 1, datetime(2026, 11, 20, 0, 0, tzinfo=UTC), 120.0, "N", None, None, 7.2),
        ("w01018", 1, datetime(2026, 11, 20, 0, 0, tzinfo=UTC), 32.5, "N", 30.0, 35.0, 1.25),
        ("w21003", 1, datetime(2026, 11, 20, 0, 0, tzinfo=UTC), 0.8, "C", 0.5, 1.1, None),
    ]
    packets = await fetch(settings.DATABASE_URL, "SELECT mn, cn, raw, data_time FROM hj212_packets ORDER BY data_time")
    assert [(p["mn"], p["cn"]) for p in packets] == [(OUT_MN, "2051"), (OUT_MN, "2051")]
    assert bytes(packets[0]["raw"]) == _minute(0)
    resp = await api.get(
        "/api/v1/readings",
        params={"station_id": "p1-out", "parameter": "cod", "interval": "min", "start": "2026-11-20"},
    )
    first = resp.json()["results"][0]
    assert (first["ts_local"], first["value"], first["min"], first["max"], first["cou"]) == (
        "2026-11-20T08:00:00+08:00",
        32.5,
        30.0,
        35.0,
        1.25,
    )


async def test_every_interval_and_events(settings: Settings, ingest: IngestService, hj212_stations: None) -> None:
    """2011 → rtd (Rtd, ZsRtd), 2061 → hour, 2031 → day; 2021/2041/2081 → station events."""
    t = datetime(2026, 11, 21, 10, 0)
    packets = [
        encode_data(
            cn="2011", mn=STACK_MN, st="31", data_time=t, factors={"a21026": {"Rtd": 40.0, "ZsRtd": 52.0, "Flag": "N"}}
        ),
        encode_data(cn="2061", mn=STACK_MN, st="31", data_time=t, factors={"a21026": {"Avg": 41.0, "ZsAvg": 53.0}}),
        encode_data(cn="2031", mn=STACK_MN, st="31", data_time=t, factors={"a21026": {"Avg": 39.0, "Cou": 12.5}}),
        encode_data(cn="2021", mn=STACK_MN, st="31", data_time=t, factors={"SB1": {"RS": 1.0}, "SB2": {"RS": 3.0}}),
        encode_data(cn="2041", mn=STACK_MN, st="31", data_time=t, factors={"SB1": {"RT": 23.5}}),
        frame_segment(
            build_segment(
                cn="2081", mn=STACK_MN, st="31", qn="20261121100500000", cp=[[("RestartTime", "20261121100400")]]
            )
        ),
    ]
    await _publish(settings, STACK_MN, *packets)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 3)
    rows = await fetch(settings.DATABASE_URL, "SELECT iv, value, zs, cou FROM readings ORDER BY iv")
    assert [tuple(r) for r in rows] == [(0, 40.0, 52.0, None), (2, 41.0, 53.0, None), (3, 39.0, None, 12.5)]
    events = await eventually(
        lambda: fetch(
            settings.DATABASE_URL,
            "SELECT kind, subject, value, ts FROM station_events WHERE kind <> 'path' ORDER BY kind, subject",
        ),
        lambda e: len(e) == 4,
    )
    assert [(e["kind"], e["subject"], e["value"]) for e in events] == [
        ("facility_runtime", "SB1", 23.5),
        ("facility_state", "SB1", 1.0),
        ("facility_state", "SB2", 3.0),
        ("logger_restart", "", None),
    ]
    assert events[-1]["ts"] == datetime(2026, 11, 21, 10, 4, tzinfo=CST)
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM hj212_packets") == 6


async def test_resent_packet_is_a_duplicate_not_a_second_row(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """A logger re-sending (补发) a packet adds no reading; both receipts are in the packet log."""
    await _publish(settings, OUT_MN, _minute(5))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 3)
    await _publish(settings, OUT_MN, _minute(5))
    await eventually(lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM hj212_packets"), lambda n: n == 2)
    assert await count_readings(settings.DATABASE_URL) == 3


async def test_refusals_go_to_dead_letters_with_finding_codes(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """Bad CRC, unknown MN, wrong PW, topic/packet MN mismatch, MODBUS CRC unconfigured → dead letters."""
    good = _minute(0)
    bad_crc = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"1111") + b"\r\n"
    swapped = encode_data(
        cn="2011",
        mn=OUT_MN,
        data_time=datetime(2026, 11, 20, 9),
        factors={"w01018": {"Rtd": 1.0}},
        crc=CrcVariant.MODBUS_SWAPPED,
    )
    await _publish(settings, OUT_MN, bad_crc)
    await _publish(settings, OUT_MN, swapped)
    await _publish(settings, "UNREGISTERED01", _minute(0, mn="UNREGISTERED01"))
    await _publish(settings, LOCKED_MN, _minute(0, mn=LOCKED_MN, pw="guess"))
    await _publish(settings, STACK_MN, good)  # packet says OUT_MN
    await _publish(settings, OUT_MN, b"not an hj212 packet at all")
    rows = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, problems, topic FROM dead_letters ORDER BY id"),
        lambda r: len(r) == 6,
    )
    reasons = [r["reason"] for r in rows]
    assert reasons == [
        "invalid_frame",
        "invalid_frame",
        "unknown_station",
        "bad_password",
        "station_mismatch",
        "invalid_frame",
    ]
    codes = [[p["at"] for p in json.loads(r["problems"])] for r in rows]
    assert codes[0] == ["crc_mismatch"]
    assert codes[1] == ["crc_variant_modbus_swapped"]
    assert codes[5] == ["no_header"]
    assert await count_readings(settings.DATABASE_URL) == 0


async def test_configured_modbus_station_is_accepted(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """A station registered with crc: modbus-swapped has its packets accepted."""
    packet = encode_data(
        cn="2011",
        mn=MODBUS_MN,
        st="31",
        data_time=datetime(2026, 11, 20, 9),
        factors={"a21002": {"Rtd": 88.0}},
        crc=CrcVariant.MODBUS_SWAPPED,
    )
    await _publish(settings, MODBUS_MN, packet)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    findings = await fetchval(settings.DATABASE_URL, "SELECT findings FROM hj212_packets")
    assert "crc_variant_modbus_swapped" in findings


async def test_unknown_codes_are_kept_and_flagged(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """A vendor code is stored under a parameter registered outside the catalogue, and flagged."""
    packet = encode_data(
        cn="2011",
        mn=OUT_MN,
        data_time=datetime(2026, 11, 20, 9),
        factors={"w01018": {"Rtd": 20.0}, "a99054": {"Rtd": 0.7}},
    )
    await _publish(settings, OUT_MN, packet)
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL,
            "SELECT p.code, p.in_catalogue, r.value FROM readings r JOIN parameters p USING (pid) ORDER BY 1",
        ),
        lambda r: len(r) == 2,
    )
    assert [tuple(r) for r in rows] == [("a99054", False, 0.7), ("w01018", True, 20.0)]
    findings = json.loads(await fetchval(settings.DATABASE_URL, "SELECT findings FROM hj212_packets"))
    assert "unknown_code" in [f["code"] for f in findings]


async def test_2005_style_packet_with_old_codes(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """An HJ/T 212-2005 upload (no QN, no Flag, old codes) is read with the 2017 codes."""
    segment = (
        "ST=32;CN=2011;PW=123456;MN=43010000000101;CP=&&DataTime=20261120090000;011-Rtd=28.5,011-Flag=N;060-Rtd=1.2&&"
    )
    await _publish(settings, OUT_MN, frame_segment(segment))
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL, "SELECT p.code, r.value FROM readings r JOIN parameters p USING (pid) ORDER BY 1"
        ),
        lambda r: len(r) == 2,
    )
    assert [tuple(r) for r in rows] == [("w01018", 28.5), ("w21003", 1.2)]


async def test_unknown_mn_replayed_after_registration(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """Packets of a logger not yet registered are dead letters; `dead-letters replay` stores them once it is."""
    await _publish(settings, "NEWLOGGER0001", _minute(0, mn="NEWLOGGER0001"), _minute(1, mn="NEWLOGGER0001"))
    await eventually(lambda: fetch(settings.DATABASE_URL, "SELECT id FROM dead_letters"), lambda r: len(r) == 2)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(
            conn,
            RegistryFile(
                stations=[
                    StationSpec(id="p1-new", park_id="p1", kind=StationKind.WASTEWATER_OUTLET, mn="NEWLOGGER0001")
                ]
            ),
        )
    finally:
        await conn.close()
    result = run_cli("dead-letters", "replay", "--reason", "unknown_station", env=cli_env(settings))
    assert result.returncode == 0, result.stderr
    assert "examined 2: 2 resolved, 0 still refused; 6 readings stored" in result.stdout
    assert await count_readings(settings.DATABASE_URL) == 6
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM hj212_packets WHERE mn = 'NEWLOGGER0001'") == 2


async def test_packets_and_events_through_the_api(
    settings: Settings, ingest: IngestService, hj212_stations: None, api: httpx.AsyncClient
) -> None:
    """The packet log and station events are served per station, raw text and findings included."""
    t = datetime(2026, 11, 21, 10, 0)
    packets = [
        _minute(0),
        encode_data(cn="2021", mn=OUT_MN, data_time=t, factors={"SB1": {"RS": 2.0}}),
    ]
    await _publish(settings, OUT_MN, *packets)
    await eventually(
        lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM station_events WHERE kind <> 'path'"),
        lambda n: n == 1,
    )
    listed = (await api.get("/api/v1/stations/p1-out/hj212-packets", params={"start": "2026-01-01"})).json()["results"]
    assert [p["cn"] for p in listed] == ["2051", "2021"]
    assert listed[0]["raw"].encode() == _minute(0)  # as sent: an administrator sees the password (docs/access.md)
    assert listed[0]["data_time"] == "2026-11-20T08:00:00+08:00"
    assert isinstance(listed[0]["findings"], list)
    events = (
        await api.get("/api/v1/stations/p1-out/events", params={"start": "2026-11-01", "end": "2026-12-01"})
    ).json()
    assert [(e["kind"], e["subject"], e["value"], e["ts_local"]) for e in events["results"]] == [
        ("facility_state", "SB1", 2.0, "2026-11-21T10:00:00+08:00")
    ]
    assert (await api.get("/api/v1/stations/nope/events")).status_code == 404


async def test_a_nul_byte_is_refused_at_validation_not_by_the_database(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """Packets with a NUL byte (CRC and length right) are dead letters at once; the batch around them is stored."""

    def with_nul(minute: int) -> bytes:
        segment = build_segment(
            cn="2051",
            mn=OUT_MN,
            st="32",
            pw="123456",
            qn=f"20261120{minute:02d}0000000",
            flag=4,
            cp=[[("DataTime", f"202611200{8}{minute:02d}00")], [("w01018-Avg", "1\x002"), ("w01018-Flag", "N")]],
        )
        return frame_segment(segment)

    await _publish(settings, OUT_MN, *[with_nul(m) for m in range(20)], _minute(30), _minute(31))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 6)
    rows = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, problems FROM dead_letters"), lambda r: len(r) == 20
    )
    assert {r["reason"] for r in rows} == {"invalid_frame"}
    assert all(json.loads(r["problems"])[0]["at"] == "nul_byte" for r in rows)
    assert ingest.stats.dead_letters.get("rejected_by_database", 0) == 0


async def test_a_value_no_instrument_can_report_is_refused_and_the_rest_of_the_packet_stored(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """COD Avg 1.7e308 in a minute packet: out_of_range for COD; NH3-N and flow of the same packet stored."""
    packet = _minute(
        0,
        factors={
            "w01018": {"Avg": 1.7e308, "Flag": "N"},
            "w21003": {"Avg": 0.8, "Flag": "N"},
            "w00000": {"Avg": 120.0},
        },
    )
    await _publish(settings, OUT_MN, packet)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)
    [dead] = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, problems FROM dead_letters"), lambda r: len(r) == 1
    )
    assert dead["reason"] == "out_of_range"
    assert json.loads(dead["problems"])[0]["at"] == "w01018"


async def test_only_administrators_see_a_station_password(
    settings: Settings, ingest: IngestService, hj212_stations: None, api: httpx.AsyncClient
) -> None:
    """Packets and refused payloads are served with PW masked to all but administrators (a bureau key
    here); the database keeps them as received."""
    good = encode_data(
        cn="2051",
        mn=LOCKED_MN,
        data_time=datetime(2026, 11, 20, 8),
        pw="s3cr3t",
        factors={"w01018": {"Avg": 30.0, "Flag": "N"}},
    )
    wrong = encode_data(
        cn="2051",
        mn=LOCKED_MN,
        data_time=datetime(2026, 11, 20, 8, 1),
        pw="guess-1",
        factors={"w01018": {"Avg": 31.0, "Flag": "N"}},
    )
    await _publish(settings, LOCKED_MN, good, wrong)
    [dead] = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT id FROM dead_letters"), lambda r: len(r) == 1
    )
    bureau = {"X-API-Key": await make_key(settings.DATABASE_URL, "bureau", province=True)}
    path = "/api/v1/stations/p1-secret/hj212-packets"
    [packet] = (await api.get(path, params={"start": "2026-11-01"}, headers=bureau)).json()["results"]
    assert "PW=******;" in packet["raw"] and "s3cr3t" not in packet["raw"]
    letter = (await api.get(f"/api/v1/dead-letters/{dead['id']}", headers=bureau)).json()
    assert letter["payload_redacted"] is True and letter["payload_text"] is None and letter["payload_base64"] is None
    assert "guess-1" not in str(letter)
    # the administrator sees what the station sent
    [packet] = (await api.get(path, params={"start": "2026-11-01"})).json()["results"]
    assert "PW=s3cr3t;" in packet["raw"]
    letter = (await api.get(f"/api/v1/dead-letters/{dead['id']}")).json()
    assert letter["payload_redacted"] is False and b"guess-1" in base64.b64decode(letter["payload_base64"])
    stored = await fetchval(settings.DATABASE_URL, "SELECT raw FROM hj212_packets")
    assert b"PW=s3cr3t;" in bytes(stored)  # the audit trail keeps what the station sent


async def test_codes_outside_the_tables_are_registered_only_up_to_a_bound(
    settings: Settings, ingest: IngestService, hj212_stations: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound, a new code's values are refused with a reason, never dropped unsaid."""
    outside = await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM parameters WHERE NOT in_catalogue")
    monkeypatch.setattr(registry_module, "MAX_CODES_OUTSIDE_CATALOGUE", outside + 1)
    packet = _minute(0, factors={"w01018": {"Avg": 30.0, "Flag": "N"}, "zz0001": {"Avg": 1.0}, "zz0002": {"Avg": 2.0}})
    await _publish(settings, OUT_MN, packet)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    [dead] = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, problems FROM dead_letters"), lambda r: len(r) == 1
    )
    assert dead["reason"] == "unknown_parameter"
    assert {p["at"] for p in json.loads(dead["problems"])} == {"zz0001", "zz0002"}
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM parameters WHERE NOT in_catalogue") == outside


async def test_the_same_reading_by_json_and_by_hj212_is_stored_once_and_raised(
    settings: Settings, ingest: IngestService, registry: None
) -> None:
    """p1-out's minute arrives as JSON and again from its logger: one row per reading (the first,
    the HJ 212 Min/Max kept as a revision of it), both ways noted, and a two_paths alarm."""
    start = datetime(2026, 11, 20, 8, 0, tzinfo=CST)
    json_minute = {
        "station_id": "p1-out",
        "ts": start.isoformat(),
        "interval": "min",
        "readings": [{"parameter": "w01018", "value": 32.5}, {"parameter": "w21003", "value": 0.8, "flag": "C"}],
    }
    await publish(settings, "p1", "p1-out", json_minute)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)
    await _publish(settings, OUT_MN, _minute(0))
    await eventually(lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM hj212_packets"), lambda n: n == 1)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 3)  # w00000 only came by HJ 212
    stored = await fetch(
        settings.DATABASE_URL,
        "SELECT value, vmin FROM readings r JOIN parameters p USING (pid) WHERE p.code = 'w01018'",
    )
    assert [tuple(r) for r in stored] == [(32.5, None)], "the first to arrive is the stored one"
    revised = await fetch(settings.DATABASE_URL, "SELECT vmin FROM reading_revisions ORDER BY pid")
    assert sorted(r["vmin"] for r in revised) == [0.5, 30.0], "the logger's differing copies are kept as revisions"
    paths = await fetch(
        settings.DATABASE_URL, "SELECT subject FROM station_events WHERE kind = 'path' ORDER BY subject"
    )
    assert [r["subject"] for r in paths] == ["hj212", "mqtt"]

    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        assert await check_instruments(conn) == (1, 0)
        assert await check_instruments(conn) == (0, 0)
        [alert] = await conn.fetch("SELECT rule, details FROM alerts")
    finally:
        await conn.close()
    assert alert["rule"] == "data_quality.two_paths"
    assert json.loads(alert["details"])["paths"] == ["hj212", "mqtt"]


async def test_every_value_of_a_packet_is_a_reading_an_event_or_a_named_finding(
    settings: Settings, ingest: IngestService, hj212_stations: None, api: httpx.AsyncClient
) -> None:
    """One real-time packet with a code of every family (docs/reference/hj212.md §5-6): a declared
    pollutant with EFlag and SampleTime, a noise level, a process code, a facility state, a
    field-site information code and a vendor code. Readings for every measured value (noise was
    dropped without a word before), an event for the facility, and findings naming the codes the
    station never declared and each value kept in the packet log only."""
    t = datetime(2026, 11, 20, 9, 0)
    packet = encode_data(
        cn="2011", mn=OUT_MN, data_time=t,
        factors={
            "w01018": {"Rtd": 20.0, "Flag": "N", "EFlag": "A01", "SampleTime": "20261120085000"},
            "LA": {"Rtd": 55.2, "Flag": "N"},
            "e12001": {"Rtd": 3.0},
            "SB1": {"RS": 1.0},
            "i12001": {"Info": "5"},
            "a99054": {"Rtd": 0.7},
        },
    )  # fmt: skip
    await _publish(settings, OUT_MN, packet)
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL,
            "SELECT p.code, r.value FROM readings r JOIN parameters p USING (pid) ORDER BY 1",
        ),
        lambda r: len(r) == 4,
    )
    assert [tuple(r) for r in rows] == [("LA", 55.2), ("a99054", 0.7), ("e12001", 3.0), ("w01018", 20.0)]
    events = await fetch(settings.DATABASE_URL, "SELECT kind, subject, value FROM station_events WHERE kind <> 'path'")
    assert [tuple(e) for e in events] == [("facility_state", "SB1", 1.0)]
    findings = json.loads(await fetchval(settings.DATABASE_URL, "SELECT findings FROM hj212_packets"))
    undeclared = sorted(f["message"].split()[0] for f in findings if f["code"] == "undeclared_code")
    assert undeclared == ["'LA'", "'a99054'", "'e12001'"]
    assert all("; stored" in f["message"] for f in findings if f["code"] == "undeclared_code")
    [kept] = [f["message"] for f in findings if f["code"] == "value_not_stored"]
    assert kept == "kept in the packet log only, not as readings: 'w01018-EFlag', 'w01018-SampleTime', 'i12001-Info'"
    url = "/api/v1/stations/p1-out/hj212-packets"
    for finding, n in (("undeclared_code", 1), ("value_not_stored", 1), ("crc_mismatch", 0)):
        listed = await api.get(url, params={"start": "2026-01-01", "finding": finding})
        assert listed.status_code == 200 and len(listed.json()["results"]) == n, (finding, listed.text)


async def test_a_strict_station_refuses_undeclared_codes_with_a_finding(
    settings: Settings, ingest: IngestService, registry: None
) -> None:
    """`hj212: {strict_codes: true}`: a code the station did not declare is not stored, and the
    packet's findings say so; its declared codes are stored."""
    mn = "STRICTLOGGER01"
    spec = StationSpec.model_validate(
        {"id": "p1-strict", "park_id": "p1", "kind": "wastewater_outlet", "mn": mn, "parameters": ["w01018"],
         "hj212": {"strict_codes": True}}
    )  # fmt: skip
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, RegistryFile(stations=[spec]))
    finally:
        await conn.close()
    packet = encode_data(
        cn="2051", mn=mn, data_time=datetime(2026, 11, 20, 9, 0),
        factors={"w01018": {"Avg": 20.0}, "w21003": {"Avg": 1.5}},
    )  # fmt: skip
    await eventually(lambda: _publish_counted(settings, mn, packet), lambda n: n >= 1)
    rows = await fetch(settings.DATABASE_URL, "SELECT p.code FROM readings r JOIN parameters p USING (pid)")
    assert [r["code"] for r in rows] == ["w01018"]
    findings = json.loads(await fetchval(settings.DATABASE_URL, "SELECT findings FROM hj212_packets LIMIT 1"))
    assert [f["message"] for f in findings if f["code"] == "undeclared_code"] == [
        "'w21003' is not among the station's parameters; refused (strict_codes)"
    ]


async def _publish_counted(settings: Settings, mn: str, packet: bytes) -> int:
    """Publish (again: the running ingest learns a new station within its registry refresh) and count readings."""
    await _publish(settings, mn, packet)
    return await count_readings(settings.DATABASE_URL)


def _part(pno: int, pnum: int, qn: str, cp: list[list[tuple[str, str]]], *, digits: int = 4) -> bytes:
    """One part of a split minute packet as loggers send it: Flag with the D bit, PNUM/PNO padded."""
    segment = build_segment(cn="2051", mn=OUT_MN, qn=qn, flag=7, cp=cp).replace(
        ";Flag=7;", f";Flag=7;PNUM={pnum:0{digits}d};PNO={pno:0{digits}d};"
    )
    return frame_segment(segment)


async def test_split_parts_without_datatime_take_the_first_parts(
    settings: Settings, ingest: IngestService, registry: None
) -> None:
    """A logger splits a minute packet in three, DataTime only in the first, QN in each, 8-digit
    PNUM/PNO: the whole packet is stored at the first part's time, each later part saying so."""
    qn = "20261120090100001"
    parts = [
        _part(1, 3, qn, [[("DataTime", "20261120090000")], [("w01018-Avg", "31.5"), ("w01018-Flag", "N")]], digits=8),
        _part(2, 3, qn, [[("w21003-Avg", "1.2"), ("w21003-Flag", "N")]], digits=8),
        _part(3, 3, qn, [[("w00000-Avg", "40.0"), ("w00000-Cou", "2.4")]], digits=8),
    ]
    await _publish(settings, OUT_MN, *parts)
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL, "SELECT p.code, r.ts FROM readings r JOIN parameters p USING (pid) ORDER BY 1"
        ),
        lambda r: len(r) == 3,
    )
    assert [(r["code"], r["ts"]) for r in rows] == [
        (code, datetime(2026, 11, 20, 9, 0, tzinfo=CST)) for code in ("w00000", "w01018", "w21003")
    ]
    logged = await fetch(settings.DATABASE_URL, "SELECT findings FROM hj212_packets ORDER BY id")
    codes = [sorted({f["code"] for f in json.loads(r["findings"])} - {"mn_nonstandard"}) for r in logged]
    assert codes[0] == ["packet_number_long"]
    assert codes[1] == codes[2] == ["datatime_from_first_part", "packet_number_long"]
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM dead_letters") == 0


async def test_a_part_before_its_first_part_is_kept_and_replayed(
    settings: Settings, ingest: IngestService, registry: None
) -> None:
    """Part 2 arrives before part 1 (or after an ingest restart lost what it remembered): it is a
    dead letter naming the missing part, and `dead-letters replay` stores it once part 1 is in."""
    qn = "20261120091100002"
    second = _part(2, 2, qn, [[("w21003-Avg", "1.4")]])
    await _publish(settings, OUT_MN, second)
    dead = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, message FROM dead_letters"), lambda r: len(r) == 1
    )
    assert dead[0]["reason"] == "bad_timestamp"
    assert "part 2 of 2" in dead[0]["message"] and qn in dead[0]["message"]
    await _publish(settings, OUT_MN, _part(1, 2, qn, [[("DataTime", "20261120091000")], [("w01018-Avg", "30.0")]]))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    done = run_cli("dead-letters", "replay", "--reason", "bad_timestamp", env=cli_env(settings))
    assert done.returncode == 0, done.stderr
    rows = await fetch(
        settings.DATABASE_URL, "SELECT p.code, r.ts FROM readings r JOIN parameters p USING (pid) ORDER BY 1"
    )
    assert [(r["code"], r["ts"]) for r in rows] == [
        ("w01018", datetime(2026, 11, 20, 9, 10, tzinfo=CST)),
        ("w21003", datetime(2026, 11, 20, 9, 10, tzinfo=CST)),
    ]


async def test_content_that_does_not_match_its_command_is_stored_as_what_it_is(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """Minute statistics sent as real-time data (2011) and as running time (2041) are stored as
    minute data, with a content_mismatch finding; 2041's facility value stays an event. They
    were kept only in the raw packet log before."""
    t = datetime(2026, 11, 21, 11, 0)
    packets = [
        encode_data(cn="2011", mn=OUT_MN, data_time=t, factors={"w01018": {"Avg": 33.0, "Min": 30.0, "Max": 36.0}}),
        encode_data(
            cn="2041", mn=OUT_MN, data_time=t + timedelta(minutes=1),
            factors={"SB1": {"RT": 0.5}, "w21003": {"Avg": 1.1, "Cou": 0.2}},
        ),
    ]  # fmt: skip
    await _publish(settings, OUT_MN, *packets)
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL,
            "SELECT p.code, r.iv, r.ts, r.value, r.vmin FROM readings r JOIN parameters p USING (pid) ORDER BY 1",
        ),
        lambda r: len(r) == 2,
    )
    assert [tuple(r) for r in rows] == [
        ("w01018", 1, datetime(2026, 11, 21, 11, 0, tzinfo=CST), 33.0, 30.0),
        ("w21003", 1, datetime(2026, 11, 21, 11, 1, tzinfo=CST), 1.1, None),
    ]
    events = await fetch(settings.DATABASE_URL, "SELECT kind, subject, value FROM station_events WHERE kind <> 'path'")
    assert [tuple(e) for e in events] == [("facility_runtime", "SB1", 0.5)]
    logged = await fetch(settings.DATABASE_URL, "SELECT cn, findings FROM hj212_packets ORDER BY id")
    mismatches = [
        (r["cn"], f["message"]) for r in logged for f in json.loads(r["findings"]) if f["code"] == "content_mismatch"
    ]
    assert mismatches == [
        ("2011", "CN 2011 (real-time data) carries minute statistics (Avg/Min/Max/Cou): stored as such"),
        ("2041", "CN 2041 (facility running time) carries minute statistics (Avg/Min/Max/Cou): stored as such"),
    ]


async def test_hour_and_day_data_off_their_period_start_are_stored_at_it_with_a_finding(
    settings: Settings, ingest: IngestService, hj212_stations: None
) -> None:
    """Hour data stamped 10:05 is the hour from 10:00; day data stamped 08:00 the day from 00:00.
    A second day record for the same day (stamped 09:00, another value) is the same key: a
    revision, never a second day value without a word. The packet log keeps the original."""
    day = datetime(2026, 11, 22)
    packets = [
        encode_data(cn="2061", mn=OUT_MN, data_time=day.replace(hour=10, minute=5), factors={"w01018": {"Avg": 40.0}}),
        encode_data(cn="2031", mn=OUT_MN, data_time=day.replace(hour=8), factors={"w01018": {"Avg": 35.0}}),
        encode_data(cn="2031", mn=OUT_MN, data_time=day.replace(hour=9), factors={"w01018": {"Avg": 36.0}}),
    ]
    await _publish(settings, OUT_MN, *packets)
    await eventually(lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM hj212_packets"), lambda n: n == 3)
    rows = await fetch(settings.DATABASE_URL, "SELECT iv, ts, value FROM readings ORDER BY iv")
    assert [tuple(r) for r in rows] == [
        (2, datetime(2026, 11, 22, 10, 0, tzinfo=CST), 40.0),
        (3, datetime(2026, 11, 22, 0, 0, tzinfo=CST), 35.0),
    ]
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM reading_revisions") == 1
    logged = await fetch(settings.DATABASE_URL, "SELECT data_time, findings FROM hj212_packets ORDER BY id")
    assert [r["data_time"].astimezone(CST).hour for r in logged] == [10, 8, 9]
    unaligned = [f["message"] for r in logged for f in json.loads(r["findings"]) if f["code"] == "datatime_unaligned"]
    assert unaligned == [
        "DataTime 20261122100500 is not the start of an hour: stored as the hour from 20261122100000",
        "DataTime 20261122080000 is not the start of a day: stored as the day from 20261122000000",
        "DataTime 20261122090000 is not the start of a day: stored as the day from 20261122000000",
    ]


async def test_encrypted_packets_are_stored_with_the_stations_key_and_refused_by_name_without(
    settings: Settings, ingest: IngestService, registry: None
) -> None:
    """An HJ 212-2025 logger encrypts its data area (SM4): with `sm4_key` in the registry its
    readings are stored and the packet log keeps the bytes received; a station without a key
    gets a dead letter that names the encryption (it read "DataTime is missing" before)."""
    keyed, bare = "SM4LOGGER00001", "SM4LOGGER00002"
    specs = [
        StationSpec.model_validate(
            {"id": f"p1-{mn[-1]}", "park_id": "p1", "kind": "wastewater_outlet", "mn": mn, **extra}
        )
        for mn, extra in ((keyed, {"sm4_key": "0000000000000000"}), (bare, {}))
    ]
    assert specs[0].sm4_key == "30" * 16  # sixteen ASCII characters, stored as hex
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, RegistryFile(stations=specs))
    finally:
        await conn.close()

    def packet(mn: str) -> bytes:
        segment = build_segment(
            cn="2051", mn=mn, qn="20261120100100000", flag=9,
            cp=[[("DataTime", "20261120100000")], [("w01018-Avg", "28.25"), ("w01018-Flag", "N")]],
        )  # fmt: skip
        return encrypt_frame(segment, b"0" * 16)

    sent = packet(keyed)
    await eventually(lambda: _publish_counted(settings, keyed, sent), lambda n: n == 1)
    logged = await fetch(settings.DATABASE_URL, "SELECT raw, findings FROM hj212_packets")
    assert bytes(logged[0]["raw"]) == sent
    assert "decrypted" in [f["code"] for f in json.loads(logged[0]["findings"])]
    assert await fetchval(settings.DATABASE_URL, "SELECT value FROM readings") == 28.25

    await _publish(settings, bare, packet(bare))
    dead = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, message FROM dead_letters"), lambda r: len(r) == 1
    )
    assert dead[0]["reason"] == "invalid_frame"
    assert "SM4-encrypted (HJ 212-2025)" in dead[0]["message"] and "DataTime" not in dead[0]["message"]
    # once its key is registered, the kept packet is stored by a replay
    await fetch(settings.DATABASE_URL, "UPDATE stations SET sm4_key = $1 WHERE mn = $2", "30" * 16, bare)
    done = run_cli("dead-letters", "replay", "--reason", "invalid_frame", env=cli_env(settings))
    assert done.returncode == 0, done.stderr
    assert await count_readings(settings.DATABASE_URL) == 2
