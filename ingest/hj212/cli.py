"""`parkwatch hj212 decode|encode`: the codec on the command line (stdin in, JSON lines out)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, TextIO

from ingest.hj212.codec import DecodedPacket, Reassembler, decode_frame, encode_data, records
from ingest.hj212.frame import Frame, Framer
from schemas.stations import CrcVariant

CRC_CHOICES = ("auto", "hj212", "modbus", "modbus-swapped")


def _frames(stream: BinaryIO) -> Iterator[Frame]:
    """Frames of stdin: one packet per line, or a raw byte stream of packets.

    Lines go through one stream framer, so a packet whose text holds a newline (an -Info log)
    survives; a line with no frame header while no frame is pending is an invalid packet of its
    own (a line of output, not a note on the next one). A line's newline is the packet's
    terminator, so a CRLF file gives CRLF packets and an LF file LF packets.
    """
    framer = Framer()
    for line in stream:
        if framer.pending == 0 and b"##" not in line and line.strip():
            yield from Framer().frames(line)
            continue
        yield from framer.feed(line)
    yield from framer.flush()


def decode_command(stdin: BinaryIO, stdout: TextIO, *, strict: bool, crc: str) -> int:
    """Print one JSON object per packet read from stdin; exit status 0 whatever the packets."""
    accept: tuple[CrcVariant, ...] = () if crc in ("auto", "hj212") else (CrcVariant(crc),)
    split = Reassembler()
    for frame in _frames(stdin):
        decoded: DecodedPacket = decode_frame(frame)
        doc = decoded.as_json(strict=strict, accept=accept, detect=crc != "hj212")
        _emit(stdout, doc)
        if doc["verdict"] == "valid" and decoded.packet.packetized:
            whole = split.add(decoded.packet)
            if whole is not None:
                # All parts of a split packet have come: one more line, the packet they make.
                merged = whole.packet
                _emit(
                    stdout,
                    {
                        "reassembled": True,
                        "parts": [p.qn for p in whole.parts],
                        "mn": merged.mn,
                        "cn": merged.cn,
                        "data_time": merged.data_time.isoformat() if merged.data_time else None,
                        "records": records(merged),
                    },
                )
    return 0


def _emit(stdout: TextIO, doc: dict[str, object]) -> None:
    stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    stdout.flush()


def parse_factor(spec: str) -> tuple[str, dict[str, float | str]]:
    """'w01018:Avg=32.1,Min=30,Flag=N' → ('w01018', {'Avg': 32.1, 'Min': 30.0, 'Flag': 'N'})."""
    code, sep, rest = spec.partition(":")
    if not sep or not code or not rest:
        raise ValueError(f"factor {spec!r} is not CODE:Suffix=value,...")
    values: dict[str, float | str] = {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"factor {spec!r}: {part!r} is not Suffix=value")
        try:
            values[key] = float(value)
        except ValueError:
            values[key] = value
    return code, values


def encode_command(
    stdout: BinaryIO,
    *,
    cn: str,
    mn: str,
    data_time: datetime,
    factors: list[str],
    st: str,
    pw: str,
    flag: int,
    qn: str | None,
    crc: str,
    terminator: bytes,
) -> int:
    """Print one framed packet."""
    packet = encode_data(
        cn=cn,
        mn=mn,
        data_time=data_time,
        factors=dict(parse_factor(f) for f in factors),
        st=st,
        pw=pw,
        flag=flag,
        qn=qn,
        crc=CrcVariant.HJ212 if crc == "auto" else CrcVariant(crc),
        terminator=terminator,
    )
    stdout.write(packet)
    stdout.flush()
    return 0
