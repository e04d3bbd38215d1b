"""Fixtures: a migrated database per test, a topic prefix per test, ingest and API in-process."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import asyncpg
import httpx
import pytest

from ingest.registry import load_registry_file
from ingest.service import IngestService
from ingest.stats import IngestStats
from parkwatch.settings import Settings
from schemas.migrate import migrate
from schemas.registry import RegistryFile, read_registry
from tests.helpers import running, serving_api
from tests.services import (
    MQTT_HOST,
    MQTT_PORT,
    TIMESCALE,
    create_database,
    db_url,
    drop_database,
    drop_template,
    free_port,
    freeze_template,
    require_services,
    unique,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's PARKWATCH_* variables out of the tests."""
    for key in list(os.environ):
        if key.startswith("PARKWATCH_"):
            monkeypatch.delenv(key)


# Fixtures that reach the shared PostgreSQL or broker: a test using one needs the services.
SERVICE_FIXTURES = frozenset({"template_db", "database", "settings", "empty_db_name"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `services` every test that uses a service fixture (others may declare it themselves)."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


_checked: list[bool] = []


@pytest.fixture(autouse=True)
def _services(request: pytest.FixtureRequest) -> None:
    """Fail loudly, once, when a test marked `services` runs without them; pure tests run anywhere."""
    if request.node.get_closest_marker("services") is not None and not _checked:
        require_services()
        _checked.append(True)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """A migrated database that each test's database is copied from (its storage: PARKWATCH_TEST_TIMESCALE)."""
    name = unique("pwtmpl")
    migrate(db_url(name), timescale=TIMESCALE)
    freeze_template(name)
    yield name
    drop_template(name)


@pytest.fixture
def database(template_db: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = unique("pwt")
    url = create_database(name, template=template_db)
    yield url
    drop_database(name)


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Settings:
    """Settings pointing at this test's database, topic prefix, spool and API port."""
    prefix = unique("t").replace("_", "-")
    return Settings(
        DATABASE_URL=database,
        MQTT_URL=f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
        TOPIC_PREFIX=prefix,
        MQTT_CLIENT_ID=f"ingest-{prefix}",
        SPOOL_DIR=tmp_path / "spool",
        API_PORT=free_port(),
        TIMESCALE=TIMESCALE,
    )


@pytest.fixture
async def registry(settings: Settings) -> None:
    """The test registry (tests/data/registry.yaml) loaded."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, read_registry(DATA / "registry.yaml"))
    finally:
        await conn.close()


async def forget_session(settings: Settings) -> None:
    """Remove the ingest's persistent session from the broker (tests leave none behind).

    MQTT 3.1.1, as the ingest speaks it: a clean-session connect under the same client id discards
    the session, on Mosquitto and on the embedded broker alike.
    """
    target = settings.mqtt
    async with aiomqtt.Client(target.host, target.port, identifier=settings.MQTT_CLIENT_ID, clean_session=True):
        pass


@pytest.fixture
async def ingest(settings: Settings, registry: None) -> AsyncIterator[IngestService]:
    """The ingest running in this event loop until the test ends."""
    try:
        async with running(IngestService(settings, stats=IngestStats())) as service:
            yield service
    finally:
        await forget_session(settings)


@pytest.fixture
async def api(settings: Settings, ingest: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    """The API served over real HTTP by uvicorn in this event loop; yields a client for it."""
    async with serving_api(settings, ingest) as client:
        yield client


@asynccontextmanager
async def ingest_for(settings: Settings, registry: RegistryFile) -> AsyncIterator[IngestService]:
    """A registry loaded, then the ingest running in this event loop for the block."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, registry)
    finally:
        await conn.close()
    try:
        async with running(IngestService(settings, stats=IngestStats())) as service:
            yield service
    finally:
        await forget_session(settings)


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A folder the embedded server's unprivileged user can reach (tmp_path is private to us as root)."""
    folder = Path(tempfile.mkdtemp(prefix="pw-embedded-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
