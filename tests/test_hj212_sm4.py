"""HJ 212-2025 encrypted packets (ingest/hj212/sm4.py), checked against the standard's own example
(Appendix A.2: key sixteen '0' characters, SM4-ECB over whole blocks, CRC over the plain text)."""

from __future__ import annotations

from ingest.hj212.codec import decode
from ingest.hj212.crc import hj212_crc
from ingest.hj212.findings import Code
from ingest.hj212.sm4 import encrypt_segment, is_encrypted, open_packet

KEY = b"0" * 16  # the standard's example key: 16 x 0x30
HEAD = "QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&"
AREA = (
    "DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;"
    "a01012-Min=9.3,a01012-Avg=9.3,a01012-Max=9.3,a01012-Flag=N;"
    "a01014-Min=3.20,a01014-Avg=3.211,a01014-Max=3.212,a01014-Flag=N"
)
# The standard's ciphertext of AREA (Appendix A.2, example 2), as printed there.
STANDARD_CIPHERTEXT = (
    "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC76F57F2C"
    "A7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E1C2B3075592B4D1E09C4D8BB27BE97B55"
    "9E3DA6643781A6F477769DEEB009B10DFFF3426922725D607DC4480F0CAC5F70DB2587B124BCB281592721D6E4BC180A"
    "97E5E111499CBE822E31C8D7761553543AA24207C290997BBDE64F9266BC5F529A172E381C1D898CA1A0D771A914A7B2"
    "D7467C70B94F1D4A7B0350A48DBF8B41"
)


def _wire(cipher_hex: str, tail: str = "") -> bytes:
    """The encrypted packet as the standard prints it: length and CRC of the plain segment."""
    plain = f"{HEAD}{AREA}&&".encode()
    braces = ",".join(f"0x{cipher_hex[i : i + 2]}" for i in range(0, len(cipher_hex), 2))
    data = f"{HEAD}{{{braces}}}{tail}&&".encode()
    return b"##" + f"{len(plain):04d}".encode() + data + f"{hj212_crc(plain):04X}".encode() + b"\r\n"


def test_the_standards_example_decrypts_to_its_packet() -> None:
    plain = f"{HEAD}{AREA}&&".encode()
    assert len(plain) == 295 and f"{hj212_crc(plain):04X}" == "2200"  # the standard's length and CRC
    [decoded] = decode(_wire(STANDARD_CIPHERTEXT))
    assert is_encrypted(decoded.frame.data) and not decoded.valid()
    opened = open_packet(decoded, KEY)
    assert opened.valid(strict=True), opened.findings()
    assert opened.packet.text == plain.decode()
    assert opened.frame.raw == decoded.frame.raw  # the packet log keeps what was received
    codes = {f.code for f in opened.findings()}
    assert Code.DECRYPTED in codes and Code.LENGTH_MISMATCH not in codes
    assert opened.packet.factors["a01014"].values["Avg"] == "3.211"


def test_our_encryption_gives_the_standards_ciphertext() -> None:
    wire = encrypt_segment(f"{HEAD}{AREA}&&", KEY)
    assert wire.decode().replace("0x", "").replace(",", "") == f"{HEAD}{{{STANDARD_CIPHERTEXT}}}&&"


def test_a_remainder_shorter_than_a_block_stays_in_clear() -> None:
    """The standard's example 4: 147 characters, nine blocks encrypted, 'g=N' in clear."""
    area = "DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;"
    area += "a01014-Min=3.20,a01014-Avg=3.20,a01014-Max=3.20,a01014-Flag=N"
    segment = f"{HEAD}{area}&&"
    assert len(area) == 147 and len(segment) == 234 and f"{hj212_crc(segment.encode()):04X}" == "B541"
    wire = encrypt_segment(segment, KEY)
    assert wire.endswith(b"}g=N&&") and wire.count(b"0x") == 144
    frame = b"##0234" + wire + b"B541\r\n"
    opened = open_packet(decode(frame)[0], KEY)
    assert opened.valid(strict=True) and opened.packet.text == segment


def test_without_a_key_or_with_a_wrong_one_the_finding_names_the_encryption() -> None:
    [decoded] = decode(_wire(STANDARD_CIPHERTEXT))
    refused = open_packet(decoded, None)
    errors = [f for f in refused.findings() if f.severity == "error"]
    assert [f.code for f in errors] == [Code.ENCRYPTED_UNREADABLE]
    assert "SM4-encrypted (HJ 212-2025)" in errors[0].message and "sm4_key" in errors[0].message
    wrong = open_packet(decoded, b"1" * 16)
    assert not wrong.valid() and Code.CRC_MISMATCH in {f.code for f in wrong.findings()}
    cut = open_packet(decode(_wire(STANDARD_CIPHERTEXT[:-2]))[0], KEY)  # not whole blocks
    assert [f.code for f in cut.findings() if f.severity == "error"] == [Code.ENCRYPTED_UNREADABLE]
