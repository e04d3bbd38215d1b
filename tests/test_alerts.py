"""Alerts end to end: readings over MQTT → verdicts → alerts → notices at real local receivers.

The far ends are real servers: the notice sink (a webhook and stand-ins for DingTalk, WeCom,
Feishu and an SMS gateway, each checking bodies and signatures as the service documents them),
an SMTP server (aiosmtpd) and the broker. Each test publishes a kiln's minute data through the
running ingest, then drains the compliance worker, the alert engine and the dispatcher.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import aiomqtt
import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

import alerts.dispatcher as dispatcher_module
import alerts.rules as rules_module
from alerts import instruments, store
from alerts.channels import Context
from alerts.channels.mqtt import Publisher
from alerts.config import load_routing
from alerts.dispatcher import Dispatcher
from alerts.engine import AlertEngine
from alerts.followup import follow_up
from alerts.instruments import check_instruments
from alerts.quality import check_offline, check_series
from compliance.worker import ComplianceWorker
from ingest.registry import load_registry_file
from ingest.service import IngestService
from parkwatch.settings import Settings
from schemas.registry import RegistryFile
from simulators.notice_sink import NoticeSink, Secrets, serving
from tests.helpers import cli_env, eventually, fetch, fetchval, publish, run_cli
from tests.services import free_port

CST = ZoneInfo("Asia/Shanghai")
KILN = "al-kiln"
SO2, O2 = "a21026", "a19001"
SECRETS = Secrets(webhook="wh-secret", dingtalk="SECdingtalk-secret", feishu="feishu-secret")
ALL_CHANNELS = ["hook", "ding", "wecom", "feishu", "sms", "mail", "bus"]


class _Mailbox:
    """aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Rig:
    """Everything a test needs: settings, the receivers and what reached them."""

    settings: Settings
    sink: NoticeSink
    mailbox: _Mailbox
    mqtt: list[tuple[str, bytes, bool]] = field(default_factory=list)
    engine: AlertEngine | None = None


def registry(base: str, smtp_port: int, *, routes: list[dict[str, Any]] | None = None) -> RegistryFile:
    """A park with a kiln and a plant outlet, and a channel of every kind pointing at the local receivers."""
    return RegistryFile.model_validate(
        {
            "parks": [{"id": "al", "name": "报警测试园区", "city": "长沙"}],
            "stations": [
                {
                    "id": KILN,
                    "park_id": "al",
                    "kind": "stack",
                    "name": "水泥窑1#",
                    "standard": "GB4915-2013",
                    "class": "kiln",
                    "parameters": [SO2, "a21002", O2],
                },
                {"id": "al-quiet", "park_id": "al", "kind": "stack", "parameters": [SO2, O2], "offline_after": 0.05},
            ],
            "channels": [
                {"id": "hook", "kind": "webhook", "url": f"{base}/webhook", "secret": SECRETS.webhook},
                {
                    "id": "ding",
                    "kind": "dingtalk",
                    "url": f"{base}/dingtalk/robot/send?access_token=tok",
                    "secret": SECRETS.dingtalk,
                },
                {"id": "wecom", "kind": "wecom", "url": f"{base}/wecom/cgi-bin/webhook/send?key=k"},
                {
                    "id": "feishu",
                    "kind": "feishu",
                    "url": f"{base}/feishu/open-apis/bot/v2/hook/abc",
                    "secret": SECRETS.feishu,
                },
                {
                    "id": "sms",
                    "kind": "sms",
                    "url": f"{base}/sms/",
                    "access_key_id": SECRETS.sms_key_id,
                    "access_key_secret": SECRETS.sms_key_secret,
                    "sign_name": "园区环保",
                    "template_code": "SMS_0001",
                    "phones": ["13800000000"],
                },
                {
                    "id": "mail",
                    "kind": "email",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "tls": "none",
                    "sender": "parkwatch@example.org",
                    "to": ["ops@example.org"],
                },
                {"id": "bus", "kind": "mqtt"},
            ],
            "routes": routes if routes is not None else [{"park": "al", "channels": ALL_CHANNELS}],
        }
    )


@pytest.fixture
async def rig(settings: Settings, ingest: IngestService) -> AsyncIterator[Rig]:
    """Receivers up, the alert registry and routing loaded into the running ingest, MQTT notices collected."""
    sink = NoticeSink(secrets=SECRETS)
    mailbox = _Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        async with serving(sink, free_port()) as base:
            reg = registry(base, smtp_port)
            conn = await asyncpg.connect(settings.DATABASE_URL)
            try:
                await load_registry_file(conn, reg)
                await load_routing(conn, reg)
            finally:
                await conn.close()
            await eventually(lambda: _ready(KILN in ingest.registry.current.stations), bool)
            r = Rig(settings=settings, sink=sink, mailbox=mailbox)
            async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port) as client:
                await client.subscribe(f"{settings.TOPIC_PREFIX}/al/alerts/#", qos=1)
                await client.subscribe(f"{settings.TOPIC_PREFIX}/al/alerts", qos=1)

                async def collect() -> None:
                    async for m in client.messages:
                        r.mqtt.append((str(m.topic), bytes(m.payload), bool(m.retain)))  # type: ignore[arg-type]

                task = asyncio.create_task(collect())
                try:
                    yield r
                finally:
                    task.cancel()
    finally:
        controller.stop()


async def _ready(value: Any) -> Any:
    return value


def minutes(station: str, hour: datetime, so2: float | list[float], o2: float = 10.0) -> list[dict[str, Any]]:
    """An hour of minute records; O2 at the kiln's reference 10 %, so the value judged is the value sent."""
    values = so2 if isinstance(so2, list) else [so2] * 60
    return [
        {
            "station_id": station,
            "ts": (hour + timedelta(minutes=i)).isoformat(),
            "interval": "min",
            "readings": [
                {"parameter": SO2, "value": v, "flag": "N"},
                {"parameter": "a21002", "value": 100.0, "flag": "N"},
                {"parameter": O2, "value": o2, "flag": "N"},
            ],
        }
        for i, v in enumerate(values)
    ]


async def send(settings: Settings, objects: Iterable[dict[str, Any]], station: str = KILN) -> None:
    """Publish (60 records a message) and wait until stored."""
    batch = list(objects)
    before = await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings")
    expected = before + sum(len(o["readings"]) for o in batch)
    for i in range(0, len(batch), 60):
        await publish(settings, "al", station, batch[i : i + 60])
    await eventually(lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings"), lambda n: n >= expected)


async def settle(rig: Rig) -> None:
    """Judge, apply verdict changes to alerts, and deliver every due notice."""
    s = rig.settings
    conn = await asyncpg.connect(s.DATABASE_URL)
    try:
        await ComplianceWorker(s.DATABASE_URL).drain(conn)
        await (rig.engine or AlertEngine(s)).drain(conn)
        await deliver_all(rig, conn)
    finally:
        await conn.close()


async def deliver_all(rig: Rig, conn: asyncpg.Connection, dispatcher: Dispatcher | None = None) -> Dispatcher:
    """Run a dispatcher until no notice is due."""
    d = dispatcher or Dispatcher(rig.settings)
    publisher = Publisher(rig.settings.mqtt, client_id=f"{rig.settings.MQTT_CLIENT_ID}-test-alerts")
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ctx = Context(http=http, mqtt=publisher, topic_prefix=rig.settings.TOPIC_PREFIX)
            while await d.step(conn, ctx):
                pass
    finally:
        await publisher.close()
    return d


async def alerts(settings: Settings) -> list[asyncpg.Record]:
    return await fetch(settings.DATABASE_URL, "SELECT * FROM alerts ORDER BY id")


async def notices(settings: Settings) -> list[asyncpg.Record]:
    return await fetch(settings.DATABASE_URL, "SELECT * FROM notifications ORDER BY id")


async def timeline(settings: Settings, alert_id: int) -> list[str]:
    rows = await fetch(settings.DATABASE_URL, "SELECT kind FROM alert_events WHERE alert_id = $1 ORDER BY id", alert_id)
    return [r["kind"] for r in rows]


def last_hour() -> datetime:
    """The latest clock hour that has ended (its verdict is final as soon as it is judged)."""
    return datetime.now(CST).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def hours_ago(n: int) -> datetime:
    return datetime.now(CST).replace(minute=0, second=0, microsecond=0) - timedelta(hours=n)


# -- an exceedance reaches every channel, once ------------------------------------------------


async def test_exceedance_raises_one_alert_and_one_notice_per_channel(rig: Rig) -> None:
    """SO2 250 against GB 4915's 200 for the hour just ended: one active alert, a notice through each of 7 channels."""
    hour = last_hour()
    await send(rig.settings, minutes(KILN, hour, 250.0))
    await settle(rig)

    [alert] = await alerts(rig.settings)
    assert alert["status"] == "active"
    assert alert["rule"] == "exceedance.hour"
    assert alert["family"] == "exceedance"
    assert alert["severity"] == "warning"  # multiple 0.25 < 0.5
    assert alert["value"] == pytest.approx(250.0)
    assert alert["limit_value"] == 200
    assert alert["exceedance_multiple"] == pytest.approx(0.25)
    assert alert["standard"] == "GB4915-2013"
    assert json.loads(alert["clause"])["table"] == "Table 1"
    assert alert["first_seen"] == hour
    assert alert["late"] is False
    assert alert["explanation_due_at"] is not None  # 情况说明 due
    assert await timeline(rig.settings, alert["id"]) == ["raised"]

    sent = await notices(rig.settings)
    assert sorted(n["channel_id"] for n in sent) == sorted(ALL_CHANNELS)
    assert {n["status"] for n in sent} == {"sent"}
    # each HTTP service took exactly one request, and took it (signature and schema checked there)
    for service in ("webhook", "dingtalk", "wecom", "feishu", "sms"):
        assert len([r for r in rig.sink.received if r.service == service]) == 1, service
        assert len(rig.sink.accepted(service)) == 1, [r.problem for r in rig.sink.received]
    hook = rig.sink.accepted("webhook")[0]
    doc = hook.json()
    assert doc["alert"]["station_id"] == KILN and doc["alert"]["parameter"] == SO2
    assert doc["alert"]["value"] == pytest.approx(250.0) and doc["alert"]["limit"] == 200
    assert doc["event"]["kind"] == "raised"
    assert hook.headers["idempotency-key"] == doc["idempotency_key"]
    ding = rig.sink.accepted("dingtalk")[0].json()
    assert ding["msgtype"] == "markdown"
    assert "超标报警" in ding["markdown"]["title"] and "二氧化硫" in ding["markdown"]["text"]
    assert "GB4915-2013" in ding["markdown"]["text"] and "250" in ding["markdown"]["text"]
    sms = dict(parse_qsl(rig.sink.accepted("sms")[0].body.decode()))
    assert sms["TemplateCode"] == "SMS_0001" and sms["PhoneNumbers"] == "13800000000"
    assert json.loads(sms["TemplateParam"])["station"] == "水泥窑1#"
    [mail] = rig.mailbox.messages
    assert "超标报警" in str(mail["Subject"]) or "=?utf-8?" in str(mail["Subject"])
    assert mail["To"] == "ops@example.org"
    await eventually(lambda: _ready(len(rig.mqtt)), lambda n: n >= 2)
    topics = {t for t, _, _ in rig.mqtt}
    assert f"{rig.settings.TOPIC_PREFIX}/al/alerts" in topics
    # a dashboard subscribing later finds the open alert's state retained
    assert await retained(rig.settings, alert["id"]) is not None


async def retained(settings: Settings, alert_id: int) -> dict[str, Any] | None:
    """The retained state of an alert, as a client subscribing now receives it (None: nothing retained)."""
    topic = f"{settings.TOPIC_PREFIX}/al/alerts/{alert_id}"
    async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port) as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(1.0):
                async for m in client.messages:
                    if m.retain and m.payload:
                        return dict(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
        except TimeoutError:
            return None
    return None


async def test_same_episode_counts_occurrences_without_new_alerts_or_notices(rig: Rig) -> None:
    """Three exceeding hours in a row: one alert with three occurrences, one notice per channel."""
    start = hours_ago(4)
    for k in range(3):
        await send(rig.settings, minutes(KILN, start + timedelta(hours=k), 260.0))
        await settle(rig)
    [alert] = await alerts(rig.settings)
    assert alert["occurrences"] == 3
    assert alert["status"] == "active"
    assert alert["late"] is True  # these hours ended more than an hour before they were judged
    assert await timeline(rig.settings, alert["id"]) == ["raised", "repeated", "repeated"]
    assert len(await notices(rig.settings)) == len(ALL_CHANNELS)


async def test_a_value_hovering_at_the_limit_does_not_flap(rig: Rig) -> None:
    """Exceed, comply, exceed, comply: one alert, one round of notices; two compliant hours in a row clear it."""
    start = hours_ago(8)
    pattern = [230.0, 180.0, 215.0, 190.0, 205.0, 150.0, 160.0]
    for k, value in enumerate(pattern):
        await send(rig.settings, minutes(KILN, start + timedelta(hours=k), value))
        await settle(rig)
    [alert] = await alerts(rig.settings)
    assert alert["occurrences"] == 3
    assert alert["status"] == "cleared"
    assert alert["clear_reason"] == "compliant"
    kinds = await timeline(rig.settings, alert["id"])
    assert kinds == ["raised", "repeated", "repeated", "cleared"]
    sent = await notices(rig.settings)
    # one raise and one resolve per channel, nothing in between
    assert len(sent) == 2 * len(ALL_CHANNELS)
    assert len(rig.sink.accepted("webhook")) == 2
    assert [r.json()["event"]["kind"] for r in rig.sink.accepted("webhook")] == ["raised", "cleared"]
    assert await retained(rig.settings, alert["id"]) is None  # cleared: its retained state removed


async def test_a_late_revision_to_compliant_clears_the_alert_as_revised(rig: Rig) -> None:
    """An hour judged an exceedance on 45 minutes turns compliant when its last 15 arrive: cleared, 'revised'."""
    hour = hours_ago(3)
    await send(rig.settings, minutes(KILN, hour, [240.0] * 45))
    await settle(rig)
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "active"
    # the last quarter of the hour arrives late, valid and low: the hour's mean drops under 200
    low = minutes(KILN, hour + timedelta(minutes=45), [20.0] * 15)
    await send(rig.settings, low)
    await settle(rig)
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "cleared"
    assert alert["clear_reason"] == "revised"
    assert await timeline(rig.settings, alert["id"]) == ["raised", "cleared"]
    assert [r.json()["event"]["kind"] for r in rig.sink.accepted("webhook")] == ["raised", "cleared"]


async def test_an_exceedance_in_an_open_window_is_pending_until_it_closes(rig: Rig) -> None:
    """Judged while its hour runs, an exceedance is pending (no notice); the hour closing over the limit makes it active."""
    hour = hours_ago(0)
    sid = await fetchval(rig.settings.DATABASE_URL, "SELECT sid FROM stations WHERE id = $1", KILN)
    pid = await fetchval(rig.settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = $1", SO2)
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        # the worker's write of an open hour judged on its first 45 minutes (the trigger sees it)
        await conn.execute(
            """INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                                     value, value_judged, limit_value, unit, exceedance_multiple, rule, coverage,
                                     closed)
               VALUES ($1, $2, 'hour', $3, $4, 'GB4915-2013', 'kiln', 'exceedance', 260, 260, '200', 'mg/m³',
                       0.3, '{"table": "Table 1"}', '{}', false)""",
            sid,
            pid,
            hour,
            hour + timedelta(hours=1),
        )
        await AlertEngine(rig.settings).drain(conn)
        await deliver_all(rig, conn)
        [alert] = await alerts(rig.settings)
        assert alert["status"] == "pending"
        assert await notices(rig.settings) == []
        # a revision within the open hour is a revision, not a new occurrence
        await conn.execute("UPDATE verdicts SET value_judged = 270, exceedance_multiple = 0.35")
        await AlertEngine(rig.settings).drain(conn)
        await conn.execute("UPDATE verdicts SET closed = true")
        await AlertEngine(rig.settings).drain(conn)
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "active" and alert["occurrences"] == 1
    assert alert["value"] == pytest.approx(270)
    assert await timeline(rig.settings, alert["id"]) == ["raised", "revised", "activated"]
    assert [r.json()["event"]["kind"] for r in rig.sink.accepted("webhook")] == ["activated"]


async def test_a_pending_exceedance_that_holds_becomes_active(rig: Rig) -> None:
    """A pending exceedance whose window is still open is activated by the follow-up job once it has held."""
    sid = await fetchval(rig.settings.DATABASE_URL, "SELECT sid FROM stations WHERE id = $1", KILN)
    pid = await fetchval(rig.settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = $1", SO2)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await store.open_or_find(
            conn,
            (
                sid,
                pid,
                "exceedance.hour",
                "exceedance",
                "pending",
                "warning",
                now,
                now,
                False,
                260.0,
                200.0,
                "mg/m³",
                "GB4915-2013",
                "{}",
                0.3,
                '{"window_kind": "hour"}',
                timedelta(hours=24),
            ),
        )
        assert await follow_up(conn, rig.settings) == {"activated": 0, "escalated": 0, "reminded": 0, "overdue": 0}
        saved = rules_module.EXCEEDANCE_PENDING
        rules_module.EXCEEDANCE_PENDING = timedelta(0)
        try:
            assert (await follow_up(conn, rig.settings))["activated"] == 1
        finally:
            rules_module.EXCEEDANCE_PENDING = saved
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "active" and alert["explanation_due_at"] is not None
    assert len(rig.sink.accepted("webhook")) == 1


# -- crashes, restarts and two instances ------------------------------------------------------


async def test_engine_crash_mid_batch_loses_and_doubles_nothing(rig: Rig) -> None:
    """The engine's transaction dies after applying half a batch: nothing stays, the rerun applies it once."""
    await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        assert await conn.fetchval("SELECT count(*) FROM alert_inbox") >= 1
        engine = AlertEngine(rig.settings)
        with pytest.raises(RuntimeError, match="crash"):
            async with conn.transaction():
                changes = await store.claim_inbox(conn, 10)
                for change in changes:
                    await engine._apply(conn, change)
                raise RuntimeError("crash")
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 0
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 0
        await engine.drain(conn)
        await engine.drain(conn)  # nothing left to apply twice
        assert await conn.fetchval("SELECT count(*) FROM alert_inbox") == 0
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["occurrences"] == 1
    assert len(await notices(rig.settings)) == len(ALL_CHANNELS)


async def test_queued_notices_survive_a_dispatcher_that_dies_holding_them(rig: Rig) -> None:
    """Notices claimed by a dispatcher that died are delivered once by another when the lease ends."""
    await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        await AlertEngine(rig.settings).drain(conn)
        # a dispatcher claims everything, then is gone before delivering
        claimed = await conn.fetch(dispatcher_module.CLAIM_DUE, 100, timedelta(seconds=1))
        assert len(claimed) == len(ALL_CHANNELS)
        assert await deliver_all(rig, conn) is not None
        assert rig.sink.received == []  # leased: nobody else takes them yet
        await asyncio.sleep(1.2)
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    sent = await notices(rig.settings)
    assert {n["status"] for n in sent} == {"sent"}
    assert {n["attempts"] for n in sent} == {2}
    for service in ("webhook", "dingtalk", "wecom", "feishu", "sms"):
        assert len(rig.sink.accepted(service)) == 1, service


async def test_two_instances_open_one_alert(rig: Rig) -> None:
    """Two transactions open the same alert at once: the database lets one through, the other finds it."""
    sid = await fetchval(rig.settings.DATABASE_URL, "SELECT sid FROM stations WHERE id = $1", KILN)
    pid = await fetchval(rig.settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = $1", SO2)
    now = datetime.now(UTC)
    args = (
        sid,
        pid,
        "exceedance.hour",
        "exceedance",
        "active",
        "major",
        now,
        now,
        False,
        300.0,
        200.0,
        "mg/m³",
        "GB4915-2013",
        "{}",
        0.5,
        "{}",
        timedelta(hours=24),
    )
    a = await asyncpg.connect(rig.settings.DATABASE_URL)
    b = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        first = await store.open_or_find(a, args)
        second_task = asyncio.create_task(store.open_or_find(b, args))
        await asyncio.sleep(0.3)
        assert not second_task.done()  # waits on the first's uncommitted row, it does not insert a second
        await ta.commit()
        second = await second_task
        await tb.commit()
    finally:
        await a.close()
        await b.close()
    assert first[1] is True and second[1] is False
    assert first[0]["id"] == second[0]["id"]
    assert len(await alerts(rig.settings)) == 1


async def test_two_engines_side_by_side_apply_each_change_once(rig: Rig) -> None:
    """Two alert engines run at once (as in two parkwatch processes): one leads, one alert, one notice each."""
    stop = asyncio.Event()
    engines = [AlertEngine(rig.settings), AlertEngine(rig.settings)]
    tasks = [asyncio.create_task(e.run(stop)) for e in engines]
    try:
        await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
        conn = await asyncpg.connect(rig.settings.DATABASE_URL)
        try:
            await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
            await eventually(
                lambda: fetchval(rig.settings.DATABASE_URL, "SELECT count(*) FROM alert_inbox"), lambda n: n == 0
            )
            await deliver_all(rig, conn)
        finally:
            await conn.close()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert sum(e.stats.applied for e in engines) >= 1
    assert min(e.stats.applied for e in engines) == 0  # the standby applied nothing
    assert len(await alerts(rig.settings)) == 1
    assert len(rig.sink.accepted("webhook")) == 1


# -- channels that fail ------------------------------------------------------------------------


async def test_a_channel_that_is_down_retries_then_gives_up_without_holding_the_others(rig: Rig) -> None:
    """DingTalk answers 500 every time: retried, then failed and recorded on the timeline; the rest are sent."""
    rig.sink.fail("dingtalk", [500] * 10)
    rig.sink.fail("wecom", [503])  # one failure, then fine
    saved = (dispatcher_module.MAX_ATTEMPTS, dispatcher_module.RETRY_BASE, dispatcher_module.RETRY_CAP)
    dispatcher_module.MAX_ATTEMPTS, dispatcher_module.RETRY_BASE, dispatcher_module.RETRY_CAP = 3, 0.05, 0.1
    try:
        await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
        await settle(rig)
        conn = await asyncpg.connect(rig.settings.DATABASE_URL)
        try:
            for _ in range(20):
                await asyncio.sleep(0.15)
                await deliver_all(rig, conn)
                states = {n["channel_id"]: n["status"] for n in await notices(rig.settings)}
                if states["ding"] == "failed" and states["wecom"] == "sent":
                    break
        finally:
            await conn.close()
    finally:
        dispatcher_module.MAX_ATTEMPTS, dispatcher_module.RETRY_BASE, dispatcher_module.RETRY_CAP = saved
    by_channel = {n["channel_id"]: n for n in await notices(rig.settings)}
    assert by_channel["ding"]["status"] == "failed"
    assert by_channel["ding"]["attempts"] == 3
    assert "500" in by_channel["ding"]["last_error"]
    assert by_channel["wecom"]["status"] == "sent" and by_channel["wecom"]["attempts"] == 2
    assert {by_channel[c]["status"] for c in ALL_CHANNELS if c not in ("ding",)} == {"sent"}
    [alert] = await alerts(rig.settings)
    assert "notify_failed" in await timeline(rig.settings, alert["id"])


# -- silences and data quality -----------------------------------------------------------------


async def test_maintenance_window_mutes_notices_but_records_the_alert(rig: Rig, api: httpx.AsyncClient) -> None:
    """A maintenance window on the kiln: the exceedance is raised and recorded, its notices kept as muted."""
    r = await api.post(
        "/api/v1/silences",
        json={"kind": "maintenance", "station_id": KILN, "minutes": 60, "reason": "换滤袋", "by": "运维"},
    )
    assert r.status_code == 201, r.text
    await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
    await settle(rig)
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "active"
    assert {n["status"] for n in await notices(rig.settings)} == {"muted"}
    assert rig.sink.received == []
    # cancelled, the next episode is notified again
    silence_id = r.json()["id"]
    assert (await api.post(f"/api/v1/silences/{silence_id}/cancel")).status_code == 200
    listed = (await api.get("/api/v1/silences")).json()["results"]
    assert listed == []


async def test_offline_station_alarms_after_its_threshold_and_clears_when_data_return(
    rig: Rig, ingest: IngestService
) -> None:
    """al-quiet sends, falls silent past its 3-second threshold: offline alarm; data again: cleared."""
    await send(rig.settings, minutes("al-quiet", hours_ago(1), 20.0)[:2], station="al-quiet")
    await ingest.heartbeat()
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        assert await check_offline(conn, rig.settings) == (0, 0)
        await asyncio.sleep(3.5)
        await ingest.heartbeat()
        raised, _ = await check_offline(conn, rig.settings)
        assert raised == 1
        assert await check_offline(conn, rig.settings) == (0, 0)  # one alarm per episode
        await deliver_all(rig, conn)
        [alert] = await alerts(rig.settings)
        assert alert["rule"] == "data_quality.offline" and alert["status"] == "active" and alert["pid"] is None
        assert "站点离线" in rig.sink.accepted("dingtalk")[0].json()["markdown"]["title"]

        await send(rig.settings, minutes("al-quiet", hours_ago(0), 20.0)[:1], station="al-quiet")
        assert await check_offline(conn, rig.settings) == (0, 1)
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "cleared" and alert["clear_reason"] == "data_returned"
    assert [r.json()["event"]["kind"] for r in rig.sink.accepted("webhook")] == ["raised", "cleared"]


async def test_no_offline_alarms_while_no_ingest_is_receiving(rig: Rig, ingest: IngestService) -> None:
    """With every heartbeat stale (the pipeline is down, not the station), silence raises nothing."""
    await send(rig.settings, minutes("al-quiet", hours_ago(1), 20.0)[:1], station="al-quiet")
    await asyncio.sleep(3.5)
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await conn.execute("DELETE FROM ingest_heartbeats")
        assert await check_offline(conn, rig.settings) == (0, 0)
        await ingest.heartbeat()
        await conn.execute("UPDATE ingest_heartbeats SET spool_pending = 3")  # data still being replayed
        assert await check_offline(conn, rig.settings) == (0, 0)
    finally:
        await conn.close()
    assert await alerts(rig.settings) == []


# -- people: acknowledge, verify, resolve, explain, escalate ----------------------------------


async def test_ack_verify_resolve_and_explain_through_the_api(rig: Rig, api: httpx.AsyncClient) -> None:
    await send(rig.settings, minutes(KILN, hours_ago(2), 450.0))
    await settle(rig)
    page = (await api.get("/api/v1/alerts", params={"park_id": "al", "status": "active"})).json()
    [alert] = page["results"]
    assert alert["severity"] == "critical"  # multiple 1.25
    assert alert["station_id"] == KILN and alert["parameter"] == SO2 and alert["limit"] == 200
    aid = alert["id"]

    r = await api.post(f"/api/v1/alerts/{aid}/ack", json={"by": "张工", "comment": "已安排检查脱硫塔"})
    # recorded as the key that acted, for the person it named (docs/access.md)
    by = r.json()["acknowledged"]["by"]
    assert r.status_code == 200 and by.startswith("张工 [key:admin") and by.endswith("]")
    again = await api.post(f"/api/v1/alerts/{aid}/ack", json={"by": "李工"})
    assert again.status_code == 409 and again.json()["error"] == "already_acknowledged"

    bad = await api.post(f"/api/v1/alerts/{aid}/verify", json={"by": "环保局", "verification": "maybe"})
    assert bad.status_code == 422
    r = await api.post(f"/api/v1/alerts/{aid}/verify", json={"by": "环保局王科", "verification": "genuine_exceedance"})
    assert r.json()["verified"]["verification"] == "genuine_exceedance"

    refused = await api.post(f"/api/v1/alerts/{aid}/resolve", json={"by": "张工"})
    assert refused.status_code == 409 and refused.json()["error"] == "not_manually_resolvable"

    r = await api.post(f"/api/v1/alerts/{aid}/explanation", json={"by": "企业", "text": "脱硫浆液泵故障，已更换"})
    assert r.json()["supervision"]["text"].startswith("脱硫浆液泵")
    r = await api.post(f"/api/v1/alerts/{aid}/review", json={"by": "环保局王科", "decision": "accepted"})
    assert r.json()["supervision"]["review"] == "accepted"

    detail = (await api.get(f"/api/v1/alerts/{aid}")).json()
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds == ["raised", "acknowledged", "verified", "explained", "reviewed"]
    # each the person named, then the key that vouched for them
    assert [e["actor"].split(" [key:")[0] for e in detail["timeline"]][1:] == [
        "张工",
        "环保局王科",
        "企业",
        "环保局王科",
    ]
    assert len(detail["notifications"]) == len(ALL_CHANNELS)
    assert (await api.get("/api/v1/alerts/999999")).json()["error"] == "unknown_alert"


async def test_unacknowledged_alerts_escalate_remind_and_fall_overdue(rig: Rig) -> None:
    """Escalation routes get what nobody acknowledged; reminders repeat; an explanation not given is overdue."""
    routes = RegistryFile.model_validate(
        {
            "routes": [
                {"park": "al", "channels": ["hook"], "repeat_every": "1m"},
                {"channels": ["wecom"], "escalation": True},
            ]
        }
    )
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await load_routing(conn, routes)
    finally:
        await conn.close()
    await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
    await settle(rig)
    assert len(rig.sink.accepted("webhook")) == 1
    assert rig.sink.accepted("wecom") == []
    quick = rig.settings.model_copy(update={"ALERT_ESCALATE_AFTER": 0.0001, "ALERT_EXPLANATION_HOURS": 0.0001})
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await conn.execute("UPDATE alerts SET notified_at = now() - interval '2 minutes', explanation_due_at = now()")
        await asyncio.sleep(0.1)
        done = await follow_up(conn, quick)
        assert done == {"activated": 0, "escalated": 1, "reminded": 1, "overdue": 1}
        assert await follow_up(conn, quick) == {"activated": 0, "escalated": 0, "reminded": 0, "overdue": 0}
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    kinds = [r.json()["event"]["kind"] for r in rig.sink.accepted("webhook")]
    assert kinds == ["raised", "reminder"]
    assert len(rig.sink.accepted("wecom")) == 2  # the escalation and the overdue explanation
    [alert] = await alerts(rig.settings)
    assert alert["escalated_at"] is not None and alert["overdue_at"] is not None


# -- the live stream, the command line ----------------------------------------------------------


async def _sse_events(response: httpx.Response, count: int) -> list[tuple[int, dict[str, Any]]]:
    """Read `count` events (id, data) from a server-sent-events response."""
    out: list[tuple[int, dict[str, Any]]] = []
    event_id, data = None, None
    async with asyncio.timeout(20):
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and event_id is not None and data is not None:
                out.append((event_id, data))
                event_id, data = None, None
                if len(out) == count:
                    return out
    return out


async def test_events_stream_live_and_resume_after_last_event_id(rig: Rig, api: httpx.AsyncClient) -> None:
    """A dashboard sees the raise as it commits, misses the ack while away, and gets it on reconnecting."""
    async with api.stream("GET", "/api/v1/events", params={"park_id": "al"}, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = asyncio.create_task(_sse_events(response, 1))
        await asyncio.sleep(0.3)
        await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
        await settle(rig)
        [(first_id, raised)] = await reader
    assert raised["kind"] == "raised"
    assert raised["alert"]["station_id"] == KILN and raised["alert"]["parameter"] == SO2
    aid = raised["alert"]["id"]
    # while no one listens, the operator acknowledges
    assert (await api.post(f"/api/v1/alerts/{aid}/ack", json={"by": "张工"})).status_code == 200
    async with api.stream("GET", "/api/v1/events", headers={"Last-Event-ID": str(first_id)}, timeout=30) as response:
        [(next_id, acked)] = await _sse_events(response, 1)
    assert next_id > first_id
    assert acked["kind"] == "acknowledged" and acked["actor"].startswith("张工 [key:")
    bad = await api.get("/api/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_last_event_id"


async def test_alerts_on_the_command_line(rig: Rig) -> None:
    """`parkwatch alerts list|show|ack|verify` and `notify test` against the same database and receivers."""
    await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
    await settle(rig)
    [alert] = await alerts(rig.settings)
    env = cli_env(rig.settings)
    listed = await asyncio.to_thread(run_cli, "alerts", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == alert["id"] and row["status"] == "active" and row["rule"] == "exceedance.hour"
    acked = await asyncio.to_thread(run_cli, "alerts", "ack", str(alert["id"]), "--by", "值班员", env=env)
    assert acked.returncode == 0, acked.stderr
    again = await asyncio.to_thread(run_cli, "alerts", "ack", str(alert["id"]), "--by", "值班员", env=env)
    assert again.returncode == 1 and "already_acknowledged" in again.stderr
    verified = await asyncio.to_thread(
        run_cli, "alerts", "verify", str(alert["id"]), "--by", "环保局", "--verification", "instrument_fault", env=env
    )
    assert verified.returncode == 0, verified.stderr
    shown = await asyncio.to_thread(run_cli, "alerts", "show", str(alert["id"]), env=env)
    assert shown.returncode == 0
    assert "acknowledged" in shown.stdout and "verified" in shown.stdout and "→ hook: sent" in shown.stdout
    before = len(rig.sink.accepted("dingtalk"))
    tested = await asyncio.to_thread(run_cli, "notify", "test", "ding", env=env)
    assert tested.returncode == 0, tested.stderr
    assert len(rig.sink.accepted("dingtalk")) == before + 1
    assert "通道测试" in rig.sink.accepted("dingtalk")[-1].json()["markdown"]["title"]
    rig.sink.fail("webhook", [500])
    failed = await asyncio.to_thread(run_cli, "notify", "test", "hook", env=env)
    assert failed.returncode == 1 and "HTTP 500" in failed.stderr
    missing = await asyncio.to_thread(run_cli, "notify", "test", "nope", env=env)
    assert missing.returncode == 1 and "no channel 'nope'" in missing.stderr


async def test_killed_alerts_process_loses_no_pending_alert_and_no_queued_notice(rig: Rig) -> None:
    """SIGKILL `serve --only alerts` with a notice waiting to be retried and an alert pending; restart: each once."""
    rig.sink.fail("webhook", [503] * 1000)  # the webhook is down: its notice waits in the outbox
    await send(rig.settings, minutes(KILN, hours_ago(2), 250.0))
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    env = {**cli_env(rig.settings), "PARKWATCH_LOG_LEVEL": "WARNING"}
    command = (sys.executable, "-m", "parkwatch.cli", "serve", "--only", "alerts")
    proc = await asyncio.create_subprocess_exec(*command, env=env)
    try:
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        webhook_waiting = "SELECT status = 'queued' AND attempts >= 1 FROM notifications WHERE channel_id = 'hook'"
        await eventually(lambda: conn.fetchval(webhook_waiting), bool, timeout=30)
        # an exceedance judged in an hour still running: pending when the process dies
        sid = await conn.fetchval("SELECT sid FROM stations WHERE id = $1", KILN)
        pid = await conn.fetchval("SELECT pid FROM parameters WHERE code = 'a21002'")
        hour = hours_ago(0)
        await conn.execute(
            """INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value,
                                     value_judged, limit_value, unit, exceedance_multiple, rule, coverage, closed)
               VALUES ($1, $2, 'hour', $3, $4, 'GB4915-2013', 'kiln', 'exceedance', 500, 500, '400', 'mg/m³', 0.25,
                       '{}', '{}', false)""",
            sid,
            pid,
            hour,
            hour + timedelta(hours=1),
        )
        await eventually(lambda: conn.fetchval("SELECT count(*) FROM alerts WHERE status = 'pending'"), bool)
        proc.kill()
        await proc.wait()

        rig.sink.fail("webhook", [])  # back up
        await conn.execute("UPDATE verdicts SET closed = true WHERE pid = $1", pid)  # the hour ends while it is down
        proc = await asyncio.create_subprocess_exec(*command, env=env)
        await rig.sink.wait_for(2, "webhook", seconds=60)
        outbox_busy = "SELECT count(*) FROM notifications WHERE status IN ('queued', 'sending')"
        await eventually(lambda: conn.fetchval(outbox_busy), lambda n: n == 0, timeout=30)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        await conn.close()
    assert [a["status"] for a in await alerts(rig.settings)] == ["active", "active"]
    sent = await notices(rig.settings)
    assert {n["status"] for n in sent} == {"sent"} and len(sent) == 2 * len(ALL_CHANNELS)
    for service in ("webhook", "dingtalk", "wecom", "feishu", "sms"):
        keys = [r.headers.get("idempotency-key") or r.body for r in rig.sink.accepted(service)]
        assert len(keys) == len(set(keys)) == 2, service  # each of the two alerts' notices, once
    assert len(rig.mailbox.messages) == 2


async def test_a_missing_parameter_and_a_stuck_value_are_data_quality_alarms(rig: Rig) -> None:
    """Three closed hours with NOx never sent and SO2 pinned at 50.0: two alarms; the data moving again clears them."""
    for k in (3, 2, 1):
        objects = minutes(KILN, hours_ago(k), 50.0)
        for i, o in enumerate(objects):
            o["readings"] = [r for r in o["readings"] if r["parameter"] != "a21002"]
            o["readings"][-1]["value"] = 10.0 + i % 5 / 10  # O2 moves, as a live stack's does
        await send(rig.settings, objects)
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        assert await check_series(conn) == (2, 0)
        assert await check_series(conn) == (0, 0)  # one alarm per episode
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    by_rule = {a["rule"]: a for a in await alerts(rig.settings)}
    assert set(by_rule) == {"data_quality.missing_parameter", "data_quality.flatline"}
    nox = await fetchval(rig.settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = 'a21002'")
    so2 = await fetchval(rig.settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = $1", SO2)
    assert by_rule["data_quality.missing_parameter"]["pid"] == nox
    assert by_rule["data_quality.flatline"]["pid"] == so2
    assert json.loads(by_rule["data_quality.flatline"]["details"])["value"] == 50.0
    assert len(rig.sink.accepted("webhook")) == 2

    # the current hour brings NOx, and SO2 moves again
    now_hour = hours_ago(0)
    await send(rig.settings, minutes(KILN, now_hour, [50.0, 51.0, 49.5])[:3])
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        assert await check_series(conn) == (0, 2)
    finally:
        await conn.close()
    assert {a["clear_reason"] for a in await alerts(rig.settings)} == {"data_returned", "values_move"}


async def test_four_hours_of_fault_flags_is_an_instrument_out_of_service(rig: Rig) -> None:
    """SO2 flagged D (fault) through the four latest closed hours: an alarm naming the flag; valid again: cleared.

    Calibration (C) for a few minutes, or the source itself stopped (F), are not alarms.
    """
    for k in (4, 3, 2, 1):
        objects = minutes(KILN, hours_ago(k), [80.0 + i % 3 for i in range(60)])
        for i, o in enumerate(objects):
            o["readings"][0]["flag"] = "D" if i < 50 else "N"  # 50 of 60 minutes in fault
            o["readings"][1]["flag"] = "F" if i < 50 else "N"  # NOx: the kiln stopped, not a fault
            o["readings"][1]["value"] = 100.0 + i % 7  # NOx moves: not a flatline either
            o["readings"][2]["value"] = 10.0 + i % 5 / 10
        await send(rig.settings, objects)
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        assert await check_series(conn) == (1, 0)
        [alert] = await alerts(rig.settings)
        assert alert["rule"] == "data_quality.invalid_flags"
        assert json.loads(alert["details"])["flag"] == "D"
        await deliver_all(rig, conn)
        assert "数据标记异常" in rig.sink.accepted("dingtalk")[0].json()["markdown"]["title"]
        await send(rig.settings, minutes(KILN, hours_ago(0), [80.0, 81.0])[:2])  # valid again, this hour
        await ComplianceWorker(rig.settings.DATABASE_URL).drain(conn)
        assert await check_series(conn) == (0, 1)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "cleared" and alert["clear_reason"] == "data_valid_again"


# -- instruments: values no meter reports, a drifting logger clock ------------------------------


async def test_a_value_outside_any_instruments_range_is_an_alarm_until_an_hour_passes_without(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O2 sent as 31 % (no stack has more than air's 21 %): the value is refused, the station's
    other readings kept, and an alarm names the parameter and the refusal; it clears once the
    window passes with none refused and data arriving."""
    monkeypatch.setattr(instruments, "RANGE_WINDOW", timedelta(seconds=3))
    bad = minutes(KILN, hours_ago(0), 80.0)[:1]
    bad[0]["readings"][2]["value"] = 31.0
    await publish(rig.settings, "al", KILN, bad)
    await eventually(lambda: fetchval(rig.settings.DATABASE_URL, "SELECT count(*) FROM dead_letters"), lambda n: n == 1)
    [dead] = await fetch(rig.settings.DATABASE_URL, "SELECT reason, problems FROM dead_letters")
    assert dead["reason"] == "out_of_range"
    assert json.loads(dead["problems"])[0]["parameter"] == O2
    assert await fetchval(rig.settings.DATABASE_URL, "SELECT count(*) FROM readings") == 2  # SO2 and NOx kept
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        assert await check_instruments(conn) == (1, 0)
        assert await check_instruments(conn) == (0, 0)  # one alarm per episode
        await deliver_all(rig, conn)
        [alert] = await alerts(rig.settings)
        o2 = await fetchval(rig.settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = $1", O2)
        assert alert["rule"] == "data_quality.out_of_range" and alert["pid"] == o2 and alert["status"] == "active"
        assert json.loads(alert["details"])["refused"] == 1
        text = rig.sink.accepted("dingtalk")[0].json()["markdown"]["text"]
        assert "数据超量程" in text and "拒收" in text and "31" in text

        await asyncio.sleep(3.5)
        assert await check_instruments(conn) == (0, 0), "no data since: nothing says the meter is right again"
        await send(rig.settings, minutes(KILN, hours_ago(0), 80.0)[1:2])
        assert await check_instruments(conn) == (0, 1)
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "cleared" and alert["clear_reason"] == "values_in_range"
    assert [r.json()["event"]["kind"] for r in rig.sink.accepted("webhook")] == ["raised", "cleared"]


async def _an_hour_passes(settings: Settings) -> None:
    """Move the station's clock record back an hour, as if the hour of receipt had ended."""
    await fetch(settings.DATABASE_URL, "UPDATE station_activity SET lag_hour = lag_hour - interval '1 hour'")


def _live(ts: datetime) -> list[dict[str, Any]]:
    """One minute record stamped ts by the logger."""
    return minutes(KILN, ts.replace(second=0, microsecond=0), 80.0)[:1]


async def test_a_logger_clock_ahead_alarms_at_once_and_clears_once_on_time(rig: Rig) -> None:
    """Minute data stamped 8 minutes ahead of receipt (still accepted: under the 10-minute
    future limit) raise a clock-drift alarm; on-time data the next hour clear it."""
    await send(rig.settings, _live(datetime.now(CST) + timedelta(minutes=8)))
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        assert await check_instruments(conn) == (1, 0)
        await deliver_all(rig, conn)
        [alert] = await alerts(rig.settings)
        assert alert["rule"] == "data_quality.clock_drift" and alert["pid"] is None
        detail = json.loads(alert["details"])
        assert detail["direction"] == "ahead" and -9 * 60 < detail["drift_seconds"] < -8 * 60
        text = rig.sink.accepted("dingtalk")[0].json()["markdown"]["text"]
        assert re.search("数采仪时钟快约 [89] 分钟", text), text  # the minute's start, rounded

        await send(rig.settings, _live(datetime.now(CST) - timedelta(minutes=2)))
        assert await check_instruments(conn) == (0, 0), "the hour's least lag still says ahead"
        await _an_hour_passes(rig.settings)
        await send(rig.settings, _live(datetime.now(CST) - timedelta(minutes=1)))
        assert await check_instruments(conn) == (0, 1)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    assert alert["status"] == "cleared" and alert["clear_reason"] == "clock_on_time"


async def test_a_clock_behind_alarms_only_when_two_hours_agree_and_backfill_is_not_drift(rig: Rig) -> None:
    """Three hours of back-filled minutes with live data beside them are late, not drift; a logger
    20 minutes behind through two hours of receipt is."""
    await send(rig.settings, minutes(KILN, hours_ago(3), 80.0))  # back-fill of an outage
    await send(rig.settings, _live(datetime.now(CST) - timedelta(minutes=2)))
    await _an_hour_passes(rig.settings)
    await send(rig.settings, minutes(KILN, hours_ago(2), 80.0))
    await send(rig.settings, _live(datetime.now(CST) - timedelta(minutes=1)))
    conn = await asyncpg.connect(rig.settings.DATABASE_URL)
    try:
        assert await check_instruments(conn) == (0, 0)
        behind = datetime.now(CST) - timedelta(minutes=21)
        await conn.execute("DELETE FROM station_activity")
        await send(rig.settings, _live(behind))
        assert await check_instruments(conn) == (0, 0), "one hour alone could be a back-fill"
        await _an_hour_passes(rig.settings)
        await send(rig.settings, _live(behind + timedelta(minutes=1)))
        assert await check_instruments(conn) == (1, 0)
        await deliver_all(rig, conn)
    finally:
        await conn.close()
    [alert] = await alerts(rig.settings)
    detail = json.loads(alert["details"])
    assert detail["direction"] == "behind" and 19 * 60 < detail["drift_seconds"] < 21 * 60
    text = rig.sink.accepted("dingtalk")[0].json()["markdown"]["text"]
    assert re.search("数采仪时钟慢约 (19|20) 分钟", text), text
