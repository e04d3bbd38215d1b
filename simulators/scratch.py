"""Scratch databases for the benchmarks: dropped, re-created, migrated and given a fleet."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ingest.registry import load_registry_file
from schemas.migrate import PartitionWidth, migrate
from schemas.registry import RegistryFile


def with_db(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def drop(url: str) -> None:
    """Drop the database `url` names, if it exists, whoever is connected to it."""
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(with_db(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def recreate(url: str, *, timescale: str, registry: RegistryFile, partition: PartitionWidth = "week") -> None:
    """Drop the database `url` names, migrate it afresh (readings partitions `partition` wide) and load the registry."""
    await drop(url)
    await asyncio.to_thread(migrate, url, timescale=timescale, partition=partition)
    conn = await asyncpg.connect(url)
    try:
        await load_registry_file(conn, registry)
    finally:
        await conn.close()
