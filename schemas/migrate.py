"""Versioned SQL migrations: create the database if missing, apply each file once, in order."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from schemas.parameters import catalog

logger = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Serialises concurrent `parkwatch migrate` runs (two deploy hooks at once); any constant works
# as long as nothing else in the database uses it.
_ADVISORY_LOCK_KEY = 0x70617277  # "parw"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version, checksum FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
SELECT_STORAGE = "SELECT value FROM parkwatch_meta WHERE key = 'storage'"
SELECT_PARTITION = "SELECT value FROM parkwatch_meta WHERE key = 'readings_partition'"
# Run on a connection of its own (probe_timescaledb): without timescaledb in
# shared_preload_libraries it is a FATAL that closes the connection it runs on.
CREATE_TIMESCALEDB = "CREATE EXTENSION IF NOT EXISTS timescaledb"
NOT_PRELOADED = (
    "TimescaleDB is installed but not loaded: CREATE EXTENSION timescaledb closed the connection ({detail}); "
    "add timescaledb to shared_preload_libraries in postgresql.conf and restart PostgreSQL"
)
# An update, then an insert of what is missing, rather than INSERT … ON CONFLICT DO UPDATE:
# that draws a parameter id (a smallint sequence) for every code at every migrate, and a few
# hundred deploys would use the ids up (migration 0022).
UPDATE_PARAMETER = """
UPDATE parameters SET medium = %(medium)s, name = %(name)s, name_zh = %(name_zh)s, unit = %(unit)s,
    ambient_unit = %(ambient_unit)s, old_code = %(old_code)s, in_catalogue = true
WHERE code = %(code)s
"""
INSERT_PARAMETER = """
INSERT INTO parameters (code, medium, name, name_zh, unit, ambient_unit, old_code, in_catalogue)
SELECT %(code)s, %(medium)s, %(name)s, %(name_zh)s, %(unit)s, %(ambient_unit)s, %(old_code)s, true
WHERE NOT EXISTS (SELECT 1 FROM parameters WHERE code = %(code)s)
ON CONFLICT (code) DO NOTHING
"""


class MigrationError(Exception):
    """A migration could not be applied; carries the version and the database's message."""

    def __init__(self, version: int, name: str, detail: str) -> None:
        self.version = version
        self.name = name
        self.detail = detail
        super().__init__(f"migration {version:04d}_{name} failed: {detail}")


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file of schemas/migrations."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """Content hash, to notice a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


PartitionWidth = Literal["day", "week", "month"]


@dataclass(frozen=True)
class MigrateResult:
    """What one migrate run did."""

    created_database: bool
    applied: list[str]
    storage: str
    partition: str = "month"  # the readings partitions' width (docs/storage.md#partitions)


def migrations() -> list[Migration]:
    """The migration files shipped in the package, in version order."""
    found = []
    for entry in resources.files("schemas").joinpath("migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(0, "duplicate", f"two migration files share a version: {versions}")
    return found


def _maintenance_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/postgres"))


def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist; True when it was created."""
    name = urlsplit(database_url).path.strip("/")
    with psycopg.connect(_maintenance_url(database_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # created by a concurrent run
        logger.info("created database %s", name)
        return True


@dataclass(frozen=True)
class ProbeFailure:
    """Why CREATE EXTENSION timescaledb did not work; `not_preloaded` when it closed the connection."""

    message: str
    not_preloaded: bool


def probe_timescaledb(database_url: str, statement: str = CREATE_TIMESCALEDB) -> ProbeFailure | None:
    """Create the TimescaleDB extension on a connection of its own; None when it worked.

    Its own connection, because with the extension's files installed but the library not in
    shared_preload_libraries (the usual state right after installing the package), CREATE
    EXTENSION is a FATAL that closes the connection: the migrate connection must survive it.
    Only the statement's failure is an answer; failing to connect at all raises, as any other
    connection failure of migrate does.
    """
    with psycopg.connect(database_url, autocommit=True) as probe:
        try:
            probe.execute(statement)
        except psycopg.Error as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if probe.broken or exc.diag.severity_nonlocalized == "FATAL":
                return ProbeFailure(NOT_PRELOADED.format(detail=detail), not_preloaded=True)
            return ProbeFailure(f"CREATE EXTENSION timescaledb failed ({exc.sqlstate}: {detail})", not_preloaded=False)
    return None


def _choose_storage(conn: psycopg.Connection[tuple[object, ...]], database_url: str, timescale: str) -> str:
    """'timescaledb' when the extension can be used (and is wanted), else 'native'."""
    try:
        row = conn.execute(SELECT_STORAGE).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        row = None
    if row is not None:
        return str(row[0])  # decided when the readings table was created; never switch
    if timescale == "off":
        return "native"
    failure = probe_timescaledb(database_url, CREATE_TIMESCALEDB)
    if failure is None:
        return "timescaledb"
    if timescale == "on":
        raise MigrationError(2, "readings", f"TimescaleDB required but unavailable: {failure.message}")
    # Installed but not loaded is most likely a step the operator missed: a warning, not a note.
    level = logging.WARNING if failure.not_preloaded else logging.INFO
    logger.log(level, "%s; using native partitioning", failure.message)
    return "native"


def _keep_partition(conn: psycopg.Connection[tuple[object, ...]], wanted: str) -> str:
    """The width the database's readings are partitioned by; warns when the setting asks another."""
    row = conn.execute(SELECT_PARTITION).fetchone()
    kept = str(row[0]) if row is not None else "month"
    if kept != wanted:
        # Decided once (migration 0020), like the storage: docs/storage.md#partitions says how
        # to change it by hand.
        logger.warning(
            "readings partitions stay %s-wide (decided when the database was migrated); "
            "PARKWATCH_READINGS_PARTITION=%s applies to new databases only",
            kept,
            wanted,
        )
    return kept


def sync_parameters(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Upsert the code tables of schemas/data into the parameters table."""
    params = list(catalog().by_code.values())
    rows = [
        {
            "code": p.code,
            "medium": p.medium,
            "name": p.name,
            "name_zh": p.name_zh,
            "unit": p.unit,
            "ambient_unit": p.ambient_unit or None,
            "old_code": p.old_code or None,
        }
        for p in params
    ]
    with conn.cursor() as cur:
        cur.executemany(UPDATE_PARAMETER, rows)
        cur.executemany(INSERT_PARAMETER, rows)
    return len(params)


def migrate(database_url: str, *, timescale: str = "auto", partition: PartitionWidth = "week") -> MigrateResult:
    """Create the database if needed, apply pending migrations, refresh reference data.

    `partition` is the readings partitions' width for a database that has none yet
    (PARKWATCH_READINGS_PARTITION).
    """
    created = ensure_database(database_url)
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            conn.execute(CREATE_MIGRATIONS_TABLE)
            done = {int(v): str(c) for v, c in conn.execute(SELECT_APPLIED).fetchall()}
            storage = _choose_storage(conn, database_url, timescale)
            conn.execute(sql.SQL("SET parkwatch.storage = {}").format(sql.Literal(storage)))
            conn.execute(sql.SQL("SET parkwatch.readings_partition = {}").format(sql.Literal(partition)))
            for mig in migrations():
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        logger.warning(
                            "migration %04d_%s changed after it was applied; not re-applied",
                            mig.version,
                            mig.name,
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(mig.sql.encode())
                        conn.execute(INSERT_APPLIED, (mig.version, mig.name, mig.checksum))
                except psycopg.Error as exc:
                    raise MigrationError(mig.version, mig.name, str(exc).strip()) from exc
                applied.append(f"{mig.version:04d}_{mig.name}")
                logger.info("applied migration %04d_%s", mig.version, mig.name)
            with conn.transaction():
                sync_parameters(conn)
            kept = _keep_partition(conn, partition)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return MigrateResult(created_database=created, applied=applied, storage=storage, partition=kept)
