"""The HJ 212 data segment: QN;ST;CN;PW;MN;Flag;PNUM;PNO;CP=&&...&& parsed and built (no I/O).

Parsing is lenient by design (docs/reference/hj212.md §3-4, §9): keys are found by name in any order and any
case, a comma may stand for a semicolon in the header, unknown keys and codes are kept, and
every oddity is a Finding instead of an error, so a readable packet is never lost to a typo.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

from ingest.hj212.codes import CodeInfo, code_info
from ingest.hj212.findings import Code, Finding, Severity

HEADER_ORDER: Final = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_HEADER_KEYS: Final = {k.upper(): k for k in HEADER_ORDER}

# HJ 212-2017 table 5, plus the 2005 codes (docs/reference/hj212.md §5.1).
SYSTEM_CODES: Final = frozenset(
    {"21", "22", "23", "24", "25", "26", "27", "31", "32", "33", "34", "35", "36", "37", "38", "39",
     "41", "51", "52", "91"}
)  # fmt: skip
# HJ 212-2017 table 9, the 2005-only commands, and the 2025 additions seen in implementations.
COMMAND_CODES: Final = frozenset(
    {"1000", "1011", "1012", "1013", "1061", "1062", "1063", "1064", "1072", "2011", "2012", "2021",
     "2022", "2031", "2041", "2051", "2061", "2081", "3011", "3012", "3013", "3014", "3015", "3016",
     "3017", "3018", "3019", "3020", "3021", "9011", "9012", "9013", "9014",
     "1001", "1021", "1022", "1031", "1032", "1041", "1042", "2071", "2072",
     "1002", "1014", "2013", "2052", "2062", "2111", "3022", "3024", "9015"}
)  # fmt: skip
# Commands whose CP carries a DataTime (uploads of data and of facility state/run time).
DATA_COMMANDS: Final = frozenset({"2011", "2021", "2031", "2041", "2051", "2061"})
# Data flags of HJ 212-2017 table 8, and P (power failure) of 2005-era devices.
DATA_FLAGS: Final = frozenset("NFMSDCTBP")
# Per-factor suffixes, canonical spelling by lower case (table 4 and docs/reference/hj212.md §4).
SUFFIXES: Final = {
    s.lower(): s
    for s in (
        "Rtd", "Avg", "Min", "Max", "Cou", "Flag", "EFlag", "SampleTime", "ZsRtd", "ZsAvg", "ZsMin",
        "ZsMax", "Info", "SN", "RS", "RT", "Data", "DayData", "NightData",
    )
}  # fmt: skip
NUMERIC_SUFFIXES: Final = frozenset(
    {"Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "RS", "RT", "Data", "DayData", "NightData"}
)
_QN_RE: Final = re.compile(r"^[0-9]{17}$")
_ASCII_INT: Final = re.compile(r"^[0-9]{1,9}$")
_CP_OPEN: Final = re.compile(r"CP=&&", re.IGNORECASE)
_MN_STANDARD_RE: Final = re.compile(r"^[0-9A-Fa-f]{24}$")
_TIME_RE: Final = re.compile(r"^([0-9]{14})([0-9]{3})?$")


def _int(text: str | None) -> int | None:
    """An ASCII decimal (str.isdigit() also accepts '²', which int() refuses)."""
    return int(text) if text is not None and _ASCII_INT.match(text) else None


@dataclass
class Factor:
    """Everything a packet says about one factor (pollutant, facility, instrument)."""

    code: str  # HJ 212-2017 form where known (lower case), else as received
    raw_code: str
    info: CodeInfo
    values: dict[str, str] = field(default_factory=dict)  # suffix → text as received

    def number(self, suffix: str) -> float | None:
        """A numeric field, or None when absent or not a number."""
        text = self.values.get(suffix)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
        # float() also reads 'NaN', 'inf' and '1e999': not measurements, and not JSON either.
        return value if math.isfinite(value) else None

    @property
    def flag(self) -> str | None:
        """The data flag (upper case) when the packet gives one."""
        flag = self.values.get("Flag")
        return flag.strip().upper() if flag else None


@dataclass
class Packet:
    """A parsed data segment."""

    text: str
    header: dict[str, str] = field(default_factory=dict)
    extra_header: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # CP keys without a factor code
    factors: dict[str, Factor] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def qn(self) -> str | None:
        """Request id."""
        return self.header.get("QN") or None

    @property
    def st(self) -> str | None:
        """System code."""
        return self.header.get("ST")

    @property
    def cn(self) -> str | None:
        """Command code."""
        return self.header.get("CN")

    @property
    def pw(self) -> str | None:
        """Access password."""
        return self.header.get("PW")

    @property
    def mn(self) -> str | None:
        """Device id."""
        return self.header.get("MN") or None

    @property
    def flag(self) -> int | None:
        """The Flag field as a number (None when absent or malformed)."""
        return _int(self.header.get("Flag"))

    @property
    def version(self) -> str:
        """Protocol edition from the Flag's version bits: '2005', '2017', '2025' or 'unknown'."""
        flag = self.flag
        if flag is None:
            return "2005"  # 2005 devices often send no Flag at all (docs/reference/hj212.md §8)
        return {0: "2005", 1: "2017", 2: "2025"}.get(flag >> 2, "unknown")

    @property
    def ack_requested(self) -> bool:
        """Flag bit A: the platform must answer."""
        return bool((self.flag or 0) & 1)

    @property
    def packetized(self) -> bool:
        """Flag bit D: this is one part of a split packet (PNUM/PNO present)."""
        return bool((self.flag or 0) & 2)

    @property
    def pnum(self) -> int | None:
        """Total parts of a split packet."""
        return _int(self.header.get("PNUM"))

    @property
    def pno(self) -> int | None:
        """Number of this part (1-based)."""
        return _int(self.header.get("PNO"))

    @property
    def data_time(self) -> datetime | None:
        """DataTime (no zone: China Standard Time unless the station says otherwise)."""
        return parse_time(self.fields.get("DataTime", ""))


def parse_time(text: str) -> datetime | None:
    """YYYYMMDDhhmmss, optionally with milliseconds (17 digits, seen from real devices)."""
    match = _TIME_RE.match(text.strip())
    if not match:
        return None
    t = match[1]
    try:  # slicing, not strptime: five times faster, and this runs for every packet
        ts = datetime(int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14]))
    except ValueError:
        return None
    if match[2]:
        ts = ts.replace(microsecond=int(match[2]) * 1000)
    return ts


def _note(packet: Packet, code: Code, message: str, severity: Severity = Severity.WARNING) -> None:
    packet.findings.append(Finding(code, severity, message))


def parse_segment(text: str, *, header_only: bool = False) -> Packet:
    """Parse a data segment; never raises.

    header_only skips the command parameters and the field checks: what the gateway needs to
    route and answer a packet (MN, CN, QN, PW, Flag), at a fraction of the cost.
    """
    packet = Packet(text=text)
    opened = text.find("CP=&&")
    if opened < 0:
        match = _CP_OPEN.search(text)
        opened = match.start() if match else -1
    if opened < 0:
        _note(packet, Code.MISSING_CP, "no CP=&&...&& command parameters")
        head, cp = text, None
    else:
        head, cp = text[:opened], text[opened + 5 :]
    _parse_header(packet, head)
    if header_only:
        return packet
    if cp is not None:
        if cp.endswith("&&"):
            cp = cp[:-2]
        else:
            _note(packet, Code.CP_UNTERMINATED, "CP does not end with '&&'")
        _parse_cp(packet, cp)
    _check(packet)
    return packet


def _parse_header(packet: Packet, head: str) -> None:
    if "," in head:
        _note(packet, Code.HEADER_STRAY_CHARACTERS, "a comma separates header fields", Severity.INFO)
    order = []
    for part in re.split(r"[;,]", head):
        part = part.strip()  # noqa: PLW2901 - the stripped part is the part
        if not part:
            continue
        if "=" not in part:
            _note(
                packet,
                Code.HEADER_STRAY_CHARACTERS,
                f"header text {part[:20]!r} is not a key=value field",
                Severity.INFO,
            )
            continue
        key, value = (s.strip() for s in part.split("=", 1))
        canonical = _HEADER_KEYS.get(key.upper())
        if canonical is None:
            packet.extra_header[key] = value
            _note(packet, Code.UNKNOWN_HEADER_KEY, f"unknown header key {key!r} kept", Severity.INFO)
            continue
        if key != canonical:
            _note(packet, Code.HEADER_KEY_CASE, f"header key {key!r} written for {canonical!r}", Severity.INFO)
        if canonical in packet.header:
            _note(packet, Code.DUPLICATE_KEY, f"header key {canonical} appears twice; the first is used")
            continue
        packet.header[canonical] = value
        order.append(canonical)
    expected = [k for k in HEADER_ORDER if k in packet.header]
    if order != expected:
        _note(packet, Code.HEADER_ORDER, f"header fields in the order {';'.join(order)}", Severity.INFO)


def _tokens(cp: str) -> list[list[tuple[str, str]]]:
    """CP content as items (';') of key=value pairs (','); //...// values may hold anything."""
    if not cp:
        return []
    if "//" not in cp:
        # No log text: plain splitting, several times faster than the scanner below.
        return [
            [
                (k.strip(), v) if eq else (k.strip(), "")
                for k, eq, v in (pair.partition("=") for pair in item.split(","))
            ]
            if item.strip()
            else []
            for item in cp.split(";")
        ]
    items: list[list[tuple[str, str]]] = []
    item: list[tuple[str, str]] = []
    i, n = 0, len(cp)
    while i < n:
        eq = cp.find("=", i)
        stop = min((p for p in (cp.find(";", i), cp.find(",", i)) if p >= 0), default=n)
        if eq < 0 or eq > stop:  # a piece with no '=' (empty item, stray text)
            piece = cp[i:stop].strip()
            if piece:
                item.append((piece, ""))
            end = stop
        else:
            key = cp[i:eq].strip()
            j = eq + 1
            if cp.startswith("//", j):
                close = cp.find("//", j + 2)
                while close >= 0 and close + 2 < n and cp[close + 2] not in ";,":
                    close = cp.find("//", close + 1)
                end = n if close < 0 else close + 2
            else:
                end = min((p for p in (cp.find(";", j), cp.find(",", j)) if p >= 0), default=n)
            item.append((key, cp[j:end]))
        if end >= n or cp[end] == ";":
            items.append(item)
            item = []
        i = end + 1
    if item:
        items.append(item)
    return items


def _parse_cp(packet: Packet, cp: str) -> None:
    for item in _tokens(cp):
        if not item:
            _note(packet, Code.CP_EMPTY_ITEM, "empty item in CP", Severity.INFO)
            continue
        for key, value in item:
            code, sep, suffix = key.partition("-")
            if not sep:
                if key in packet.fields:
                    _note(packet, Code.DUPLICATE_KEY, f"CP key {key!r} appears twice; the first is used")
                    continue
                packet.fields[key] = value
                continue
            _add_factor_value(packet, code, suffix, value)


def _add_factor_value(packet: Packet, raw_code: str, raw_suffix: str, value: str) -> None:
    info = code_info(raw_code)
    factor = packet.factors.get(info.code)
    if factor is None:
        factor = packet.factors[info.code] = Factor(code=info.code, raw_code=raw_code, info=info)
    suffix = SUFFIXES.get(raw_suffix.lower(), raw_suffix)
    if info.converted and suffix in ("Rtd", "Avg", "Min", "Max"):
        suffix = "Zs" + suffix  # a 2005 'z' code (02z-Rtd) is the converted value of its base code
    if suffix in factor.values:
        if factor.raw_code != raw_code:
            # Two spellings of one factor, e.g. the 2005 code '011' and its 2017 twin 'w01018'.
            _note(
                packet,
                Code.CODE_COLLISION,
                f"{raw_code}-{raw_suffix} and {factor.raw_code}-{suffix} are both {info.code}-{suffix}; "
                f"the first, {factor.raw_code}, is used",
            )
        else:
            _note(packet, Code.DUPLICATE_KEY, f"{raw_code}-{raw_suffix} appears twice; the first is used")
        return
    factor.values[suffix] = value


def _check(packet: Packet) -> None:
    h = packet.header
    qn = h.get("QN")
    if qn is None or not qn:
        _note(packet, Code.MISSING_QN, "QN is missing" if qn is None else "QN is empty")
    elif not _QN_RE.match(qn):
        _note(packet, Code.QN_MALFORMED, f"QN {qn!r} is not 17 digits (YYYYMMDDhhmmsszzz)")
    st = h.get("ST")
    if st is None:
        _note(packet, Code.MISSING_ST, "ST is missing")
    elif st not in SYSTEM_CODES:
        _note(packet, Code.UNUSUAL_ST, f"ST {st!r} is not in the system code table", Severity.INFO)
    cn = h.get("CN")
    if cn is None:
        _note(packet, Code.MISSING_CN, "CN is missing")
    elif cn not in COMMAND_CODES:
        _note(packet, Code.UNKNOWN_CN, f"CN {cn!r} is not a known command code")
    if "PW" not in h:
        _note(packet, Code.MISSING_PW, "PW is missing")
    mn = h.get("MN")
    if not mn:
        _note(packet, Code.MISSING_MN, "MN is missing")
    elif not _MN_STANDARD_RE.match(mn):
        _note(packet, Code.MN_NONSTANDARD, f"MN {mn!r} is not 24 hex characters (EPC-96)", Severity.INFO)
    flag = h.get("Flag")
    if flag is None:
        _note(packet, Code.MISSING_FLAG, "Flag is missing (read as HJ/T 212-2005)", Severity.INFO)
    elif packet.flag is None or packet.flag > 255:
        _note(packet, Code.FLAG_MALFORMED, f"Flag {flag!r} is not a number from 0 to 255")
    elif packet.version == "unknown":
        _note(packet, Code.UNKNOWN_VERSION, f"Flag {flag} carries unknown version bits {(packet.flag or 0) >> 2}")
    for key in ("PNUM", "PNO"):
        number = h.get(key, "")
        if len(number) > 4 and _int(number) is not None:
            _note(
                packet,
                Code.PACKET_NUMBER_LONG,
                f"{key} {number!r} has more than the standard's 4 digits; read as {int(number)}",
                Severity.INFO,
            )
    if ("PNUM" in h or "PNO" in h) and not packet.packetized:
        _note(packet, Code.PACKET_NUMBERS_WITHOUT_FLAG, "PNUM/PNO present but Flag's D bit is not set", Severity.INFO)
    if cn in DATA_COMMANDS:
        data_time = packet.fields.get("DataTime")
        if data_time is None:
            _note(packet, Code.MISSING_DATATIME, "a data upload without DataTime")
        elif packet.data_time is None:
            _note(packet, Code.DATATIME_MALFORMED, f"DataTime {data_time!r} is not YYYYMMDDhhmmss")
    for factor in packet.factors.values():
        info = factor.info
        if info.note is not None:
            _note(
                packet,
                info.note,
                info.message,
                Severity.INFO if info.note is not Code.UNKNOWN_CODE else Severity.WARNING,
            )
        for suffix, text in factor.values.items():
            if suffix in NUMERIC_SUFFIXES and factor.number(suffix) is None:
                _note(packet, Code.BAD_VALUE, f"{factor.raw_code}-{suffix}={text[:20]!r} is not a finite number")
        flag = factor.flag
        if flag is not None and flag not in DATA_FLAGS:
            _note(packet, Code.UNKNOWN_DATA_FLAG, f"{factor.raw_code}-Flag={flag!r} is not a data flag of table 8")


# -- building ----------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """A decimal without exponent that reads back to the same float."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def build_segment(
    *,
    cn: str,
    mn: str,
    st: str = "32",
    pw: str = "123456",
    qn: str | None = None,
    flag: int | None = 4,
    pnum: int | None = None,
    pno: int | None = None,
    cp: list[list[tuple[str, str]]] | None = None,
) -> str:
    """A data segment in the standard's field order; `cp` is items of (key, value) pairs."""
    parts = []
    if qn is not None:
        parts.append(f"QN={qn}")
    parts += [f"ST={st}", f"CN={cn}", f"PW={pw}", f"MN={mn}"]
    if flag is not None:
        parts.append(f"Flag={flag}")
    if pnum is not None and pno is not None:
        parts += [f"PNUM={pnum}", f"PNO={pno}"]
    body = ";".join(",".join(f"{k}={v}" for k, v in item) for item in (cp or []))
    return ";".join(parts) + f";CP=&&{body}&&"


# The access password as it appears in a packet's header: a `PW=` key (any case, not the tail of a
# longer key) up to the next `;`, `&` or line end.
_PASSWORD = re.compile(rb"(?i)(?<![A-Za-z0-9_-])(PW=)[^;&\r\n]*")


def mask_password(raw: bytes) -> bytes:
    """The packet with its access password replaced by asterisks, fit to show (the CRC no longer matches)."""
    return _PASSWORD.sub(rb"\1******", raw)
