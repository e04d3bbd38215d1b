"""Unit tests of the HJ 212 codec (ingest.hj212): worked examples, findings, quirks, streams, properties (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.hj212.codec import DecodedPacket, decode, decode_frame, encode_data, encode_reply, frame_segment, qn_for
from ingest.hj212.convert import convert
from ingest.hj212.crc import CrcVariant, crc_text, hj212_crc, modbus_crc
from ingest.hj212.findings import CONVERSION_CODES, Code, DecodeError, Finding, Severity
from ingest.hj212.frame import BOUNDARY_BUDGET_START, BYTES_PER_BOUNDARY, FREE_BOUNDARIES, Frame, Framer
from ingest.hj212.packet import build_segment, format_number, parse_segment
from schemas.parameters import catalog
from tests.test_validate import make_registry

# Hypothesis: the autouse _clean_env fixture only removes environment variables, so sharing it
# between examples is harmless.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MN = "010000A8900016F000169DC0"
# The standard's own example (docs/reference/hj212.md §1, §2): length 0101, CRC 1C80, terminated with CRLF.
STD_DATA = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
STD_FRAME = b"##0101" + STD_DATA + b"1C80\r\n"
# The 9011 reply of docs/reference/hj212.md §2, as published: no terminator.
REPLY_DATA = b"QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&"
REPLY_FRAME = b"##0094" + REPLY_DATA + b"CC01"
# Appendix C data segments (docs/reference/hj212.md §7), with the elisions written out.
C_2051 = (
    "QN=20160801085000001;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801084000;"
    "w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;"
    "w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;"
    "w01018-Cou=10.5,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&"
)
C_2011 = (
    "QN=20160801085857223;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801085857;"
    "w01001-Rtd=7.1,w01001-Flag=N;"
    "w01018-SampleTime=20160801070000,w01018-Rtd=2.2,w01018-Flag=N,w01018-EFlag=A01&&"
)
HEAD = f"QN=20160801085857223;ST=32;CN=2011;PW=123456;MN={MN};Flag=4"
DT = "DataTime=20160801085857"


def wrap(data: bytes | str, *, length: str | None = None, crc: str | None = None, term: bytes = b"\r\n") -> bytes:
    """A frame around raw data-segment bytes; length, CRC and terminator may be forced."""
    raw = data.encode() if isinstance(data, str) else data
    length = f"{len(raw):04d}" if length is None else length
    crc = f"{hj212_crc(raw):04X}" if crc is None else crc
    return b"##" + length.encode() + raw + crc.encode() + term


def seg(cp: str = DT, *, head: str = HEAD) -> str:
    """A data segment with this header and this CP content."""
    return f"{head};CP=&&{cp}&&"


def only(raw: bytes) -> DecodedPacket:
    """The single packet decoded from `raw`."""
    decoded = decode(raw)
    assert len(decoded) == 1, [d.frame.raw for d in decoded]
    return decoded[0]


def codes(d: DecodedPacket, *, strict: bool = False, accept: Any = (CrcVariant.HJ212,)) -> set[Code]:
    """The finding codes of a decoded packet."""
    return {f.code for f in d.findings(strict=strict, accept=accept)}


def severities(d: DecodedPacket, code: Code, *, strict: bool, accept: Any = (CrcVariant.HJ212,)) -> set[Severity]:
    """The severities with which `code` is reported."""
    return {f.severity for f in d.findings(strict=strict, accept=accept) if f.code is code}


def feed_all(chunks: list[bytes]) -> list[Frame]:
    """Every frame a fresh Framer cuts from these chunks, flush included."""
    framer = Framer()
    frames = [f for chunk in chunks for f in framer.feed(chunk)]
    frames += framer.flush()
    assert framer.pending == 0
    return frames


def codes_of(frame: Frame) -> set[Code]:
    """Framing finding codes of one frame (strict mode)."""
    return {f.code for f in frame.findings(strict=True)}


def split(raw: bytes, cuts: list[int]) -> list[bytes]:
    """`raw` cut at these positions."""
    bounds = [0, *sorted(set(cuts)), len(raw)]
    return [raw[a:b] for a, b in pairwise(bounds)]


def _byte_table() -> set[int]:
    """The 256 entries of the reflected 0xA001 CRC byte table."""
    table = set()
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.add(crc)
    return table


BYTE_TABLE = _byte_table()


def _short_crc_data() -> bytes:
    """A data segment whose HJ 212 CRC is below 0x1000 (so a 3-digit CRC is possible)."""
    for ms in range(1000):
        data = STD_DATA.replace(b"223;", f"{ms:03d};".encode(), 1)
        if hj212_crc(data) < 0x1000:
            return data
    raise AssertionError("no data segment with a CRC below 0x1000")


SHORT_CRC_DATA = _short_crc_data()


# -- 1. the standard's worked examples -------------------------------------------------------------


def test_crc_check_values() -> None:
    """HJ 212 and MODBUS CRCs of '123456789' are the published check values 0x2F80 and 0x4B37."""
    assert hj212_crc(b"123456789") == 0x2F80
    assert modbus_crc(b"123456789") == 0x4B37
    assert crc_text(b"123456789", CrcVariant.HJ212) == "2F80"
    assert crc_text(b"123456789", CrcVariant.MODBUS) == "4B37"
    assert crc_text(b"123456789", CrcVariant.MODBUS_SWAPPED) == "374B"


def test_crc_of_standard_examples() -> None:
    """The standard's examples carry CRCs 1C80 and CC01; MODBUS would give 0759 for the first."""
    assert hj212_crc(STD_DATA) == 0x1C80
    assert modbus_crc(STD_DATA) == 0x0759
    assert hj212_crc(REPLY_DATA) == 0xCC01
    assert hj212_crc(b"") == 0xFFFF


def test_hj212_crc_matches_reference_routine() -> None:
    """The table-driven CRC equals the bit-by-bit routine transcribed from Appendix A."""

    def reference(data: bytes) -> int:
        crc = 0xFFFF
        for byte in data:
            crc = (crc >> 8) ^ byte
            for _ in range(8):
                lsb = crc & 1
                crc >>= 1
                if lsb:
                    crc ^= 0xA001
        return crc

    for data in (b"", b"1", b"123456789", STD_DATA, REPLY_DATA, bytes(range(256)), "仪器".encode()):
        assert hj212_crc(data) == reference(data)
        if data:  # every HJ 212 CRC of non-empty data is an entry of the 0xA001 byte table (§2)
            assert hj212_crc(data) in BYTE_TABLE


def test_standard_example_1062() -> None:
    """The standard's 1062 packet is valid in both modes: version 2017, ack requested (Flag=5), fields read."""
    d = only(STD_FRAME)
    assert d.valid(strict=True)
    assert d.valid(strict=False)
    assert d.findings(strict=True) == []
    p = d.packet
    assert (p.qn, p.st, p.cn, p.pw, p.mn, p.flag) == ("20160801085857223", "32", "1062", "100000", MN, 5)
    assert p.version == "2017"
    assert p.ack_requested
    assert not p.packetized
    assert p.fields == {"RtdInterval": "30"}
    assert d.frame.length_field == "0101"
    assert len(d.frame.data) == 101
    assert d.frame.crc_field == "1C80"
    assert d.frame.crc_matches == {CrcVariant.HJ212}
    assert d.frame.terminator == b"\r\n"
    j = d.as_json(strict=True)
    assert j["verdict"] == "valid"
    assert j["version"] == "2017"
    assert j["ack_requested"] is True
    assert j["records"] == []
    assert j["length"] == {"field": "0101", "data_bytes": 101}
    assert j["crc"] == {"field": "1C80", "matches": ["hj212"]}


def test_standard_example_9011_without_terminator() -> None:
    """The published 9011 reply (no CRLF) is lenient-valid with no_terminator and strict-invalid."""
    d = only(REPLY_FRAME)
    assert d.valid(strict=False)
    assert not d.valid(strict=True)
    assert severities(d, Code.NO_TERMINATOR, strict=False) == {Severity.WARNING}
    assert severities(d, Code.NO_TERMINATOR, strict=True) == {Severity.ERROR}
    assert codes(d) == {Code.NO_TERMINATOR}
    assert d.packet.fields == {"QnRtn": "1"}
    assert (d.packet.cn, d.packet.st, d.packet.flag, d.packet.version) == ("9011", "22", 4, "2017")
    assert not d.packet.ack_requested
    assert d.as_json(strict=True)["verdict"] == "invalid"
    assert d.as_json(strict=False)["verdict"] == "valid"
    # with its CRLF it is valid in strict mode too
    assert only(REPLY_FRAME + b"\r\n").valid(strict=True)


def test_appendix_c_2051_minute_data() -> None:
    """Appendix C's 2051 upload, framed and decoded back: DataTime, records and flags."""
    raw = frame_segment(C_2051)
    assert raw.startswith(f"##{len(C_2051):04d}".encode())
    assert raw.endswith(b"\r\n")
    d = only(raw)
    assert d.valid(strict=True)
    assert d.findings(strict=True) == []
    assert d.packet.data_time == datetime(2016, 8, 1, 8, 40)
    assert d.packet.version == "2017"
    assert d.packet.ack_requested
    expected = [
        ("w00000", "cou", 10.5),
        ("w00000", "min", 16.4),
        ("w00000", "avg", 17.5),
        ("w00000", "max", 20.1),
        ("w01001", "min", 7.1),
        ("w01001", "avg", 7.5),
        ("w01001", "max", 7.8),
        ("w01018", "cou", 10.5),
        ("w01018", "min", 40.1),
        ("w01018", "avg", 40.1),
        ("w01018", "max", 40.1),
    ]
    assert d.as_json()["records"] == [{"code": c, "kind": k, "value": v, "flag": "N"} for c, k, v in expected]
    assert d.as_json()["data_time"] == "2016-08-01T08:40:00"


def test_appendix_c_2011_realtime_data() -> None:
    """Appendix C's 2011 upload keeps SampleTime and EFlag with its record."""
    d = only(frame_segment(C_2011))
    assert d.valid(strict=True)
    assert d.findings(strict=True) == []
    assert d.packet.data_time == datetime(2016, 8, 1, 8, 58, 57)
    assert d.as_json()["records"] == [
        {"code": "w01001", "kind": "rtd", "value": 7.1, "flag": "N"},
        {
            "code": "w01018",
            "kind": "rtd",
            "value": 2.2,
            "flag": "N",
            "eflag": "A01",
            "sample_time": "20160801070000",
        },
    ]


def test_encode_reply_answers_with_same_qn() -> None:
    """A 9014 answer echoes the QN, with ST=91, Flag=4, an empty CP and a strict-valid frame."""
    request = only(STD_FRAME).packet
    raw = encode_reply(request, cn="9014")
    d = only(raw)
    assert d.valid(strict=True)
    p = d.packet
    assert (p.qn, p.st, p.cn, p.pw, p.mn, p.flag) == (request.qn, "91", "9014", "100000", MN, 4)
    assert p.fields == {}
    assert p.factors == {}
    assert d.frame.data.endswith(b";CP=&&&&")
    answer = only(encode_reply(request, cn="9011", cp=[[("QnRtn", "1")]]))
    assert answer.packet.fields == {"QnRtn": "1"}
    assert answer.valid(strict=True)


def test_encoders_refuse_impossible_requests() -> None:
    """encode_data without CN and frame_segment over 9999 bytes raise DecodeError, the codec's only exception."""
    with pytest.raises(DecodeError):
        encode_data(cn="", mn=MN, data_time=datetime(2024, 1, 1), factors={})
    with pytest.raises(DecodeError):
        frame_segment(seg("i11001-Info=//" + "x" * 10_000 + "//"))


def test_build_segment_split_packet() -> None:
    """build_segment writes PNUM/PNO after Flag; Flag=7 reads as split + ack, 2017."""
    text = build_segment(cn="2061", mn=MN, qn="20160801085000534", flag=7, pnum=2, pno=1, cp=[[("DataTime", "1")]])
    assert text == f"QN=20160801085000534;ST=32;CN=2061;PW=123456;MN={MN};Flag=7;PNUM=2;PNO=1;CP=&&DataTime=1&&"
    p = parse_segment(text)
    assert (p.pnum, p.pno, p.packetized, p.ack_requested, p.version) == (2, 1, True, True, "2017")
    assert Code.PACKET_NUMBERS_WITHOUT_FLAG not in {f.code for f in p.findings}


# -- 2. one case per finding code ------------------------------------------------------------------

# kind: "lenient"  error in strict mode, warning in lenient mode
#       "error"    error in every mode
#       "info"     info in every mode, frame valid
#       "field"    info or warning (same in both modes), never an error, frame valid
LONG_INFO = "i11001-Info=//" + "log line; " * 110 + "//"
CODE_CASES = [
    pytest.param(Code.NO_HEADER, b"this payload has no frame header\r\n", "error", set()),
    pytest.param(Code.GARBAGE_SKIPPED, b"noise" + STD_FRAME, "info", set()),
    pytest.param(Code.LENGTH_NOT_PADDED, wrap(STD_DATA, length="101"), "lenient", set()),
    pytest.param(Code.LENGTH_MISMATCH, wrap(STD_DATA, length="0100"), "lenient", set()),
    pytest.param(Code.LENGTH_INVALID, wrap(STD_DATA, length=""), "lenient", set()),
    pytest.param(Code.DATA_TOO_LONG, wrap(seg(f"{DT};{LONG_INFO}")), "info", set()),
    pytest.param(Code.TRUNCATED, STD_FRAME[:50], "error", set()),
    pytest.param(
        Code.FRAME_END_BY_CRC,
        wrap(f"{HEAD};CP=&&{DT}", length=f"{len(f'{HEAD};CP=&&{DT}') + 2:04d}"),
        "lenient",
        {Code.LENGTH_MISMATCH, Code.CP_UNTERMINATED},
    ),
    pytest.param(Code.CRC_MISMATCH, wrap(STD_DATA, crc="1C81"), "error", set()),
    pytest.param(Code.CRC_MALFORMED, wrap(STD_DATA, crc="1CXG"), "error", {Code.CRC_MISMATCH}),
    pytest.param(Code.CRC_SHORT, wrap(SHORT_CRC_DATA, crc=f"{hj212_crc(SHORT_CRC_DATA):X}"), "lenient", set()),
    pytest.param(Code.CRC_LOWERCASE, wrap(STD_DATA, crc="1c80"), "info", set()),
    pytest.param(Code.CRC_VARIANT_MODBUS, wrap(STD_DATA, crc=crc_text(STD_DATA, CrcVariant.MODBUS)), "error", set()),
    pytest.param(
        Code.CRC_VARIANT_MODBUS_SWAPPED,
        wrap(STD_DATA, crc=crc_text(STD_DATA, CrcVariant.MODBUS_SWAPPED)),
        "error",
        set(),
    ),
    pytest.param(Code.NO_TERMINATOR, wrap(STD_DATA, term=b""), "lenient", set()),
    pytest.param(Code.LF_TERMINATOR, wrap(STD_DATA, term=b"\n"), "lenient", set()),
    pytest.param(Code.TEXT_GB18030, wrap(seg(f"{DT};i11001-Info=//仪器正常//").encode("gb18030")), "info", set()),
    pytest.param(
        Code.TEXT_UNDECODABLE, wrap(seg(f"{DT};i11001-Info=//x//").encode().replace(b"x", b"\xff\x80")), "field", set()
    ),
    pytest.param(Code.NUL_BYTE, wrap(seg(f"{DT};i11001-Info=//x//").encode().replace(b"x", b"\x00")), "error", set()),
    pytest.param(Code.MISSING_QN, wrap(seg(head=f"ST=32;CN=2011;PW=123456;MN={MN};Flag=4")), "field", set()),
    pytest.param(Code.QN_MALFORMED, wrap(seg(head=HEAD.replace("QN=20160801085857223", "QN=2016"))), "field", set()),
    pytest.param(Code.MISSING_ST, wrap(seg(head=HEAD.replace("ST=32;", ""))), "field", set()),
    pytest.param(Code.UNUSUAL_ST, wrap(seg(head=HEAD.replace("ST=32", "ST=101"))), "field", set()),
    pytest.param(Code.MISSING_CN, wrap(seg(head=HEAD.replace("CN=2011;", ""))), "field", set()),
    pytest.param(Code.UNKNOWN_CN, wrap(seg(head=HEAD.replace("CN=2011", "CN=8013"))), "field", set()),
    pytest.param(Code.MISSING_PW, wrap(seg(head=HEAD.replace("PW=123456;", ""))), "field", set()),
    pytest.param(Code.MISSING_MN, wrap(seg(head=HEAD.replace(f"MN={MN};", ""))), "field", set()),
    pytest.param(Code.MN_NONSTANDARD, wrap(seg(head=HEAD.replace(MN, "JLYP01_AIR01_0001"))), "field", set()),
    pytest.param(Code.MISSING_FLAG, wrap(seg(head=HEAD.replace(";Flag=4", ""))), "field", set()),
    pytest.param(Code.FLAG_MALFORMED, wrap(seg(head=HEAD.replace("Flag=4", "Flag=X"))), "field", set()),
    pytest.param(Code.UNKNOWN_VERSION, wrap(seg(head=HEAD.replace("Flag=4", "Flag=12"))), "field", set()),
    pytest.param(
        Code.HEADER_ORDER,
        wrap(seg(head=f"ST=32;CN=2011;QN=20160801085857223;PW=123456;MN={MN};Flag=4")),
        "field",
        set(),
    ),
    pytest.param(Code.HEADER_KEY_CASE, wrap(seg(head=HEAD.replace("Flag=4", "FLAG=4"))), "field", set()),
    pytest.param(Code.HEADER_STRAY_CHARACTERS, wrap(seg(head=HEAD.replace(";MN=", ";,MN="))), "field", set()),
    pytest.param(Code.UNKNOWN_HEADER_KEY, wrap(seg(head=HEAD + ";XX=1")), "field", set()),
    pytest.param(Code.DUPLICATE_KEY, wrap(seg(head=HEAD.replace("ST=32;", "ST=32;ST=31;"))), "field", set()),
    pytest.param(Code.PACKET_NUMBERS_WITHOUT_FLAG, wrap(seg(head=HEAD + ";PNUM=2;PNO=1")), "field", set()),
    pytest.param(
        Code.PACKET_NUMBER_LONG,
        wrap(seg(head=HEAD.replace("Flag=4", "Flag=6") + ";PNUM=00000002;PNO=00000001")),
        "info",
        set(),
    ),
    pytest.param(Code.MISSING_CP, wrap(HEAD.replace("CN=2011", "CN=9014")), "field", set()),
    pytest.param(Code.CP_UNTERMINATED, wrap(f"{HEAD};CP=&&{DT}"), "field", set()),
    pytest.param(Code.CODE_COLLISION, wrap(seg(f"{DT};w01018-Rtd=1.5;011-Rtd=1.6")), "field", {Code.OLD_CODE}),
    pytest.param(Code.CP_EMPTY_ITEM, wrap(seg(f"{DT};;w01018-Rtd=1.5")), "field", set()),
    pytest.param(Code.MISSING_DATATIME, wrap(seg("w01018-Rtd=1.5")), "field", set()),
    pytest.param(Code.DATATIME_MALFORMED, wrap(seg("DataTime=20161301085857")), "field", set()),
    pytest.param(Code.UNKNOWN_CODE, wrap(seg(f"{DT};a99948-Rtd=1.5")), "field", set()),
    pytest.param(Code.OLD_CODE, wrap(seg(f"{DT};011-Rtd=1.5")), "field", set()),
    pytest.param(Code.CODE_UPPERCASE, wrap(seg(f"{DT};W01018-Rtd=1.5")), "field", set()),
    pytest.param(Code.BAD_VALUE, wrap(seg(f"{DT};w01018-Rtd=abc")), "field", set()),
    pytest.param(Code.UNKNOWN_DATA_FLAG, wrap(seg(f"{DT};w01018-Rtd=1.5,w01018-Flag=X")), "field", set()),
]


def test_code_cases_cover_every_code() -> None:
    """Every codec Code member has a case below (a new code without a test fails here); the
    conversion's codes are tested with the ingest (tests/test_hj212_ingest.py)."""
    covered = [case.values[0] for case in CODE_CASES]
    assert len(covered) == len(set(covered))
    assert set(covered) == set(Code) - CONVERSION_CODES


@pytest.mark.parametrize(("code", "raw", "kind", "also"), CODE_CASES, ids=[c.values[0].value for c in CODE_CASES])
def test_finding_code(code: Code, raw: bytes, kind: str, also: set[Code]) -> None:
    """The crafted input yields this code (and nothing else unexpected) with its kind's severity and verdict."""
    decoded = decode(raw)
    hits = [d for d in decoded if code in codes(d)]
    assert len(hits) == 1, [codes(d) for d in decoded]
    d = hits[0]
    assert codes(d, strict=True) == codes(d, strict=False)
    assert code in codes(d)
    assert codes(d) - {code} <= also  # `also`: other codes this input may legitimately add
    for strict in (True, False):
        found = severities(d, code, strict=strict)
        if kind == "lenient":
            assert found == {Severity.ERROR if strict else Severity.WARNING}
        elif kind == "error":
            assert found == {Severity.ERROR}
        elif kind == "info":
            assert found == {Severity.INFO}
        else:
            assert len(found) == 1
            assert found <= {Severity.INFO, Severity.WARNING}
            assert found == severities(d, code, strict=not strict)
        assert d.valid(strict=strict) is (Severity.ERROR not in found)
        assert d.as_json(strict=strict)["verdict"] == ("valid" if Severity.ERROR not in found else "invalid")


def test_field_findings_never_invalidate() -> None:
    """A packet piling up many field findings is still valid in strict mode."""
    text = (
        "CN=8013;ST=101;FLAG=12;MN=JLYP01;XX=1;ST=31;PNO=1;"
        "CP=&&DataTime=2016;;W01018-Rtd=abc,W01018-Flag=X;a99948-Rtd=1"
    )
    d = only(wrap(text))
    assert {
        Code.MISSING_QN,
        Code.UNUSUAL_ST,
        Code.UNKNOWN_CN,
        Code.MISSING_PW,
        Code.MN_NONSTANDARD,
        Code.UNKNOWN_VERSION,
        Code.HEADER_ORDER,
        Code.HEADER_KEY_CASE,
        Code.UNKNOWN_HEADER_KEY,
        Code.DUPLICATE_KEY,
        Code.PACKET_NUMBERS_WITHOUT_FLAG,
        Code.CP_EMPTY_ITEM,
        Code.UNKNOWN_CODE,
        Code.CODE_UPPERCASE,
        Code.BAD_VALUE,
        Code.UNKNOWN_DATA_FLAG,
    } <= codes(d)
    assert d.valid(strict=True)
    assert all(f.severity is not Severity.ERROR for f in d.findings(strict=True))


def test_crc_mismatch_is_an_error_whatever_is_accepted() -> None:
    """A wrong CRC is an error in both modes even when every CRC variant is accepted."""
    d = only(wrap(STD_DATA, crc="1C81"))
    for strict in (True, False):
        assert severities(d, Code.CRC_MISMATCH, strict=strict, accept=list(CrcVariant)) == {Severity.ERROR}
        assert not d.valid(strict=strict, accept=list(CrcVariant))
    assert d.frame.crc_matches == frozenset()


def test_finding_as_json() -> None:
    """Finding.as_json gives plain strings for code, severity and message."""
    f = Finding(Code.CRC_MISMATCH, Severity.ERROR, "x")
    assert f.as_json() == {"code": "crc_mismatch", "severity": "error", "message": "x"}


# -- 3. real-device quirks (docs/reference/hj212.md §3, §4, §9) ---------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "code"),
    [(CrcVariant.MODBUS, Code.CRC_VARIANT_MODBUS), (CrcVariant.MODBUS_SWAPPED, Code.CRC_VARIANT_MODBUS_SWAPPED)],
)
def test_modbus_crc_variants(variant: CrcVariant, code: Code) -> None:
    """A MODBUS-CRC frame is invalid by default, valid (with an info finding) only when its variant is accepted."""
    raw = frame_segment(C_2011, crc=variant)
    assert raw[-6:-2].decode() == crc_text(C_2011.encode(), variant)
    d = only(raw)
    assert d.frame.crc_matches == {variant}
    for strict in (True, False):
        assert not d.valid(strict=strict)
        assert severities(d, code, strict=strict) == {Severity.ERROR}
        assert Code.CRC_MISMATCH not in codes(d, strict=strict)
        assert d.valid(strict=strict, accept=[variant])
        assert severities(d, code, strict=strict, accept=[variant]) == {Severity.INFO}
        assert d.valid(strict=strict, accept=list(CrcVariant))
        other = CrcVariant.MODBUS_SWAPPED if variant is CrcVariant.MODBUS else CrcVariant.MODBUS
        assert not d.valid(strict=strict, accept=[other])
    assert d.as_json(accept=[variant])["crc"]["matches"] == [variant.value]
    assert len(d.as_json()["records"]) == 2


def test_accepting_modbus_keeps_hj212_frames_valid() -> None:
    """A device configured for MODBUS still has its standard-CRC frames accepted, without a variant finding."""
    d = only(STD_FRAME)
    assert d.valid(strict=True, accept=[CrcVariant.MODBUS])
    assert d.findings(strict=True, accept=[CrcVariant.MODBUS]) == []


def test_lowercase_crc() -> None:
    """A lower-case CRC (cc01 style) verifies and stays strict-valid with an info finding."""
    d = only(REPLY_FRAME.replace(b"CC01", b"cc01") + b"\r\n")
    assert d.valid(strict=True)
    assert severities(d, Code.CRC_LOWERCASE, strict=True) == {Severity.INFO}
    assert d.frame.crc_field == "cc01"
    assert d.frame.crc_matches == {CrcVariant.HJ212}


def test_three_digit_crc() -> None:
    """A CRC printed without zero padding (880 for 0x0880) is accepted leniently only."""
    crc = hj212_crc(SHORT_CRC_DATA)
    for text in (f"{crc:X}", f"{crc:x}"):
        d = only(wrap(SHORT_CRC_DATA, crc=text))
        assert d.frame.crc_field == text
        assert d.frame.data == SHORT_CRC_DATA
        assert d.valid(strict=False)
        assert not d.valid(strict=True)
        assert severities(d, Code.CRC_SHORT, strict=True) == {Severity.ERROR}
    # a three-digit CRC directly followed by the next frame (no terminator)
    frames = decode(wrap(SHORT_CRC_DATA, crc=f"{crc:X}", term=b"") + STD_FRAME)
    assert [f.frame.data for f in frames] == [SHORT_CRC_DATA, STD_DATA]
    assert frames[0].valid(strict=False)
    assert frames[1].valid(strict=True)


def test_length_not_padded_two_digits() -> None:
    """'##81QN=...' (a two-digit length field) is read; lenient-valid, strict-invalid."""
    data = "QN=20160801085857223;ST=91;CN=9011;PW=123;MN=88888880000001;Flag=4;CP=&&QnRtn=1&&"
    assert len(data) == 81
    raw = wrap(data, length="81")
    assert raw.startswith(b"##81QN=")
    d = only(raw)
    assert d.frame.length_field == "81"
    assert d.frame.data == data.encode()
    assert d.valid(strict=False)
    assert not d.valid(strict=True)
    assert severities(d, Code.LENGTH_NOT_PADDED, strict=False) == {Severity.WARNING}
    assert Code.LENGTH_MISMATCH not in codes(d)
    assert d.packet.fields == {"QnRtn": "1"}


def test_wrong_length_field() -> None:
    """A wrong length is found by the CP structure: lenient-valid with length_mismatch, data intact."""
    for length in ("0100", "0102", "0500", "0009"):
        d = only(wrap(C_2011, length=length))
        assert d.frame.data == C_2011.encode()
        assert d.valid(strict=False)
        assert not d.valid(strict=True)
        assert severities(d, Code.LENGTH_MISMATCH, strict=True) == {Severity.ERROR}
        assert len(d.as_json()["records"]) == 2


def test_wrong_length_and_wrong_crc() -> None:
    """A frame with both a wrong length and a wrong CRC is invalid in both modes."""
    decoded = decode(wrap(C_2011, length="0100", crc="0000"))
    assert decoded
    assert not any(d.valid(strict=False) for d in decoded)
    assert Code.CRC_MISMATCH in {c for d in decoded for c in codes(d)}


def test_length_counts_characters_of_chinese_log() -> None:
    """A length that counts characters of a UTF-8 Chinese log, not bytes, is a lenient length_mismatch."""
    text = seg(f"{DT};i11001-Info=//仪器校准完成//")
    d = only(wrap(text, length=f"{len(text):04d}"))
    assert len(text.encode()) != len(text)
    assert d.valid(strict=False)
    assert Code.LENGTH_MISMATCH in codes(d)
    assert d.packet.factors["i11001"].values["Info"] == "//仪器校准完成//"


@pytest.mark.parametrize(
    ("term", "code", "terminator"),
    [(b"\n", Code.LF_TERMINATOR, b"\n"), (b"", Code.NO_TERMINATOR, b""), (b"\r", Code.NO_TERMINATOR, b"\r")],
)
def test_terminators(term: bytes, code: Code, terminator: bytes) -> None:
    """LF-only, CR-only and missing terminators are lenient-valid and strict-invalid."""
    d = only(wrap(C_2011, term=term))
    assert d.frame.terminator == terminator
    assert codes(d) == {code}
    assert d.valid(strict=False)
    assert not d.valid(strict=True)


def test_three_lf_terminated_packets_in_one_read() -> None:
    """Three LF-terminated packets in one read come out as three frames."""
    raw = wrap(C_2011, term=b"\n") + wrap(C_2051, term=b"\n") + wrap(STD_DATA, term=b"\n")
    decoded = decode(raw)
    assert [d.frame.data for d in decoded] == [C_2011.encode(), C_2051.encode(), STD_DATA]
    assert all(codes(d) == {Code.LF_TERMINATOR} for d in decoded)


def test_data_segment_over_1024_bytes() -> None:
    """Data segments over the standard's 1,024 bytes (1703 seen) are kept and strict-valid with an info."""
    items = ";".join(f"a{21000 + i:05d}-Rtd={i}.5,a{21000 + i:05d}-Flag=N" for i in range(60))
    text = seg(f"{DT};{items}")
    assert 1024 < len(text) < 9999
    d = only(frame_segment(text))
    assert d.valid(strict=True)
    assert severities(d, Code.DATA_TOO_LONG, strict=True) == {Severity.INFO}
    assert len(d.as_json()["records"]) == 60
    assert d.frame.length_field == f"{len(text):04d}"


def test_qn_missing_empty_after_cn() -> None:
    """QN missing, empty, or after CN: the packet is read, with missing_qn or header_order."""
    no_qn = only(wrap(seg(head=f"ST=32;CN=2011;PW=123456;MN={MN}")))
    assert no_qn.packet.qn is None
    assert Code.MISSING_QN in codes(no_qn)
    assert no_qn.valid(strict=True)
    empty = only(wrap(seg(head=f"QN=;ST=32;CN=2011;PW=123456;MN={MN};Flag=4")))
    assert empty.packet.qn is None
    assert Code.MISSING_QN in codes(empty)
    assert empty.packet.cn == "2011"
    late = only(wrap(seg(head=f"ST=32;CN=2051;QN=20160801085857223;PW=123456;MN={MN};Flag=4")))
    assert late.packet.qn == "20160801085857223"
    assert late.packet.cn == "2051"
    assert codes(late) == {Code.HEADER_ORDER}


def test_mn_before_pw_and_flag_upper_case() -> None:
    """MN before PW and FLAG=0 are read by key (FLAG=0 is a 2005 packet)."""
    d = only(wrap(seg(head=f"QN=20160801085857223;ST=32;CN=2011;MN={MN};PW=123456;FLAG=0")))
    assert (d.packet.mn, d.packet.pw, d.packet.flag) == (MN, "123456", 0)
    assert d.packet.version == "2005"
    assert not d.packet.ack_requested
    assert codes(d) == {Code.HEADER_ORDER, Code.HEADER_KEY_CASE}
    assert d.valid(strict=True)


def test_stray_comma_before_mn() -> None:
    """A stray ';,MN=' still yields the MN."""
    d = only(wrap(seg(head=HEAD.replace(";MN=", ";,MN="))))
    assert d.packet.mn == MN
    assert codes(d) == {Code.HEADER_STRAY_CHARACTERS}


def test_packet_numbers_without_flag() -> None:
    """PNO/PNUM without Flag (and PNO before PNUM) are kept, with info findings."""
    d = only(wrap(seg(head=f"QN=20160801085857223;ST=32;CN=2011;PW=123456;MN={MN};PNO=1;PNUM=2")))
    assert (d.packet.pno, d.packet.pnum, d.packet.flag) == (1, 2, None)
    assert not d.packet.packetized
    assert d.packet.version == "2005"
    assert codes(d) == {Code.MISSING_FLAG, Code.PACKET_NUMBERS_WITHOUT_FLAG, Code.HEADER_ORDER}
    assert d.valid(strict=True)


@pytest.mark.parametrize(("flag", "version", "ack"), [(8, "2025", False), (9, "2025", True), (4, "2017", False)])
def test_flag_version_bits(flag: int, version: str, ack: bool) -> None:
    """Flag=8/9 read as HJ 212-2025 (9 asks for an answer), without a finding."""
    d = only(wrap(seg(head=HEAD.replace("Flag=4", f"Flag={flag}"))))
    assert d.packet.version == version
    assert d.packet.ack_requested is ack
    assert d.as_json()["version"] == version
    assert codes(d) == set()


def test_upper_case_code() -> None:
    """Upper-case W01018 is w01018, with its raw code kept."""
    d = only(wrap(seg(f"{DT};W01018-Rtd=1.5,W01018-Flag=N")))
    assert d.as_json()["records"] == [
        {"code": "w01018", "kind": "rtd", "value": 1.5, "flag": "N", "raw_code": "W01018"}
    ]
    assert codes(d) == {Code.CODE_UPPERCASE}


def test_bare_flag_item_and_code_without_suffix() -> None:
    """A bare 'Flag=N' item and 'FANSTATUS=1' are CP fields, not factors."""
    d = only(wrap(seg(f"{DT};w01018-Rtd=1.5;Flag=N;FANSTATUS=1")))
    assert d.packet.fields == {"DataTime": "20160801085857", "Flag": "N", "FANSTATUS": "1"}
    assert d.as_json()["records"] == [{"code": "w01018", "kind": "rtd", "value": 1.5, "flag": None}]
    assert codes(d) == set()


def test_vendor_suffixes() -> None:
    """Vendor suffixes (-ID, -ValidNum, -Ia) are kept as text values; a numeric vendor code is unknown."""
    d = only(wrap(seg(f"{DT};w01018-Rtd=1.5,w01018-ID=7,w01018-ValidNum=3;100000-Ia=2.5")))
    records = d.as_json()["records"]
    assert {"code": "w01018", "kind": "id", "value": "7", "flag": None} in records
    assert {"code": "w01018", "kind": "validnum", "value": "3", "flag": None} in records
    assert {"code": "100000", "kind": "ia", "value": "2.5", "flag": None, "known": False} in records
    assert codes(d) == {Code.UNKNOWN_CODE}
    assert d.valid(strict=True)


def test_sub_fields_in_any_order() -> None:
    """Sub-fields in any order (Flag before Rtd, Max before Avg) are read."""
    d = only(wrap(seg(f"{DT};w01018-Flag=D,w01018-Max=3,w01018-Avg=2")))
    assert d.as_json()["records"] == [
        {"code": "w01018", "kind": "max", "value": 3.0, "flag": "D"},
        {"code": "w01018", "kind": "avg", "value": 2.0, "flag": "D"},
    ]


def test_empty_items_and_trailing_semicolon() -> None:
    """Empty items and a trailing ';' before '&&' lose nothing."""
    d = only(wrap(seg(f";{DT};;w01018-Rtd=1.5;;w01001-Rtd=7.1;")))
    assert [(r["code"], r["value"]) for r in d.as_json()["records"]] == [("w01018", 1.5), ("w01001", 7.1)]
    assert d.packet.fields == {"DataTime": "20160801085857"}
    assert codes(d) <= {Code.CP_EMPTY_ITEM}
    assert d.valid(strict=True)


def test_info_value_with_separators() -> None:
    """A //...// Info value may contain ';', ',', '=', '&&' and '##' without breaking frame or CP."""
    log = "//err;code=5,step=2&&retry ##0101 done//"
    d = only(frame_segment(seg(f"{DT};i11001-Info={log};w01018-Rtd=1.5,w01018-Flag=N")))
    assert d.valid(strict=True)
    assert d.packet.factors["i11001"].values["Info"] == log
    assert d.packet.factors["w01018"].values == {"Rtd": "1.5", "Flag": "N"}
    assert codes(d) == set()


def test_info_value_holding_a_whole_packet() -> None:
    """A log quoting a complete packet (CRLF included) is one frame; the quoted packet is not cut out."""
    log = "//rx " + STD_FRAME.decode() + " ok//"
    text = seg(f"{DT};i11001-Info={log}")
    d = only(frame_segment(text))
    assert d.frame.data == text.encode()
    assert d.valid(strict=True)
    assert d.packet.factors["i11001"].values["Info"] == log


def test_gb18030_chinese_info() -> None:
    """A GB18030-encoded Chinese log is decoded as GB18030 with text_gb18030, frame valid."""
    text = seg(f"{DT};i11001-Info=//仪器正常，校准完成//")
    d = only(wrap(text.encode("gb18030")))
    assert d.valid(strict=True)
    assert codes(d) == {Code.TEXT_GB18030}
    assert d.packet.factors["i11001"].values["Info"] == "//仪器正常，校准完成//"
    utf8 = only(wrap(text.encode()))
    assert codes(utf8) == set()
    assert utf8.packet.factors["i11001"].values["Info"] == "//仪器正常，校准完成//"


def test_old_codes_2005() -> None:
    """2005 codes: 011-Rtd is w01018 (old_code), 02z-Rtd is SO2's converted value ZsRtd."""
    d = only(wrap(seg(f"{DT};011-Rtd=50.2,011-Flag=N;02z-Rtd=12.5,02z-Flag=N;S01-Rtd=8.1")))
    records = d.as_json()["records"]
    assert records == [
        {"code": "w01018", "kind": "rtd", "value": 50.2, "flag": "N", "raw_code": "011"},
        {"code": "a21026", "kind": "zsrtd", "value": 12.5, "flag": "N", "raw_code": "02z"},
        {"code": "a19001", "kind": "rtd", "value": 8.1, "flag": None, "raw_code": "S01"},
    ]
    assert d.packet.factors["a21026"].values == {"ZsRtd": "12.5", "Flag": "N"}
    assert severities(d, Code.OLD_CODE, strict=True) == {Severity.INFO}
    assert d.valid(strict=True)


def test_2005_style_upload_without_qn_and_flag() -> None:
    """A 2005-style upload (no QN, no Flag, 14-char MN) is version 2005 and valid."""
    d = only(wrap("ST=32;CN=2011;PW=123456;MN=88888880000001;CP=&&DataTime=20160801085857;011-Rtd=50.2&&"))
    assert d.packet.version == "2005"
    assert d.valid(strict=True)
    assert codes(d) == {Code.MISSING_QN, Code.MISSING_FLAG, Code.MN_NONSTANDARD, Code.OLD_CODE}


def test_appendix_typos() -> None:
    """The appendix typos 'QN=...534,ST=32' and 'Flag=5CP=&&' still parse."""
    p = parse_segment(f"QN=20160801085000534,ST=32;CN=2061;PW=123456;MN={MN};Flag=5CP=&&{DT}&&")
    assert (p.qn, p.st, p.flag) == ("20160801085000534", "32", 5)
    assert p.fields == {"DataTime": "20160801085857"}
    assert Code.HEADER_STRAY_CHARACTERS in {f.code for f in p.findings}


def test_17_digit_datatime() -> None:
    """A 17-digit DataTime (with ms) is read."""
    d = only(wrap(seg("DataTime=20160801085857123")))
    assert d.packet.data_time == datetime(2016, 8, 1, 8, 58, 57, 123000)
    assert codes(d) == set()


# -- 4. stream framing -----------------------------------------------------------------------------

F_2011 = frame_segment(C_2011)
F_2051 = frame_segment(C_2051)
F_INFO = frame_segment(seg(f"{DT};i11001-Info=//a;b,c=d&&e ##0 f//;w01018-Rtd=1.5"))


def test_several_frames_in_one_feed() -> None:
    """Sticky packets: several frames in one feed come out in order, all valid, nothing pending."""
    framer = Framer()
    frames = framer.feed(STD_FRAME + F_2011 + F_INFO + F_2051)
    assert [f.data for f in frames] == [STD_DATA, C_2011.encode(), F_INFO[6:-6], C_2051.encode()]
    assert all(f.valid(strict=True) for f in frames)
    assert framer.pending == 0
    assert framer.flush() == []


def test_frames_of_a_complete_input() -> None:
    """Framer.frames cuts every frame of one payload, including a final unterminated one."""
    frames = Framer().frames(F_2011 + REPLY_FRAME)
    assert [f.data for f in frames] == [C_2011.encode(), REPLY_DATA]
    assert frames[0].valid(strict=True)
    assert frames[1].valid(strict=False)
    assert not frames[1].valid(strict=True)


def test_single_byte_feeds() -> None:
    """A frame fed one byte at a time comes out once, intact, only after its CRC is complete."""
    for raw in (STD_FRAME, F_2011, F_INFO):
        framer = Framer()
        frames: list[Frame] = []
        for i in range(len(raw)):
            out = framer.feed(raw[i : i + 1])
            if i < len(raw) - 3:
                assert out == [], i
            frames += out
        frames += framer.flush()
        assert len(frames) == 1
        assert frames[0].data == raw[6:-6]
        assert frames[0].crc_field == raw[-6:-2].decode()
        assert frames[0].valid(strict=False)
        assert Code.GARBAGE_SKIPPED not in {f.code for f in frames[0].findings(strict=False)}
        assert framer.pending == 0


def test_every_split_point_outside_the_terminators() -> None:
    """Two frames split in two at every point outside their terminators are both strict-valid."""
    stream = STD_FRAME + F_INFO
    inside_terminators = {len(STD_FRAME) - 2, len(STD_FRAME) - 1, len(stream) - 2, len(stream) - 1}
    for k in sorted(set(range(1, len(stream))) - inside_terminators):
        frames = feed_all([stream[:k], stream[k:]])
        assert [f.data for f in frames] == [STD_DATA, F_INFO[6:-6]], k
        assert all(f.valid(strict=True) for f in frames), k
        assert all(Code.GARBAGE_SKIPPED not in {x.code for x in f.findings(strict=True)} for f in frames), k


@pytest.mark.parametrize("back", [1, 2])
def test_split_inside_the_terminator(back: int) -> None:
    """A frame whose CR/LF arrives in a later read is still strict-valid (terminator CRLF)."""
    frames = feed_all([STD_FRAME[:-back], STD_FRAME[-back:]])
    assert len(frames) == 1
    assert frames[0].terminator == b"\r\n"
    assert frames[0].valid(strict=True)


def test_lf_arriving_later() -> None:
    """An LF-only terminator in a later read is reported as lf_terminator."""
    frames = feed_all([wrap(STD_DATA, term=b""), b"\n"])
    assert len(frames) == 1
    assert {f.code for f in frames[0].findings(strict=True)} == {Code.LF_TERMINATOR}


def test_garbage_between_frames() -> None:
    """Garbage between frames is skipped and reported on the next frame; both frames stay valid."""
    garbage = b"AT+CSQ\r\n+CSQ: 23,99\r\nOK\r\n\x15"  # ends without "#": see test_stray_hash_before_frame
    for chunks in (
        [STD_FRAME + garbage + F_2011],
        [STD_FRAME, garbage, F_2011],
        [STD_FRAME + garbage[:5], garbage[5:] + F_2011],
    ):
        frames = feed_all(chunks)
        assert [f.data for f in frames] == [STD_DATA, C_2011.encode()]
        assert all(f.valid(strict=True) for f in frames)
        assert Code.GARBAGE_SKIPPED not in {f.code for f in frames[0].findings(strict=True)}
        skipped = [f for f in frames[1].findings(strict=True) if f.code is Code.GARBAGE_SKIPPED]
        assert len(skipped) == 1
        assert skipped[0].severity is Severity.INFO


def test_line_ends_between_frames_are_not_garbage() -> None:
    """Blank lines and NULs between frames are not reported as garbage."""
    frames = feed_all([STD_FRAME + b"\r\n\r\n\x00 \t" + F_2011])
    assert all(codes_of(f) == set() for f in frames)


def test_broken_frame_then_valid_frame() -> None:
    """A header followed by junk, then a valid frame: the broken one is reported, the valid one is valid."""
    broken = b"##0101QN=20160801085857223;ST=32;CN=20"  # a device reset mid-frame
    for chunks in ([broken + F_2011], [broken, F_2011], [broken + F_2011[:30], F_2011[30:]]):
        frames = feed_all(chunks)
        assert len(frames) == 2
        assert frames[0].raw == broken
        assert not frames[0].valid(strict=False)
        assert Code.TRUNCATED in codes_of(frames[0])
        assert frames[1].data == C_2011.encode()
        assert frames[1].valid(strict=True)
    decoded = decode(broken + F_2011)
    assert [d.valid(strict=True) for d in decoded] == [False, True]
    assert decoded[0].as_json()["version"] is None


def test_frame_without_terminator_then_next_frame() -> None:
    """A frame with no terminator directly followed by the next: both cut, the first lenient-valid."""
    for chunks in ([REPLY_FRAME + STD_FRAME], [REPLY_FRAME, STD_FRAME]):
        frames = feed_all(chunks)
        assert [f.data for f in frames] == [REPLY_DATA, STD_DATA]
        assert codes_of(frames[0]) == {Code.NO_TERMINATOR}
        assert frames[0].valid(strict=False)
        assert frames[1].valid(strict=True)
        assert codes_of(frames[1]) == set()


def test_crlf_in_a_later_feed_is_not_garbage() -> None:
    """A CRLF arriving in a later feed than its frame is not reported as garbage before the next frame."""
    frames = feed_all([STD_FRAME[:-2], b"\r\n", F_2011])
    assert [f.data for f in frames] == [STD_DATA, C_2011.encode()]
    assert all(Code.GARBAGE_SKIPPED not in codes_of(f) for f in frames)
    assert all(f.valid(strict=False) for f in frames)
    assert frames[1].valid(strict=True)


def test_flush_returns_partial_frame() -> None:
    """flush() returns an incomplete frame's bytes as an invalid truncated frame: nothing silently dropped."""
    framer = Framer()
    assert framer.feed(STD_FRAME[:60]) == []
    assert framer.pending == 60
    frames = framer.flush()
    assert len(frames) == 1
    assert frames[0].raw == STD_FRAME[:60]
    assert not frames[0].valid(strict=False)
    assert codes_of(frames[0]) == {Code.TRUNCATED}
    assert framer.pending == 0
    assert framer.flush() == []
    # the framer is reusable after a flush
    assert [f.data for f in framer.feed(STD_FRAME)] == [STD_DATA]


def test_flush_cuts_unterminated_frame_with_three_digit_crc() -> None:
    """A three-digit CRC at the very end is only decided at flush (it may still be growing)."""
    crc = f"{hj212_crc(SHORT_CRC_DATA):X}"
    framer = Framer()
    assert framer.feed(wrap(SHORT_CRC_DATA, crc=crc, term=b"")) == []
    frames = framer.flush()
    assert len(frames) == 1
    assert frames[0].data == SHORT_CRC_DATA
    assert codes_of(frames[0]) == {Code.CRC_SHORT, Code.NO_TERMINATOR}
    assert frames[0].valid(strict=False)


def test_flush_returns_headerless_bytes() -> None:
    """Bytes with no '##' left at flush come back as an invalid no_header frame."""
    framer = Framer()
    framer.feed(b"AT+CSQ\r\n+CSQ: 23,99")
    frames = framer.flush()
    assert len(frames) == 1
    assert codes_of(frames[0]) == {Code.NO_HEADER}
    assert not frames[0].valid(strict=False)


def test_trailing_garbage_is_reported() -> None:
    """Garbage after the last frame of a payload is reported, not silently dropped."""
    decoded = decode(STD_FRAME + b"trailing junk")
    assert len(decoded) == 2
    assert decoded[0].valid(strict=True)
    assert not decoded[1].valid(strict=False)
    assert decoded[1].frame.raw == b"trailing junk"


@pytest.mark.parametrize("prefix", [b"#", b"noise#", b"###"])
def test_stray_hash_before_frame(prefix: bytes) -> None:
    """A '#' (or several) just before a frame's '##' is garbage; the frame is still valid."""
    decoded = decode(prefix + STD_FRAME)
    valid = [d for d in decoded if d.valid(strict=True)]
    assert [d.frame.data for d in valid] == [STD_DATA]
    assert all(d.valid(strict=False) for d in decoded)


def test_quoted_packet_in_info_fed_in_pieces() -> None:
    """A frame whose Info quotes a whole packet is one frame even when it arrives byte by byte."""
    log = "//rx " + STD_FRAME[:-2].decode() + " ok//"
    raw = frame_segment(seg(f"{DT};i11001-Info={log}"))
    frames = feed_all([raw[i : i + 1] for i in range(len(raw))])
    assert [f.data for f in frames] == [raw[6:-6]]


# -- 5. property tests -----------------------------------------------------------------------------

CATALOG_CODES = sorted(catalog().by_code)
VALUE_SUFFIXES = ("Rtd", "Avg", "Min", "Max", "Cou")
DATA_FLAGS = "NFMSDCTB"
finite = st.floats(allow_nan=False, allow_infinity=False)
# At most 5 factors of 5 values: even 25 numbers of ~330 digits (5e-324, 1.8e308) fit 9,999 bytes.
factor_sets = st.dictionaries(
    st.sampled_from(CATALOG_CODES),
    st.tuples(st.dictionaries(st.sampled_from(VALUE_SUFFIXES), finite, min_size=1), st.sampled_from(DATA_FLAGS)),
    min_size=1,
    max_size=5,
)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
data_commands = st.sampled_from(["2011", "2051", "2061", "2031"])


def expected_records(factors: dict[str, tuple[dict[str, float], str]]) -> list[dict[str, Any]]:
    """The records decode must give for these factors."""
    return [
        {"code": code, "kind": suffix.lower(), "value": value, "flag": flag}
        for code, (values, flag) in factors.items()
        for suffix, value in values.items()
    ]


def encode(cn: str, ts: datetime, factors: dict[str, tuple[dict[str, float], str]]) -> bytes:
    """encode_data for generated factors."""
    return encode_data(
        cn=cn, mn=MN, data_time=ts, factors={c: {**values, "Flag": flag} for c, (values, flag) in factors.items()}
    )


@PROPERTY
@given(finite)
def test_format_number_round_trips(value: float) -> None:
    """format_number writes a plain decimal (no exponent) that reads back to the same float."""
    text = format_number(value)
    assert "e" not in text.lower()
    assert float(text) == value


@PROPERTY
@given(data_commands, times, factor_sets)
def test_round_trip_through_decode(cn: str, ts: datetime, factors: dict[str, tuple[dict[str, float], str]]) -> None:
    """encode_data then decode gives exactly the same records, DataTime and QN, strict-valid."""
    raw = encode(cn, ts, factors)
    d = only(raw)
    assert d.valid(strict=True)
    assert [f for f in d.findings(strict=True) if f.severity is not Severity.INFO] == []
    assert d.as_json()["records"] == expected_records(factors)
    assert d.packet.data_time == ts.replace(microsecond=0)
    assert d.packet.qn == qn_for(ts)
    assert (d.packet.cn, d.packet.mn, d.packet.version) == (cn, MN, "2017")


@PROPERTY
@given(data_commands, times, factor_sets, st.data())
def test_round_trip_through_framer_in_chunks(
    cn: str, ts: datetime, factors: dict[str, tuple[dict[str, float], str]], data: st.DataObject
) -> None:
    """The same packet, after another, fed to a Framer in random chunks decodes to the same records."""
    raw = encode(cn, ts, factors)
    stream = STD_FRAME + raw
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=12))
    frames = feed_all(split(stream, cuts))
    assert [f.data for f in frames] == [STD_DATA, raw[6:-6]]
    d = decode_frame(frames[1])
    assert d.as_json()["records"] == expected_records(factors)
    assert d.valid(strict=False)
    assert frames[0].valid(strict=False)
    # A cut inside a CRLF costs the strict verdict: see test_split_inside_the_terminator.
    if not set(cuts) & {len(STD_FRAME) - 2, len(STD_FRAME) - 1}:
        assert frames[0].valid(strict=True)
    if not set(cuts) & {len(stream) - 2, len(stream) - 1}:
        assert d.valid(strict=True)


def _check_json(decoded: list[DecodedPacket]) -> None:
    for d in decoded:
        for strict in (True, False):
            for accept in ((CrcVariant.HJ212,), list(CrcVariant)):
                j = d.as_json(strict=strict, accept=accept)
                assert j["verdict"] in ("valid", "invalid")
                json.dumps(j, ensure_ascii=False)


@PROPERTY
@given(st.binary(max_size=3000))
def test_fuzz_decode_arbitrary_bytes(data: bytes) -> None:
    """decode never raises on arbitrary bytes and its as_json is JSON-serialisable."""
    _check_json(decode(data))


FRAGMENTS = [
    b"##",
    b"#",
    b"0101",
    b"81",
    b"CP=&&",
    b"cp=&&",
    b"&&",
    b"1C80",
    b"cc01",
    b"880",
    b"\r\n",
    b"\n",
    b"\r",
    b";",
    b",",
    b"=",
    b"//",
    b"QN=20160801085857223;",
    b"ST=32;CN=2011;",
    b"PW=123456;MN=010000A8900016F000169DC0;",
    b"Flag=5;",
    b"PNUM=2;PNO=1;",
    b"DataTime=20160801084000",
    b"w01018-Rtd=1.5,w01018-Flag=N",
    b"W01018-Avg=-99.000000",
    b"011-Rtd=3",
    b"02z-Rtd=4",
    b"i11001-Info=//",
    b"SB1-RS=1",
    "仪器正常".encode(),
    "仪器正常".encode("gb18030"),
    b"\xff",
    b"\x80",
    STD_FRAME,
    STD_FRAME[:40],
    STD_FRAME[40:],
    REPLY_FRAME,
    F_2011,
]
ascii_noise = st.text(st.characters(max_codepoint=0x7F), max_size=6).map(str.encode)
fragment_streams = st.lists(st.sampled_from(FRAGMENTS) | ascii_noise, max_size=40).map(b"".join)


@PROPERTY
@given(fragment_streams)
def test_fuzz_decode_structured_bytes(data: bytes) -> None:
    """decode never raises on streams built from protocol fragments; as_json is JSON-serialisable."""
    _check_json(decode(data))


@PROPERTY
@given(st.binary(max_size=3000) | fragment_streams, st.data())
def test_fuzz_framer_chunks(data: bytes, draw: st.DataObject) -> None:
    """Framer.feed in arbitrary chunks plus flush never raises, and every frame decodes to JSON."""
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=20))
    framer = Framer()
    frames = [f for chunk in split(data, cuts) for f in framer.feed(chunk)]
    frames += framer.flush()
    assert framer.pending == 0
    _check_json([decode_frame(f) for f in frames])
    # every frame cut at a header is a piece of the input, in order (a no_header report holds the
    # skipped garbage without its line ends, so it is not a piece of the input)
    position = 0
    for frame in frames:
        if not frame.raw.startswith(b"##"):
            assert codes_of(frame) == {Code.NO_HEADER}
            continue
        found = data.find(frame.raw, position)
        assert found >= 0
        position = found + len(frame.raw)


segment_text = st.lists(
    st.sampled_from(
        ["QN=", "ST=", "CN=", "PW=", "MN=", "CP=&&", "&&", ";", ",", "=", "-", "//", "DataTime=", "w01018", "Rtd", "a"]
    )
    | st.text(st.characters(max_codepoint=0x7F), max_size=5)
    | st.sampled_from(["仪器", "ß", "İ", "\x00", "\ufffd"]),
    max_size=40,
).map("".join)


@PROPERTY
@given(st.text(max_size=500) | segment_text)
def test_fuzz_parse_segment(text: str) -> None:
    """parse_segment never raises on arbitrary text and reports only known codes, never errors."""
    packet = parse_segment(text)
    assert all(isinstance(f.code, Code) for f in packet.findings)
    assert all(f.severity is not Severity.ERROR for f in packet.findings)
    json.dumps([f.as_json() for f in packet.findings])


ORIGINALS = [STD_FRAME, F_2011, F_2051, F_INFO, frame_segment(seg(f"{DT};i11001-Info=//a&&1C80 b//"))]


@PROPERTY
@given(st.sampled_from(ORIGINALS), st.data())
def test_mutation_never_accepted_without_matching_crc(original: bytes, data: st.DataObject) -> None:
    """One changed data byte: any packet reported valid has a CRC that really matches its data."""
    # The HJ 212 CRC is an 8-bit check in disguise, so acceptance itself is not ruled out in
    # general; what is ruled out is acceptance without a genuinely matching CRC, and a
    # strict-valid packet whose data is not exactly the mutated data segment.
    orig_data = original[6:-6]
    i = data.draw(st.integers(0, len(orig_data) - 1))
    mask = data.draw(st.integers(1, 255))
    mutated_data = orig_data[:i] + bytes([orig_data[i] ^ mask]) + orig_data[i + 1 :]
    mutated = original[:6] + mutated_data + original[-6:]
    for d in decode(mutated):
        if d.valid(strict=False):
            assert CrcVariant.HJ212 in d.frame.crc_matches
            assert hj212_crc(d.frame.data) == int(d.frame.crc_field, 16)
        if d.valid(strict=True):
            assert d.frame.data == mutated_data
            assert hj212_crc(mutated_data) == int(original[-6:-2], 16)


def test_single_byte_substitution_always_detected() -> None:
    """Every single-byte change of the standard example's data changes its CRC and is never strict-valid."""
    # The per-byte step is a permutation of the 8-bit state, so one changed byte always changes the CRC.
    crc = hj212_crc(STD_DATA)
    for i in range(len(STD_DATA)):
        for value in range(256):
            if value != STD_DATA[i]:
                assert hj212_crc(STD_DATA[:i] + bytes([value]) + STD_DATA[i + 1 :]) != crc
    for i in range(len(STD_DATA)):
        for value in (0x00, 0x23, 0x26, 0x30, 0x3B, 0x41, 0x61, 0xFF):
            if value != STD_DATA[i]:
                mutated = STD_FRAME[: 6 + i] + bytes([value]) + STD_FRAME[7 + i :]
                assert not any(d.valid(strict=True) for d in decode(mutated)), (i, value)


# -- bugs found by these tests, now fixed ---------------------------------------------------------


@pytest.mark.parametrize("field", ["Flag=²", "Flag=5²", "PNUM=²;PNO=1", "PNO=¹"])
def test_unicode_digit_in_numeric_header(field: str) -> None:
    """A non-ASCII 'digit' in Flag/PNUM/PNO is a finding, not an exception."""
    raw = wrap(f"QN=20160801085857223;ST=32;CN=2011;PW=123456;MN={MN};{field};CP=&&{DT}&&")
    decoded = decode(raw)
    assert len(decoded) == 1
    json.dumps(decoded[0].as_json())


def test_lowercase_cp_after_length_changing_character() -> None:
    """A lower-case 'cp=&&' after a character whose upper case is longer ('ß') still splits at CP."""
    p = parse_segment(f"QN=20160801085857223;ST=32;CN=2011;PW=ß;MN={MN};Flag=4;cp=&&{DT}&&")
    assert p.pw == "ß"
    assert p.fields == {"DataTime": "20160801085857"}


NON_FINITE = ["NaN", "inf", "-Infinity", "1e999"]


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_value_is_bad_value(value: str) -> None:
    """A non-finite value (NaN, infinity, overflow) is a bad_value."""
    d = only(wrap(seg(f"{DT};w01018-Rtd={value},w01018-Flag=N")))
    assert Code.BAD_VALUE in codes(d)


@pytest.mark.parametrize("value", NON_FINITE)
def test_as_json_is_standard_json(value: str) -> None:
    """as_json of a packet with a non-finite value serialises as standard JSON (no NaN/Infinity)."""
    d = only(wrap(seg(f"{DT};w01018-Rtd={value},w01018-Flag=N")))
    json.dumps(d.as_json(), allow_nan=False)


def test_qn_times_delivery_in_the_stations_zone() -> None:
    """QN is the send time (docs/reference/hj212.md §3): the message carries it; a malformed QN only goes unused."""
    registry = make_registry()
    mn = "43010000000101"  # p1-out, Asia/Shanghai
    received = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    cp = {"w01018": {"Avg": 32.5, "Flag": "N"}}
    good = encode_data(cn="2051", mn=mn, data_time=datetime(2026, 11, 20, 8, 0), qn="20261120085930125", factors=cp)
    out = convert(good, topic=f"t/hj212/{mn}", topic_mn=mn, registry=registry, received_at=received)
    assert out.problems == [] and len(out.rows) == 1
    assert out.sent_at == datetime(2026, 11, 20, 0, 59, 30, 125000, tzinfo=UTC)
    odd = encode_data(cn="2051", mn=mn, data_time=datetime(2026, 11, 20, 8, 0), qn="not-a-qn", factors=cp)
    out = convert(odd, topic=f"t/hj212/{mn}", topic_mn=mn, registry=registry, received_at=received)
    assert len(out.rows) == 1 and out.sent_at is None


# -- found by `parkwatch fuzz` ----------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        b"#" * 300_000,  # one run of '#': a single stray header, not 150,000
        b"##0063ST=91;" + b"[" * 200_000,  # a header, then nothing that ends a frame
        b"##1CP=&&" * 20_000,  # 20,000 headers, each with a CP of its own and no CRC
        b"##0001" * 30_000 + b"##9999QN=1;CP=&&" + b"x" * 9000 + b"&&ABCD\r\n",  # headers reaching one far '&&'
        b"##CP=&&ABCD\r\n" * 16_000,  # a boundary with a wrong CRC every 13 bytes, each in reach of 770 headers
        b"##CP=&&" + b"&&ABCD##" * 16_000,  # boundaries that are also headers
    ],
)
def test_hostile_streams_cost_linear_work_and_the_next_frame_still_counts(junk: bytes) -> None:
    """Thousands of headers, each reaching hundreds of boundaries, once cost seconds per payload:
    CRC checks are now bounded by a few per header plus one per BYTES_PER_BOUNDARY bytes, and a
    good frame after the junk is still found and valid."""
    good = encode_data(cn="2051", mn=MN, data_time=datetime(2026, 11, 26, 8), factors={"w01018": {"Avg": 1.0}})
    stream = junk + b"\r\n" + good
    framer = Framer()
    frames = framer.feed(stream) + framer.flush()
    headers = stream.count(b"##")
    bound = (2 * FREE_BOUNDARIES + 2) * headers + len(stream) // BYTES_PER_BOUNDARY + BOUNDARY_BUDGET_START
    assert 0 < framer.checks <= bound or b"CP=&&" not in junk
    assert frames[-1].raw == good and frames[-1].valid(strict=True)
    assert sum(len(f.raw) for f in frames) <= len(stream)
