"""`parkwatch keys` and `parkwatch users` as an administrator meets them: keys printed once, stored
hashed, refused scopes, revocation that holds at the next request, and every change audited."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from api.app import create_app
from api.principals import hash_key
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from tests.conftest import DATA
from tests.helpers import cli_env, fetch, run_cli


def _cli(settings: Settings, *args: str, input_text: str | None = None) -> tuple[int, str, str]:
    done = run_cli(*args, env=cli_env(settings), input_text=input_text)
    return done.returncode, done.stdout, done.stderr


async def test_keys_from_the_command_line(settings: Settings, registry: None) -> None:
    code, out, _ = await asyncio.to_thread(
        _cli, settings, "keys", "create", "--role", "operator", "--park", "p1", "--name", "scada", "--json"
    )
    assert code == 0
    made = orjson.loads(out)
    key = made["key"]
    assert key.startswith("pwk_") and made["role"] == "operator" and made["scopes"] == [{"kind": "park", "value": "p1"}]
    [row] = await fetch(settings.DATABASE_URL, "SELECT key_hash, key_prefix FROM principals")
    assert row["key_hash"] == hash_key(key) and key.startswith(row["key_prefix"])

    # refusals name what is wrong, and make nothing
    for args, said in [
        (("--role", "operator"), "needs a scope: --park ID"),
        (("--role", "operator", "--park", "nowhere"), "no such park: nowhere"),
        (("--role", "enterprise", "--park", "p1"), "takes scopes of kind station, not park"),
        (("--role", "admin", "--city", "长沙"), "sees everything"),
        (("--role", "inspector", "--city", "长沙", "--expires", "soon"), "--expires is days or an ISO date"),
        (("--role", "inspector", "--city", "长沙", "--expires", "2020-01-01"), "an expiry in the past"),
    ]:
        code, _, err = await asyncio.to_thread(_cli, settings, "keys", "create", *args)
        assert code == 2 and said in err, err
    assert len(await fetch(settings.DATABASE_URL, "SELECT id FROM principals")) == 1

    code, listing, _ = await asyncio.to_thread(_cli, settings, "keys", "list")
    assert code == 0 and "scada" in listing and "park:p1" in listing and key not in listing

    async with (
        serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}", headers={"X-API-Key": key}) as api,
    ):
        assert (await api.get("/api/v1/stations")).status_code == 200
        code, out, _ = await asyncio.to_thread(_cli, settings, "keys", "revoke", "scada")
        assert code == 0 and "revoked key" in out
        r = await api.get("/api/v1/stations")
        assert (r.status_code, r.json()["error"]) == (401, "credentials_revoked")
    code, _, err = await asyncio.to_thread(_cli, settings, "keys", "revoke", "scada")
    assert code == 1 and "no live key" in err

    audit = await fetch(settings.DATABASE_URL, "SELECT principal, action, target, address FROM audit_log ORDER BY id")
    assert [(a["action"], a["target"], a["address"]) for a in audit] == [
        ("keys create", "key:scada", "local"),
        ("keys revoke", "key:scada", "local"),
    ]
    assert all(a["principal"].startswith("cli:") for a in audit)


async def test_users_and_a_registry_change(settings: Settings) -> None:
    code, _, err = await asyncio.to_thread(
        _cli, settings, "users", "add", "li.wei", "--role", "operator", "--park", "p1", "--password-stdin",
        input_text="a long passphrase\n",
    )  # fmt: skip
    assert code == 2 and "no such park: p1" in err  # the registry is empty yet
    code, _, _ = await asyncio.to_thread(_cli, settings, "stations", "load", str(DATA / "registry.yaml"))
    assert code == 0
    code, _, err = await asyncio.to_thread(
        _cli, settings, "users", "add", "li.wei", "--role", "operator", "--park", "p1", "--password-stdin",
        input_text="short\n",
    )  # fmt: skip
    assert code == 2 and "at least 10 characters" in err
    code, _, _ = await asyncio.to_thread(
        _cli, settings, "users", "add", "li.wei", "--role", "operator", "--park", "p1", "--password-stdin",
        input_text="a long passphrase\n",
    )  # fmt: skip
    assert code == 0
    [user] = await fetch(settings.DATABASE_URL, "SELECT password_hash FROM principals WHERE name = 'li.wei'")
    assert user["password_hash"].startswith("$argon2id$") and "a long passphrase" not in user["password_hash"]
    code, _, err = await asyncio.to_thread(
        _cli, settings, "users", "add", "li.wei", "--role", "operator", "--park", "p1", "--password-stdin",
        input_text="another long one\n",
    )  # fmt: skip
    assert code == 2 and "exists already" in err

    async with (
        serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.API_PORT}") as api,
    ):
        signed = await api.post("/api/v1/session", json={"username": "li.wei", "password": "a long passphrase"})
        assert signed.status_code == 201
        assert (await api.get("/api/v1/stations")).status_code == 200
        code, _, _ = await asyncio.to_thread(_cli, settings, "users", "disable", "li.wei")
        assert code == 0
        r = await api.get("/api/v1/stations")  # the session ended with the account
        assert (r.status_code, r.json()["error"]) == (401, "session_expired")
        again = await api.post("/api/v1/session", json={"username": "li.wei", "password": "a long passphrase"})
        assert again.status_code == 401

    actions = [a["action"] for a in await fetch(settings.DATABASE_URL, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["stations load", "users add", "sign-in", "users disable", "sign-in failed"]
