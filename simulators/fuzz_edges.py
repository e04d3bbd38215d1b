"""The edges `parkwatch fuzz` attacks in-process: MQTT payloads, the gateway's stream, the registry, the settings."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import orjson
import yaml

from ingest.batch import DeadLetter, Message
from ingest.hj212.codec import decode_frame
from ingest.hj212.convert import convert
from ingest.hj212.frame import Framer
from ingest.messages import decode_message
from ingest.registry import Registry, StationInfo
from parkwatch.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from schemas.parameters import catalog
from schemas.readings import Reason, hj212_topic
from schemas.registry import RegistryFileError, parse_registry
from schemas.stations import CrcVariant, StationKind
from simulators.fuzz_inputs import (
    HOSTILE_NUMBERS,
    HOSTILE_STRINGS,
    MAX_INPUT,
    Mutator,
    hj212_seeds,
    json_seeds,
    serialise,
)

PREFIX = "fuzz"
# A refusal's message is shown in logs and the API: whatever the input, it stays readable.
MAX_MESSAGE_CHARS = 4096
# The largest magnitude a stored value may have (schemas/ranges.py refuses beyond it).
MAX_VALUE = 1e9
DEMO_REGISTRY = Path(__file__).with_name("demo_registry.yaml")


class ViolationError(Exception):
    """The input was handled without crashing, but an invariant of the edge does not hold."""


@dataclass
class Outcome:
    """What one input came to: accepted (something kept as data) or refused (kept as a refusal)."""

    accepted: bool
    refused: bool


Edge = tuple[Callable[[], Any], Callable[[Any], Outcome]]


def fuzz_registry() -> Registry:
    """The three stations the seeds speak for: a water outlet with a password, an air station, a stack."""
    shanghai = ZoneInfo("Asia/Shanghai")
    stations = [
        StationInfo(1, "p1-out", "p1", StationKind.WASTEWATER_OUTLET, "43010000000101", shanghai,
                    frozenset({"w01018", "w21003", "w21011", "w00000", "w01001"}), {"w21011": "ug/L"},
                    ranges={"w01018": (0.0, 500.0)}),
        StationInfo(2, "p1-air", "p1", StationKind.AMBIENT_AIR, "43010000000102", shanghai,
                    frozenset({"a34004", "a21026", "a01001"}), {}, crc=CrcVariant.MODBUS),
        StationInfo(3, "p2-stack", "p2", StationKind.STACK, None, ZoneInfo("Asia/Urumqi"),
                    frozenset({"a21026", "a19001", "a00000", "a01012"}), {}),
    ]  # fmt: skip
    return Registry.of(stations, {code: i + 1 for i, code in enumerate(catalog().by_code)})


def _check_message(message: Message, topic: str, payload: bytes, received_at: datetime) -> Outcome:
    for row in message.rows:
        value = row[4]
        if value is not None and (not math.isfinite(value) or abs(value) > MAX_VALUE):
            raise ViolationError(f"stored value {value!r} is not a finite value within ±{MAX_VALUE:g}")
    for problem in message.problems:
        if not isinstance(problem.reason, Reason):
            raise ViolationError(f"problem reason {problem.reason!r} is not a Reason")
        if len(problem.message) > MAX_MESSAGE_CHARS or "\x00" in problem.message:
            raise ViolationError(f"problem message of {len(problem.message)} chars, or with a NUL")
    if message.problems:
        dead = DeadLetter.from_problems(
            received_at=received_at,
            topic=topic,
            payload=payload,
            problems=message.problems,
            station_id=message.station_id,
        )
        orjson.dumps(dead.problems)  # what the dead_letters row stores must serialise
        if dead.station_id is not None and "\x00" in dead.station_id:
            raise ViolationError("a dead letter's station id holds a NUL")
    kept = bool(message.rows or message.packets or message.events)
    if not kept and not message.problems:
        raise ViolationError("input neither kept nor refused: it would vanish")
    return Outcome(accepted=bool(message.rows), refused=bool(message.problems))


def json_edge(seed: int) -> Edge:
    """JSON readings on {prefix}/{park}/{station}/readings, as the ingest decodes them."""
    registry = fuzz_registry()
    mutator = Mutator(seed)
    seeds = json_seeds(datetime.now(UTC))
    bodies = [b for _, b in seeds]
    received_at = datetime.now(UTC)

    def generate() -> tuple[str, bytes]:
        route, body = mutator.rng.choice(seeds)
        if mutator.rng.random() < 0.05:
            route = mutator.rng.choice(["p1/p1-air", "p9/p1-out", "p1/nobody", "p1/p1-out"])
        return f"{PREFIX}/{route}/readings", mutator.json_payload(body, bodies)

    def check(case: tuple[str, bytes]) -> Outcome:
        topic, payload = case
        message = decode_message(topic, payload, prefix=PREFIX, registry=registry, received_at=received_at)
        return _check_message(message, topic, payload, received_at)

    return generate, check


def hj212_edge(seed: int) -> Edge:
    """Raw HJ 212 payloads on {prefix}/hj212/{MN}, as the ingest converts them."""
    registry = fuzz_registry()
    mutator = Mutator(seed)
    seeds = hj212_seeds(datetime.now(UTC))
    bodies = [b for _, b in seeds]
    received_at = datetime.now(UTC)

    def generate() -> tuple[str, bytes]:
        mn, body = mutator.rng.choice(seeds)
        if mutator.rng.random() < 0.05:
            mn = mutator.rng.choice(["UNKNOWNMN0001", "_unknown", "43010000000102"])
        return mn, mutator.bytes_(body, bodies)[:MAX_INPUT]

    def check(case: tuple[str, bytes]) -> Outcome:
        mn, payload = case
        topic = hj212_topic(PREFIX, mn)
        message = convert(payload, topic=topic, topic_mn=mn, registry=registry, received_at=received_at)
        return _check_message(message, topic, payload, received_at)

    return generate, check


def stream_edge(seed: int) -> Edge:
    """The gateway's TCP byte stream: mutated packets in random chunks, quiet moments, then the end."""
    mutator = Mutator(seed)
    bodies = [b for _, b in hj212_seeds(datetime.now(UTC))]

    def generate() -> bytes:
        rng = mutator.rng
        return b"".join(mutator.bytes_(rng.choice(bodies), bodies) for _ in range(rng.randint(1, 6)))[:MAX_INPUT]

    def check(stream: bytes) -> Outcome:
        rng = mutator.rng
        framer = Framer()
        frames = []
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 7, 64, 1500, 65536])
            frames += framer.feed(stream[pos : pos + step])
            pos += step
            if rng.random() < 0.1:
                frames += framer.settle()
        frames += framer.flush()
        if stream.strip(b"\r\n \t\x00") and not frames:
            raise ViolationError("bytes in, nothing out: the logger would get silence")
        if sum(len(f.raw) for f in frames) > len(stream):
            raise ViolationError("frames hold more bytes than were sent")
        for frame in frames:
            decode_frame(frame)
        return Outcome(accepted=any(decode_frame(f).valid() for f in frames), refused=True)

    return generate, check


def registry_edge(seed: int) -> Edge:
    """The registry file: the demo registry mutated as text and as a document."""
    mutator = Mutator(seed)
    text = DEMO_REGISTRY.read_bytes()
    doc = yaml.safe_load(text)

    def generate() -> tuple[str, bytes]:
        if mutator.rng.random() < 0.5:
            mutated = mutator.document(yaml.safe_load(text) if mutator.rng.random() < 0.1 else _copy(doc))
            return "JSON", serialise(mutated, default=str)
        return "YAML", mutator.bytes_(text, [text])[:MAX_INPUT]

    def check(case: tuple[str, bytes]) -> Outcome:
        fmt, body = case
        try:
            parse_registry(body, fmt, "fuzz")
        except RegistryFileError as exc:
            if not exc.problems or not all(isinstance(p, str) and p for p in exc.problems):
                raise ViolationError("a refused registry names no problem") from None
            if any(len(p) > MAX_MESSAGE_CHARS for p in exc.problems):
                raise ViolationError("a registry problem too long to read") from None
            return Outcome(accepted=False, refused=True)
        return Outcome(accepted=True, refused=False)

    return generate, check


def _copy(doc: Any) -> Any:
    return orjson.loads(orjson.dumps(doc, default=str))


SETTING_NAMES = list(Settings.model_fields)


def settings_edge(seed: int) -> Edge:
    """PARKWATCH_* environment variables with hostile values."""
    rng = Mutator(seed).rng

    def generate() -> dict[str, str]:
        env = {}
        for name in rng.sample(SETTING_NAMES, rng.randint(1, 4)):
            value = rng.choice([*HOSTILE_STRINGS[:-1], *map(str, HOSTILE_NUMBERS), "mqtt://u:p@h:0", "postgresql://x"])
            env[ENV_PREFIX + name] = value.replace("\x00", "")  # the OS refuses NUL in the environment
        return env

    def check(env: dict[str, str]) -> Outcome:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
            try:
                load_settings()
            except SettingsError as exc:
                lines = exc.lines()
                if not lines or not all(line.startswith("invalid setting PARKWATCH_") for line in lines):
                    raise ViolationError(f"a refusal that names no setting: {lines!r}") from None
                return Outcome(accepted=False, refused=True)
        return Outcome(accepted=True, refused=False)

    return generate, check


PURE_EDGES: dict[str, Callable[[int], Edge]] = {
    "json": json_edge,
    "hj212": hj212_edge,
    "stream": stream_edge,
    "registry": registry_edge,
    "settings": settings_edge,
}
