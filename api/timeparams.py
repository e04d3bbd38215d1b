"""Time in queries: ISO 8601 instants or dates read in a station's zone, and the default window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from api.errors import ApiError
from schemas.readings import MAX_FUTURE_SKEW

# With no start and no end, a query covers the last day: enough for a live look, and an
# unbounded default would make the cheapest-looking request the most expensive one.
DEFAULT_SPAN = timedelta(days=1)
# Years a query may name: monitoring data begin in 2000 (schemas/readings.py); a year 1 or 9999
# would overflow the arithmetic of a window before reaching the database.
EARLIEST, LATEST = 1970, 2200


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
    if not EARLIEST <= ts.year <= LATEST:
        raise ApiError(422, "bad_time", f"{name}={value!r}: years {EARLIEST} to {LATEST} only")
    return ts


def bounds(start: str | None, end: str | None, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) from the query: end defaults to now, start to a day before end."""
    hi = parse_instant(end, "end", tz) if end else datetime.now(UTC) + MAX_FUTURE_SKEW
    lo = parse_instant(start, "start", tz) if start else hi - DEFAULT_SPAN
    if lo >= hi:
        raise ApiError(422, "bad_time", "start must be before end")
    return lo, hi


def iso_utc(ts: datetime) -> str:
    """UTC, ISO 8601 with a Z."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
