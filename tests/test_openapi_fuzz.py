"""A property-based run of the whole OpenAPI document (schemathesis) against the real app over HTTP.

The app is served by uvicorn (`serving_asgi`, as `serve` runs it) on its own event loop in a
thread: schemathesis calls are blocking, and the app needs its lifespan for its database pool.
A little data is seeded first (two parks' readings, verdicts, alerts, HJ 212 packets, refused
messages) so that lists, details and changes reach more than their empty answers. Every operation
then runs once with an administrator's key and once with an operator's key scoped to park p1,
each a fixed, small, seeded budget, and every response must be no 5xx, of a documented status and
content type, and match its declared schema. PARKWATCH_FUZZ_EXAMPLES raises the budget on demand,
PARKWATCH_FUZZ_SEED draws other requests (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple
from unittest import mock

import asyncpg
import httpx
import pytest
import requests
import schemathesis
from schemathesis import checks

from api.app import create_app
from ingest.registry import load_registry_file
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from schemas.registry import read_registry
from tests.conftest import DATA
from tests.helpers import make_key, seed_two_parks
from tests.services import MQTT_HOST, MQTT_PORT, TIMESCALE, create_database, drop_database, free_port, unique

T0 = datetime(2026, 10, 1, tzinfo=UTC)
# Examples a phase draws per operation: small in CI (the whole test well under a minute on two
# cores), larger on demand. The seed makes a CI failure the same failure on every machine.
EXAMPLES = int(os.environ.get("PARKWATCH_FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("PARKWATCH_FUZZ_SEED", "20261201"))
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.status_code_conformance,
    checks.content_type_conformance,
]


# Who calls: an administrator sees and may do everything; an operator of p1 meets the scope's
# refusals (403, 404) on everything of p2 and on what its role may not change.
PRINCIPALS = {"admin": ("admin", {}), "operator-p1": ("operator", {"parks": ["p1"]})}


class Api(NamedTuple):
    """Where the API answers, the key to send, and a session (connections kept alive)."""

    base: str
    key: str
    session: requests.Session


async def _seed(url: str) -> None:
    """The two parks' data (tests/helpers.py seed_two_parks), p1-air's readings too, and key ids far off."""
    await seed_two_parks(
        url, password="123456", readings=(("p1-out", "w01018"), ("p2-out", "w01018"), ("p1-air", "a34004"))
    )
    conn = await asyncpg.connect(url)
    try:
        # The key the run uses gets an id no generated `key_id` is likely to name: POST
        # /keys/{key_id}/revoke is fuzzed too, and a revoked key would turn the rest into 401s.
        await conn.execute("ALTER TABLE principals ALTER COLUMN id RESTART WITH 7340033")
    finally:
        await conn.close()


@contextmanager
def _serving(settings: Settings, role: str, scope: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The registry loaded, data seeded and the API served in a thread of its own; yields (URL, key)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    out: dict[str, Any] = {}

    async def main() -> None:
        conn = await asyncpg.connect(settings.DATABASE_URL)
        try:
            await load_registry_file(conn, read_registry(DATA / "registry.yaml"))
        finally:
            await conn.close()
        await _seed(settings.DATABASE_URL)
        out["key"] = await make_key(settings.DATABASE_URL, role, name=f"fuzz-{role}", **scope)
        async with serving_asgi(create_app(settings), "127.0.0.1", settings.API_PORT):
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            out["error"] = exc
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=run, name="fuzz-api", daemon=True)
    thread.start()
    try:
        if not ready.wait(60):
            raise TimeoutError("the API did not start within 60 s")
        if "error" in out:
            raise out["error"]
        yield f"http://127.0.0.1:{settings.API_PORT}", out["key"]
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        if "error" in out:
            raise out["error"]


@contextmanager
def _api(template_db: str, tmp_path_factory: pytest.TempPathFactory, role: str, scope: dict[str, Any]) -> Iterator[Api]:
    """A database of its own, seeded, the API served on it, and a key of `role` in `scope`."""
    name = unique("pwfuzz")
    url = create_database(name, template=template_db)
    try:
        prefix = unique("t").replace("_", "-")
        # Module-wide, so set up before conftest's _clean_env: the developer's PARKWATCH_* are left out here.
        with mock.patch.dict(
            os.environ, {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}, clear=True
        ):
            settings = Settings(
                DATABASE_URL=url,
                MQTT_URL=f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
                TOPIC_PREFIX=prefix,
                MQTT_CLIENT_ID=f"ingest-{prefix}",
                SPOOL_DIR=tmp_path_factory.mktemp("spool"),
                API_PORT=free_port(),
                TIMESCALE=TIMESCALE,
                # Thousands of requests a minute from one key: rate limits are tested in tests/test_access.py.
                API_RATE_LIMIT=1_000_000,
            )
        with _serving(settings, role, scope) as (base, key):
            # What is fuzzed is the document the running app serves.
            assert httpx.get(f"{base}/openapi.json", timeout=10).json() == DOCUMENT
            with requests.Session() as session:
                yield Api(base, key, session)
    finally:
        drop_database(name)


@pytest.fixture(scope="module", params=list(PRINCIPALS))
def served(request: pytest.FixtureRequest, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API with the key of one of PRINCIPALS (module-wide: one server a principal, not one an operation)."""
    role, scope = PRINCIPALS[request.param]
    with _api(template_db, tmp_path_factory, role, scope) as api:
        yield api


# The app's OpenAPI document, built at import because `schema.parametrize()` makes one test an
# operation at collection (schemathesis.pytest.from_fixture, which would load it from the running
# app, fails on pytest 9.2: it sets Function._nodeid, which pytest no longer has); `served` checks
# that the running app serves this very document.
DOCUMENT = create_app(Settings(DATABASE_URL="postgresql://127.0.0.1/unused")).openapi()
schema = (
    schemathesis.openapi.from_dict(
        DOCUMENT,
        config=schemathesis.Config.from_dict(
            {"seed": SEED, "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"}}
        ),
    )
    # A server-sent-event stream that never ends: there is no response to validate.
    .exclude(path="/api/v1/events")
    .exclude(path="/api/v1/dashboard/stream")
)


@schema.parametrize()
def test_openapi(case: schemathesis.Case, served: Api) -> None:
    """Every operation: no 5xx, a documented status and content type, a body of the declared schema."""
    # The key replaces whatever X-API-Key the case drew for the security scheme.
    headers = {"X-API-Key": served.key}
    case.call_and_validate(base_url=served.base, session=served.session, headers=headers, checks=CHECKS, timeout=30)
