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
TS, RECEIVED_AT = 3, 6  # positions of the two timestamps
