"""The watchdog: parkwatch failing is announced straight from the process, with no database needed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiomqtt
import asyncpg
import httpx
import pytest

import alerts.watchdog as watchdog_module
from alerts.watchdog import Watchdog
from api.app import create_app
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from simulators.notice_sink import NoticeSink, Secrets, serving
from tests.helpers import make_key
from tests.services import free_port

SECRET = "watch-secret"


@pytest.fixture
async def sink(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[NoticeSink, str]]:
    monkeypatch.setattr(watchdog_module, "PENDING", 0.2)
    s = NoticeSink(secrets=Secrets(webhook=SECRET))
    async with serving(s, free_port()) as base:
        yield s, f"{base}/webhook"


async def _retained(settings: Settings, process: str) -> dict[str, object] | None:
    async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port) as client:
        await client.subscribe(f"{settings.TOPIC_PREFIX}/watchdog/{process}", qos=1)
        try:
            async with asyncio.timeout(1.0):
                async for m in client.messages:
                    return dict(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
        except TimeoutError:
            return None
    return None


async def test_database_down_is_announced_without_the_database_and_cleared_when_back(
    settings: Settings, sink: tuple[NoticeSink, str]
) -> None:
    receiver, url = sink
    wired = settings.model_copy(update={"WATCHDOG_WEBHOOK_URL": url, "WATCHDOG_WEBHOOK_SECRET": SECRET})
    down = wired.model_copy(update={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"})
    dog = Watchdog(down, role="test")
    try:
        assert await dog.check() == []  # failing, not yet for long
        assert dog.state()["database"]["failing"] and dog.state()["database"]["ok"]
        await asyncio.sleep(0.3)
        assert await dog.check() == [("database", True)]
        assert await dog.check() == []  # one alarm, not one per pass
        [notice] = receiver.accepted("webhook")  # signed as every webhook: the sink checked it
        doc = notice.json()
        assert doc["watchdog"]["check"] == "database" and doc["watchdog"]["alarm"] is True
        assert "数据库不可达" in doc["message"]["title"]
        retained = await _retained(settings, dog.process)
        assert retained is not None and retained["alarms"] == ["database"]

        dog.settings = wired  # the database is back
        assert await dog.check() == [("database", False)]
        assert receiver.accepted("webhook")[-1].json()["watchdog"]["alarm"] is False
        retained = await _retained(settings, dog.process)
        assert retained is not None and retained["alarms"] == []
    finally:
        await dog.close()


async def test_compliance_backlog_shows_in_healthz_and_metrics(
    settings: Settings, sink: tuple[NoticeSink, str]
) -> None:
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await conn.execute(
            "INSERT INTO rollup_queue (sid, hour, queued_at) VALUES (1, now(), now() - interval '20 minutes')"
        )
    finally:
        await conn.close()
    dog = Watchdog(settings, role="test")
    try:
        await dog.check()
        await asyncio.sleep(0.3)
        assert await dog.check() == [("compliance_backlog", True)]
        async with (
            serving_asgi(create_app(settings, watchdog=dog), "127.0.0.1", settings.API_PORT),
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.API_PORT}",
                headers={"X-API-Key": await make_key(settings.DATABASE_URL)},
            ) as api,
        ):
            health = await api.get("/healthz")
            assert health.status_code == 200  # degraded, not down: a restart would not fix a backlog
            body = health.json()
            assert body["status"] == "degraded"
            assert body["watchdog"]["alarms"] == ["compliance_backlog"]
            assert "oldest dirty hour waiting" in body["watchdog"]["checks"]["compliance_backlog"]["detail"]
            metrics = (await api.get("/metrics")).text
            assert 'parkwatch_watchdog_alarm{check="compliance_backlog"} 1' in metrics
            assert 'parkwatch_watchdog_alarm{check="database"} 0' in metrics
    finally:
        await dog.close()
