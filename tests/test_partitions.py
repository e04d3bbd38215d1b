"""Native readings partitions of a day, an ISO week or a month: names, bounds, an upgraded month database, the writer and maintenance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import psycopg
import pytest

from ingest.batch import Batch
from ingest.maintenance import ensure_partitions
from ingest.partitions import Width, next_period, period_start, period_starts
from ingest.store import Store
from schemas.migrate import CREATE_MIGRATIONS_TABLE, INSERT_APPLIED, migrate, migrations
from tests.services import db_url, drop_database, unique

PARTS = "SELECT name, lo, hi FROM parkwatch_readings_partitions() ORDER BY lo"
WHERE = "SELECT ts, tableoid::regclass::text FROM readings ORDER BY ts"
FLEET = """
INSERT INTO parks (id, name, city) VALUES ('p', 'P', 'C');
INSERT INTO stations (id, park_id, kind) VALUES ('s', 'p', 'stack');
"""


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def empty_db_name() -> Iterator[str]:
    """A database name that does not exist yet (migrate creates it)."""
    name = unique("pwpart")
    yield name
    drop_database(name)


def native(name: str, width: Width) -> str:
    """A database of its own, native partitions of `width`, whatever storage the test run uses."""
    url = db_url(name)
    result = migrate(url, timescale="off", partition=width)
    assert (result.storage, result.partition) == ("native", width)
    return url


def ensure(conn: psycopg.Connection[tuple[object, ...]], ts: str) -> object:
    """parkwatch_ensure_partition's answer for a timestamp literal."""
    row = conn.execute("SELECT parkwatch_ensure_partition(%s::timestamptz)", (ts,)).fetchone()
    assert row is not None
    return row[0]


def bounds(conn: psycopg.Connection[tuple[object, ...]]) -> dict[object, tuple[object, object]]:
    """Every partition's name and (lo, hi), as the database reads its bounds."""
    return {r[0]: (r[1], r[2]) for r in conn.execute(PARTS)}


def test_periods_in_python_match_the_migration() -> None:
    """ISO weeks begin on Monday 00:00 UTC; a day and a month at UTC midnight."""
    wed = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
    assert period_start(wed, "week") == utc(2026, 11, 30)
    assert period_start(wed, "day") == utc(2026, 12, 2)
    assert period_start(wed, "month") == utc(2026, 12, 1)
    assert next_period(utc(2026, 12, 1), "month") == utc(2027, 1, 1)
    assert next_period(utc(2026, 12, 28), "week") == utc(2027, 1, 4)
    # a local time is placed by its UTC instant
    assert period_start(datetime.fromisoformat("2026-12-07T07:00:00+08:00"), "week") == utc(2026, 11, 30)
    # ends under a week apart: their two weeks; further apart: every stamp's week
    assert period_starts({utc(2026, 12, 6, 23), utc(2026, 12, 7, 1)}, "week") == {utc(2026, 11, 30), utc(2026, 12, 7)}
    spread = {utc(2026, 1, 1), utc(2026, 1, 20), utc(2026, 3, 3)}
    assert period_starts(spread, "week") == {utc(2025, 12, 29), utc(2026, 1, 19), utc(2026, 3, 2)}
    assert period_starts(set(), "day") == set()


def test_week_partitions_are_iso_weeks(empty_db_name: str) -> None:
    """A week partition runs Monday to Monday (UTC) and is named by its ISO year and week."""
    url = native(empty_db_name, "week")
    with psycopg.connect(url, autocommit=True) as conn:
        now = datetime.now(UTC)
        iso = period_start(now, "week").isocalendar()
        assert ensure(conn, now.isoformat()) == f"readings_{iso.year}_w{iso.week:02d}"
        # 2027-01-01 (a Friday) is in ISO week 53 of 2026, which began on Monday 2026-12-28
        assert ensure(conn, "2027-01-01 12:00+00") == "readings_2026_w53"
        assert ensure(conn, "2021-01-03 23:59:59+00") == "readings_2020_w53"
        # Monday 08:00 in Beijing is still Sunday in UTC: the week before
        assert ensure(conn, "2021-01-04 07:59:59+08") == "readings_2020_w53"
        assert ensure(conn, "2021-01-04 08:00+08") == "readings_2021_w01"
        made = bounds(conn)
        assert made["readings_2026_w53"] == (utc(2026, 12, 28), utc(2027, 1, 4))
        assert made["readings_2021_w01"] == (utc(2021, 1, 4), utc(2021, 1, 11))
        # the empty month partitions 0002 made were remade as weeks
        assert not [name for name in made if len(str(name)) == len("readings_2026_12")]


def test_day_partitions(empty_db_name: str) -> None:
    """A day partition is a UTC day, named by its date."""
    url = native(empty_db_name, "day")
    with psycopg.connect(url, autocommit=True) as conn:
        assert ensure(conn, "2026-12-03 23:00+00") == "readings_2026_12_03"
        assert ensure(conn, "2026-12-03 23:00-02") == "readings_2026_12_04"
        assert bounds(conn)["readings_2026_12_04"] == (utc(2026, 12, 4), utc(2026, 12, 5))


def test_an_upgraded_month_database_keeps_its_months_and_goes_on_in_weeks(empty_db_name: str) -> None:
    """Migration 0020 on a database partitioned by month: the months with rows stay, queryable;
    weeks begin where the last month ends, never overlapping it; nothing lands in DEFAULT."""
    url = db_url(empty_db_name)
    with psycopg.connect(db_url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{empty_db_name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        # the database as 0001-0019 left it, month partitions and rows in them
        conn.execute(CREATE_MIGRATIONS_TABLE)
        conn.execute("SET parkwatch.storage = 'native'")
        for mig in migrations():
            if mig.version < 20:
                conn.execute(mig.sql.encode())
                conn.execute(INSERT_APPLIED, (mig.version, mig.name, mig.checksum))
        assert ensure(conn, "2026-03-15 00:00+00") == "readings_2026_03"
        conn.execute(
            "INSERT INTO readings (sid, pid, iv, ts, value) VALUES "
            "(1, 1, 0, '2026-03-10 00:00+00', 1), (1, 1, 0, '2026-03-31 23:59:59+00', 2)"
        )
    result = migrate(url, timescale="off", partition="week")
    assert [a for a in result.applied if a.startswith("0020")] == ["0020_readings_partition_width"]
    assert result.partition == "week"
    with psycopg.connect(url, autocommit=True) as conn:
        # a time a month partition covers: that month, not a week over it
        assert ensure(conn, "2026-03-20 00:00+00") == "readings_2026_03"
        # the week of 2026-03-30 begins in March: its April part is a partition of its own
        assert ensure(conn, "2026-04-01 12:00+00") == "readings_2026_w14"
        assert ensure(conn, "2026-04-07 00:00+00") == "readings_2026_w15"
        made = bounds(conn)
        assert [made[n] for n in ("readings_2026_03", "readings_2026_w14", "readings_2026_w15")] == [
            (utc(2026, 3, 1), utc(2026, 4, 1)),
            (utc(2026, 4, 1), utc(2026, 4, 6)),
            (utc(2026, 4, 6), utc(2026, 4, 13)),
        ]
        conn.execute(
            "INSERT INTO readings (sid, pid, iv, ts, value) VALUES "
            "(1, 1, 0, '2026-03-31 23:00+00', 3), (1, 1, 0, '2026-04-01 00:00+00', 4), "
            "(1, 1, 0, '2026-04-05 23:59:59+00', 5), (1, 1, 0, '2026-04-06 00:00+00', 6)"
        )
        where = conn.execute("SELECT value, tableoid::regclass::text FROM readings ORDER BY ts").fetchall()
        assert where == [
            (1.0, "readings_2026_03"),
            (3.0, "readings_2026_03"),
            (2.0, "readings_2026_03"),
            (4.0, "readings_2026_w14"),
            (5.0, "readings_2026_w14"),
            (6.0, "readings_2026_w15"),
        ]
        # this week's partition is a week: the empty month 0002 made for it was remade
        now = datetime.now(UTC)
        iso = period_start(now, "week").isocalendar()
        assert ensure(conn, now.isoformat()) == f"readings_{iso.year}_w{iso.week:02d}"


async def test_writes_across_a_week_boundary_land_in_their_weeks(empty_db_name: str) -> None:
    """The writer makes each week's partition on demand: a batch spanning Sunday to Monday, and one
    spread over months, land in their weeks; nothing in readings_default."""
    url = native(empty_db_name, "week")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FLEET)
        sid_row = conn.execute("SELECT sid FROM stations WHERE id = 's'").fetchone()
        pid_row = conn.execute("SELECT pid FROM parameters WHERE code = 'a21026'").fetchone()
    assert sid_row is not None and pid_row is not None
    sid, pid = int(str(sid_row[0])), int(str(pid_row[0]))
    received = datetime.now(UTC)
    sunday, monday = utc(2030, 6, 9, 23, 59), utc(2030, 6, 10, 0, 0)
    spread = [utc(2030, 1, 1), utc(2030, 2, 14, 12), utc(2030, 6, 11, 5)]
    store = Store(url)
    try:
        for stamps in ([sunday, monday], spread):
            await store.write(
                Batch(rows=[(sid, pid, 1, ts, 1.0, "N", received, None, None, None, None) for ts in stamps])
            )
    finally:
        await store.close()
    conn2 = await asyncpg.connect(url)
    try:
        where = [(r[0], r[1]) for r in await conn2.fetch(WHERE)]
    finally:
        await conn2.close()
    assert where == [
        (utc(2030, 1, 1), "readings_2030_w01"),
        (utc(2030, 2, 14, 12), "readings_2030_w07"),
        (sunday, "readings_2030_w23"),
        (monday, "readings_2030_w24"),
        (utc(2030, 6, 11, 5), "readings_2030_w24"),
    ]


@pytest.mark.parametrize(
    ("width", "names"),
    [
        ("day", [f"readings_2031_05_{d}" for d in range(14, 22)]),
        ("week", ["readings_2031_w20", "readings_2031_w21", "readings_2031_w22"]),
        ("month", ["readings_2031_05", "readings_2031_06", "readings_2031_07"]),
    ],
)
async def test_maintenance_keeps_partitions_ahead(empty_db_name: str, width: Width, names: list[str]) -> None:
    """The partitions job makes this period's partition and a few periods' ahead, of the width."""
    url = native(empty_db_name, width)
    conn = await asyncpg.connect(url)
    try:
        await ensure_partitions(conn, now=utc(2031, 5, 14, 9))
        made = [r["name"] for r in await conn.fetch(PARTS) if r["lo"] >= utc(2031, 5, 1) - timedelta(days=31)]
    finally:
        await conn.close()
    assert [n for n in made if n.startswith("readings_2031")] == names
