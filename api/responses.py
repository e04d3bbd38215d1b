"""JSON responses rendered with orjson (10,000-row pages are the common case for inspectors)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class ORJSONResponse(JSONResponse):
    """A JSONResponse that renders with orjson (non-ASCII text kept as is)."""

    def render(self, content: Any) -> bytes:
        """Serialise the body."""
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
