"""One entry point for decoding and encoding HJ 212 packets: bytes in, packets with findings out.

No I/O here. Every decode returns DecodedPacket objects (a frame, its parsed data segment, and
all findings); no input makes this module raise anything but DecodeError, which only encoding
raises for impossible requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.hj212.crc import CrcVariant, crc_text
from ingest.hj212.findings import Code, DecodeError, Finding, Severity
from ingest.hj212.frame import Frame, Framer
from ingest.hj212.packet import NUMERIC_SUFFIXES, Packet, build_segment, format_number, parse_segment


@dataclass
class DecodedPacket:
    """A frame and what its data segment says."""

    frame: Frame
    packet: Packet
    text_findings: list[Finding]

    def findings(
        self, *, strict: bool = False, accept: Iterable[CrcVariant] = (CrcVariant.HJ212,), detect: bool = True
    ) -> list[Finding]:
        """Framing findings for this mode, then text and field findings."""
        return (
            self.frame.findings(strict=strict, accept=accept, detect=detect) + self.text_findings + self.packet.findings
        )

    def valid(self, *, strict: bool = False, accept: Iterable[CrcVariant] = (CrcVariant.HJ212,)) -> bool:
        """True when the frame is accepted for ingestion in this mode (and its text is readable)."""
        text_ok = not any(f.severity is Severity.ERROR for f in self.text_findings)
        return text_ok and self.frame.valid(strict=strict, accept=accept)

    def as_json(
        self, *, strict: bool = False, accept: Iterable[CrcVariant] = (CrcVariant.HJ212,), detect: bool = True
    ) -> dict[str, Any]:
        """The object `parkwatch hj212 decode` prints."""
        p = self.packet
        data_time = p.data_time
        return {
            "verdict": "valid" if self.valid(strict=strict, accept=accept) else "invalid",
            "version": p.version if self.frame.data else None,
            "qn": p.qn,
            "st": p.st,
            "cn": p.cn,
            "pw": p.pw,
            "mn": p.mn,
            "flag": p.flag,
            "ack_requested": p.ack_requested,
            "packetized": p.packetized,
            "pnum": p.pnum,
            "pno": p.pno,
            "data_time": data_time.isoformat() if data_time else None,
            "records": records(p),
            "fields": p.fields,
            "length": {"field": self.frame.length_field, "data_bytes": len(self.frame.data)},
            "crc": {"field": self.frame.crc_field, "matches": sorted(v.value for v in self.frame.crc_matches)},
            "findings": [f.as_json() for f in self.findings(strict=strict, accept=accept, detect=detect)],
        }


def records(packet: Packet) -> list[dict[str, Any]]:
    """One record per factor and value kind: code, kind (rtd, avg, min, ...), value, flag."""
    out = []
    for factor in packet.factors.values():
        flag = factor.flag
        for suffix, text in factor.values.items():
            if suffix in ("Flag", "EFlag", "SampleTime"):
                continue
            value: float | str | None = text
            if suffix in NUMERIC_SUFFIXES:
                value = factor.number(suffix)
            out.append(
                {
                    "code": factor.code,
                    "kind": suffix.lower(),
                    "value": value,
                    "flag": flag,
                    **({"eflag": factor.values["EFlag"]} if "EFlag" in factor.values else {}),
                    **({"sample_time": factor.values["SampleTime"]} if "SampleTime" in factor.values else {}),
                    **({"raw_code": factor.raw_code} if factor.raw_code != factor.code else {}),
                    **({"known": False} if not factor.info.known else {}),
                }
            )
    return out


def decode_text(data: bytes) -> tuple[str, list[Finding]]:
    """Data segment bytes as text: UTF-8, else GB18030 (Windows-era loggers), never failing.

    A NUL byte makes the packet invalid: no logger sends one, and PostgreSQL refuses text that
    holds it, so it is refused here, with its bytes kept as a dead letter, not at the database.
    """
    if b"\x00" in data:
        nul = [Finding(Code.NUL_BYTE, Severity.ERROR, "the data segment contains a NUL byte")]
        return data.replace(b"\x00", b"").decode("utf-8", errors="replace"), nul
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), [Finding(Code.TEXT_GB18030, Severity.INFO, "text decoded as GB18030")]
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        return text, [Finding(Code.TEXT_UNDECODABLE, Severity.WARNING, "text is neither UTF-8 nor GB18030")]


def decode_frame(frame: Frame, *, header_only: bool = False) -> DecodedPacket:
    """Parse a cut frame's data segment (or just its header: see parse_segment)."""
    text, findings = decode_text(frame.data)
    packet = parse_segment(text, header_only=header_only) if frame.data else Packet(text="")
    return DecodedPacket(frame=frame, packet=packet, text_findings=findings)


def decode(data: bytes) -> list[DecodedPacket]:
    """Every packet in a complete input (an MQTT payload, one CLI line)."""
    return [decode_frame(f) for f in Framer().frames(data)]


# -- encoding ----------------------------------------------------------------------------------


def frame_segment(segment: str, *, crc: CrcVariant = CrcVariant.HJ212, terminator: bytes = b"\r\n") -> bytes:
    """Wrap a data segment: '##' + length + segment + CRC + terminator."""
    data = segment.encode("utf-8")
    if len(data) > 9999:
        raise DecodeError(f"data segment of {len(data)} bytes does not fit the 4-digit length field")
    return b"##" + f"{len(data):04d}".encode() + data + crc_text(data, crc).encode() + terminator


def qn_for(ts: datetime) -> str:
    """A request id (QN) from a time: YYYYMMDDhhmmsszzz."""
    return ts.strftime("%Y%m%d%H%M%S") + f"{ts.microsecond // 1000:03d}"


def encode_data(
    *,
    cn: str,
    mn: str,
    data_time: datetime,
    factors: dict[str, dict[str, float | str]],
    st: str = "32",
    pw: str = "123456",
    qn: str | None = None,
    flag: int = 4,
    crc: CrcVariant = CrcVariant.HJ212,
    terminator: bytes = b"\r\n",
) -> bytes:
    """A data upload (2011/2051/2061/2031...): factors map code → {suffix: value}."""
    if not cn:
        raise DecodeError("a packet needs a command code (CN)")
    items: list[list[tuple[str, str]]] = [[("DataTime", data_time.strftime("%Y%m%d%H%M%S"))]]
    for code, values in factors.items():
        items.append(
            [
                (f"{code}-{suffix}", format_number(v) if isinstance(v, float | int) else str(v))
                for suffix, v in values.items()
            ]
        )
    segment = build_segment(cn=cn, mn=mn, st=st, pw=pw, qn=qn or qn_for(data_time), flag=flag, cp=items)
    return frame_segment(segment, crc=crc, terminator=terminator)


def encode_reply(
    request: Packet,
    *,
    cn: str,
    cp: list[list[tuple[str, str]]] | None = None,
    crc: CrcVariant = CrcVariant.HJ212,
    st: str = "91",
    qn_in_cp: bool = False,
) -> bytes:
    """An answer to a packet (9011/9012/9013/9014): same QN, ST=91 (docs/reference/hj212.md §7).

    The Flag keeps the request's version bits with no answer requested (4 for 2017, 8 for 2025);
    a 2005 request, which had no Flag, gets none. `crc`, `st` and `qn_in_cp` speak a logger's
    dialect (schemas/registry.py Hj212Profile): its CRC routine, an echoed ST, and the QN inside
    CP as HJ/T 212-2005 loggers expect it.
    """
    flag = None if request.flag is None else request.flag & ~3
    items = list(cp or [])
    qn = request.qn
    if qn_in_cp and qn:
        items = [[("QN", qn)], *items]
        qn = None
    segment = build_segment(cn=cn, mn=request.mn or "", st=st, pw=request.pw or "", qn=qn, flag=flag, cp=items)
    return frame_segment(segment, crc=crc)


# -- split packets -----------------------------------------------------------------------------


@dataclass
class Reassembled:
    """The parts of one split packet (Flag D bit, PNUM/PNO), merged."""

    parts: list[Packet]

    @property
    def packet(self) -> Packet:
        """One packet holding every part's factors, with the first part's header and fields."""
        first = self.parts[0]
        merged = Packet(text=first.text, header=dict(first.header), extra_header=dict(first.extra_header))
        for part in self.parts:
            for key, value in part.fields.items():
                merged.fields.setdefault(key, value)
            for code, factor in part.factors.items():
                merged.factors.setdefault(code, factor)
            merged.findings.extend(part.findings)
        return merged


class Reassembler:
    """Collects the parts of split packets; a group completes when all PNUM parts have come.

    Parts are grouped by (MN, CN, DataTime): each part has its own QN (HJ 212-2017 C.49-C.50),
    so the QN cannot be the key (docs/reference/hj212.md §3). Every part also stands on its own (each carries
    DataTime), which is why the ingest stores parts as they come and never waits for a group.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], dict[int, Packet]] = {}

    def add(self, packet: Packet) -> Reassembled | None:
        """Add a part; returns the merged packet when this part completes its group."""
        pnum, pno = packet.pnum, packet.pno
        if pnum is None or pno is None or not 1 <= pno <= pnum:
            return None
        key = (packet.mn or "", packet.cn or "", packet.fields.get("DataTime", ""))
        group = self._groups.setdefault(key, {})
        group.setdefault(pno, packet)
        if len(group) < pnum:
            return None
        del self._groups[key]
        return Reassembled(parts=[group[i] for i in sorted(group)])

    @property
    def incomplete(self) -> int:
        """Groups still waiting for parts."""
        return len(self._groups)
