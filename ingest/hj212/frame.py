"""HJ 212 framing: `##` + length + data segment + CRC + CRLF, found in a byte stream (no I/O).

The same framer serves a TCP stream (feed() as bytes arrive, flush() at end or idle) and a
single MQTT payload or CLI line (frames()). Framing never raises: everything it notices is a
Finding, and whether a frame is acceptable depends on the mode (strict or lenient) and on the
CRC routines accepted for the device (see verdict()).

How a frame's end is found (docs/reference/hj212.md §1, §9): first where the length field says; when that
does not check out (a wrong or character-counted length, a non-padded field), at the first
`&&` closing the CP that is followed by three or four hex digits and a terminator, whose CRC
verifies. The next `##` is never used as a boundary: `-Info` logs may hold hex dumps of other
packets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from ingest.hj212.crc import CrcPrefixes, CrcVariant, hj212_crc, modbus_crc
from ingest.hj212.findings import Code, Finding, Severity
from ingest.hj212.positions import Positions

HEADER = b"##"
# The length field has four digits, so a data segment is at most 9,999 bytes (real devices
# exceed the standard's 1,024; docs/reference/hj212.md §1).
MAX_DATA = 9999
STANDARD_MAX_DATA = 1024
MAX_FRAME = len(HEADER) + 4 + MAX_DATA + 4 + 2
# Garbage bytes kept to report when no frame follows them (the count is always exact).
GARBAGE_KEPT = 4096
# Boundaries ('&&' + CRC) a header may try past its first FREE_BOUNDARIES, per byte received and
# to start with. An honest frame has one boundary; a hostile stream (thousands of headers in a
# window, each with hundreds of boundaries ahead) would cost headers x boundaries. Past the
# budget a header tries only its first few, so a good frame after any junk is still found.
FREE_BOUNDARIES = 2
BYTES_PER_BOUNDARY = 4
BOUNDARY_BUDGET_START = 4096
# How many bytes a length field may overstate a frame whose CP lacks its closing '&&' (the two
# missing bytes, and a few a forwarder miscounted) for the frame still to be found by its CRC.
MAX_OVERSTATED = 8
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_CP_OPEN = re.compile(rb"CP=&&", re.IGNORECASE)
# A '&&' that may close the CP: three or four hex digits (a CRC), then a line end, the next
# header or the end of the bytes so far (found again, and checked, as more arrive).
_BOUNDARY = re.compile(rb"&&(?=[0-9A-Fa-f]{3,4}(?:[\r\n]|##|#?\Z))")
_BOUNDARY_SPAN = len(b"&&") + 4 + 2

# Findings that refuse a frame in strict mode but are tolerated (as warnings) in lenient mode.
_LENIENT_OK = frozenset(
    {
        Code.LENGTH_NOT_PADDED,
        Code.LENGTH_MISMATCH,
        Code.LENGTH_INVALID,
        Code.CRC_SHORT,
        Code.NO_TERMINATOR,
        Code.LF_TERMINATOR,
        Code.FRAME_END_BY_CRC,
    }
)
_VARIANT_CODE = {
    CrcVariant.MODBUS: Code.CRC_VARIANT_MODBUS,
    CrcVariant.MODBUS_SWAPPED: Code.CRC_VARIANT_MODBUS_SWAPPED,
}
# Findings that refuse a frame in every mode.
_ALWAYS_ERROR = frozenset(
    {Code.NO_HEADER, Code.TRUNCATED, Code.CRC_MISMATCH, Code.CRC_MALFORMED, Code.ENCRYPTED_UNREADABLE}
)


@dataclass
class Frame:
    """One frame cut from the input, with what framing noticed."""

    raw: bytes  # as received, from '##' through the terminator
    data: bytes  # the data segment
    length_field: str
    crc_field: str
    terminator: bytes
    # CRC routines whose value matches crc_field (empty: none does)
    crc_matches: frozenset[CrcVariant] = frozenset()
    notes: list[tuple[Code, str]] = field(default_factory=list)

    def findings(
        self, *, strict: bool, accept: Iterable[CrcVariant] = (CrcVariant.HJ212,), detect: bool = True
    ) -> list[Finding]:
        """Framing findings with the severity this mode and these CRC routines give them.

        `detect` names a MODBUS variant a refused CRC matches (crc_variant_*), so an operator
        knows what to configure; without it a refused CRC is plainly crc_mismatch.
        """
        accepted = set(accept) | {CrcVariant.HJ212}
        out = []
        for code, message in self.notes:
            if code in _ALWAYS_ERROR:
                severity = Severity.ERROR
            elif code in _LENIENT_OK:
                severity = Severity.ERROR if strict else Severity.WARNING
            else:
                severity = Severity.INFO
            out.append(Finding(code, severity, message))
        if not self.crc_field or any(code is Code.CRC_MALFORMED for code, _ in self.notes):
            return out
        matched = self.crc_matches & accepted
        if not matched:
            variants = self.crc_matches if detect else frozenset()
            if not variants:
                out.append(Finding(Code.CRC_MISMATCH, Severity.ERROR, self._crc_message()))
            for v in sorted(variants):
                message = f"the CRC is {v.value}; accepted only for a device configured for it (crc: {v.value})"
                out.append(Finding(_VARIANT_CODE[v], Severity.ERROR, message))
        elif CrcVariant.HJ212 not in matched:
            v = min(matched)
            out.append(Finding(_VARIANT_CODE[v], Severity.INFO, f"the CRC is {v.value}, as configured for this device"))
        return out

    def valid(self, *, strict: bool, accept: Iterable[CrcVariant] = (CrcVariant.HJ212,)) -> bool:
        """True when the frame is accepted for ingestion in this mode."""
        return not any(f.severity is Severity.ERROR for f in self.findings(strict=strict, accept=accept))

    def _crc_message(self) -> str:
        return f"CRC {self.crc_field} does not match the data (HJ 212 routine gives {hj212_crc(self.data):04X})"


def crc_matches(data: bytes, text: str) -> frozenset[CrcVariant]:
    """The routines whose CRC of `data` is the hex `text`."""
    try:
        received = int(text, 16)
    except ValueError:
        return frozenset()
    matches = set()
    if hj212_crc(data) == received:
        matches.add(CrcVariant.HJ212)
    else:
        # Only computed when the standard routine fails: detection of the MODBUS devices.
        value = modbus_crc(data)
        if value == received:
            matches.add(CrcVariant.MODBUS)
        if ((value & 0xFF) << 8 | value >> 8) == received:
            matches.add(CrcVariant.MODBUS_SWAPPED)
    return frozenset(matches)


class _Mode(Enum):
    """How sure the framer must be that a frame has ended."""

    STREAM = 1  # more bytes may come: a frame ends only at a terminator or the next header
    SETTLE = 2  # the line went quiet: a checked frame at the end of the buffer has ended
    FINAL = 3  # no more bytes will come: cut what can be cut, report the rest


@dataclass
class _Candidate:
    data_end: int  # index in buf where the data segment ends
    crc_end: int  # index after the CRC digits
    crc_field: str
    matches: frozenset[CrcVariant]
    malformed: bool = False  # the CRC field is not hex
    unclosed: bool = False  # found by _by_line_end: short of the length field, no closing '&&'


class Framer:
    """Cuts frames out of a byte stream: feed() bytes as they arrive, flush() at the end.

    A frame is cut once its end is certain: at its terminator, or where the next frame starts.
    A device that sends no terminator is served by settle(), called when the line has been
    quiet for a moment, which also cuts a checked frame at the very end of the buffer.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipped = 0  # garbage bytes dropped since the last frame
        self._garbage = bytearray()  # the first of them, for a report if no frame follows
        self._budget = BOUNDARY_BUDGET_START
        self._earned = 0  # bytes fed not yet turned into budget
        self._crcs = CrcPrefixes()  # CRCs of spans of _buf
        self.checks = 0  # CRC checks made: the framer's work, linear in the bytes fed
        self._offset = 0  # bytes removed from the front of _buf since the start
        # Headers after the current one, up to this absolute offset, were found to start no
        # verifying frame (in _scanned_mode, since the last feed): not tried again. The answer
        # looks only forward and at bytes already here, so it holds until more bytes arrive.
        self._scanned_to = 0
        self._scanned_mode: _Mode | None = None
        self._cp_opens = Positions(_CP_OPEN, len(b"CP=&&"))
        self._boundaries = Positions(_BOUNDARY, _BOUNDARY_SPAN)

    def _charge(self) -> bool:
        """Spend one boundary try; False once the budget is spent."""
        if self._budget <= 0:
            return False
        self._budget -= 1
        return True

    def _matches(self, start: int, end: int, text: str) -> frozenset[CrcVariant]:
        """The routines whose CRC of buf[start:end] is `text`."""
        try:
            received = int(text, 16)
        except ValueError:
            return frozenset()
        self.checks += 1
        if end <= start:
            return crc_matches(b"", text)
        if self._crcs.hj212(start, end) == received:
            return frozenset({CrcVariant.HJ212})
        # Only computed when the standard routine fails: detection of the MODBUS devices.
        value = self._crcs.modbus(start, end)
        matches = set()
        if value == received:
            matches.add(CrcVariant.MODBUS)
        if ((value & 0xFF) << 8 | value >> 8) == received:
            matches.add(CrcVariant.MODBUS_SWAPPED)
        return frozenset(matches)

    def _remove(self, n: int) -> bytes:
        """Take n bytes off the front of the buffer."""
        taken = bytes(self._buf[:n])
        del self._buf[:n]
        self._crcs.drop(n)
        self._offset += n
        return taken

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every frame now complete."""
        self._buf += data
        self._crcs.extend(data)
        self._earned += len(data)
        self._budget += self._earned // BYTES_PER_BOUNDARY
        self._earned %= BYTES_PER_BOUNDARY
        self._scanned_to = 0  # more bytes may complete a frame a later header starts
        return self._extract(_Mode.STREAM)

    def settle(self) -> list[Frame]:
        """The line is quiet: also cut a checked frame that ends the buffer without terminator."""
        return self._extract(_Mode.SETTLE)

    def flush(self) -> list[Frame]:
        """End of input: return what can still be cut, including an unterminated frame.

        Leftover bytes come back as an invalid frame, so nothing is silently dropped.
        """
        frames = self._extract(_Mode.FINAL)
        if self._skipped and not self._buf.strip(b"\r\n \t\x00"):
            # Bytes with no frame header anywhere: still an answer, never silence.
            self._buf[:0] = self._garbage
        if self._buf.strip(b"\r\n \t\x00"):
            rest = bytes(self._buf)
            code = Code.TRUNCATED if rest.startswith(HEADER) else Code.NO_HEADER
            message = (
                f"{len(rest)} bytes end before a complete frame"
                if code is Code.TRUNCATED
                else f"{len(rest)} bytes contain no '##' frame header"
            )
            frames.append(
                Frame(raw=rest, data=b"", length_field="", crc_field="", terminator=b"", notes=[(code, message)])
            )
        self._remove(len(self._buf))
        self._skipped = 0
        self._garbage.clear()
        self._scanned_to = 0
        return frames

    def frames(self, data: bytes) -> list[Frame]:
        """Every frame in a complete input (an MQTT payload, a line of the CLI)."""
        return self.feed(data) + self.flush()

    # -- internals -------------------------------------------------------------------------

    def _extract(self, mode: _Mode) -> list[Frame]:
        out: list[Frame] = []
        while True:
            frame = self._next(mode)
            if frame is None:
                return out
            out.append(frame)

    def _skip_to_header(self, mode: _Mode) -> bool:
        buf = self._buf
        start = buf.find(HEADER)
        if start < 0:
            # Keep a trailing '#' that may begin the next header.
            keep = 1 if (buf.endswith(b"#") and mode is not _Mode.FINAL) else 0
            self._drop(len(buf) - keep)
            return False
        # In a run of '#', the header is the last two: '###0101...' is a stray '#' and a frame.
        while buf.startswith(b"#", start + 2):
            start += 1
        self._drop(start)
        return True

    def _drop(self, n: int) -> None:
        if n <= 0:
            return
        dropped = self._remove(n)
        # Line ends and padding between frames are not garbage (a terminator split from its
        # frame across reads, a blank line in a file).
        garbage = dropped.strip(b"\r\n \t\x00")
        self._skipped += len(garbage)
        if garbage and len(self._garbage) < GARBAGE_KEPT:
            self._garbage += garbage[: GARBAGE_KEPT - len(self._garbage)]

    def _ended(self, pos: int, mode: _Mode) -> bool | None:
        """Whether a frame whose CRC ends at `pos` has ended: True, False, or None (not yet known)."""
        buf = self._buf
        if pos >= len(buf) or (pos == len(buf) - 1 and buf[pos] == 0x0D):
            return None if mode is _Mode.STREAM else True  # a CRLF may still be on its way
        return buf[pos] in b"\r\n" or buf.startswith(HEADER, pos)

    def _candidate_at(self, pos: int, mode: _Mode) -> tuple[_Candidate | None, str, int | None, int, bool]:
        """The best frame end for a header at `pos`.

        Returns (candidate, length field, declared length, data start, whether more bytes could
        still change the answer).
        """
        buf = self._buf
        # Length field: four digits by the standard; real devices send fewer (not padded).
        n_digits = 0
        while n_digits < 4 and pos + 2 + n_digits < len(buf) and buf[pos + 2 + n_digits] in _DIGITS:
            n_digits += 1
        start = pos + 2 + n_digits
        length_field = buf[pos + 2 : start].decode()
        declared = int(length_field) if length_field else None
        if start >= len(buf):
            return None, length_field, declared, start, True
        by_length, length_pending = self._by_length(start, declared, mode)
        if by_length is not None and by_length.matches:
            return by_length, length_field, declared, start, False
        by_structure, structure_pending = self._by_structure(start, mode)
        if by_structure is not None and by_structure.matches:
            return by_structure, length_field, declared, start, False
        by_line_end = self._by_line_end(start, declared)
        if by_line_end is not None:
            return by_line_end, length_field, declared, start, False
        need_more = length_pending or structure_pending or (by_structure is None and by_length is None)
        return by_structure or by_length, length_field, declared, start, need_more

    def _next(self, mode: _Mode) -> Frame | None:
        if not self._skip_to_header(mode):
            return None
        buf = self._buf
        cand, length_field, declared, start, need_more = self._candidate_at(0, mode)
        if cand is not None and cand.matches:
            return self._cut(cand, start, length_field, declared)
        # Not complete yet: wait for the rest of this frame before judging it. (A packet quoted
        # in an -Info log is not a frame of its own while its host frame is still arriving.)
        if need_more and mode is not _Mode.FINAL and len(buf) < MAX_FRAME:
            return None
        # Nothing verifies from this header. If a later header starts a frame that does, this
        # one was broken (a device reset mid-frame, a stray '##'): report it and move on.
        later = self._next_header(2 if self._scanned_mode is not mode else max(2, self._scanned_to - self._offset))
        while later >= 0:
            other, *_ = self._candidate_at(later, mode)
            if other is not None and other.matches:
                raw = self._remove(later)
                frame = Frame(raw=raw, data=b"", length_field=length_field, crc_field="", terminator=b"")
                return self._finish(frame, [(Code.TRUNCATED, f"{len(raw)} bytes from a header to the next frame")])
            self._scanned_to, self._scanned_mode = self._offset + later + 1, mode
            later = self._next_header(later + 2)
        if cand is not None:
            return self._cut(cand, start, length_field, declared)  # a frame whose CRC is wrong
        # Give up on this header: report everything up to the next one (or the end).
        end = self._next_header(2)
        end = len(buf) if end < 0 else end
        raw = self._remove(end)
        frame = Frame(raw=raw, data=b"", length_field=length_field, crc_field="", terminator=b"")
        return self._finish(frame, [(Code.TRUNCATED, f"no complete frame follows this header ({len(raw)} bytes)")])

    def _next_header(self, pos: int) -> int:
        """The next header at or after pos, or -1: in a run of '#', only its last two are one."""
        buf = self._buf
        at = buf.find(HEADER, pos)
        if at >= 0 and buf.startswith(b"#", at + 2):
            run_end = at + 2
            while run_end < len(buf) and buf[run_end] == 0x23:  # '#'
                run_end += 1
            at = run_end - 2
        return at

    def _by_length(self, start: int, declared: int | None, mode: _Mode) -> tuple[_Candidate | None, bool]:
        """The frame end the length field gives, if it checks out; and whether it is still arriving."""
        if declared is None:
            return None, False
        buf = self._buf
        data_end = start + declared
        crc_end = data_end + 4
        if crc_end > len(buf):
            return None, True
        crc_field = bytes(buf[data_end:crc_end])
        ended = self._ended(crc_end, mode)
        if ended is None:
            return None, True
        if not ended:
            return None, False
        if all(b in _HEX for b in crc_field):
            text = crc_field.decode()
            matches = self._matches(start, data_end, text)
            return _Candidate(data_end, crc_end, text, matches), False
        if buf[data_end - 2 : data_end] == b"&&":
            # The data segment ends where the length says, but what follows is no hex CRC.
            text = crc_field.decode("latin-1")
            return _Candidate(data_end, crc_end, text, frozenset(), malformed=True), False
        return None, False

    def _by_structure(self, start: int, mode: _Mode) -> tuple[_Candidate | None, bool]:
        """The first CP-closing '&&' + 3-4 hex digits + boundary whose CRC verifies.

        Failing that, the first such boundary at all (a frame whose CRC is wrong). The flag says
        whether a boundary may still be on its way.
        """
        buf = self._buf
        base = self._offset
        opens = self._cp_opens.between(buf, base, base + start, base + start + MAX_DATA - len(b"CP=&&") + 1)
        if not opens:
            return None, False
        first: _Candidate | None = None
        pending = False
        lo = opens[0] + len(b"CP=&&")
        for tried, at in enumerate(self._boundaries.between(buf, base, lo, base + start + MAX_DATA + 1)):
            if tried >= FREE_BOUNDARIES and not self._charge():
                break  # out of budget: what was found so far is the answer
            data_end = at - base + 2
            digits = 0
            while digits < 4 and data_end + digits < len(buf) and buf[data_end + digits] in _HEX:
                digits += 1
            after = data_end + digits
            if digits < 3:
                continue  # no CRC here
            if digits == 3 and after >= len(buf) and mode is _Mode.STREAM:
                pending = True  # three digits so far: the fourth may still come
                continue
            ended = self._ended(after, mode)
            if ended is None:
                pending = True
                continue
            if not ended:
                continue
            text = bytes(buf[data_end:after]).decode()
            cand = _Candidate(data_end, after, text, self._matches(start, data_end, text))
            if cand.matches:
                return cand, False
            first = first or cand
        return first, pending

    def _by_line_end(self, start: int, declared: int | None) -> _Candidate | None:
        """A frame a few bytes shorter than its length field, ended by CRC and line end, no '&&' before.

        Some forwarders drop the CP's closing '&&' but keep the length field and compute the CRC
        over the bytes they send (docs/data-loggers.md#frame-quirks). Only line ends just short of
        where the length field points are tried, so this costs O(1) per header.
        """
        if declared is None:
            return None
        buf = self._buf
        lo = max(start + 4, start + declared - MAX_OVERSTATED)
        hi = min(len(buf), start + declared + 4 + 1)
        at = buf.find(b"\n", lo, hi)
        while at >= 0:
            crc_end = at - 1 if buf[at - 1] == 0x0D else at
            data_end = crc_end - 4
            text = bytes(buf[data_end:crc_end])
            if start < data_end < start + declared and all(b in _HEX for b in text):
                matches = self._matches(start, data_end, text.decode())
                if matches and buf[data_end - 2 : data_end] != b"&&":
                    return _Candidate(data_end, crc_end, text.decode(), matches, unclosed=True)
            at = buf.find(b"\n", at + 1, hi)
        return None

    def _cut(self, cand: _Candidate, start: int, length_field: str, declared: int | None) -> Frame:
        buf = self._buf
        data = bytes(buf[start : cand.data_end])
        end = cand.crc_end
        notes: list[tuple[Code, str]] = []
        if buf.startswith(b"\r\n", end):
            terminator = b"\r\n"
        elif buf.startswith(b"\n", end):
            terminator = b"\n"
            notes.append((Code.LF_TERMINATOR, "frame ends with LF only, not CRLF"))
        elif buf.startswith(b"\r", end):
            terminator = b"\r"
            notes.append((Code.NO_TERMINATOR, "frame ends with CR only, not CRLF"))
        else:
            terminator = b""
            notes.append((Code.NO_TERMINATOR, "frame has no CRLF terminator"))
        raw = self._remove(end + len(terminator))
        if len(length_field) == 0:
            notes.append((Code.LENGTH_INVALID, "the length field is missing"))
        elif len(length_field) < 4:
            notes.append((Code.LENGTH_NOT_PADDED, f"length field {length_field!r} is not four digits"))
        if declared is not None and declared != len(data):
            notes.append(
                (Code.LENGTH_MISMATCH, f"length field says {declared}, the data segment has {len(data)} bytes")
            )
        if cand.unclosed:
            notes.append(
                (
                    Code.FRAME_END_BY_CRC,
                    f"the frame ends at its line end, where the CRC verifies: {len(data)} data bytes, "
                    f"{(declared or 0) - len(data)} fewer than the length field says, with no closing '&&'",
                )
            )
        if cand.malformed:
            notes.append((Code.CRC_MALFORMED, f"CRC field {cand.crc_field!r} is not four hex digits"))
        elif len(cand.crc_field) == 3:
            notes.append((Code.CRC_SHORT, f"CRC {cand.crc_field!r} has three digits (not zero-padded)"))
        if cand.crc_field != cand.crc_field.upper():
            notes.append((Code.CRC_LOWERCASE, "CRC written in lower case"))
        if len(data) > STANDARD_MAX_DATA:
            notes.append((Code.DATA_TOO_LONG, f"data segment of {len(data)} bytes exceeds the standard's 1,024"))
        frame = Frame(
            raw=raw,
            data=data,
            length_field=length_field,
            crc_field=cand.crc_field,
            terminator=terminator,
            crc_matches=cand.matches,
        )
        return self._finish(frame, notes)

    def _finish(self, frame: Frame, notes: list[tuple[Code, str]]) -> Frame:
        if self._skipped:
            frame.notes.append((Code.GARBAGE_SKIPPED, f"{self._skipped} bytes before the frame were skipped"))
            self._skipped = 0
            self._garbage.clear()
        frame.notes.extend(notes)
        return frame
