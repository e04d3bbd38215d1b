"""The HJ 212 TCP gateway end to end: a real TCP client → gateway → real broker → ingest → PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.hj212 import access
from ingest.hj212.codec import decode, encode_data, frame_segment
from ingest.hj212.gateway import Gateway
from ingest.hj212.packet import build_segment
from ingest.hj212.sm4 import encrypt_segment
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.stations import CrcVariant
from simulators.broker import PrivateBroker
from tests.helpers import cli_env, count_readings, eventually, fetch, fetchval, run_cli, running_gateway

ROOT = Path(__file__).resolve().parent.parent
MN = "43010000000101"  # p1-out in tests/data/registry.yaml


def _upload(minute: int, *, flag: int = 5, qn: str | None = None) -> bytes:
    t = datetime(2026, 11, 22, 9, 0) + timedelta(minutes=minute)
    return encode_data(
        cn="2051", mn=MN, data_time=t, flag=flag, qn=qn or t.strftime("%Y%m%d%H%M%S") + f"{minute:03d}",
        factors={"w01018": {"Avg": 30.0 + minute, "Min": 29.0, "Max": 31.0, "Flag": "N"}},
    )  # fmt: skip


@pytest.fixture
async def gateway(settings: Settings, ingest: IngestService) -> AsyncIterator[Gateway]:
    """A gateway on a free port, forwarding to the test's broker and prefix, with a short idle timeout."""
    async with running_gateway(settings, idle_timeout=1.5) as gw:
        yield gw


async def _read_replies(reader: asyncio.StreamReader, n: int, timeout: float = 10) -> list[dict]:
    """Read until n reply packets have arrived; return them decoded."""
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            packets = decode(data)
            if len([p for p in packets if p.frame.data]) >= n and data.endswith(b"\r\n"):
                return [p.as_json() for p in packets]
            chunk = await reader.read(4096)
            if not chunk:
                return [p.as_json() for p in decode(data)]
            data += chunk


async def test_split_frames_several_per_read_and_garbage(settings: Settings, gateway: Gateway) -> None:
    """One frame byte by byte, three frames in one write, garbage between: all stored, each answered 9014."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    first = _upload(0)
    for i in range(len(first)):
        writer.write(first[i : i + 1])
        await writer.drain()
    writer.write(b"\x00\xffnoise" + _upload(1) + _upload(2) + b"junk\r\n" + _upload(3))
    await writer.drain()
    replies = await _read_replies(reader, 4)
    writer.close()
    assert [r["cn"] for r in replies] == ["9014"] * 4
    assert [r["qn"] for r in replies] == [decode(_upload(i))[0].packet.qn for i in range(4)]
    assert all(r["st"] == "91" and r["flag"] == 4 and r["verdict"] == "valid" for r in replies)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 4)
    values = await fetch(settings.DATABASE_URL, "SELECT value FROM readings ORDER BY ts")
    assert [r["value"] for r in values] == [30.0, 31.0, 32.0, 33.0]
    assert gateway.stats.forwarded == 4


async def test_no_answer_unless_asked_and_none_for_a_bad_crc(settings: Settings, gateway: Gateway) -> None:
    """Flag=4 gets no 9014; a wrong CRC gets no answer but is forwarded (and dead-lettered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    good = _upload(10, flag=4)
    bad = _upload(11)
    bad = bad[:-6] + (b"0000" if bad[-6:-2] != b"0000" else b"1111") + b"\r\n"
    writer.write(good + bad + _upload(12))
    await writer.drain()
    replies = await _read_replies(reader, 1)
    writer.close()
    assert [r["qn"] for r in replies] == [decode(_upload(12))[0].packet.qn]
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)
    dead = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason FROM dead_letters"), lambda r: len(r) == 1
    )
    assert dead[0]["reason"] == "invalid_frame"


async def test_requests_and_notifications(settings: Settings, gateway: Gateway) -> None:
    """1013 (time calibration request) gets 9013; a request of a known CN 9011+9012; an unknown CN 9011 QnRtn=8."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    notify = frame_segment(build_segment(cn="1013", mn=MN, qn="20261122090000001", flag=5))
    request = frame_segment(build_segment(cn="3020", mn=MN, qn="20261122090000002", flag=5, cp=[[("PolId", "w01018")]]))
    request = frame_segment(build_segment(cn="1072", mn=MN, qn="20261122090000002", flag=5, cp=[[("NewPW", "654321")]]))
    unknown = frame_segment(build_segment(cn="8013", mn=MN, qn="20261122090000003", flag=5))
    writer.write(notify + request + unknown)
    await writer.drain()
    replies = await _read_replies(reader, 4)
    writer.close()
    got = [(r["cn"], r["qn"], r["fields"]) for r in replies]
    assert got == [
        ("9013", "20261122090000001", {}),
        ("9011", "20261122090000002", {"QnRtn": "1"}),
        ("9012", "20261122090000002", {"ExeRtn": "1"}),
        ("9011", "20261122090000003", {"QnRtn": "8"}),
    ]
    # requests are forwarded too: kept in the packet log
    logged = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT cn FROM hj212_packets ORDER BY id"), lambda r: len(r) == 3
    )
    assert [r["cn"] for r in logged] == ["1013", "1072", "8013"]


async def test_idle_connection_is_closed(gateway: Gateway) -> None:
    """A connection that sends nothing for the idle timeout is closed by the gateway."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(100), 10) == b""
    assert asyncio.get_running_loop().time() - started >= 1.4
    assert gateway.stats.idle_closed == 1
    writer.close()


async def test_unterminated_packet_answered_and_flushed_on_close(settings: Settings, gateway: Gateway) -> None:
    """A logger that sends no CRLF is answered at once; a partial frame left at close is reported, not lost."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(_upload(20)[:-2])  # no CRLF
    await writer.drain()
    replies = await _read_replies(reader, 1)
    assert [r["cn"] for r in replies] == ["9014"]
    writer.write(_upload(21)[:40])  # a logger dying mid-frame
    await writer.drain()
    writer.close()
    dead = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason, problems FROM dead_letters"), lambda r: len(r) == 1
    )
    assert dead[0]["reason"] == "invalid_frame"
    assert "truncated" in dead[0]["problems"]
    assert await count_readings(settings.DATABASE_URL) == 1


async def test_answer_only_after_the_broker_has_the_packet(settings: Settings, registry: None, tmp_path: Path) -> None:
    """With the broker down, a packet is not answered; once the broker is back it is forwarded, answered and stored."""
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    run = settings.model_copy(update={"MQTT_URL": broker.url})
    service = IngestService(run)
    gw = Gateway(run, host="127.0.0.1", port=0, idle_timeout=30)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(service.run(stop)), asyncio.create_task(gw.run(stop))]
    try:
        await asyncio.wait_for(gw.listening.wait(), 10)
        await asyncio.wait_for(gw.link._ready.wait(), 10)
        await eventually(lambda: _value(service.receiver.connected.is_set()), bool)
        broker.stop()
        await eventually(lambda: _value(gw.link._ready.is_set()), lambda ready: not ready)
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(_upload(30))
        await writer.drain()
        with pytest.raises(TimeoutError):
            await _read_replies(reader, 1, timeout=1.5)
        broker.start()
        replies = await _read_replies(reader, 1, timeout=30)
        assert [r["cn"] for r in replies] == ["9014"]
        writer.close()
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        broker.stop()


async def test_many_concurrent_loggers(settings: Settings, gateway: Gateway) -> None:
    """Fifty loggers at once, each sending five packets: every packet answered and stored once."""

    async def logger_session(k: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        sent = [_upload(100 + k * 5 + i, qn=f"2026112209{k:03d}{i:06d}") for i in range(5)]
        writer.write(b"".join(sent))
        await writer.drain()
        replies = await _read_replies(reader, 5, timeout=30)
        writer.close()
        return len([r for r in replies if r["cn"] == "9014"])

    answered = await asyncio.gather(*(logger_session(k) for k in range(50)))
    assert answered == [5] * 50
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 250, timeout=30)


async def _value(v: object) -> object:
    return v


# -- who may send as an MN ------------------------------------------------------------------


async def _connect(gateway: Gateway, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A logger connection from a loopback address of our choice (Linux routes all of 127/8 to lo)."""
    return await asyncio.open_connection("127.0.0.1", gateway.port, local_addr=(source, 0))


async def _closed_by_gateway(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(5):
        return await reader.read(4096) == b""


async def _dead_letters(settings: Settings, n: int) -> list[Any]:
    await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT * FROM dead_letters ORDER BY id"), lambda rows: len(rows) >= n
    )
    return await fetch(settings.DATABASE_URL, "SELECT * FROM dead_letters ORDER BY id")


async def test_a_logger_outside_its_parks_networks_is_refused_and_kept_for_replay(
    settings: Settings, gateway: Gateway
) -> None:
    """Park p1 allows 10.0.0.0/8: a frame from 127.0.0.1 gets no answer, closes the connection and
    is kept as a dead letter, as the frame on its HJ 212 topic; once the park allows the address,
    `dead-letters replay` stores it."""
    await fetch(
        settings.DATABASE_URL, """UPDATE parks SET attrs = '{"gateway_networks": ["10.0.0.0/8"]}' WHERE id = 'p1'"""
    )
    await gateway.load_registry()
    reader, writer = await _connect(gateway, "127.0.0.1")
    frame = _upload(7)
    writer.write(frame)
    await writer.drain()
    assert await _closed_by_gateway(reader), "refused: no answer, connection closed"
    [dead] = await _dead_letters(settings, 1)
    assert dead["reason"] == "refused_by_gateway" and dead["station_id"] == "p1-out"
    assert dead["topic"] == f"{settings.TOPIC_PREFIX}/hj212/{MN}" and bytes(dead["payload"]) == frame
    assert "network_not_allowed" in dead["message"] and "127.0.0.1" in dead["message"]
    assert gateway.stats.refused == 1 and await count_readings(settings.DATABASE_URL) == 0

    await fetch(
        settings.DATABASE_URL, """UPDATE parks SET attrs = '{"gateway_networks": ["127.0.0.0/8"]}' WHERE id = 'p1'"""
    )
    await gateway.load_registry()
    done = run_cli("dead-letters", "replay", "--reason", "refused_by_gateway", env=cli_env(settings))
    assert done.returncode == 0, done.stderr
    assert await count_readings(settings.DATABASE_URL) == 1
    reader, writer = await _connect(gateway, "127.0.0.1")
    writer.write(_upload(8))
    await writer.drain()
    assert [r["cn"] for r in await _read_replies(reader, 1)] == ["9014"]
    writer.close()


async def test_an_mn_connected_from_one_address_is_refused_from_another(settings: Settings, gateway: Gateway) -> None:
    """The logger sends from 127.0.0.1; a second source sending as its MN is refused and recorded
    while the logger keeps being answered."""
    reader, writer = await _connect(gateway, "127.0.0.1")
    writer.write(_upload(0))
    await writer.drain()
    assert [r["cn"] for r in await _read_replies(reader, 1)] == ["9014"]

    f_reader, f_writer = await _connect(gateway, "127.0.0.66")
    f_writer.write(_upload(1))
    await f_writer.drain()
    assert await _closed_by_gateway(f_reader)
    [dead] = await _dead_letters(settings, 1)
    assert "mn_connected_elsewhere" in dead["message"] and "127.0.0.66" in dead["message"]

    writer.write(_upload(2))
    await writer.drain()
    assert len(await _read_replies(reader, 2)) >= 1
    writer.close()
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)
    values = await fetch(settings.DATABASE_URL, "SELECT value FROM readings ORDER BY ts")
    assert [r["value"] for r in values] == [30.0, 32.0], "the second source's value was not stored"


async def test_a_silent_logger_can_be_taken_over_and_the_new_source_is_recorded(
    settings: Settings, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silent past the takeover time (a 4G logger that changed address), the MN moves to the new
    connection: the old one is closed and a source_changed station event names the new address."""
    monkeypatch.setattr(access, "TAKEOVER_SILENCE", 0.3)
    reader, writer = await _connect(gateway, "127.0.0.1")
    writer.write(_upload(0))
    await writer.drain()
    await _read_replies(reader, 1)
    await asyncio.sleep(0.5)
    n_reader, n_writer = await _connect(gateway, "127.0.0.2")
    n_writer.write(_upload(1))
    await n_writer.drain()
    assert [r["cn"] for r in await _read_replies(n_reader, 1)] == ["9014"]
    assert await _closed_by_gateway(reader), "the silent connection is closed"
    n_writer.close()
    events = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT kind, subject FROM station_events WHERE kind <> 'path'"),
        lambda rows: len(rows) == 1,
    )
    assert (events[0]["kind"], events[0]["subject"]) == ("source_changed", "127.0.0.2")
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)


# -- TLS and the connection limit ----------------------------------------------------------


async def test_loggers_that_speak_tls_reach_the_gateways_tls_listener(
    settings: Settings, ingest: IngestService, tmp_path: Path
) -> None:
    """deploy/make-certs.sh's certificate on the TLS port: a logger trusting the private CA is
    answered and stored; one that does not trust it fails its handshake; the plain port still serves."""
    certs = tmp_path / "certs"
    subprocess.run(["bash", str(ROOT / "deploy" / "make-certs.sh"), str(certs), "127.0.0.1"], check=True)
    async with running_gateway(
        settings, GATEWAY_TLS_PORT=0, GATEWAY_TLS_CERT=certs / "server.crt", GATEWAY_TLS_KEY=certs / "server.key"
    ) as gw:
        assert gw.tls_port
        trusting = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.tls_port, ssl=trusting)
        writer.write(_upload(0))
        await writer.drain()
        assert [r["cn"] for r in await _read_replies(reader, 1)] == ["9014"]
        writer.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", gw.tls_port, ssl=ssl.create_default_context())
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(_upload(1))
        await writer.drain()
        assert [r["cn"] for r in await _read_replies(reader, 1)] == ["9014"]
        writer.close()
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)


async def test_connections_past_the_limit_are_closed_at_once(settings: Settings, ingest: IngestService) -> None:
    async with running_gateway(settings, GATEWAY_MAX_CONNECTIONS=3) as gw:
        held = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(3)]
        await eventually(lambda: _value(len(gw._connections)), lambda n: n == 3)
        reader, _ = await asyncio.open_connection("127.0.0.1", gw.port)
        assert await _closed_by_gateway(reader)
        assert gw.stats.over_limit == 1
        held[0][1].close()
        await eventually(lambda: _value(len(gw._connections)), lambda n: n == 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(_upload(0))
        await writer.drain()
        assert [r["cn"] for r in await _read_replies(reader, 1)] == ["9014"]
        for _, w in [*held[1:], (reader, writer)]:
            w.close()


def _modbus_bitwise(data: bytes) -> int:
    """CRC-16/MODBUS the textbook way, bit by bit (not parkwatch's table routine)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


async def test_a_modbus_logger_gets_replies_it_accepts_in_its_dialect(
    settings: Settings, gateway: Gateway, tmp_path: Path
) -> None:
    """A logger registered with `crc: modbus` and a 2005-style dialect (ST echoed, QN inside CP)
    is answered with a CRC-16/MODBUS it can check, its own ST, and `CP=&&QN=…&&`; its data is
    stored. Before, its 9014 carried the standard's CRC: the logger rejected it and resent."""
    assert _modbus_bitwise(b"123456789") == 0x4B37  # the routine's published check value
    registry = (ROOT / "tests/data/registry.yaml").read_text()
    registry = registry.replace(
        'mn: "43010000000101",', 'mn: "43010000000101", crc: modbus, hj212: {reply_st: echo, reply_qn: cp},'
    )
    path = tmp_path / "registry.yaml"
    path.write_text(registry)
    loaded = run_cli("stations", "load", str(path), env=cli_env(settings))
    assert loaded.returncode == 0, loaded.stderr
    await gateway.load_registry()
    t = datetime(2026, 11, 22, 9, 30)
    upload = encode_data(
        cn="2051", mn=MN, data_time=t, qn="20261122093000123", st="32", flag=5, crc=CrcVariant.MODBUS,
        factors={"w01018": {"Avg": 31.5, "Flag": "N"}},
    )  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    # the ingest refuses MODBUS frames until its registry has the change: send until stored
    stored = 0
    for _ in range(50):
        writer.write(upload)
        await writer.drain()
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
        stored = await count_readings(settings.DATABASE_URL)
        if stored:
            break
        await asyncio.sleep(0.1)
    writer.close()
    assert stored == 1
    segment, crc = raw[6:-6], raw[-6:-2]
    assert int(raw[2:6]) == len(segment)
    assert crc.decode() == f"{_modbus_bitwise(segment):04X}"
    assert segment.decode() == "ST=32;CN=9014;PW=123456;MN=43010000000101;Flag=4;CP=&&QN=20261122093000123&&"


async def test_a_forwarders_frame_without_closing_ampersands_is_recovered(settings: Settings, gateway: Gateway) -> None:
    """A forwarder drops the CP's closing '&&' but keeps the length field (2 too many) and CRCs
    the bytes it sends: the gateway finds the frame's end by its CRC and line end, answers it,
    and it is stored with findings saying so (it was refused as truncated before)."""
    segment = build_segment(
        cn="2051", mn=MN, qn="20261122094000001", flag=5,
        cp=[[("DataTime", "20261122094000")], [("w01018-Avg", "33.3"), ("w01018-Flag", "N")]],
    ).removesuffix("&&")  # fmt: skip
    assert _hj212_crc_bitwise(b"123456789") == 0x2F80  # the standard's check value
    data = segment.encode()
    frame = b"##" + f"{len(data) + 2:04d}".encode() + data + f"{_hj212_crc_bitwise(data):04X}".encode() + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(frame)
    await writer.drain()
    replies = await _read_replies(reader, 1)
    writer.close()
    assert [(r["cn"], r["qn"]) for r in replies] == [("9014", "20261122094000001")]
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    logged = await fetch(settings.DATABASE_URL, "SELECT findings::text FROM hj212_packets")
    for code in ("frame_end_by_crc", "length_mismatch", "cp_unterminated"):
        assert code in logged[0]["findings"]


def _hj212_crc_bitwise(data: bytes) -> int:
    """HJ 212-2017 Appendix A's CRC as the standard's C listing computes it, bit by bit."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


async def test_an_encrypted_upload_is_answered_only_when_its_key_is_registered(
    settings: Settings, ingest: IngestService, gateway: Gateway
) -> None:
    """An HJ 212-2025 upload (Flag=9, SM4-encrypted data area, CRC over the plain text): without
    the station's key the gateway cannot check it and does not answer (the logger keeps it);
    with the key it answers 9014, and the ingest stores it."""
    segment = build_segment(
        cn="2051", mn=MN, qn="20261122095000001", flag=9,
        cp=[[("DataTime", "20261122095000")], [("w01018-Avg", "30.5"), ("w01018-Flag", "N")]],
    )  # fmt: skip
    plain = segment.encode()
    wire = encrypt_segment(segment, b"0" * 16)
    frame = b"##" + f"{len(plain):04d}".encode() + wire + f"{_hj212_crc_bitwise(plain):04X}".encode() + b"\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(frame)
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readuntil(b"\r\n"), 1.0)
    writer.close()

    await fetch(settings.DATABASE_URL, "UPDATE stations SET sm4_key = $1 WHERE mn = $2", ("0" * 16).encode().hex(), MN)
    await fetch(settings.DATABASE_URL, "SELECT pg_notify('parkwatch_registry', 'load')")
    await gateway.load_registry()
    await eventually(lambda: _value(ingest.registry.current.by_mn[MN].sm4_key), lambda key: key is not None)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(frame)
    await writer.drain()
    replies = await _read_replies(reader, 1)
    writer.close()
    assert [(r["cn"], r["qn"]) for r in replies] == [("9014", "20261122095000001")]
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)


def _third_party(segment: str, *, length: int | None = None) -> bytes:
    """A frame put together as other implementations do, not by parkwatch's encoder: the segment
    text as written, the length they count (characters, not bytes, for some), the standard's CRC
    computed bit by bit."""
    data = segment.encode()
    n = len(data) if length is None else length
    return b"##" + f"{n:04d}".encode() + data + f"{_hj212_crc_bitwise(data):04X}".encode() + b"\r\n"


THIRD_PARTY_HEAD = "ST=32;PW=123456;MN=43010000000101;Flag=5"
THIRD_PARTY = [
    pytest.param(
        [f"QN=20261122100000001;CN=2011;{THIRD_PARTY_HEAD};CP=&&DataTime=20261122100000;w01018-Rtd=21.5,"
         "w01018-Flag=N;i12001-Info=仪器正常&&"],
        True, 1, {"length_mismatch", "value_not_stored"},
        id="length-in-characters",
    ),
    pytest.param(
        [f"QN=20261122100100001;CN=2011;{THIRD_PARTY_HEAD};CP=&&DataTime=20261122100100;"
         "w01018-Min=20.0,w01018-Avg=21.0,w01018-Max=22.0,w01018-Flag=N&&"],
        False, 1, {"content_mismatch"},
        id="minute-data-as-2011",
    ),
    pytest.param(
        [f"QN=20261122100200001;CN=2051;{THIRD_PARTY_HEAD.replace('Flag=5', 'Flag=7')};PNUM=2;PNO=1;"
         "CP=&&DataTime=20261122100200;w01018-Avg=21.0,w01018-Flag=N&&",
         f"QN=20261122100200001;CN=2051;{THIRD_PARTY_HEAD.replace('Flag=5', 'Flag=7')};PNUM=2;PNO=2;"
         "CP=&&w21003-Avg=1.1,w21003-Flag=N&&"],
        False, 2, {"datatime_from_first_part"},
        id="split-without-datatime",
    ),
    pytest.param(
        [f"QN=20261122100300001;CN=2011;{THIRD_PARTY_HEAD};CP=&&DataTime=20261122100300;011-Rtd=30.2,011-Flag=N;"
         "w21003-Rtd=1.2,w21003-Flag=N&&"],
        False, 2, {"old_code"},
        id="mixed-2005-and-2017-codes",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("segments", "by_characters", "stored", "found"), THIRD_PARTY)
async def test_frames_as_other_implementations_build_them(
    settings: Settings, gateway: Gateway, segments: list[str], by_characters: bool, stored: int, found: set[str]
) -> None:
    """For each: what is answered (a 9014 per packet), what is stored, what is found."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    for segment in segments:
        writer.write(_third_party(segment, length=len(segment) if by_characters else None))
    await writer.drain()
    replies = await _read_replies(reader, len(segments))
    writer.close()
    assert [r["cn"] for r in replies] == ["9014"] * len(segments)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == stored)
    logged = await fetch(settings.DATABASE_URL, "SELECT findings::text AS f FROM hj212_packets")
    codes = set().union(*({f["code"] for f in json.loads(r["f"])} for r in logged))
    assert found <= codes, codes
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM dead_letters") == 0
