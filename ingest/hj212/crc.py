"""The CRC routines HJ 212 devices use: the standard's own (Appendix A) and two MODBUS variants."""

from __future__ import annotations

from array import array
from typing import Final

from schemas.stations import CrcVariant

__all__ = ["CrcPrefixes", "CrcVariant", "crc_text", "hj212_crc", "modbus_crc"]


def _table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_T: Final = _table()
# The HJ 212 routine keeps only the register's high byte between steps, reg = T[(reg >> 8) ^ byte]
# (docs/reference/hj212.md §2): an 8-bit state stepped through the high bytes of the MODBUS table.
_T_HI: Final = [t >> 8 for t in _T]


HJ212_INIT: Final = 0xFF  # the high byte of the initial register 0xFFFF
MODBUS_INIT: Final = 0xFFFF


def hj212_step(h: int, data: bytes | bytearray | memoryview) -> int:
    """The HJ 212 routine's 8-bit state after `data` (all but a segment's last byte)."""
    table = _T_HI
    for b in data:
        h = table[h ^ b]
    return h


def hj212_final(h: int, last: int) -> int:
    """The HJ 212 CRC from the state before the last byte, and that byte."""
    return _T[h ^ last]


def hj212_crc(data: bytes) -> int:
    """HJ 212-2017 Appendix A CRC of the data segment ('123456789' gives 0x2F80)."""
    if not data:
        return 0xFFFF
    return hj212_final(hj212_step(HJ212_INIT, data[:-1]), data[-1])


def modbus_step(crc: int, data: bytes | bytearray | memoryview) -> int:
    """The CRC-16/MODBUS register after `data`."""
    table = _T
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def modbus_crc(data: bytes) -> int:
    """CRC-16/MODBUS (init 0xFFFF, reflected 0x8005), as a 16-bit value."""
    return modbus_step(MODBUS_INIT, data)


def crc_text(data: bytes, variant: CrcVariant) -> str:
    """The four hex digits a device of this variant appends to `data`."""
    if variant is CrcVariant.HJ212:
        return f"{hj212_crc(data):04X}"
    value = modbus_crc(data)
    if variant is CrcVariant.MODBUS_SWAPPED:
        value = ((value & 0xFF) << 8) | (value >> 8)
    return f"{value:04X}"


# Both routines are linear over GF(2): a register stepped through n bytes from h equals the
# register stepped from 0, xor the zero-data map applied n times to h. So the CRC of any span
# follows from two prefix registers (as zlib's crc32_combine does); see CrcPrefixes.
def _hj212_powers() -> list[list[int]]:
    # The 8-bit zero-data map h -> T_HI[h] has order 8: eight tables cover every n.
    powers = [list(range(256))]
    for _ in range(7):
        powers.append([_T_HI[h] for h in powers[-1]])
    if [_T_HI[h] for h in powers[-1]] != powers[0]:
        raise RuntimeError("the HJ 212 register map is not of order 8")  # a broken table, never data
    return powers


def _modbus_powers() -> list[tuple[list[int], list[int]]]:
    # The 16-bit zero-data map c -> (c >> 8) ^ T[c & 0xFF], squared: tables for n = 2**j, each
    # as the images of the low and the high byte (the map is linear, so they combine by xor).
    def step(c: int) -> int:
        return (c >> 8) ^ _T[c & 0xFF]

    lo = [step(c) for c in range(256)]
    hi = [step(c << 8) for c in range(256)]
    powers = [(lo, hi)]
    for _ in range(15):
        plo, phi = powers[-1]

        def twice(c: int, plo: list[int] = plo, phi: list[int] = phi) -> int:
            c = plo[c & 0xFF] ^ phi[c >> 8]
            return plo[c & 0xFF] ^ phi[c >> 8]

        powers.append(([twice(c) for c in range(256)], [twice(c << 8) for c in range(256)]))
    return powers


_HJ212_POWERS: Final = _hj212_powers()
_MODBUS_POWERS: Final = _modbus_powers()


def _modbus_advance(c: int, n: int) -> int:
    j = 0
    while n:
        if n & 1:
            lo, hi = _MODBUS_POWERS[j]
            c = lo[c & 0xFF] ^ hi[c >> 8]
        n >>= 1
        j += 1
    return c


class CrcPrefixes:
    """Both routines' CRC of any span of a growing byte buffer, each byte stepped once.

    A framer tries many (start, end) spans over the same bytes; computing each from its start
    costs the span's length per try. Here a try costs a few table lookups. Offsets are the
    buffer's own: drop() follows bytes taken off its front.
    """

    def __init__(self) -> None:
        # Index i + _front is the buffer's offset i: the front is deleted in large steps only,
        # as deleting a few bytes from the front of an array moves all the rest.
        self._front = 0
        self._h = bytearray(b"\0")  # _h[i]: HJ 212 register (from 0) over the first i bytes
        self._m = array("H", [0])  # the same for MODBUS, filled only as far as asked
        self._data = bytearray()

    def extend(self, data: bytes | bytearray) -> None:
        """Bytes appended to the buffer."""
        table = _T_HI
        h = self._h[-1]
        out = self._h
        for b in data:
            h = table[h ^ b]
            out.append(h)
        self._data += data

    def drop(self, n: int) -> None:
        """Bytes taken off the buffer's front (n of them)."""
        self._front += n
        if self._front < 4096 or self._front * 2 < len(self._data):
            return
        front, self._front = self._front, 0
        del self._h[:front]
        del self._data[:front]
        if front < len(self._m):
            del self._m[:front]
        else:
            self._m = array("H", [0])  # nothing known reaches the new front: start from it

    def hj212(self, start: int, end: int) -> int:
        """hj212_crc(buffer[start:end]) for a non-empty span."""
        start += self._front
        last = end - 1 + self._front
        h = self._h[last] ^ _HJ212_POWERS[(last - start) % 8][HJ212_INIT ^ self._h[start]]
        return hj212_final(h, self._data[last])

    def modbus(self, start: int, end: int) -> int:
        """modbus_crc(buffer[start:end])."""
        start += self._front
        end += self._front
        m = self._m
        if len(m) <= end:
            table = _T
            c = m[-1]
            for b in memoryview(self._data)[len(m) - 1 : end]:
                c = (c >> 8) ^ table[(c ^ b) & 0xFF]
                m.append(c)
        return m[end] ^ _modbus_advance(MODBUS_INIT ^ m[start], end - start)
