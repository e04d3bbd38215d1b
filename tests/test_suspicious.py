"""Suspicious-data patterns, from the rollups and verdicts the worker writes (written here directly)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from alerts.suspicious import check_suspicious
from parkwatch.settings import Settings
from tests.helpers import fetch

VERDICT = """
INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value, value_judged,
                      limit_value, unit, exceedance_multiple, rule, coverage, closed)
VALUES ($1, $2, 'hour', $3::timestamptz, $3::timestamptz + interval '1 hour', 'GB4915-2013', 'kiln', $5, $4, $4, '200', 'mg/m³', NULL,
        '{}', '{}', true)
"""
HOUR = """
INSERT INTO rollup_hour (sid, pid, hour, source_iv, n_observed, n_valid, n_over_range, observed_minutes, valid_minutes,
                         measured_minutes, avg, vmin, vmax, avg_lower)
VALUES ($1, $2, $3, 1, 60, $4::int, 0, 60, $4::int, $4::int, $5::float8, $5::float8, $5::float8, $5::float8)
"""


@pytest.fixture
async def conn(settings: Settings, registry: None) -> asyncpg.Connection:
    c = await asyncpg.connect(settings.DATABASE_URL)
    yield c
    await c.close()


async def _ids(conn: asyncpg.Connection, station: str, code: str) -> tuple[int, int]:
    sid = await conn.fetchval("SELECT sid FROM stations WHERE id = $1", station)
    pid = await conn.fetchval("SELECT pid FROM parameters WHERE code = $1", code)
    return sid, pid


def _hour(n: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=n)


async def _alerts(settings: Settings) -> list[asyncpg.Record]:
    return await fetch(settings.DATABASE_URL, "SELECT * FROM alerts ORDER BY id")


async def test_values_pinned_just_under_the_limit_for_days(settings: Settings, conn: asyncpg.Connection) -> None:
    """45 of 50 judged hours at 190-199 against 200, none over: advisory; values spreading out again: cleared."""
    sid, pid = await _ids(conn, "p1-stack", "a21026")
    for n in range(2, 52):
        await conn.execute(VERDICT, sid, pid, _hour(n), 190.0 + n % 10 if n % 10 else 120.0, "compliant")
    assert await check_suspicious(conn) == (1, 0)
    assert await check_suspicious(conn) == (0, 0)
    [alert] = await _alerts(settings)
    assert (alert["rule"], alert["family"], alert["severity"]) == (
        "suspicious.pinned_below_limit",
        "suspicious",
        "advisory",
    )
    detail = json.loads(alert["details"])
    assert detail["near_hours"] == 45 and detail["hours"] == 50
    assert "none over it" in detail["explanation"]

    await conn.execute("UPDATE verdicts SET value = 100, value_judged = 100 WHERE window_start > $1", _hour(30))
    assert await check_suspicious(conn) == (0, 1)
    [alert] = await _alerts(settings)
    assert alert["status"] == "cleared" and alert["clear_reason"] == "pattern_ended"


async def test_no_pinned_pattern_with_an_exceedance_or_too_few_hours(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    sid, pid = await _ids(conn, "p1-stack", "a21026")
    for n in range(2, 40):  # 38 hours: fewer than 48
        await conn.execute(VERDICT, sid, pid, _hour(n), 195.0, "compliant")
    assert await check_suspicious(conn) == (0, 0)
    for n in range(40, 52):
        await conn.execute(VERDICT, sid, pid, _hour(n), 195.0, "compliant")
    await conn.execute(VERDICT, sid, pid, _hour(60), 260.0, "exceedance")  # it did go over: not "pinned under"
    assert await check_suspicious(conn) == (0, 0)
    assert await _alerts(settings) == []


async def test_a_flag_that_starts_as_the_value_nears_the_limit(settings: Settings, conn: asyncpg.Connection) -> None:
    """Judged at 196 of 200, then an hour with 50 of 60 minutes flagged invalid: advisory, with the numbers."""
    sid, pid = await _ids(conn, "p1-stack", "a21026")
    await conn.execute(VERDICT, sid, pid, _hour(3), 196.0, "compliant")
    await conn.execute(
        """INSERT INTO rollup_hour (sid, pid, hour, source_iv, n_observed, n_valid, n_over_range, observed_minutes,
                                    valid_minutes, measured_minutes, avg, vmin, vmax, avg_lower)
           VALUES ($1, $2, $3, 1, 60, 10, 0, 60, 10, 10, 150, 140, 160, 150)""",
        sid,
        pid,
        _hour(2),
    )
    # an hour near the limit followed by a normal hour is nothing
    await conn.execute(VERDICT, sid, pid, _hour(6), 196.0, "compliant")
    await conn.execute(HOUR, sid, pid, _hour(5), 60, 180.0)
    assert await check_suspicious(conn) == (1, 0)
    [alert] = await _alerts(settings)
    assert alert["rule"] == "suspicious.flag_near_limit"
    assert "50 of 60 minutes flagged invalid" in json.loads(alert["details"])["explanation"]


async def test_an_outlet_concentration_falling_as_its_flow_stops(settings: Settings, conn: asyncpg.Connection) -> None:
    """Flow 100 → 2 m³/h and COD 40 → 10 mg/L in the same hour: advisory on COD; NH3-N steady is not flagged."""
    sid, flow = await _ids(conn, "p1-out", "w00000")
    _, cod = await _ids(conn, "p1-out", "w01018")
    _, nh3 = await _ids(conn, "p1-out", "w21003")
    for n, (q, c, a) in zip((5, 4, 3, 2), ((100, 40, 2), (110, 42, 2), (90, 38, 2), (2, 10, 1.9)), strict=True):
        await conn.execute(HOUR, sid, flow, _hour(n), 1, float(q))
        await conn.execute(HOUR, sid, cod, _hour(n), 1, float(c))
        await conn.execute(HOUR, sid, nh3, _hour(n), 1, float(a))
    assert await check_suspicious(conn) == (1, 0)
    [alert] = await _alerts(settings)
    assert alert["rule"] == "suspicious.drop_with_flow_stop" and alert["pid"] == cod
    detail = json.loads(alert["details"])
    assert detail["flow"] == 2 and detail["value"] == 10 and detail["value_before"] == pytest.approx(40)
