"""Turn one MQTT payload into reading rows and a list of problems (pure; no I/O)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ingest.registry import Registry, StationInfo
from ingest.rows import Row
from schemas import ranges
from schemas.readings import (
    DEFAULT_FLAG,
    EARLIEST_TS,
    FLAGS,
    INTERVALS,
    MAX_FUTURE_SKEW,
    MAX_PAYLOAD_BYTES,
    Reason,
)
from schemas.units import UnitError

# What a refusal quotes of the input: enough to recognise it, never the whole of a hostile value
# (a 70 KB station id would otherwise be copied into every log line and API answer about it).
SHOWN_CHARS = 64


def shown(value: object) -> str:
    """The repr of an input value for a message, cut to SHOWN_CHARS."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} chars)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a payload; `at` points into it (e.g. '[2].readings[0].value')."""

    reason: Reason
    message: str
    at: str = ""
    # The catalogue code a value problem concerns, where known: data-quality alarms count refusals
    # per parameter (alerts/instruments.py).
    parameter: str = ""

    def as_json(self) -> dict[str, str]:
        """The form stored in dead_letters.problems."""
        out = {"reason": self.reason.value, "message": self.message, "at": self.at}
        if self.parameter:
            out["parameter"] = self.parameter
        return out


@dataclass(slots=True)
class Decoded:
    """The outcome for one payload: rows to store and problems to dead-letter."""

    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sent_at: datetime | None = None  # the first object's sent_at, when it gives one


# A tuple, not `int | float`: the union would be built again for every reading.
_NUMBER = (int, float)


def _parse(payload: bytes) -> tuple[Any, Problem | None]:
    try:
        return orjson.loads(payload), None
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    # orjson refuses NaN, Infinity and overflowing numbers; the standard library reads them as
    # non-finite floats, so such a payload is refused per reading as non_finite, not wholesale.
    # Decoded as UTF-8 first: json.loads would otherwise sniff UTF-16/32, which the contract
    # does not allow. Deep nesting that orjson refused must not crash the stdlib parser.
    try:
        doc = json.loads(payload.decode("utf-8"))
        # orjson also refuses lone UTF-16 surrogates ("\ud800"), which no database text can hold.
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        return None, Problem(Reason.INVALID_JSON, f"not valid JSON: {first_error}")
    return doc, None


def parse_ts(text: str, station: StationInfo) -> datetime:
    """An ISO 8601 timestamp; without an offset it is read in the station's time zone."""
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=station.tz)
    return ts


def _sent_at(raw: object, station: StationInfo) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return parse_ts(raw, station)
    except ValueError:
        return None


def decode(
    payload: bytes,
    *,
    topic_park: str,
    topic_station: str,
    registry: Registry,
    received_at: datetime,
) -> Decoded:
    """Validate a readings payload published on {prefix}/{topic_park}/{topic_station}/readings."""
    out = Decoded()
    if len(payload) > MAX_PAYLOAD_BYTES:
        out.problems.append(
            Problem(Reason.TOO_LARGE, f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
        )
        return out
    if b"\\u0000" in payload:
        # PostgreSQL's text refuses NUL: refuse it here, with a reason, not at the database.
        out.problems.append(
            Problem(Reason.SCHEMA, "the payload contains a NUL character (\\u0000), which no field may hold")
        )
        return out
    doc, problem = _parse(payload)
    if problem is not None:
        out.problems.append(problem)
        return out
    if isinstance(doc, dict):
        objects, array = [doc], False
    elif isinstance(doc, list) and doc:
        objects, array = doc, True
    else:
        what = "an empty array" if doc == [] else f"a JSON {type(doc).__name__}"
        out.problems.append(Problem(Reason.SCHEMA, f"payload must be an object or a non-empty array, not {what}"))
        return out
    latest = received_at + MAX_FUTURE_SKEW
    for i, obj in enumerate(objects):
        _decode_object(
            obj,
            at=f"[{i}]" if array else "",
            topic_park=topic_park,
            topic_station=topic_station,
            registry=registry,
            received_at=received_at,
            latest=latest,
            out=out,
        )
    return out


def _decode_object(
    obj: Any,
    *,
    at: str,
    topic_park: str,
    topic_station: str,
    registry: Registry,
    received_at: datetime,
    latest: datetime,
    out: Decoded,
) -> None:
    problems = out.problems
    if not isinstance(obj, dict):
        problems.append(Problem(Reason.SCHEMA, "each reading message must be a JSON object", at))
        return
    station_id = obj.get("station_id")
    if not isinstance(station_id, str) or not station_id:
        problems.append(Problem(Reason.SCHEMA, "station_id is required and must be a string", f"{at}.station_id"))
        return
    if station_id != topic_station:
        problems.append(
            Problem(
                Reason.STATION_MISMATCH,
                f"payload station_id {shown(station_id)} differs from the topic's station {shown(topic_station)}; "
                "a station may only publish for itself",
                f"{at}.station_id",
            )
        )
        return
    station = registry.stations.get(station_id)
    if station is None:
        problems.append(
            Problem(Reason.UNKNOWN_STATION, f"station {shown(station_id)} is not registered", f"{at}.station_id")
        )
        return
    if station.park_id != topic_park:
        problems.append(
            Problem(
                Reason.STATION_MISMATCH,
                f"station {shown(station_id)} belongs to park {shown(station.park_id)}, not {shown(topic_park)}",
                at or "topic",
            )
        )
        return
    raw_ts = obj.get("ts")
    if not isinstance(raw_ts, str):
        problems.append(Problem(Reason.SCHEMA, "ts is required and must be an ISO 8601 string", f"{at}.ts"))
        return
    try:
        ts = parse_ts(raw_ts, station)
    except ValueError:
        problems.append(Problem(Reason.BAD_TIMESTAMP, f"ts {shown(raw_ts)} is not an ISO 8601 timestamp", f"{at}.ts"))
        return
    if ts < EARLIEST_TS or ts > latest:
        problems.append(
            Problem(
                Reason.BAD_TIMESTAMP,
                f"ts {shown(raw_ts)} is before 2000 or more than 10 minutes ahead of the receiving clock",
                f"{at}.ts",
            )
        )
        return
    raw_sent = obj.get("sent_at")
    if raw_sent is not None:
        # Optional: when the station sent the message (HJ 212's QN carries the same), which
        # measures delivery whatever the data's own time. A wrong one is refused like ts: a
        # station that sends it must send it right.
        sent_at = _sent_at(raw_sent, station)
        if sent_at is None:
            problems.append(
                Problem(
                    Reason.BAD_TIMESTAMP,
                    f"sent_at {shown(raw_sent)} is not an ISO 8601 timestamp",
                    f"{at}.sent_at",
                )
            )
            return
        if out.sent_at is None:
            out.sent_at = sent_at
    interval = obj.get("interval", "rtd")
    iv = INTERVALS.get(interval) if isinstance(interval, str) else None
    if iv is None:
        problems.append(Problem(Reason.SCHEMA, f"interval must be one of {', '.join(INTERVALS)}", f"{at}.interval"))
        return
    readings = obj.get("readings")
    if not isinstance(readings, list) or not readings:
        problems.append(Problem(Reason.SCHEMA, "readings must be a non-empty array", f"{at}.readings"))
        return
    rows = out.rows
    sid = station.sid
    for j, reading in enumerate(readings):
        if not isinstance(reading, dict):
            problems.append(Problem(Reason.SCHEMA, "each reading must be an object", f"{at}.readings[{j}]"))
            continue
        name = reading.get("parameter")
        value = reading.get("value")
        if not isinstance(name, str) or not name:
            problems.append(
                Problem(Reason.SCHEMA, "parameter is required and must be a string", f"{at}.readings[{j}].parameter")
            )
            continue
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            problems.append(
                Problem(Reason.SCHEMA, "value is required and must be a number", f"{at}.readings[{j}].value")
            )
            continue
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a double
            number = math.inf
        if not math.isfinite(number):
            problems.append(
                Problem(Reason.NON_FINITE, f"value of {name} is not a finite number", f"{at}.readings[{j}].value")
            )
            continue
        flag = reading.get("flag", DEFAULT_FLAG)
        if not isinstance(flag, str) or flag.upper() not in FLAGS:
            problems.append(
                Problem(
                    Reason.SCHEMA,
                    f"flag must be one of the HJ 212 data flags {''.join(sorted(FLAGS))}",
                    f"{at}.readings[{j}].flag",
                )
            )
            continue
        slot = station.slot(name, registry.pids)
        if slot is None:
            problems.append(
                Problem(
                    Reason.UNKNOWN_PARAMETER,
                    f"parameter {shown(name)} is not an HJ 212 code or alias known for a {station.kind.value} station",
                    f"{at}.readings[{j}].parameter",
                )
            )
            continue
        unit = reading.get("unit")
        if unit is not None and not isinstance(unit, str):
            problems.append(Problem(Reason.SCHEMA, "unit must be a string", f"{at}.readings[{j}].unit"))
            continue
        try:
            factor = station.factor(slot, unit)
        except UnitError as exc:
            problems.append(Problem(Reason.SCHEMA, str(exc), f"{at}.readings[{j}].unit"))
            continue
        if factor != 1.0:
            # 12 significant digits drop the binary noise of the factor (50 µg/L → 0.05 mg/L,
            # not 0.05000000000000001), which would otherwise show at a limit's boundary.
            number = float(f"{number * factor:.12g}")
            if not math.isfinite(number):
                problems.append(
                    Problem(Reason.NON_FINITE, f"value of {name} overflows once converted", f"{at}.readings[{j}].value")
                )
                continue
        why = ranges.problem(slot.code, number, station.ranges)
        if why is not None:
            problems.append(
                Problem(Reason.OUT_OF_RANGE, f"value of {name}: {why}", f"{at}.readings[{j}].value", slot.code)
            )
            continue
        rows.append((sid, slot.pid, iv, ts, number, flag.upper(), received_at, None, None, None, None))
