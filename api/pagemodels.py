"""Response models routes share: the page envelope and its meta block, parameter names, error codes."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, Field

from api.errors import ErrorBody
from schemas.parameters import catalog
from schemas.stations import StationKind

# Instants are ISO 8601 strings the routes format themselves (UTC with a Z, or local with an offset).
Instant = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class PageMeta(BaseModel):
    """What a page is: how many results it may hold, how many it holds, and how to get the next."""

    limit: int = Field(description="the most results a page holds (the request's `limit`)")
    returned: int = Field(description="results on this page")
    next: str | None = Field(
        description="the cursor of the next page, to pass back as `cursor` with the same filters; null on the last"
    )


class Page(BaseModel):
    """A page of a keyset-paged list: follow `meta.next` until it is null to read every result once."""

    meta: PageMeta
    next_cursor: str | None = Field(description="the same as `meta.next` (for clients written before `meta`)")


def page(results: list[Any], limit: int, next_cursor: str | None, **extra: Any) -> dict[str, Any]:
    """A page's body: meta first, then the results (`extra`: a route's own older paging fields)."""
    return {
        "meta": {"limit": limit, "returned": len(results), "next": next_cursor},
        "results": results,
        "next_cursor": next_cursor,
        **extra,
    }


class Named(BaseModel):
    """A parameter's code with the names people read it by."""

    parameter: str = Field(description="HJ 212 code, e.g. w01018")
    parameter_name: str | None = Field(description="English name; null for a code outside the HJ 212 tables")
    parameter_name_zh: str | None = Field(description="Chinese name (中文名称); null outside the HJ 212 tables")


@lru_cache(maxsize=4096)
def parameter_names(code: str) -> tuple[str | None, str | None]:
    """A code's English and Chinese names from the in-memory catalogue (no query per row)."""
    param = catalog().by_code.get(code)
    if param is None:
        return None, None
    return param.name or None, param.name_zh or None


def names(code: str) -> dict[str, str | None]:
    """`parameter`, `parameter_name` and `parameter_name_zh` of a code, to spread into a response row."""
    english, chinese = parameter_names(code)
    return {"parameter": code, "parameter_name": english, "parameter_name_zh": chinese}


def unit_of(code: str, kind: StationKind) -> str | None:
    """The unit a parameter is stored in at a station of this kind (null when the catalogue has none)."""
    param = catalog().by_code.get(code)
    return (param.unit_for(kind) or None) if param else None


def errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's own error codes by status, for the OpenAPI document (they replace the common text)."""
    return {status: {"model": ErrorBody, "description": text} for status, text in described.items()}


# The codes most data routes answer with, to combine in errors().
BAD_CURSOR = "bad_cursor (an edited cursor, or one of another query); bad_parameter (a NUL, a number out of range)"
INVALID = "invalid_request (each parameter's problem listed)"
