"""The row the ingest writes to `readings`, in COPY column order."""

from __future__ import annotations

from datetime import datetime
from typing import Final

# sid, pid, iv, ts, value, flag, received_at, vmin, vmax, cou, zs — the last four are the
# statistics of HJ 212 minute/hour/day uploads (NULL for real-time readings).
Row = tuple[
    int, int, int, datetime, float | None, str, datetime, float | None, float | None, float | None, float | None
]
READING_COLUMNS: Final = ("sid", "pid", "iv", "ts", "value", "flag", "received_at", "vmin", "vmax", "cou", "zs")
# Positions of the two timestamps (Final: mypy types row[TS] as the datetime it is).
TS: Final = 3
RECEIVED_AT: Final = 6
