"""What a factor code in an HJ 212 packet is: a 2017 code, a 2005 code, a facility, or unknown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ingest.hj212.findings import Code
from schemas.parameters import catalog

# Structural codes of HJ 212-2017 appendix B that are not pollutants: treatment facilities
# (SBxxx), field-site information (i + 5 digits, B.8-B.10), process monitoring (e/g + 5 digits,
# B.4-B.7), and the noise indicators of B.3.
_FACILITY_RE: Final = re.compile(r"^SB\w+$", re.IGNORECASE)
_INFO_RE: Final = re.compile(r"^i\d{5}$")
_PROCESS_RE: Final = re.compile(r"^[eg]\d{5}$")
NOISE_CODES: Final = frozenset({"LA", "L5", "L10", "L50", "L90", "L95", "Leq", "Ldn", "Ld", "Ln", "LMx", "LMn"})


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """How a received code reads."""

    code: str  # the canonical code (HJ 212-2017 for pollutants)
    kind: str  # pollutant | facility | info | process | noise | unknown
    converted: bool = False  # a 2005 'z' code: its values are converted (折算) values
    note: Code | None = None  # a finding worth recording, if any
    message: str = ""

    @property
    def known(self) -> bool:
        """True unless the code is in none of the tables."""
        return self.kind != "unknown"


@lru_cache(maxsize=4096)
def code_info(raw: str) -> CodeInfo:
    """Classify one code as received (cached: a station sends the same codes all day)."""
    text = raw.strip()
    lower = text.lower()
    table = catalog()
    if lower in table.by_code:
        if text != lower:
            return CodeInfo(lower, "pollutant", note=Code.CODE_UPPERCASE, message=f"code {text!r} in upper case")
        return CodeInfo(lower, "pollutant")
    if _FACILITY_RE.match(text):
        return CodeInfo(text.upper(), "facility")
    if _INFO_RE.match(lower):
        return CodeInfo(lower, "info")
    if _PROCESS_RE.match(lower):
        return CodeInfo(lower, "process")
    if text in NOISE_CODES:
        return CodeInfo(text, "noise")
    converted = len(text) > 1 and lower.endswith("z")
    base = text[:-1] if converted else text
    mapped = table.old_code(base)
    if mapped is not None:
        what = "converted value of " if converted else ""
        return CodeInfo(
            mapped,
            "pollutant",
            converted=converted,
            note=Code.OLD_CODE,
            message=f"HJ/T 212-2005 code {text!r} read as the {what}{mapped}",
        )
    return CodeInfo(text, "unknown", note=Code.UNKNOWN_CODE, message=f"code {text!r} is in no HJ 212 table; kept as is")
