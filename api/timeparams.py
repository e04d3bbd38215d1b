"""Reading the time bounds of a query: ISO 8601 instants or dates, in a station's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo

from api.errors import ApiError


def parse_instant(value: str, name: str, tz: tzinfo) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is read in `tz`."""
    text = value.strip()
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        try:
            ts = datetime.combine(date.fromisoformat(text), time())
        except ValueError:
            raise ApiError(
                422,
                "bad_time",
                f"{name}={value!r} is not an ISO 8601 date or date-time (e.g. 2026-11-26T08:00:00+08:00)",
            ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=tz)
    return ts
