"""HJ 212 packets into the pipeline: readings, station events and the packet log (pure; no I/O).

Which rows a packet gives (docs/reference/hj212.md §5.2, §4):
- CN 2011 real-time data → interval rtd, value = Rtd (converted value ZsRtd);
- CN 2051 / 2061 / 2031 minute / hour / day data → interval min / hour / day, value = Avg, with
  Min, Max and Cou (and ZsAvg); DataTime is the start of the period;
- CN 2021 / 2041 facility state (SBxxx-RS) and running time (SBxxx-RT), and CN 2081 logger
  restart → station events.
Every accepted packet, whatever its command, is kept raw in the packet log with its findings.
"""

from __future__ import annotations

import json
from datetime import datetime

from ingest.batch import Message
from ingest.hj212.codec import DecodedPacket, decode
from ingest.hj212.findings import Code, Finding, Severity
from ingest.hj212.packet import DATA_FLAGS, Factor, Packet, parse_time
from ingest.hj212.parts import FirstParts, part_key
from ingest.hj212.sm4 import is_encrypted, open_packet
from ingest.registry import ParamSlot, Registry, StationInfo
from ingest.rows import Row
from ingest.validate import Problem, shown
from schemas import ranges
from schemas.parameters import catalog
from schemas.readings import EARLIEST_TS, MAX_FUTURE_SKEW, Reason
from schemas.units import UnitError

INTERVAL_BY_CN = {"2011": 0, "2051": 1, "2061": 2, "2031": 3}
INTERVAL_BY_NAME = {"rtd": 0, "min": 1, "hour": 2, "day": 3}
CN_NAMES = {"2011": "real-time data", "2021": "facility state", "2041": "facility running time"}
# Suffixes only a statistics record (minute, hour, day) carries.
CONTENT_STATISTICS = frozenset({"Avg", "Min", "Max", "Cou", "ZsAvg"})
# Kinds of code whose values become readings: pollutants, process data, noise levels (B.3) and
# codes in no table (vendor codes, kept under their own name). Facility codes become events;
# field-site information (i-codes) stays in the packet log, named by a value_not_stored finding.
STORED_KINDS = frozenset({"pollutant", "process", "noise", "unknown"})
# The value of a minute/hour/day record: its average; a real-time value where a logger sends
# one instead; a noise level's `Data` (B.3).
VALUE_SUFFIXES = ("Avg", "Rtd", "Data")
RTD_SUFFIXES = frozenset({"Rtd", "ZsRtd", "Flag"})
STATISTICS_SUFFIXES = frozenset({"Min", "Max", "Cou", "ZsAvg", "Flag"})
EVENT_SUFFIXES = frozenset({"RS", "RT"})
# Values named one by one in a value_not_stored finding; beyond, counted.
MAX_NAMED = 20
EVENT_CNS = frozenset({"2021", "2041", "2081"})
# Stored for a data flag outside table 8 (the packet's findings name it): never read as valid.
UNKNOWN_FLAG = "?"
# One vendor writes -99 for "no value" (docs/reference/hj212.md §4).
NO_VALUE = -99.0
# A reading whose code is not registered yet waits for an id: the service registers the code
# (outside the catalogue) and fills it in. PENDING marks the pid slot meanwhile.
PENDING = -1


def convert(
    payload: bytes,
    *,
    topic: str,
    topic_mn: str,
    registry: Registry,
    received_at: datetime,
    first_parts: FirstParts | None = None,
) -> Message:
    """Decode every packet of a payload published on {prefix}/hj212/{topic_mn}.

    `first_parts` holds the data times of split packets' first parts, for later parts that
    carry none (ingest/hj212/parts.py); without it such a part is refused.
    """
    station = registry.by_mn.get(topic_mn)
    out = Message(station_id=station.id if station else topic_mn)
    packets = decode(payload)
    if not packets:
        out.problems.append(Problem(Reason.INVALID_FRAME, "no_header: the payload is empty", Code.NO_HEADER.value))
    parts = FirstParts() if first_parts is None else first_parts
    for decoded in packets:
        _one(decoded, out, topic=topic, topic_mn=topic_mn, registry=registry, received_at=received_at, parts=parts)
    return out


def _one(
    decoded: DecodedPacket,
    out: Message,
    *,
    topic: str,
    topic_mn: str,
    registry: Registry,
    received_at: datetime,
    parts: FirstParts,
) -> None:
    packet = decoded.packet
    mn = packet.mn
    station = registry.by_mn.get(mn) if mn else None
    if is_encrypted(decoded.frame.data):
        decoded = open_packet(decoded, station.sm4_key if station else None)
        packet = decoded.packet
    accept = (station.crc,) if station else ()
    findings = decoded.findings(accept=accept)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        out.problems += [Problem(Reason.INVALID_FRAME, f"{f.code.value}: {f.message}", f.code.value) for f in errors]
        return
    if not mn:
        out.problems.append(Problem(Reason.UNKNOWN_STATION, "the packet carries no MN", "MN"))
        return
    if mn != topic_mn:
        out.problems.append(
            Problem(Reason.STATION_MISMATCH, f"packet MN {shown(mn)} differs from the topic's {shown(topic_mn)}", "MN")
        )
        return
    if station is None:
        out.problems.append(Problem(Reason.UNKNOWN_STATION, f"MN {shown(mn)} is not registered to any station", "MN"))
        return
    if station.pw is not None and packet.pw != station.pw:
        out.problems.append(Problem(Reason.BAD_PASSWORD, f"wrong PW for station {shown(station.id)}", "PW"))
        return
    cn = packet.cn or ""
    # QN is the request's own time (docs/reference/hj212.md §3), a send time in the station's zone: it times
    # delivery. A malformed QN is a finding already, never a reason to refuse the data.
    sent = parse_time(packet.qn) if packet.qn else None
    if sent is not None:
        out.sent_at = sent.replace(tzinfo=station.tz)
    ts = None
    link = part_key(packet)
    if cn in INTERVAL_BY_CN or cn in EVENT_CNS:
        # A restart upload may carry only RestartTime (the moment it reports).
        key = "RestartTime" if cn == "2081" and "RestartTime" in packet.fields else "DataTime"
        if key == "DataTime" and key not in packet.fields and link is not None and (packet.pno or 0) > 1:
            ts = parts.data_time(link)
            if ts is None:
                out.problems.append(_orphan_part(packet))
                return
            findings = [f for f in findings if f.code is not Code.MISSING_DATATIME]
            findings.append(_inherited(packet, ts))
        else:
            ts = _data_time(packet, key, station, received_at, out)
            if ts is None:
                return
            if link is not None:
                parts.remember(link, ts)
    # What conversion notices is recorded with the packet: every value of an accepted packet is
    # a stored reading, an event, or named by one of these findings (docs/data-loggers.md).
    notes: list[Finding] = []
    if ts is not None and cn != "2081":
        iv = _interval(packet, cn, notes)
        key_ts = ts if iv is None else _aligned(ts, iv, notes)
        for factor in packet.factors.values():
            _events_of(factor, station, ts, received_at, out)
            if iv is not None and factor.info.kind in STORED_KINDS:
                notes += _row_of(factor, iv, station, key_ts, received_at=received_at, registry=registry, out=out)
        notes += _not_stored(packet, iv)
    elif ts is not None:
        out.events.append((station.sid, "logger_restart", "", ts, None, received_at))
    out.packets.append(
        (
            received_at,
            topic,
            station.sid,
            mn,
            packet.cn,
            packet.qn,
            ts,
            decoded.frame.raw,
            json.dumps([f.as_json() for f in [*findings, *notes]], ensure_ascii=False),
        )
    )  # replies, time uploads and the like: kept in the packet log only


def _interval(packet: Packet, cn: str, notes: list[Finding]) -> int | None:
    """The interval a packet's values are stored as: its command's, unless its content says otherwise.

    Loggers mislabel uploads: minute statistics (Avg, Min, Max, Cou) sent as real-time data
    (2011) or as facility state or run time (2021, 2041). Such values are stored as what their
    content is, with a finding (docs/data-loggers.md#what-a-packet-becomes).
    """
    measured = [f for f in packet.factors.values() if f.info.kind in STORED_KINDS]
    statistics = any(set(f.values) & CONTENT_STATISTICS for f in measured)
    realtime = any("Rtd" in f.values for f in measured)
    iv = INTERVAL_BY_CN.get(cn)
    if iv == 0 and statistics and not realtime:
        iv = INTERVAL_BY_NAME["min"]
    elif iv is None and cn in EVENT_CNS and (statistics or realtime):
        iv = INTERVAL_BY_NAME["min"] if statistics else 0
    else:
        return iv
    what = "minute statistics (Avg/Min/Max/Cou)" if iv else "real-time values (Rtd)"
    name = CN_NAMES.get(cn, cn)
    notes.append(Finding(Code.CONTENT_MISMATCH, Severity.WARNING, f"CN {cn} ({name}) carries {what}: stored as such"))
    return iv


def _aligned(ts: datetime, iv: int, notes: list[Finding]) -> datetime:
    """The start of the minute, hour or day a statistics record's DataTime falls in (local time).

    DataTime is the start of the period (docs/reference/hj212.md §5.2); a logger that stamps hour
    data 10:05 or day data 08:00 means the period that holds it. The packet log keeps the
    original, and a finding names both.
    """
    if iv == 0:
        return ts
    start = ts.replace(second=0, microsecond=0)
    if iv >= INTERVAL_BY_NAME["hour"]:
        start = start.replace(minute=0)
    if iv == INTERVAL_BY_NAME["day"]:
        start = start.replace(hour=0)
    if start != ts:
        period, article = {1: ("minute", "a"), 2: ("hour", "an"), 3: ("day", "a")}[iv]
        notes.append(
            Finding(
                Code.DATATIME_UNALIGNED,
                Severity.WARNING,
                f"DataTime {ts.strftime('%Y%m%d%H%M%S')} is not the start of {article} {period}: "
                f"stored as the {period} from {start.strftime('%Y%m%d%H%M%S')}",
            )
        )
    return start


def _orphan_part(packet: Packet) -> Problem:
    return Problem(
        Reason.BAD_TIMESTAMP,
        f"part {packet.pno} of {packet.pnum} of a split packet carries no DataTime, and the part that does "
        f"(QN {shown(packet.qn)}) has not been received; replay this once it has",
        "DataTime",
    )


def _inherited(packet: Packet, ts: datetime) -> Finding:
    return Finding(
        Code.DATATIME_FROM_FIRST_PART,
        Severity.INFO,
        f"part {packet.pno} of {packet.pnum} carries no DataTime: read at its first part's, "
        f"{ts.strftime('%Y%m%d%H%M%S')} (same QN)",
    )


def _data_time(packet: Packet, key: str, station: StationInfo, received_at: datetime, out: Message) -> datetime | None:
    text = packet.fields.get(key, "")
    naive = parse_time(text)
    if naive is None:
        out.problems.append(Problem(Reason.BAD_TIMESTAMP, f"{key} is missing or not YYYYMMDDhhmmss", key))
        return None
    # DataTime carries no zone: the station's (China Standard Time by default; docs/reference/hj212.md §4).
    ts = naive.replace(tzinfo=station.tz)
    if ts < EARLIEST_TS or ts > received_at + MAX_FUTURE_SKEW:
        out.problems.append(
            Problem(Reason.BAD_TIMESTAMP, f"{key} {text} is before 2000 or more than 10 minutes ahead", key)
        )
        return None
    return ts


def _events_of(factor: Factor, station: StationInfo, ts: datetime, received_at: datetime, out: Message) -> None:
    if factor.info.kind != "facility":
        return
    for suffix, kind in (("RS", "facility_state"), ("RT", "facility_runtime")):
        value = factor.number(suffix)
        if value is not None:
            out.events.append((station.sid, kind, factor.code, ts, value, received_at))


def _row_of(
    factor: Factor,
    iv: int,
    station: StationInfo,
    ts: datetime,
    *,
    received_at: datetime,
    registry: Registry,
    out: Message,
) -> list[Finding]:
    """The reading of one factor (or a refusal); findings about it for the packet log."""
    notes: list[Finding] = []
    if station.declared and factor.code not in station.declared:
        refused = station.strict_codes
        what = "refused (strict_codes)" if refused else "stored"
        notes.append(
            Finding(
                Code.UNDECLARED_CODE,
                Severity.WARNING,
                f"{shown(factor.code)} is not among the station's parameters; {what}",
            )
        )
        if refused:
            return notes
    if iv == 0:
        value, zs = factor.number("Rtd"), factor.number("ZsRtd")
        vmin = vmax = cou = None
    else:
        value = _first(factor, VALUE_SUFFIXES)
        zs, vmin, vmax, cou = factor.number("ZsAvg"), factor.number("Min"), factor.number("Max"), factor.number("Cou")
    if value == NO_VALUE:
        value = None
    flag = factor.flag
    if value is None and zs is None and vmin is None and vmax is None and cou is None and flag is None:
        return notes  # nothing measured: an EFlag or SampleTime alone (named by _not_stored)
    flag = "N" if flag is None else flag if flag in DATA_FLAGS else UNKNOWN_FLAG
    pid = registry.pids.get(factor.code)
    scale = _scale(station, factor.code, pid)
    if scale != 1.0:
        value, zs, vmin, vmax = (None if v is None else float(f"{v * scale:.12g}") for v in (value, zs, vmin, vmax))
    for suffix, number in (("value", value), ("ZsAvg", zs), ("Min", vmin), ("Max", vmax), ("Cou", cou)):
        # a cumulative amount (Cou) has its own unit and scale: only its magnitude is checked
        why = None if number is None else ranges.problem(factor.code if suffix != "Cou" else "", number, station.ranges)
        if why is not None:
            out.problems.append(
                Problem(Reason.OUT_OF_RANGE, f"{factor.code} {suffix}: {why}", factor.code, factor.code)
            )
            return notes
    row: Row = (station.sid, PENDING if pid is None else pid, iv, ts, value, flag, received_at, vmin, vmax, cou, zs)
    if pid is None:
        out.unresolved.append((factor.code, row))
    else:
        out.rows.append(row)
    return notes


def _first(factor: Factor, suffixes: tuple[str, ...]) -> float | None:
    for suffix in suffixes:
        value = factor.number(suffix)
        if value is not None:
            return value
    return None


def _used(factor: Factor, iv: int | None) -> frozenset[str]:
    """The suffixes of a factor that became a reading or an event."""
    if factor.info.kind == "facility":
        return EVENT_SUFFIXES
    if iv is None or factor.info.kind not in STORED_KINDS:
        return frozenset()
    if iv == 0:
        return RTD_SUFFIXES
    value = next((s for s in VALUE_SUFFIXES if factor.number(s) is not None), None)
    return STATISTICS_SUFFIXES | ({value} if value else set())


def _not_stored(packet: Packet, iv: int | None) -> list[Finding]:
    """One finding naming every value of the packet that is kept in the packet log only."""
    left = [
        f"{factor.raw_code}-{suffix}"
        for factor in packet.factors.values()
        for suffix in factor.values
        if suffix not in _used(factor, iv) and suffix != "Flag"
    ]
    if not left:
        return []
    names = ", ".join(shown(n) for n in left[:MAX_NAMED])
    more = f" and {len(left) - MAX_NAMED} more" if len(left) > MAX_NAMED else ""
    message = f"kept in the packet log only, not as readings: {names}{more}"
    return [Finding(Code.VALUE_NOT_STORED, Severity.INFO, message)]


def _scale(station: StationInfo, code: str, pid: int | None) -> float:
    """Factor from the unit the station reports this code in (registry `units`) to the stored one."""
    if code not in station.report_units or pid is None:
        return 1.0
    param = catalog().by_code.get(code)
    slot = ParamSlot(pid=pid, code=code, unit=param.unit_for(station.kind) if param else "")
    try:
        return station.factor(slot, None)
    except UnitError:
        return 1.0  # registry load refuses units it cannot convert; a vendor code keeps its own
