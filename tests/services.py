"""Reaching the shared PostgreSQL and Mosquitto, and private databases per test."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal, cast
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

PG_ADMIN_URL = os.environ.get("PARKWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# How the test databases store readings (PARKWATCH_TIMESCALE's values): off, native partitions,
# unless a TimescaleDB server is configured (docs/testing.md#against-timescaledb).
_TIMESCALE = os.environ.get("PARKWATCH_TEST_TIMESCALE", "off")
if _TIMESCALE not in ("auto", "on", "off"):
    raise RuntimeError(f"PARKWATCH_TEST_TIMESCALE must be auto, on or off, not {_TIMESCALE!r}")
TIMESCALE = cast(Literal["auto", "on", "off"], _TIMESCALE)
MQTT_HOST = os.environ.get("PARKWATCH_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("PARKWATCH_TEST_MQTT_PORT", "1883"))


def db_url(name: str) -> str:
    """URL of a database on the shared server."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def require_services() -> None:
    """Fail loudly (never skip) when the shared services are down; .ci/run starts them."""
    problems = []
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {PG_ADMIN_URL}: {exc}")
    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=3):
            pass
    except OSError as exc:
        problems.append(f"Mosquitto at {MQTT_HOST}:{MQTT_PORT}: {exc}")
    if problems:
        raise RuntimeError(
            "the tests need the real services; start them with `bash .ci/run` or deploy/quickstart.sh:\n  "
            + "\n  ".join(problems)
        )


def create_database(name: str, *, template: str | None = None) -> str:
    """Create a database (optionally from a template) and return its URL."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return db_url(name)


def drop_database(name: str) -> None:
    """Drop a database, disconnecting whoever is still in it."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def freeze_template(name: str) -> None:
    """Make a database a template nobody connects to, so that copying it never finds a session in it.

    TimescaleDB's background scheduler connects to every database that has the extension, and
    CREATE DATABASE … TEMPLATE fails while anyone is connected to the template. Its launcher
    leaves templates alone; no new connection is allowed, and those already there are ended.
    """
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def drop_template(name: str) -> None:
    """Drop a database freeze_template made (a template cannot be dropped as it is)."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
    drop_database(name)


def via(url: str, host: str, port: int) -> str:
    """The same database URL (user, database, options), reaching the server at host:port instead."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}:{port}" if user else f"{host}:{port}"))


def unique(prefix: str) -> str:
    """A name no other test (or parallel run) uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
