"""Versioned SQL migrations: create the database if missing, apply each file once, in order."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
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
UPSERT_PARAMETER = """
INSERT INTO parameters (code, medium, name, name_zh, unit, ambient_unit, old_code, in_catalogue)
VALUES (%s, %s, %s, %s, %s, %s, %s, true)
ON CONFLICT (code) DO UPDATE SET
    medium = EXCLUDED.medium, name = EXCLUDED.name, name_zh = EXCLUDED.name_zh,
    unit = EXCLUDED.unit, ambient_unit = EXCLUDED.ambient_unit, old_code = EXCLUDED.old_code,
    in_catalogue = true
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


@dataclass(frozen=True)
class MigrateResult:
    """What one migrate run did."""

    created_database: bool
    applied: list[str]
    storage: str


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


def _choose_storage(conn: psycopg.Connection[tuple[object, ...]], timescale: str) -> str:
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
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        if timescale == "on":
            raise MigrationError(2, "readings", f"TimescaleDB required but unavailable: {exc}") from exc
        logger.info("TimescaleDB not available (%s); using native partitioning", exc.sqlstate)
        return "native"
    return "timescaledb"


def sync_parameters(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Upsert the code tables of schemas/data into the parameters table."""
    params = list(catalog().by_code.values())
    with conn.cursor() as cur:
        cur.executemany(
            UPSERT_PARAMETER,
            [(p.code, p.medium, p.name, p.name_zh, p.unit, p.ambient_unit or None, p.old_code or None) for p in params],
        )
    return len(params)


def migrate(database_url: str, *, timescale: str = "auto") -> MigrateResult:
    """Create the database if needed, apply pending migrations, refresh reference data."""
    created = ensure_database(database_url)
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            conn.execute(CREATE_MIGRATIONS_TABLE)
            done = {int(v): str(c) for v, c in conn.execute(SELECT_APPLIED).fetchall()}
            storage = _choose_storage(conn, timescale)
            conn.execute(sql.SQL("SET parkwatch.storage = {}").format(sql.Literal(storage)))
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
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return MigrateResult(created_database=created, applied=applied, storage=storage)
