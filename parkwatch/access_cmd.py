"""`parkwatch keys` and `parkwatch users`: API keys and user accounts from the command line (docs/access.md)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import asyncpg
import orjson

from api.access import write_audit
from api.principals import (
    AccessError,
    Role,
    Scope,
    create_key,
    create_user,
    list_principals,
    revoke,
    set_password,
)

EXIT_REFUSED = 2
SELECT_USER_ID = "SELECT id FROM principals WHERE kind = 'user' AND name = $1 AND revoked_at IS NULL"


def add_scope_arguments(p: argparse.ArgumentParser) -> None:
    """--role and the scope options, shared by keys create and users add."""
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--province", action="store_true", help="the whole province (bureau, inspector)")
    p.add_argument("--city", action="append", default=[], metavar="NAME", help="a city (bureau, inspector); repeat")
    p.add_argument("--park", action="append", default=[], metavar="ID", help="a park (operator, inspector); repeat")
    p.add_argument("--station", action="append", default=[], metavar="ID", help="a station (enterprise); repeat")
    p.add_argument("--expires", metavar="DAYS|DATE", help="days from now, or an ISO date or time")


def add_arguments(keys: argparse.ArgumentParser, users: argparse.ArgumentParser) -> None:
    """The grammar of `parkwatch keys ...` and `parkwatch users ...`."""
    ksub = keys.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create", help="a new API key, printed once")
    kc.add_argument("--name", help="a label to know it by (default: role and date)")
    add_scope_arguments(kc)
    kc.add_argument("--json", action="store_true", help='print {"key": ..., "id": ..., ...}')
    kl = ksub.add_parser("list", help="keys, without the keys themselves")
    kl.add_argument("--json", action="store_true")
    kr = ksub.add_parser("revoke", help="revoke a key at once (by id, label or the prefix a listing shows)")
    kr.add_argument("ident")

    usub = users.add_subparsers(dest="action", required=True)
    ua = usub.add_parser("add", help="a new user account for the dashboard")
    ua.add_argument("name")
    add_scope_arguments(ua)
    ua.add_argument("--password-stdin", action="store_true", help="read the password from stdin (else asked)")
    ua.add_argument("--json", action="store_true")
    ul = usub.add_parser("list", help="user accounts")
    ul.add_argument("--json", action="store_true")
    up = usub.add_parser("passwd", help="set a user's password; their sessions end")
    up.add_argument("name")
    up.add_argument("--password-stdin", action="store_true")
    ud = usub.add_parser("disable", help="close an account at once; its sessions end")
    ud.add_argument("name")


def _scopes(args: argparse.Namespace) -> list[Scope]:
    out = [Scope("province")] if args.province else []
    out += [Scope("city", c) for c in args.city]
    out += [Scope("park", p) for p in args.park]
    out += [Scope("station", s) for s in args.station]
    return out


def _expires(text: str | None) -> datetime | None:
    if text is None:
        return None
    if text.isdigit():
        return datetime.now(UTC) + timedelta(days=int(text))
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise AccessError("bad_expiry", f"--expires is days or an ISO date, not {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _cli_label() -> str:
    try:
        who = os.getlogin()
    except OSError:
        who = getpass.getuser()
    return f"cli:{who}"


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccessError("password_mismatch", "the two passwords differ")
    return first


def _jsonable(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()}


async def _run(database_url: str, args: argparse.Namespace, out: TextIO) -> int:
    conn = await asyncpg.connect(database_url)
    label = _cli_label()
    try:
        if args.command == "keys":
            return await _keys(conn, args, out, label)
        return await _users(conn, args, out, label)
    finally:
        await conn.close()


async def audit_cli(
    conn: asyncpg.Connection, action: str, target: str, detail: dict[str, Any], label: str | None = None
) -> None:
    """Record a change made from the command line, as `cli:<login>` from `local`."""
    await write_audit(
        conn, principal=None, label=label or _cli_label(), action=action, target=target, detail=detail,
        address="local", status=0,
    )  # fmt: skip


async def _audit(conn: asyncpg.Connection, label: str, action: str, target: str, detail: dict[str, Any]) -> None:
    await audit_cli(conn, action, target, detail, label)


async def _keys(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO, label: str) -> int:
    if args.action == "create":
        role = Role(args.role)
        name = args.name or f"{role.value}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        scopes = _scopes(args)
        pid, key = await create_key(
            conn, name=name, role=role, scopes=scopes, created_by=label, expires_at=_expires(args.expires)
        )
        await _audit(conn, label, "keys create", f"key:{name}", {"id": pid, "role": role.value})
        row = next(k for k in await list_principals(conn, "key") if k["id"] == pid)
        if args.json:
            doc = {"key": key, **_jsonable({k: row[k] for k in ("id", "name", "role", "scopes", "expires_at")})}
            out.write(orjson.dumps(doc).decode() + "\n")
        else:
            out.write(f"{key}\n")
            print(f"key {pid} ({name}, {role.value}) created; it is shown this once", file=sys.stderr)
        return 0
    if args.action == "list":
        rows = await list_principals(conn, "key")
        for r in rows:
            if args.json:
                out.write(orjson.dumps(_jsonable({**r, "prefix": r.pop("key_prefix")})).decode() + "\n")
            else:
                state = "revoked" if r["revoked_at"] else "live"
                scope = ",".join(f"{s['kind']}:{s['value']}" if s["value"] else s["kind"] for s in r["scopes"]) or "all"
                used = r["last_used_at"].isoformat(timespec="seconds") if r["last_used_at"] else "never"
                out.write(
                    f"{r['id']:>5}  {r['key_prefix']}…  {r['name']:<24} {r['role']:<10} {scope:<30} {state:<8} {used}\n"
                )
        return 0
    done = await revoke(conn, "key", args.ident)
    if not done:
        print(f"parkwatch keys revoke: no live key {args.ident!r}", file=sys.stderr)
        return 1
    for pid, name in done:
        await _audit(conn, label, "keys revoke", f"key:{name}", {"id": pid})
        out.write(f"revoked key {pid} ({name})\n")
    return 0


async def _users(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO, label: str) -> int:
    if args.action == "add":
        role = Role(args.role)
        pid = await create_user(
            conn, name=args.name, password=_password(args), role=role, scopes=_scopes(args), created_by=label,
            expires_at=_expires(args.expires),
        )  # fmt: skip
        await _audit(conn, label, "users add", f"user:{args.name}", {"id": pid, "role": role.value})
        if args.json:
            out.write(orjson.dumps({"id": pid, "name": args.name, "role": role.value}).decode() + "\n")
        else:
            out.write(f"user {args.name} ({role.value}) created\n")
        return 0
    if args.action == "list":
        for r in await list_principals(conn, "user"):
            if args.json:
                out.write(orjson.dumps(_jsonable(r)).decode() + "\n")
            else:
                state = "closed" if r["revoked_at"] else "open"
                scope = ",".join(f"{s['kind']}:{s['value']}" if s["value"] else s["kind"] for s in r["scopes"]) or "all"
                out.write(f"{r['id']:>5}  {r['name']:<24} {r['role']:<10} {scope:<30} {state}\n")
        return 0
    if args.action == "passwd":
        pid = await conn.fetchval(SELECT_USER_ID, args.name)
        if pid is None:
            print(f"parkwatch users passwd: no open account {args.name!r}", file=sys.stderr)
            return 1
        await set_password(conn, pid, _password(args))
        await _audit(conn, label, "users passwd", f"user:{args.name}", {"id": pid})
        out.write(f"password of {args.name} set; their sessions ended\n")
        return 0
    done = await revoke(conn, "user", args.name)
    if not done:
        print(f"parkwatch users disable: no open account {args.name!r}", file=sys.stderr)
        return 1
    await _audit(conn, label, "users disable", f"user:{args.name}", {"id": done[0][0]})
    out.write(f"account {args.name} closed\n")
    return 0


def run(database_url: str, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Carry out `parkwatch keys|users ...`; 2 on a refusal (bad scope, weak password, unknown park)."""
    try:
        return asyncio.run(_run(database_url, args, out))
    except AccessError as exc:
        print(f"parkwatch {args.command} {args.action}: {exc.detail}", file=sys.stderr)
        return EXIT_REFUSED
