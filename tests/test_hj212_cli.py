"""`parkwatch hj212 decode|encode` as a user runs them, and split-packet reassembly."""

from __future__ import annotations

import json
import subprocess
import sys

from ingest.hj212.codec import Reassembler, decode, frame_segment
from ingest.hj212.packet import build_segment

STANDARD_EXAMPLE = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&RtdInterval=30&&1C80\r\n"
)


def _run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "parkwatch.cli", "hj212", *args], input=stdin, capture_output=True, timeout=60
    )


def _lines(result: subprocess.CompletedProcess[bytes]) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_decode_one_per_line_with_an_invalid_line() -> None:
    """Each input line gives one output line; garbage is an invalid line, not a crash; exit status 0."""
    lf_packet = STANDARD_EXAMPLE.replace(b"\r\n", b"\n")
    result = _run("decode", stdin=STANDARD_EXAMPLE + b"this is not a packet\n" + lf_packet)
    assert result.returncode == 0, result.stderr
    docs = _lines(result)
    assert [d["verdict"] for d in docs] == ["valid", "invalid", "valid"]
    assert docs[1]["findings"][0]["code"] == "no_header"
    assert docs[0]["version"] == "2017" and docs[0]["cn"] == "1062" and docs[0]["fields"] == {"RtdInterval": "30"}
    assert "lf_terminator" in [f["code"] for f in docs[2]["findings"]]


def test_strict_refuses_what_lenient_accepts() -> None:
    """--strict refuses an LF-only frame that the default (lenient) mode accepts."""
    lf_packet = STANDARD_EXAMPLE.replace(b"\r\n", b"\n")
    assert [d["verdict"] for d in _lines(_run("decode", stdin=lf_packet))] == ["valid"]
    strict = _lines(_run("decode", "--strict", stdin=lf_packet))
    assert strict[0]["verdict"] == "invalid"
    assert {"code": "lf_terminator", "severity": "error"}.items() <= strict[0]["findings"][0].items()


def test_crc_option_opts_in_a_modbus_device() -> None:
    """A byte-swapped MODBUS CRC is named but refused by default, accepted with --crc modbus-swapped."""
    packet = _run(
        "encode", "--cn", "2011", "--mn", "ABC", "--time", "2026-11-26T08:00:00", "--factor", "w01018:Rtd=1.5",
        "--crc", "modbus-swapped",
    ).stdout  # fmt: skip
    default = _lines(_run("decode", stdin=packet))[0]
    assert default["verdict"] == "invalid"
    assert [f["code"] for f in default["findings"] if f["severity"] == "error"] == ["crc_variant_modbus_swapped"]
    plain = _lines(_run("decode", "--crc", "hj212", stdin=packet))[0]
    assert [f["code"] for f in plain["findings"] if f["severity"] == "error"] == ["crc_mismatch"]
    assert _lines(_run("decode", "--crc", "modbus-swapped", stdin=packet))[0]["verdict"] == "valid"


def test_encode_then_decode_round_trip() -> None:
    """encode builds a frame decode reads back exactly: records, DataTime, Flag."""
    packet = _run(
        "encode", "--cn", "2051", "--mn", "010000A8900016F000169DC0", "--time", "2016-08-01T08:40:00",
        "--factor", "w01018:Cou=10.5,Min=40.1,Avg=40.1,Max=40.1,Flag=N", "--factor", "w00000:Avg=17.5",
    ).stdout  # fmt: skip
    assert packet.startswith(b"##") and packet.endswith(b"\r\n")
    [doc] = _lines(_run("decode", "--strict", stdin=packet))
    assert doc["verdict"] == "valid"
    assert doc["data_time"] == "2016-08-01T08:40:00"
    assert doc["flag"] == 5 and doc["ack_requested"] is True
    assert [(r["code"], r["kind"], r["value"]) for r in doc["records"]] == [
        ("w01018", "cou", 10.5), ("w01018", "min", 40.1), ("w01018", "avg", 40.1), ("w01018", "max", 40.1),
        ("w00000", "avg", 17.5),
    ]  # fmt: skip


def test_encode_refuses_a_malformed_factor() -> None:
    """A factor that is not CODE:Suffix=value is refused with status 2 and a message."""
    result = _run("encode", "--cn", "2011", "--mn", "M", "--time", "2026-11-26T08:00:00", "--factor", "w01018")
    assert result.returncode == 2
    assert b"CODE:Suffix=value" in result.stderr


def test_decode_raw_stream_without_newlines() -> None:
    """A raw byte stream of concatenated frames (no newlines at all) is cut into packets."""
    stream = STANDARD_EXAMPLE.rstrip(b"\r\n") * 3
    docs = _lines(_run("decode", stdin=stream))
    assert [d["verdict"] for d in docs] == ["valid"] * 3


def _part(pno: int, qn: str, factor: tuple[str, str]) -> bytes:
    cp = [[("DataTime", "20160801084000")], [factor]]
    return frame_segment(build_segment(cn="2051", mn="M1", qn=qn, flag=7, pnum=2, pno=pno, cp=cp))


def test_split_packets_are_reassembled() -> None:
    """Two parts (own QNs, same MN/CN/DataTime) make one packet, in PNO order whatever the arrival order."""
    second = decode(_part(2, "20160801085000535", ("w21003-Avg", "1.1")))[0].packet
    first = decode(_part(1, "20160801085000534", ("w01018-Avg", "40.1")))[0].packet
    assembler = Reassembler()
    assert assembler.add(second) is None
    assert assembler.incomplete == 1
    whole = assembler.add(first)
    assert whole is not None
    assert [p.pno for p in whole.parts] == [1, 2]
    assert list(whole.packet.factors) == ["w01018", "w21003"]
    assert assembler.incomplete == 0


def test_decode_prints_the_reassembled_packet() -> None:
    """When every part of a split packet is in the input, decode adds one line for the whole."""
    stream = _part(1, "20160801085000534", ("w01018-Avg", "40.1")) + _part(
        2, "20160801085000535", ("w21003-Avg", "1.1")
    )
    docs = _lines(_run("decode", stdin=stream))
    assert [d.get("reassembled", False) for d in docs] == [False, False, True]
    assert docs[2]["parts"] == ["20160801085000534", "20160801085000535"]
    assert [r["code"] for r in docs[2]["records"]] == ["w01018", "w21003"]
