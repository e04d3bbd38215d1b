"""Migrations apply once to an empty database, re-apply as a no-op, choose the storage and partition readings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import schemas.migrate
from ingest.batch import Batch
from ingest.store import Store
from schemas.migrate import MigrationError, migrate, migrations, probe_timescaledb
from tests.helpers import run_cli
from tests.services import TIMESCALE, create_database, db_url, drop_database, unique


@pytest.fixture
def empty_db_name() -> Iterator[str]:
    """A database name that does not exist yet (migrate creates it)."""
    name = unique("pwmig")
    yield name
    drop_database(name)


def test_migrate_creates_applies_and_reapplies_as_noop(empty_db_name: str) -> None:
    """First run creates the database and applies every migration; the second applies none."""
    url = db_url(empty_db_name)
    first = migrate(url, timescale="off")
    assert first.created_database is True
    assert first.applied == [f"{m.version:04d}_{m.name}" for m in migrations()]
    assert first.storage == "native"
    with psycopg.connect(url) as conn:
        drawn = conn.execute("SELECT last_value FROM parameters_pid_seq").fetchone()
    second = migrate(url, timescale="off")
    assert second.created_database is False
    assert second.applied == []
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [m.version for m in migrations()]
        assert conn.execute("SELECT value FROM parkwatch_meta WHERE key = 'storage'").fetchone() == ("native",)
        # the parameter catalogue is seeded (and re-seeding did not duplicate it)
        assert conn.execute("SELECT count(*) FROM parameters WHERE code = 'w01018'").fetchone() == (1,)
        # re-seeding drew no parameter id (a smallint sequence: migration 0022)
        assert conn.execute("SELECT last_value FROM parameters_pid_seq").fetchone() == drawn


def test_cli_migrate_twice(empty_db_name: str) -> None:
    """`parkwatch migrate` is safe to run twice and says so."""
    runs = [run_cli("migrate", env={"PARKWATCH_DATABASE_URL": db_url(empty_db_name)}) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "created database" in runs[0].stdout
    assert "already up to date" in runs[1].stdout


def test_months_are_partitioned_and_nothing_fails_without_a_partition(empty_db_name: str) -> None:
    """Readings go to their month's partition; the default partition catches what has none."""
    url = db_url(empty_db_name)
    assert migrate(url, timescale="off", partition="month").partition == "month"
    with psycopg.connect(url, autocommit=True) as conn:
        parts = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'readings_2%'")}
        now = datetime.now(UTC)
        assert f"readings_{now:%Y_%m}" in parts
        assert conn.execute("SELECT parkwatch_ensure_partition('2003-07-09 12:00+08')").fetchone() == (
            "readings_2003_07",
        )
        conn.execute("INSERT INTO readings (sid, pid, iv, ts, value) VALUES (1, 1, 0, '2003-07-31 23:30+00', 1.0)")
        # no partition for 2004-02: the row lands in the default partition instead of failing
        conn.execute("INSERT INTO readings (sid, pid, iv, ts, value) VALUES (1, 1, 0, '2004-02-10 00:00+00', 2.0)")
        where = dict(conn.execute("SELECT tableoid::regclass::text, value FROM readings").fetchall())
        assert where == {"readings_2003_07": 1.0, "readings_default": 2.0}
        # and that month's partition can then not be created over those rows: reported, not raised
        assert conn.execute("SELECT parkwatch_ensure_partition('2004-02-01 00:00+00')").fetchone() == (None,)


def test_the_width_is_kept_once_decided(empty_db_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """A later migrate asking another width keeps the database's, and says so."""
    url = db_url(empty_db_name)
    assert migrate(url, timescale="off", partition="day").partition == "day"
    with caplog.at_level(logging.WARNING, logger="schemas.migrate"):
        assert migrate(url, timescale="off", partition="week").partition == "day"
    assert "readings partitions stay day-wide" in caplog.text
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM parkwatch_meta WHERE key = 'readings_partition'").fetchone() == ("day",)


def test_missing_database_server_is_a_clear_error() -> None:
    """migrate against a port with no server fails with the CLI's one-line message and status 1."""
    result = run_cli("migrate", env={"PARKWATCH_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"})
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr


TIMESCALE_STUBS = """
CREATE TABLE stub_calls (fn text, args text);
CREATE FUNCTION create_hypertable(relation regclass, time_column_name name, chunk_time_interval interval)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO stub_calls VALUES ('create_hypertable', relation::text || ' ' || time_column_name || ' ' || chunk_time_interval)
$$;
CREATE FUNCTION set_chunk_time_interval(hypertable regclass, chunk_time_interval interval)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO stub_calls VALUES ('set_chunk_time_interval', hypertable::text || ' ' || chunk_time_interval)
$$;
"""


async def test_timescale_branch_with_stubbed_extension(empty_db_name: str) -> None:
    """The TimescaleDB branch of the migrations runs and leaves a table the writer can use.

    TimescaleDB has no package on this machine, so create_hypertable is a stub that records its
    call; what is checked is our SQL: a plain table with the key, no month partitions, the
    storage mode recorded, and the writer's COPY and idempotent paths working on it.
    """
    url = create_database(empty_db_name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TIMESCALE_STUBS)
        conn.execute("SET parkwatch.storage = 'timescaledb'")
        conn.execute("SET parkwatch.readings_partition = 'day'")
        for mig in migrations():
            conn.execute(mig.sql.encode())
        # 0002 makes 7-day chunks; 0020 sets the configured width for the chunks to come
        assert conn.execute("SELECT fn, args FROM stub_calls").fetchall() == [
            ("create_hypertable", "readings ts 7 days"),
            ("set_chunk_time_interval", "readings 1 day"),
        ]
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'readings'").fetchone() == ("r",)
        assert conn.execute("SELECT value FROM parkwatch_meta WHERE key = 'storage'").fetchone() == ("timescaledb",)
        assert conn.execute("SELECT parkwatch_ensure_partition(now())").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'readings_2%'").fetchone() == (0,)
        conn.execute("INSERT INTO parks (id, name, city) VALUES ('p', 'P', 'C')")
        conn.execute("INSERT INTO stations (id, park_id, kind) VALUES ('s', 'p', 'stack')")
        conn.execute("INSERT INTO parameters (pid, code) VALUES (1, 'a21026'), (2, 'a21002')")
    now = datetime.now(UTC)
    store = Store(url)
    try:
        first = await store.write(
            Batch(
                rows=[
                    (1, 1, 0, now, 1.0, "N", now, None, None, None, None),
                    (1, 2, 0, now, 2.0, "N", now, None, None, None, None),
                ]
            )
        )
        again = await store.write(
            Batch(
                rows=[
                    (1, 1, 0, now, 1.0, "N", now, None, None, None, None),
                    (1, 2, 0, now, 2.5, "N", now, None, None, None, None),
                ]
            )
        )
    finally:
        await store.close()
    assert (first.path, first.new) == ("copy", 2)
    assert (again.path, again.new, again.duplicates, again.revisions) == ("staging", 0, 2, 1)


# Ends its own session with a FATAL, as CREATE EXTENSION timescaledb does when the extension's
# files are installed but the library is not in shared_preload_libraries: the server closes the
# connection the statement ran on. It stands in for that statement where TimescaleDB is absent.
SELF_TERMINATE = "SELECT pg_terminate_backend(pg_backend_pid())"


def test_a_probe_that_loses_its_connection_names_shared_preload_libraries(empty_db_name: str) -> None:
    """The probe's own connection is closed by a FATAL; the caller's connection is untouched."""
    url = create_database(empty_db_name)
    with psycopg.connect(url, autocommit=True) as main:
        failure = probe_timescaledb(url, SELF_TERMINATE)
        assert failure is not None and failure.not_preloaded
        assert "shared_preload_libraries" in failure.message
        assert "terminating connection" in failure.message
        assert main.execute("SELECT 1").fetchone() == (1,)
        # an ordinary error is reported as such, with its SQLSTATE
        other = probe_timescaledb(url, "SELECT 1 / 0")
        assert other is not None and not other.not_preloaded and "22012" in other.message


def test_auto_falls_back_to_native_when_create_extension_closes_the_connection(
    empty_db_name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`timescale=auto`: the FATAL ends the probe alone; migrate goes on, native, and says why."""
    monkeypatch.setattr(schemas.migrate, "CREATE_TIMESCALEDB", SELF_TERMINATE)
    url = db_url(empty_db_name)
    with caplog.at_level(logging.INFO, logger="schemas.migrate"):
        result = migrate(url, timescale="auto")
    assert result.storage == "native"
    assert result.applied == [f"{m.version:04d}_{m.name}" for m in migrations()]
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "shared_preload_libraries" in warning[0].getMessage()
    assert "using native partitioning" in warning[0].getMessage()


def test_on_refuses_with_the_reason_when_create_extension_closes_the_connection(
    empty_db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`timescale=on`: a MigrationError naming shared_preload_libraries, not 'the connection is closed'."""
    monkeypatch.setattr(schemas.migrate, "CREATE_TIMESCALEDB", SELF_TERMINATE)
    with pytest.raises(MigrationError, match="shared_preload_libraries") as raised:
        migrate(db_url(empty_db_name), timescale="on")
    assert "connection is closed" not in str(raised.value)


@pytest.mark.skipif(
    TIMESCALE == "off", reason="needs a TimescaleDB server and PARKWATCH_TEST_TIMESCALE=on (docs/testing.md)"
)
def test_timescaledb_chunks_follow_the_partition_width(empty_db_name: str) -> None:
    """On TimescaleDB: a hypertable whose chunks are the configured width, with no index but the key."""
    url = db_url(empty_db_name)
    result = migrate(url, timescale=TIMESCALE, partition="month")
    if TIMESCALE == "on":
        assert result.storage == "timescaledb"
    if result.storage != "timescaledb":
        return  # auto, and the server has no usable TimescaleDB: the native tests cover it
    with psycopg.connect(url, autocommit=True) as conn:
        interval = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'readings'"
        ).fetchone()
        assert interval == (timedelta(days=30),)
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'readings'").fetchall()
        assert indexes == [("readings_pkey",)]
        assert conn.execute("SELECT parkwatch_ensure_partition(now())").fetchone() == (None,)
        # compressed after two chunks (where the licence allows compression at all)
        policies = conn.execute(
            "SELECT config->>'compress_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'"
        ).fetchall()
        assert policies in ([], [("60 days",)])
