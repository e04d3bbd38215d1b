"""HJ 633 AQI reports of an ambient station: the real-time (hourly) and the daily report rows (pure)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from compliance import aqi as aqi_index
from compliance.context import JudgementError
from compliance.judge import standard_for
from compliance.profiles import Profile
from compliance.windows import (
    AMBIENT_DAY_MIN_HOURS,
    HOUR,
    MOVING_24H_MIN_HOURS,
    O3_8H_MIN_HOURS,
    O3_DAY_MIN_WINDOWS,
    Days,
    day_bounds,
    moving_mean,
    o3_daily_max_8h,
)
from schemas.catalogue import Standard

logger = logging.getLogger(__name__)

# HJ 633 inputs → the ambient parameter whose rollups feed them.
AQI_CODES = {
    "so2": "a21026",
    "so2_24h": "a21026",
    "no2": "a21004",
    "co": "a21005",
    "pm10": "a34002",
    "pm25": "a34004",
    "o3_1h": "a05024",
    "o3_8h": "a05024",
}
# An hour's data change the 2012 real-time AQI of the next 23 hours (PM 24 h moving averages).
AQI_REACH_HOURS = 23

Values = Mapping[str, Mapping[datetime, float]]  # valid hourly values by parameter
Row = tuple[Any, ...]  # an aqi table row (compliance/store.py)


def aqi_edition(on: date) -> Standard | None:
    """HJ 633 in force on a date; None before the first edition (2016-01-01): no AQI then."""
    try:
        return standard_for("HJ633", on)
    except JudgementError:
        return None


def hour_report(profile: Profile, t: datetime, values: Values, now: datetime) -> list[Row]:
    """The real-time report of hour t, from the valid hourly values by parameter."""
    on = t.astimezone(profile.tz).date()
    edition = aqi_edition(on)
    if edition is None or edition.aqi is None:
        return []
    conc: dict[str, float | None] = {}
    for key, average in edition.aqi.averages["1h"].items():
        series = values.get(AQI_CODES[key], {})
        if average == "1h":
            conc[key] = series.get(t)
        elif average == "8h_moving":
            conc[key] = moving_mean(series, t, 8, O3_8H_MIN_HOURS)[0]
        elif average == "24h_moving":
            conc[key] = moving_mean(series, t, 24, MOVING_24H_MIN_HOURS)[0]
    return _row(profile, edition, "1h", start=t, end=t + HOUR, conc=conc, now=now)


def day_report(profile: Profile, day: date, values: Values, days: Days, now: datetime) -> list[Row]:
    """The daily report of a local day."""
    edition = aqi_edition(day)
    if edition is None or edition.aqi is None:
        return []
    std = profile.standard_on(day)
    start, end = day_bounds(day, profile.tz)
    required = int(std.setting("day_min_valid_hours", AMBIENT_DAY_MIN_HOURS)) if std else AMBIENT_DAY_MIN_HOURS
    conc: dict[str, float | None] = {}
    for key, average in edition.aqi.averages["24h"].items():
        code = AQI_CODES[key]
        if average == "24h":
            d = days.get(code, {}).get(day)
            conc[key] = d.avg if d is not None and d.hours_valid >= required else None
        elif average == "day_max_1h":
            inside = [v for t, v in values.get(code, {}).items() if start <= t < end]
            conc[key] = max(inside) if inside else None
        elif average == "day_max_8h":
            conc[key] = o3_daily_max_8h(
                values.get(code, {}),
                start,
                min_hours=O3_8H_MIN_HOURS,
                min_windows=O3_DAY_MIN_WINDOWS,
            )[0]
    return _row(profile, edition, "24h", start=start, end=end, conc=conc, now=now)


def _row(
    profile: Profile,
    edition: Standard,
    period: str,
    *,
    start: datetime,
    end: datetime,
    conc: dict[str, Any],
    now: datetime,
) -> list[Row]:
    given = {k: max(v, 0.0) for k, v in conc.items() if v is not None}
    if not any(k != "so2_24h" for k in given):
        return []  # nothing indexed in this window
    try:
        result = aqi_index.compute(edition, period, given)
    except aqi_index.AqiError as exc:
        logger.warning("station %s: AQI %s at %s not computed: %s", profile.id, period, start, exc)
        return []
    return [
        (
            profile.sid,
            period,
            start,
            end,
            edition.id,
            result.aqi,
            result.level,
            result.category,
            result.color,
            result.primary,
            json.dumps(result.iaqi),
            json.dumps(given),
            json.dumps(result.notes, ensure_ascii=False),
            end <= now,
        )
    ]
