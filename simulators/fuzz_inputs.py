"""Hostile inputs for `parkwatch fuzz`: valid seeds of each edge, and mutations of them, reproducible from a seed."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

import orjson

from ingest.hj212.codec import encode_data, frame_segment
from ingest.hj212.packet import build_segment
from schemas.stations import CrcVariant

# Strings and numbers that have broken parsers before: empty, huge, NUL, lone surrogates (as
# raw UTF-8 bytes they are invalid), separators of each format, dates outside every range.
HOSTILE_STRINGS = [
    "", " ", "\x00", "a\x00b", "\\", '"', "'", "&&", ";", "=", ",", "-", "##", "\r\n", "%00", "%s%n",
    "../../etc/passwd", "' OR 1=1 --", "$1", "{}", "[]", "null", "NaN", "Infinity", "-0", "1e309",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-02-30T00:00:00+08:00", "2026-13-01", "1970-01-01",
    "24:00", "20261301085857", "99999999999999", "﷽" * 50, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "x" * 70_000,
]  # fmt: skip
HOSTILE_NUMBERS: list[Any] = [
    0, -1, 1, 2**31, -(2**31) - 1, 2**63, 2**64, 10**30, -(10**30), 1e308, -1e308, 1.7e308, 5e-324, 1e-300,
    0.1, -0.0, 12.5, 7.0, 14.0000001, 1e9, 1e9 + 1,
]  # fmt: skip
# Inputs are cut to this size: past the ingest's 256 KiB payload limit, under the broker's 1 MiB
# packet limit (deploy/mosquitto.conf: a larger publish costs the publisher its connection), and
# short of making the generator, not the code under test, the slow part.
MAX_INPUT = (1 << 20) - 4096
INTERESTING_BYTES = b'\x00\xff\x7f\x80\r\n\t "\\{}[],:;=&#-+.eE0123456789'

STATIONS = (("p1", "p1-out", "43010000000101"), ("p1", "p1-air", "43010000000102"), ("p2", "p2-stack", None))
WATER = ["w01018", "w21003", "w21011", "w00000", "w01001", "cod", "ph", "flow"]
AIR = ["a34004", "a21026", "a01001", "pm25"]
STACK = ["a21026", "a19001", "a00000", "a01012", "so2", "o2"]


def json_seeds(now: datetime) -> list[tuple[str, bytes]]:
    """Valid JSON messages (topic suffix park/station, payload) of every documented shape."""
    t = now.replace(second=0, microsecond=0) - timedelta(hours=2)
    out: list[tuple[str, bytes]] = []
    for park, station, _ in STATIONS:
        codes = WATER if station.endswith("out") else AIR if station.endswith("air") else STACK
        one = {
            "station_id": station,
            "ts": t.isoformat(),
            "readings": [{"parameter": c, "value": 7.0 + i} for i, c in enumerate(codes)],
        }
        full = {
            "station_id": station,
            "ts": t.isoformat(),
            "interval": "min",
            "sent_at": now.isoformat(),
            "readings": [{"parameter": c, "value": 7.5, "flag": "N", "unit": None} for c in codes],
        }
        many = [
            {"station_id": station, "ts": (t + timedelta(minutes=k)).isoformat(), "readings": one["readings"]}
            for k in range(5)
        ]
        out += [(f"{park}/{station}", orjson.dumps(doc)) for doc in (one, full, many)]
    return out


def hj212_seeds(now: datetime) -> list[tuple[str, bytes]]:
    """Valid HJ 212 payloads (MN, bytes): data of each interval, state, a reply, a split packet."""
    t = now.replace(second=0, microsecond=0) - timedelta(hours=2)
    out: list[tuple[str, bytes]] = []
    for _, station, mn in STATIONS:
        if mn is None:
            continue
        for cn in ("2011", "2051", "2061", "2031"):
            rtd: dict[str, float | str] = {"Rtd": 30.5, "Flag": "N"}
            stats: dict[str, float | str] = {"Min": 29.0, "Avg": 30.5, "Max": 32.0, "Cou": 1.5}
            suffixes = rtd if cn == "2011" else stats
            factors: dict[str, dict[str, float | str]] = {"w01018": dict(suffixes), "w00000": {"Avg": 120.0}}
            if station.endswith("air"):
                factors = {"a34004": dict(suffixes), "a21026": {"Avg": 12.0}}
            out.append((mn, encode_data(cn=cn, mn=mn, data_time=t, factors=factors, flag=5)))
        out.append(
            (mn, encode_data(cn="2051", mn=mn, data_time=t, factors={"w01018": {"Avg": 1.0}}, crc=CrcVariant.MODBUS))
        )
        cp = [[("DataTime", t.strftime("%Y%m%d%H%M%S"))], [("SB1-RS", "1")], [("i11001-Info", "//ok//")]]
        state = build_segment(cn="3020", mn=mn, st="32", pw="123456", qn="20261201085857223", flag=4, cp=cp)
        out.append((mn, frame_segment(state)))
        out.append((mn, frame_segment("ST=91;CN=9014;PW=123456;MN=" + mn + ";Flag=4;CP=&&QnRtn=1&&")))
        two = encode_data(cn="2011", mn=mn, data_time=t, factors={"w01018": {"Rtd": 1.0}}) * 2
        out.append((mn, two))
    return out


class Mutator:
    """Mutations of bytes and of JSON documents; one random.Random, so a seed replays a run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def bytes_(self, data: bytes, others: list[bytes]) -> bytes:
        """One to four byte-level mutations."""
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(9)
            pos = rng.randrange(len(buf) + 1)
            if op == 0 and buf:  # flip a bit
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
            elif op == 1 and buf:  # an interesting byte
                buf[rng.randrange(len(buf))] = rng.choice(INTERESTING_BYTES)
            elif op == 2:  # insert random bytes
                buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
            elif op == 3 and buf:  # delete a range
                end = min(len(buf), pos + rng.randint(1, 32))
                del buf[pos:end]
            elif op == 4 and buf:  # duplicate a range
                end = min(len(buf), pos + rng.randint(1, 64))
                buf[pos:pos] = buf[pos:end] * rng.randint(1, 8)
            elif op == 5:  # truncate
                del buf[pos:]
            elif op == 6 and others:  # splice another seed in
                other = rng.choice(others)
                cut = rng.randrange(len(other) + 1)
                buf[pos:] = other[cut:]
            elif op == 7:  # a hostile string
                buf[pos:pos] = rng.choice(HOSTILE_STRINGS[:-1]).encode("utf-8", "surrogatepass")
            elif rng.random() < 0.5:  # a long run
                buf[pos:pos] = bytes([rng.choice(INTERESTING_BYTES)]) * rng.choice([100, 5000, 300_000])
            else:  # deep nesting
                depth = rng.choice([100, 1000, 100_000])
                buf[pos:pos] = b"[" * depth + b"]" * depth
        return bytes(buf)

    def value(self, depth: int = 0) -> Any:
        """A random JSON value, often a hostile one."""
        rng = self.rng
        roll = rng.randrange(10)
        if roll < 3:
            return rng.choice(HOSTILE_STRINGS)
        if roll < 6:
            return rng.choice(HOSTILE_NUMBERS)
        if roll == 6:
            return rng.choice([None, True, False])
        if roll == 7 and depth < 3:
            return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]
        if roll == 8 and depth < 3:
            return {rng.choice(["station_id", "ts", "readings", "parameter", "value", "x"]): self.value(depth + 1)}
        nested: Any = 0
        for _ in range(rng.choice([10, 200])):  # deeper nesting comes from the byte mutations
            nested = [nested]
        return nested

    def document(self, doc: Any) -> Any:
        """Replace, delete or add one to three places in a parsed JSON document."""
        for _ in range(self.rng.randint(1, 3)):
            doc = self._mutate_at(doc, 0)
        return doc

    def _mutate_at(self, node: Any, depth: int) -> Any:
        rng = self.rng
        if isinstance(node, dict) and node and rng.random() < 0.7:
            key = rng.choice(list(node))
            action = rng.randrange(4)
            if action == 0:
                del node[key]
            elif action == 1:
                node[rng.choice(HOSTILE_STRINGS[:-1])] = self.value(depth)
            else:
                node[key] = self._mutate_at(node[key], depth + 1)
            return node
        if isinstance(node, list) and node and rng.random() < 0.7:
            i = rng.randrange(len(node))
            action = rng.randrange(4)
            if action == 0:
                del node[i]
            elif action == 1:
                node.extend(node[:1] * rng.choice([2, 100, 3000]))
                if len(node) > 10_000:  # repeated extends of a list that holds itself grow without end
                    del node[10_000:]
            else:
                node[i] = self._mutate_at(node[i], depth + 1)
            return node
        return self.value(depth)

    def json_payload(self, seed: bytes, others: list[bytes]) -> bytes:
        """A structural mutation (re-serialised) or a byte-level one, at most MAX_INPUT bytes."""
        structural = self.rng.random() < 0.6
        out = serialise(self.document(orjson.loads(seed))) if structural else self.bytes_(seed, others)
        return out[:MAX_INPUT]


def serialise(doc: Any, *, limit: int = MAX_INPUT, default: Any = None) -> bytes:
    """JSON of a mutated document, by the standard library, cut at `limit` bytes as it is written.

    Not orjson: on some documents of many lists nested ~200 deep it writes past the end of its
    buffer and corrupts the heap (every release from 3.10 to 3.13; docs/testing.md#fuzzing).
    Written piece by piece: a mutation repeats one list item thousands of times, by reference,
    at several levels, and the whole text of such a document ran to gigabytes (a registry run's
    process reached 6.4 GB) before it was cut.
    """
    out: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(default=default).iterencode(doc):
        out.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return "".join(out).encode()[:limit]
