"""Query parameters routes share: repeated or comma-separated lists, and parameter codes from names."""

from __future__ import annotations

from api.errors import ApiError
from schemas.parameters import catalog


def split(values: list[str] | None) -> list[str] | None:
    """`?a=x&a=y,z` → ['x', 'y', 'z']; nothing given → None."""
    out = [part.strip() for v in values or [] for part in v.split(",") if part.strip()]
    return out or None


def codes(names: list[str] | None) -> list[str] | None:
    """HJ 212 codes for codes or aliases; 422 unknown_parameter for a name neither."""
    if names is None:
        return None
    out = []
    for name in names:
        code = catalog().resolve_any(name)
        if code is None and name not in catalog().by_code:
            raise ApiError(422, "unknown_parameter", f"unknown parameter code or alias: {name}")
        out.append(code or name)
    return out
