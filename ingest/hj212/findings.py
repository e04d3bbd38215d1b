"""What a decode noticed about a packet: stable codes, each with a severity and a message.

Frame findings decide the verdict (a frame the mode does not accept is invalid); field
findings describe oddities of a readable packet and never make it invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How much a finding matters."""

    ERROR = "error"  # the frame is refused in this mode
    WARNING = "warning"  # accepted, but not as the standard says (lenient mode)
    INFO = "info"  # worth knowing; nothing wrong with the frame


class Code(StrEnum):
    """Stable finding codes (documented in the README)."""

    # framing
    NO_HEADER = "no_header"
    GARBAGE_SKIPPED = "garbage_skipped"
    LENGTH_NOT_PADDED = "length_not_padded"
    LENGTH_MISMATCH = "length_mismatch"
    LENGTH_INVALID = "length_invalid"
    DATA_TOO_LONG = "data_too_long"
    TRUNCATED = "truncated"
    FRAME_END_BY_CRC = "frame_end_by_crc"
    ENCRYPTED_UNREADABLE = "encrypted_unreadable"
    DECRYPTED = "decrypted"
    CRC_MISMATCH = "crc_mismatch"
    CRC_MALFORMED = "crc_malformed"
    CRC_SHORT = "crc_short"
    CRC_LOWERCASE = "crc_lowercase"
    CRC_VARIANT_MODBUS = "crc_variant_modbus"
    CRC_VARIANT_MODBUS_SWAPPED = "crc_variant_modbus_swapped"
    NO_TERMINATOR = "no_terminator"
    LF_TERMINATOR = "lf_terminator"
    TEXT_GB18030 = "text_gb18030"
    TEXT_UNDECODABLE = "text_undecodable"
    NUL_BYTE = "nul_byte"
    # header fields
    MISSING_QN = "missing_qn"
    QN_MALFORMED = "qn_malformed"
    MISSING_ST = "missing_st"
    UNUSUAL_ST = "unusual_st"
    MISSING_CN = "missing_cn"
    UNKNOWN_CN = "unknown_cn"
    MISSING_PW = "missing_pw"
    MISSING_MN = "missing_mn"
    MN_NONSTANDARD = "mn_nonstandard"
    MISSING_FLAG = "missing_flag"
    FLAG_MALFORMED = "flag_malformed"
    UNKNOWN_VERSION = "unknown_version"
    HEADER_ORDER = "header_order"
    HEADER_KEY_CASE = "header_key_case"
    HEADER_STRAY_CHARACTERS = "header_stray_characters"
    UNKNOWN_HEADER_KEY = "unknown_header_key"
    DUPLICATE_KEY = "duplicate_key"
    CODE_COLLISION = "code_collision"
    PACKET_NUMBERS_WITHOUT_FLAG = "packet_numbers_without_flag"
    PACKET_NUMBER_LONG = "packet_number_long"
    # command parameters (CP)
    MISSING_CP = "missing_cp"
    CP_UNTERMINATED = "cp_unterminated"
    CP_EMPTY_ITEM = "cp_empty_item"
    MISSING_DATATIME = "missing_datatime"
    DATATIME_MALFORMED = "datatime_malformed"
    UNKNOWN_CODE = "unknown_code"
    OLD_CODE = "old_code"
    CODE_UPPERCASE = "code_uppercase"
    BAD_VALUE = "bad_value"
    UNKNOWN_DATA_FLAG = "unknown_data_flag"
    # conversion into readings (ingest/hj212/convert.py)
    UNDECLARED_CODE = "undeclared_code"
    VALUE_NOT_STORED = "value_not_stored"
    DATATIME_FROM_FIRST_PART = "datatime_from_first_part"
    CONTENT_MISMATCH = "content_mismatch"
    DATATIME_UNALIGNED = "datatime_unaligned"


# Found after decoding, when a packet is decrypted (ingest/hj212/sm4.py) or converted into
# readings (ingest/hj212/convert.py); tested with those, not among the codec's cases.
CONVERSION_CODES = frozenset(
    {
        Code.ENCRYPTED_UNREADABLE,
        Code.DECRYPTED,
        Code.UNDECLARED_CODE,
        Code.VALUE_NOT_STORED,
        Code.DATATIME_FROM_FIRST_PART,
        Code.CONTENT_MISMATCH,
        Code.DATATIME_UNALIGNED,
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation, with where it applies (a key, a code) when that helps."""

    code: Code
    severity: Severity
    message: str

    def as_json(self) -> dict[str, str]:
        """The form printed by `parkwatch hj212 decode` and stored with packets and dead letters."""
        return {"code": self.code.value, "severity": self.severity.value, "message": self.message}


class DecodeError(Exception):
    """The only exception the codec raises: the input is not something it can decode at all.

    Decoding functions return findings for everything else; this is for API misuse, such as
    encoding a packet with no command code.
    """

    def __init__(self, message: str, code: Code | None = None) -> None:
        self.code = code
        super().__init__(message)
