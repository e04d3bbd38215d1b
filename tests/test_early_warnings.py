"""Early warnings: a window still running that is already over its limit (compliance/assess.py, alerts/engine.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from alerts.engine import AlertEngine
from compliance.assess import assess
from compliance.profiles import Profile
from compliance.windows import HourStat
from parkwatch.settings import Settings
from schemas.stations import StationKind
from tests.helpers import fetch

CST = ZoneInfo("Asia/Shanghai")
HOUR = datetime(2026, 12, 2, 10, tzinfo=CST)
KILN = Profile(sid=1, id="k", park_id="p", kind=StationKind.STACK, tz=CST, standard="GB4915-2013", cls="kiln")
PIDS = {"a21026": 1, "a19001": 2}


def stat(minutes: int, avg: float) -> HourStat:
    return HourStat(HOUR, 1, minutes, minutes, 0, minutes, minutes, minutes, avg, avg, avg, avg)


def early_flags(so2_minutes: int, so2: float, o2_minutes: int, o2: float, now: datetime) -> tuple[str, bool, list[str]]:
    hours = {"a21026": {HOUR: stat(so2_minutes, so2)}, "a19001": {HOUR: stat(o2_minutes, o2)}}
    out = assess(KILN, hours, {}, dirty_hours={HOUR}, dirty_days=set(), influent={}, pids=PIDS, now=now)
    [row] = [v for v in out.verdicts if v[1] == 1]
    return row[7], row[17], json.loads(row[15])


def test_a_running_stack_hour_over_its_limit_is_an_early_warning() -> None:
    """20 valid minutes at 260 (GB 4915 kiln: 200) at the reference O2, at 10:20: insufficient, but warned."""
    verdict, early, notes = early_flags(20, 260.0, 20, 10.0, HOUR + timedelta(minutes=20))
    assert verdict == "insufficient_data" and early is True
    assert any("early warning" in n for n in notes)


def test_no_early_warning_under_the_limit_too_early_or_once_the_hour_is_over() -> None:
    assert early_flags(20, 180.0, 20, 10.0, HOUR + timedelta(minutes=20))[1] is False  # under the limit
    assert early_flags(14, 260.0, 14, 10.0, HOUR + timedelta(minutes=14))[1] is False  # under a quarter hour
    # back-filled: the hour has ended; it is judged (here short of data), never warned of
    assert early_flags(20, 260.0, 20, 10.0, HOUR + timedelta(hours=2))[1] is False
    # the correction counts: 230 at 13 % O2 is 230 × 11/8 = 316 > 200, at 7 % it is 230 × 11/14 = 181 < 200
    assert early_flags(20, 230.0, 20, 13.0, HOUR + timedelta(minutes=20))[1] is True
    assert early_flags(20, 230.0, 20, 7.0, HOUR + timedelta(minutes=20))[1] is False
    # without O2 enough to correct with, no warning
    assert early_flags(20, 260.0, 5, 10.0, HOUR + timedelta(minutes=20))[1] is False


def test_an_hour_judged_an_exceedance_is_no_longer_an_early_warning() -> None:
    verdict, early, _ = early_flags(50, 260.0, 50, 10.0, HOUR + timedelta(minutes=50))
    assert verdict == "exceedance" and early is False


async def test_early_warning_alert_raises_then_hands_over_to_the_exceedance(settings: Settings, registry: None) -> None:
    """The engine warns on the flag, and clears the warning as 'judged' when the hour is an exceedance."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        sid = await conn.fetchval("SELECT sid FROM stations WHERE id = 'p1-stack'")
        pid = await conn.fetchval("SELECT pid FROM parameters WHERE code = 'a21026'")
        start = datetime.now(CST).replace(minute=0, second=0, microsecond=0)
        await conn.execute(
            """INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value,
                                     value_judged, limit_value, unit, exceedance_multiple, rule, coverage, closed,
                                     early_warning)
               VALUES ($1, $2, 'hour', $3, $4, 'GB4915-2013', 'kiln', 'insufficient_data', 260, 260, '200',
                       'mg/m³', 0.3, '{}', '{}', false, true)""",
            sid,
            pid,
            start,
            start + timedelta(hours=1),
        )
        engine = AlertEngine(settings)
        await engine.drain(conn)
        rows = await fetch(settings.DATABASE_URL, "SELECT rule, status, family FROM alerts")
        assert [(r["rule"], r["status"], r["family"]) for r in rows] == [
            ("early_warning.hour", "active", "early_warning")
        ]
        await conn.execute("UPDATE verdicts SET verdict = 'exceedance', early_warning = false")
        await engine.drain(conn)
    finally:
        await conn.close()
    rows = await fetch(settings.DATABASE_URL, "SELECT rule, status, clear_reason FROM alerts ORDER BY id")
    assert [(r["rule"], r["status"], r["clear_reason"]) for r in rows] == [
        ("early_warning.hour", "cleared", "judged"),
        ("exceedance.hour", "pending", None),
    ]
