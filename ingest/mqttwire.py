"""MQTT 3.1.1 packets as bytes: the few a QoS 1 publisher needs (OASIS MQTT 3.1.1 §2-3)."""

from __future__ import annotations

import struct

CONNACK = 0x20
PUBACK = 0x40
PINGRESP = 0xD0
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


def varint(n: int) -> bytes:
    """The Remaining Length encoding (§2.2.3)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first_byte: int, body: bytes) -> bytes:
    """Fixed header + body."""
    return bytes([first_byte]) + varint(len(body)) + body


def string(s: str) -> bytes:
    """A UTF-8 string with its two-byte length (§1.5.3)."""
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def connect(client_id: str, *, keepalive: int, username: str | None = None, password: str | None = None) -> bytes:
    """CONNECT, protocol level 4, clean session."""
    flags = 0x02
    payload = string(client_id)
    if username is not None:
        flags |= 0x80
        payload += string(username)
        if password is not None:
            flags |= 0x40
            payload += string(password)
    return packet(0x10, string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload)


def publish_qos1(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH at QoS 1; `topic` already length-prefixed (string())."""
    return packet(0x32, topic + struct.pack("!H", packet_id) + payload)


def split_packets(buf: bytearray) -> list[tuple[int, bytes]]:
    """Remove every complete packet from the front of buf: (first byte, body) each."""
    out: list[tuple[int, bytes]] = []
    while len(buf) >= 2:
        length = 0
        multiplier = 1
        i = 1
        while True:
            if i >= len(buf):
                return out  # length field still arriving
            byte = buf[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
            if i > 4:
                raise ValueError("malformed Remaining Length")
        if len(buf) < i + length:
            return out
        out.append((buf[0], bytes(buf[i : i + length])))
        del buf[: i + length]
    return out
