"""HJ 212-2025 encrypted data areas: SM4 over whole 16-byte blocks, the remainder in clear.

How the 2025 edition encrypts (docs/data-loggers.md#encrypted-packets): the logger builds the
packet, computes the length field and the CRC over the plain data segment, then encrypts the
text between `CP=&&` and the closing `&&` with SM4 in ECB mode, block by block with no padding;
a remainder shorter than a block stays in clear. The ciphertext is written as `{0xE4,0x3E,…}`
followed by that remainder. Everything else (QN, ST, CN, PW, MN, Flag) stays in clear, so a
packet is routed by its MN before it is decrypted with that station's key.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ingest.hj212.codec import DecodedPacket, decode_frame
from ingest.hj212.crc import CrcVariant, crc_text
from ingest.hj212.findings import Code
from ingest.hj212.frame import crc_matches

BLOCK: Final = 16
# The data area of an encrypted packet: `CP=&&{0x..,0x..}` then the clear remainder up to `&&`.
_AREA: Final = re.compile(rb"CP=&&\{((?:0[xX][0-9A-Fa-f]{2},)*0[xX][0-9A-Fa-f]{2})\}(.*)&&\Z", re.DOTALL)
_OPENING: Final = re.compile(rb"CP=&&\{0[xX]")
# Frame notes that described the ciphertext, not the packet, and are judged again on the plain text.
_REJUDGED: Final = frozenset({Code.LENGTH_MISMATCH, Code.DATA_TOO_LONG})


def is_encrypted(data: bytes) -> bool:
    """True when a data segment's CP holds SM4 ciphertext."""
    return _OPENING.search(data) is not None


def _cipher(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.SM4(key), modes.ECB())  # noqa: S305 - ECB is what HJ 212-2025 specifies


def encrypt_segment(segment: str, key: bytes) -> bytes:
    """The wire form of a plain data segment (for simulators and tests): CP's area encrypted."""
    head, sep, rest = segment.partition("CP=&&")
    if not sep or not rest.endswith("&&"):
        raise ValueError("a data segment ends with CP=&&…&&")
    area = rest[:-2].encode()
    whole = len(area) - len(area) % BLOCK
    if whole == 0:
        return segment.encode()  # shorter than one block: nothing to encrypt
    encryptor = _cipher(key).encryptor()
    cipher = encryptor.update(area[:whole]) + encryptor.finalize()
    text = ",".join(f"0x{b:02X}" for b in cipher)
    return f"{head}CP=&&{{{text}}}".encode() + area[whole:] + b"&&"


def encrypt_frame(segment: str, key: bytes, *, crc: CrcVariant = CrcVariant.HJ212) -> bytes:
    """A whole encrypted frame as a 2025 logger sends it: length and CRC of the plain segment."""
    plain = segment.encode()
    return (
        b"##" + f"{len(plain):04d}".encode() + encrypt_segment(segment, key) + crc_text(plain, crc).encode() + b"\r\n"
    )


def _plain(data: bytes, key: bytes) -> bytes | None:
    """The plain data segment, or None when the area is not well-formed ciphertext."""
    at = data.find(b"CP=&&")
    m = _AREA.match(data, at) if at >= 0 else None
    if m is None:
        return None
    cipher = bytes(int(h, 16) for h in m.group(1).split(b","))
    if len(cipher) % BLOCK:
        return None
    decryptor = _cipher(key).decryptor()
    return data[: at + len(b"CP=&&")] + decryptor.update(cipher) + decryptor.finalize() + m.group(2) + b"&&"


def open_packet(decoded: DecodedPacket, key: bytes | None, *, header_only: bool = False) -> DecodedPacket:
    """An encrypted packet decrypted with its station's key, its frame judged on the plain text.

    Without a key, or with ciphertext that is not whole blocks, the frame is refused with a
    finding that names the encryption (its CRC covers the plain text, so it cannot be checked).
    """
    frame = decoded.frame
    plain = _plain(frame.data, key) if key is not None else None
    if plain is None:
        why = (
            "no key is registered for this station (sm4_key in the registry)"
            if key is None
            else "its ciphertext is not whole 16-byte blocks"
        )
        message = f"the data area is SM4-encrypted (HJ 212-2025) and cannot be read: {why}"
        refused = replace(frame, crc_field="", notes=[*frame.notes, (Code.ENCRYPTED_UNREADABLE, message)])
        return DecodedPacket(frame=refused, packet=decoded.packet, text_findings=decoded.text_findings)
    notes = [(code, message) for code, message in frame.notes if code not in _REJUDGED]
    declared = int(frame.length_field) if frame.length_field.isdigit() else None
    if declared is not None and declared != len(plain):
        mismatch = f"length field says {declared}, the plain data segment has {len(plain)} bytes"
        notes.append((Code.LENGTH_MISMATCH, mismatch))
    notes.append((Code.DECRYPTED, "the data area was SM4-encrypted (HJ 212-2025); decrypted with the station's key"))
    matches = crc_matches(plain, frame.crc_field) if frame.crc_field else frozenset[CrcVariant]()
    opened = replace(frame, data=plain, crc_matches=matches, notes=notes)
    return decode_frame(opened, header_only=header_only)
