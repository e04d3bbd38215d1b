"""The CRC routines HJ 212 devices use: the standard's own (Appendix A) and two MODBUS variants."""

from __future__ import annotations

from typing import Final

from schemas.stations import CrcVariant

__all__ = ["CrcVariant", "crc_text", "hj212_crc", "modbus_crc"]


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


def hj212_crc(data: bytes) -> int:
    """HJ 212-2017 Appendix A CRC of the data segment ('123456789' gives 0x2F80)."""
    if not data:
        return 0xFFFF
    h = 0xFF  # high byte of the initial register 0xFFFF
    table = _T_HI
    for b in data[:-1]:
        h = table[h ^ b]
    return _T[h ^ data[-1]]


def modbus_crc(data: bytes) -> int:
    """CRC-16/MODBUS (init 0xFFFF, reflected 0x8005), as a 16-bit value."""
    crc = 0xFFFF
    table = _T
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def crc_text(data: bytes, variant: CrcVariant) -> str:
    """The four hex digits a device of this variant appends to `data`."""
    if variant is CrcVariant.HJ212:
        return f"{hj212_crc(data):04X}"
    value = modbus_crc(data)
    if variant is CrcVariant.MODBUS_SWAPPED:
        value = ((value & 0xFF) << 8) | (value >> 8)
    return f"{value:04X}"
