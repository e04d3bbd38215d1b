"""Broker identities from the registry: Mosquitto's password and ACL files, and the new credentials to hand out once.

Each station may publish only on its own readings topic and, with an MN, its own HJ 212 topic;
the ingest may read those and publish notices; the gateway may publish HJ 212 packets; nobody
else may do anything (docs/mqtt.md#station-identity). Passwords are generated here, kept only
hashed in the password file, and written in clear once, to credentials.json, for the operator to
hand out. Running again keeps every identity whose password is already in the file, so the
broker can reload (SIGHUP) without a single client losing its login.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from schemas.readings import GATEWAY_LEVEL, HJ212_LEVEL, READINGS_SUFFIX
from schemas.registry import read_registry

# The services' user names contain '@', which no station id may (schemas/registry.py
# ID_PATTERN): a station can never be given a service's rights by its name.
INGEST_USER = "parkwatch@ingest"
GATEWAY_USER = "parkwatch@gateway"
SERVICE_KEYS = {INGEST_USER: "ingest", GATEWAY_USER: "gateway"}

# 192 random bits: a password nobody guesses, whatever the hash's cost.
PASSWORD_BYTES = 24
# Mosquitto 2.0's own hash ($7$: PBKDF2-HMAC-SHA512, a 12-byte salt), with mosquitto_passwd's
# default iteration count: the broker hashes on every CONNECT, and with random passwords more
# rounds buy nothing against guessing.
HASH_ITERATIONS = 101
SALT_BYTES = 12

PASSWD = "passwd"  # noqa: S105 - a file name
ACL = "acl"
CREDENTIALS = "credentials.json"

STATIONS = "SELECT id, park_id, mn FROM stations ORDER BY id"


@dataclass(frozen=True)
class StationTopics:
    """What one station may publish on."""

    id: str
    park_id: str
    mn: str | None


@dataclass
class Outcome:
    """What a run changed: passwords issued (in clear, once), identities kept and removed."""

    issued: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A password-file entry's hash, in Mosquitto 2.0's $7$ form."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    return f"$7${HASH_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def read_passwd(path: Path) -> dict[str, str]:
    """The user → hash map of an existing password file (empty if absent)."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user and not line.startswith("#"):
            out[user] = hashed
    return out


def render_acl(prefix: str, stations: Iterable[StationTopics]) -> str:
    """The ACL: the services' rights, then each station's own topics; anything not granted is denied."""
    lines = [
        "# Written by `parkwatch broker-auth` from the station registry; regenerate rather than edit.",
        "# Mosquitto denies whatever is not granted here.",
        "",
        "# parkwatch serve / ingest: reads every station's data, publishes alert notices and the watchdog's state",
        f"user {INGEST_USER}",
        f"topic read {prefix}/+/+/{READINGS_SUFFIX}",
        f"topic read {prefix}/{HJ212_LEVEL}/+",
        f"topic read {prefix}/{GATEWAY_LEVEL}/events",
        f"topic write {prefix}/+/alerts",
        f"topic write {prefix}/+/alerts/+",
        f"topic write {prefix}/watchdog/+",
        "",
        "# parkwatch gateway: forwards HJ 212 packets of the loggers whose MN and password it checked",
        f"user {GATEWAY_USER}",
        f"topic write {prefix}/{HJ212_LEVEL}/+",
        f"topic write {prefix}/{GATEWAY_LEVEL}/events",
        f"topic write {prefix}/watchdog/+",
    ]
    for s in stations:
        lines += ["", f"user {s.id}", f"topic write {prefix}/{s.park_id}/{s.id}/{READINGS_SUFFIX}"]
        if s.mn:
            lines.append(f"topic write {prefix}/{HJ212_LEVEL}/{s.mn}")
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Write beside, then rename: a broker reloading at that moment reads the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.chmod(mode)  # O_CREAT's mode is filtered by the umask
    tmp.replace(path)


def generate(out: Path, prefix: str, stations: Sequence[StationTopics], *, rotate: Iterable[str] = ()) -> Outcome:
    """Write passwd, acl and credentials.json into `out` for the services and `stations`."""
    out.mkdir(parents=True, exist_ok=True)
    existing = read_passwd(out / PASSWD)
    rotate = set(rotate)
    wanted = [INGEST_USER, GATEWAY_USER, *(s.id for s in stations)]
    unknown = rotate - set(wanted)
    if unknown:
        raise ValueError(f"cannot rotate unknown identities: {', '.join(sorted(unknown))}")
    outcome = Outcome()
    entries: list[str] = []
    for user in wanted:
        if user in existing and user not in rotate:
            outcome.kept.append(user)
            entries.append(f"{user}:{existing[user]}")
            continue
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        outcome.issued[user] = password
        entries.append(f"{user}:{mosquitto_hash(password)}")
    outcome.removed = sorted(set(existing) - set(wanted))
    credentials: dict[str, object] = {"stations": {}}
    for user, password in outcome.issued.items():
        entry = {"username": user, "password": password}
        if user in SERVICE_KEYS:
            credentials[SERVICE_KEYS[user]] = entry
        else:
            credentials["stations"][user] = entry  # type: ignore[index]
    # The password file is readable by the broker's group only, the credentials by us alone.
    _write_atomically(out / PASSWD, "\n".join(entries) + "\n", 0o640)
    _write_atomically(out / ACL, render_acl(prefix, stations), 0o644)
    _write_atomically(out / CREDENTIALS, json.dumps(credentials, indent=2, ensure_ascii=False) + "\n", 0o600)
    return outcome


async def stations_from_database(url: str) -> list[StationTopics]:
    """The registered stations, as the running service knows them."""
    conn = await asyncpg.connect(url)
    try:
        return [StationTopics(r["id"], r["park_id"], r["mn"]) for r in await conn.fetch(STATIONS)]
    finally:
        await conn.close()


def stations_from_file(path: Path) -> list[StationTopics]:
    """The stations of a registry file (raises schemas.registry.RegistryFileError)."""
    return [StationTopics(s.id, s.park_id, s.mn) for s in read_registry(path).stations]
