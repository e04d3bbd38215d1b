"""Principals: API keys and user accounts, their roles and scopes, stored hashed (docs/access.md)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A key is shown once; what the database keeps is its SHA-256. 32 random bytes are beyond any
# guessing, so a fast hash is enough (a slow one is for passwords people choose).
KEY_PREFIX = "pwk_"
KEY_SHOWN_CHARS = 12
# Argon2id with the library's defaults (RFC 9106's second recommended profile at the time of
# argon2-cffi 23+); rehashed at login when the defaults change.
_HASHER = PasswordHasher()
MIN_PASSWORD_CHARS = 10


class Role(StrEnum):
    """What a principal is, which fixes what it may do (PERMISSIONS) and the scope kinds it takes."""

    ADMIN = "admin"
    BUREAU = "bureau"
    OPERATOR = "operator"
    ENTERPRISE = "enterprise"
    INSPECTOR = "inspector"


class Permission(StrEnum):
    """A kind of change (or of privileged read) a route requires."""

    ALERT_ACK = "alerts.ack"
    ALERT_VERIFY = "alerts.verify"
    ALERT_RESOLVE = "alerts.resolve"
    ALERT_EXPLAIN = "alerts.explain"
    ALERT_REVIEW = "alerts.review"
    SILENCE = "silences.write"
    VOLUMES = "volumes.write"
    SOLID_WASTE = "solid_waste.write"
    ASSESSMENT_INPUTS = "assessment.write"
    EVALUATE = "evaluate"
    REPORTS_REFRESH = "reports.refresh"
    DEAD_LETTERS = "dead_letters.read"
    ACCESS_ADMIN = "access.admin"


_ALL = frozenset(Permission)
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _ALL,
    # bureau staff verify (核实) and review what operators explain, and report what no sensor measures
    Role.BUREAU: frozenset(
        {
            Permission.ALERT_ACK,
            Permission.ALERT_VERIFY,
            Permission.ALERT_RESOLVE,
            Permission.ALERT_REVIEW,
            Permission.SILENCE,
            Permission.ASSESSMENT_INPUTS,
            Permission.EVALUATE,
            Permission.DEAD_LETTERS,
            Permission.REPORTS_REFRESH,
        }
    ),
    # park operators receive, acknowledge and explain their park's alerts and report its volumes and waste
    Role.OPERATOR: frozenset(
        {
            Permission.ALERT_ACK,
            Permission.ALERT_RESOLVE,
            Permission.ALERT_EXPLAIN,
            Permission.SILENCE,
            Permission.VOLUMES,
            Permission.SOLID_WASTE,
            Permission.EVALUATE,
        }
    ),
    Role.ENTERPRISE: frozenset(
        {Permission.ALERT_ACK, Permission.ALERT_EXPLAIN, Permission.VOLUMES, Permission.EVALUATE}
    ),
    # inspectors read; their session runs as a role that cannot write at all
    Role.INSPECTOR: frozenset({Permission.EVALUATE}),
}

# The scope kinds each role takes; an administrator's scope is everything.
SCOPE_KINDS: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(),
    Role.BUREAU: frozenset({"province", "city"}),
    Role.OPERATOR: frozenset({"park"}),
    Role.ENTERPRISE: frozenset({"station"}),
    Role.INSPECTOR: frozenset({"province", "city", "park"}),
}


class AccessError(Exception):
    """A principal that cannot be made as asked; `code` is machine-readable."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class Scope:
    """One item of a principal's scope."""

    kind: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: an API key or a signed-in user, with its role and scope."""

    id: int
    kind: str
    name: str
    role: Role
    scopes: tuple[Scope, ...] = field(default=())
    # the session it signed in with (its stored hash), when it came by cookie: a long stream
    # checks that it still holds, so signing out ends it
    session: str | None = None

    def may(self, permission: Permission) -> bool:
        """Whether the role grants this permission."""
        return permission in PERMISSIONS[self.role]

    @property
    def sees_secrets(self) -> bool:
        """Station passwords and refused payloads are for administrators alone."""
        return self.role is Role.ADMIN

    @property
    def label(self) -> str:
        """How logs and the audit name it: `key:reader-1` or `user:li.wei`."""
        return f"{self.kind}:{self.name}"


INSERT_PRINCIPAL = """
INSERT INTO principals (kind, name, role, key_hash, key_prefix, password_hash, created_by, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id
"""
INSERT_SCOPE = "INSERT INTO access_scopes (principal_id, kind, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
SELECT_SCOPES = "SELECT kind, value FROM access_scopes WHERE principal_id = $1 ORDER BY kind, value"
SELECT_PRINCIPALS = """
SELECT p.id, p.kind, p.name, p.role, p.key_prefix, p.created_at, p.created_by, p.expires_at, p.revoked_at,
       p.last_used_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object('kind', s.kind, 'value', s.value) ORDER BY s.kind, s.value)
                 FROM access_scopes s WHERE s.principal_id = p.id), '[]') AS scopes
FROM principals p WHERE p.kind = $1 ORDER BY p.id
"""
REVOKE_PRINCIPAL = """
UPDATE principals SET revoked_at = now() WHERE kind = $1 AND (id::text = $2 OR name = $2 OR key_prefix = $2)
  AND revoked_at IS NULL
RETURNING id, name
"""
DELETE_SESSIONS = "DELETE FROM sessions WHERE principal_id = $1"
SET_PASSWORD = "UPDATE principals SET password_hash = $2 WHERE id = $1"  # noqa: S105 - SQL
SELECT_PARKS_EXIST = "SELECT array_agg(id) FROM parks WHERE id = ANY($1::text[])"
SELECT_CITIES_EXIST = "SELECT array_agg(DISTINCT city) FROM parks WHERE city = ANY($1::text[])"
SELECT_STATIONS_EXIST = "SELECT array_agg(id) FROM stations WHERE id = ANY($1::text[])"


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def hash_password(password: str) -> str:
    """An Argon2id PHC string."""
    return _HASHER.hash(password)


def password_matches(stored: str, password: str) -> bool:
    """Whether the password is the one hashed (in constant time as far as Argon2 goes)."""
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether the hash was made with parameters weaker than today's."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def check_scopes(role: Role, scopes: Sequence[Scope]) -> None:
    """Refuse a scope the role cannot take, or a role left without one."""
    allowed = SCOPE_KINDS[role]
    if role is Role.ADMIN:
        if scopes:
            raise AccessError("bad_scope", "an administrator sees everything; give no --park, --city or --station")
        return
    wrong = sorted({s.kind for s in scopes} - allowed)
    if wrong:
        raise AccessError(
            "bad_scope", f"a {role} takes scopes of kind {', '.join(sorted(allowed))}, not {', '.join(wrong)}"
        )
    if not scopes:
        hint = {"province": "--province", "city": "--city NAME", "park": "--park ID", "station": "--station ID"}
        raise AccessError("bad_scope", f"a {role} needs a scope: {' or '.join(hint[k] for k in sorted(allowed))}")


async def _check_exist(conn: asyncpg.Connection, scopes: Sequence[Scope]) -> None:
    for kind, sql in (("park", SELECT_PARKS_EXIST), ("city", SELECT_CITIES_EXIST), ("station", SELECT_STATIONS_EXIST)):
        wanted = sorted({s.value for s in scopes if s.kind == kind})
        if not wanted:
            continue
        found = set(await conn.fetchval(sql, wanted) or [])
        missing = [w for w in wanted if w not in found]
        if missing:
            raise AccessError("unknown_scope", f"no such {kind}: {', '.join(missing)}")


async def _create(
    conn: asyncpg.Connection,
    *,
    kind: str,
    name: str,
    role: Role,
    scopes: Sequence[Scope],
    created_by: str,
    expires_at: datetime | None,
    key_hash: str | None = None,
    key_prefix: str | None = None,
    password_hash: str | None = None,
) -> int:
    check_scopes(role, scopes)
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)  # a time without an offset is UTC's
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise AccessError("bad_expiry", f"an expiry in the past makes a dead credential: {expires_at.isoformat()}")
    async with conn.transaction():
        await _check_exist(conn, scopes)
        try:
            pid: int = await conn.fetchval(
                INSERT_PRINCIPAL, kind, name, role.value, key_hash, key_prefix, password_hash, created_by, expires_at
            )
        except asyncpg.UniqueViolationError:
            raise AccessError("exists", f"a user named {name!r} exists already") from None
        except asyncpg.CheckViolationError:
            raise AccessError("bad_name", "a name is 1 to 64 characters") from None
        await conn.executemany(INSERT_SCOPE, [(pid, s.kind, s.value) for s in scopes])
    return pid


async def create_key(
    conn: asyncpg.Connection,
    *,
    name: str,
    role: Role,
    scopes: Sequence[Scope],
    created_by: str,
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """A new API key: its id, and the key itself, which is never stored and cannot be shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    pid = await _create(
        conn, kind="key", name=name, role=role, scopes=scopes, created_by=created_by, expires_at=expires_at,
        key_hash=hash_key(key), key_prefix=key[:KEY_SHOWN_CHARS],
    )  # fmt: skip
    return pid, key


async def create_user(
    conn: asyncpg.Connection,
    *,
    name: str,
    password: str,
    role: Role,
    scopes: Sequence[Scope],
    created_by: str,
    expires_at: datetime | None = None,
) -> int:
    """A new user account with an Argon2id password hash."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccessError("weak_password", f"a password has at least {MIN_PASSWORD_CHARS} characters")
    return await _create(
        conn, kind="user", name=name, role=role, scopes=scopes, created_by=created_by, expires_at=expires_at,
        password_hash=hash_password(password),
    )  # fmt: skip


async def set_password(conn: asyncpg.Connection, principal_id: int, password: str) -> None:
    """Replace a user's password; their sessions end."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccessError("weak_password", f"a password has at least {MIN_PASSWORD_CHARS} characters")
    async with conn.transaction():
        await conn.execute(SET_PASSWORD, principal_id, hash_password(password))
        await conn.execute(DELETE_SESSIONS, principal_id)


async def list_principals(conn: asyncpg.Connection, kind: str) -> list[dict[str, Any]]:
    """Keys or users, without secrets."""
    rows = await conn.fetch(SELECT_PRINCIPALS, kind)
    out = []
    for r in rows:
        item = dict(r)
        item["scopes"] = _json_list(item["scopes"])
        out.append(item)
    return out


def _json_list(value: Any) -> list[dict[str, str]]:
    return list(orjson.loads(value)) if isinstance(value, str) else list(value)


async def revoke(conn: asyncpg.Connection, kind: str, ident: str) -> list[tuple[int, str]]:
    """Revoke keys or users named by id, name or key prefix; their sessions end. Returns what was revoked."""
    async with conn.transaction():
        rows = await conn.fetch(REVOKE_PRINCIPAL, kind, ident)
        for r in rows:
            await conn.execute(DELETE_SESSIONS, r["id"])
    return [(r["id"], r["name"]) for r in rows]


async def load_scopes(conn: asyncpg.Connection, principal_id: int) -> tuple[Scope, ...]:
    """A principal's scope items."""
    return tuple(Scope(r["kind"], r["value"]) for r in await conn.fetch(SELECT_SCOPES, principal_id))
