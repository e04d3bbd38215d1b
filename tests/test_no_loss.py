"""No reading is lost: not when the ingest is killed mid-stream, not during a database outage.

Both tests use a private broker started from deploy/mosquitto.conf (tests/brokers.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import orjson
import pytest

from ingest.service import IngestService
from ingest.stats import IngestStats
from parkwatch import retry
from parkwatch.preflight import database_address
from parkwatch.settings import Settings
from schemas.readings import readings_topic
from simulators.broker import PrivateBroker
from tests.helpers import cli_env, count_readings, eventually, fetch, message, publish, run_cli, running, serving_api
from tests.proxy import TcpProxy
from tests.services import via

# A broker crash loses what an ingest that fell behind had not received (docs/storage.md): these
# tests measure with the machine to themselves (pyproject.toml, marker serial).
pytestmark = pytest.mark.serial

STATIONS = [
    ("p1", "p1-out", ["w01018", "w21003", "w21011", "w21001"]),
    ("p2", "p2-out", ["w01018", "w21003", "w21011", "w21001"]),
]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def _payload(i: int) -> tuple[str, str, bytes]:
    park, station, codes = STATIONS[i % len(STATIONS)]
    ts = T0 + timedelta(seconds=i)  # unique per station and message
    body = {
        "station_id": station,
        "ts": ts.isoformat(),
        "readings": [{"parameter": c, "value": i + k / 10} for k, c in enumerate(codes)],
    }
    return park, station, orjson.dumps(body)


async def _publish_range(url_port: int, prefix: str, start: int, stop: int, *, pace: float = 0.0) -> None:
    """Publish messages [start, stop) at QoS 1; every publish is acknowledged by the broker."""
    async with aiomqtt.Client("127.0.0.1", url_port, identifier=f"pub-{prefix}-{start}") as client:
        for i in range(start, stop):
            park, station, body = _payload(i)
            await client.publish(readings_topic(prefix, park, station), body, qos=1)
            if pace:
                await asyncio.sleep(pace)


async def _assert_exactly(url: str, n_messages: int) -> None:
    rows = await fetch(
        url,
        "SELECT s.id AS station, p.code, r.ts, r.value FROM readings r JOIN stations s USING (sid) JOIN parameters p USING (pid)",
    )
    got = {(r["station"], r["code"], r["ts"], r["value"]) for r in rows}
    expected = set()
    for i in range(n_messages):
        _, station, codes = STATIONS[i % len(STATIONS)]
        for k, c in enumerate(codes):
            expected.add((station, c, T0 + timedelta(seconds=i), i + k / 10))
    assert len(rows) == len(got), "a key was stored twice"
    assert got == expected, f"missing {len(expected - got)}, unexpected {len(got - expected)}"
    assert await count_readings(url) == 4 * n_messages
    dead = await fetch(url, "SELECT reason FROM dead_letters")
    assert dead == []


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A private broker from deploy/mosquitto.conf."""
    b = PrivateBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def _spawn_ingest(settings: Settings, broker: PrivateBroker, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    env |= cli_env(settings) | {"PARKWATCH_MQTT_URL": broker.url, "PARKWATCH_LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [sys.executable, "-m", "parkwatch.cli", "serve", "--only", "ingest"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def _wait_subscribed(log: Path, times: int) -> None:
    async def subscribed() -> int:
        return log.read_text().count("subscribed to")

    await eventually(subscribed, lambda n: n >= times, timeout=20)


async def test_sigkill_mid_stream_loses_nothing(
    settings: Settings, registry: None, broker: PrivateBroker, tmp_path: Path
) -> None:
    """Kill -9 the ingest while messages flow; after a restart every reading is stored exactly once."""
    n = 4000
    log = tmp_path / "ingest.log"
    proc = _spawn_ingest(settings, broker, log)
    await _wait_subscribed(log, 1)
    publisher = asyncio.create_task(_publish_range(broker.port, settings.TOPIC_PREFIX, 0, n, pace=0.0005))
    # Kill while part of the stream is committed, part in flight and part not yet sent.
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 800, timeout=30, interval=0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = await count_readings(settings.DATABASE_URL)
    await publisher  # the rest is queued by the broker for the persistent session
    assert killed_at < 4 * n, "the kill came too late to prove anything"

    proc = _spawn_ingest(settings, broker, log)
    try:
        await _wait_subscribed(log, 2)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * n, timeout=60)
        await asyncio.sleep(0.5)  # anything extra would show up now
        await _assert_exactly(settings.DATABASE_URL, n)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, log.read_text()[-3000:]
    assert "ingest stopped" in log.read_text()


async def test_database_outage_longer_than_the_broker_queue(
    settings: Settings, registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL becomes unreachable (for parkwatch alone) while stations keep publishing more
    than the broker could queue; when it returns, every reading is stored exactly once."""
    monkeypatch.setattr(retry, "RETRY_CAP", 0.5)
    # A broker queue of 100 messages: without the spool, most of the outage's 1,500 would be lost.
    broker = PrivateBroker(tmp_path / "broker", overrides={"max_queued_messages": "100"})
    broker.start()
    proxy = TcpProxy(*database_address(settings.DATABASE_URL))
    await proxy.start()
    direct_url = settings.DATABASE_URL
    run_settings = settings.model_copy(
        update={"DATABASE_URL": via(direct_url, "127.0.0.1", proxy.port), "MQTT_URL": broker.url}
    )
    try:
        async with running(IngestService(run_settings, stats=IngestStats())) as service:
            await _publish_range(broker.port, settings.TOPIC_PREFIX, 0, 300)
            await eventually(lambda: count_readings(direct_url), lambda c: c == 4 * 300)

            await proxy.block()
            await _publish_range(broker.port, settings.TOPIC_PREFIX, 300, 1800)
            # Everything published during the outage was acknowledged into the spool, not the broker queue.
            await eventually(lambda: _true(service.stats.messages), lambda m: m >= 1800, timeout=30)
            assert service.stats.batches_spooled > 0
            assert service.stats.db_outages == 1
            assert await count_readings(direct_url) == 4 * 300
            assert any(settings.SPOOL_DIR.glob("*.seg"))

            await proxy.unblock()
            await eventually(lambda: count_readings(direct_url), lambda c: c >= 4 * 1800, timeout=60)
            await asyncio.sleep(0.3)
            await _assert_exactly(direct_url, 1800)
            await eventually(lambda: _true(service.spool.is_empty()), bool, timeout=10)
            assert not any(settings.SPOOL_DIR.glob("*.seg"))
            # and ingest goes straight to the database again
            await _publish_range(broker.port, settings.TOPIC_PREFIX, 1800, 1900)
            await eventually(lambda: count_readings(direct_url), lambda c: c == 4 * 1900)
            await _assert_exactly(direct_url, 1900)
    finally:
        await proxy.close()
        broker.stop()


async def _true(value: object) -> object:
    return value


@pytest.fixture
async def outage_rig(
    settings: Settings, registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[PrivateBroker, TcpProxy, Settings]]:
    """A private broker, and a TCP proxy between parkwatch and PostgreSQL that the test can cut;
    yields them with settings that point parkwatch through both."""
    monkeypatch.setattr(retry, "RETRY_CAP", 0.5)
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    proxy = TcpProxy(*database_address(settings.DATABASE_URL))
    await proxy.start()
    via_proxy = via(settings.DATABASE_URL, "127.0.0.1", proxy.port)
    assert via_proxy != settings.DATABASE_URL
    try:
        yield broker, proxy, settings.model_copy(update={"DATABASE_URL": via_proxy, "MQTT_URL": broker.url})
    finally:
        await proxy.close()
        broker.stop()


async def test_spool_survives_a_restart_during_the_outage(
    settings: Settings, outage_rig: tuple[PrivateBroker, TcpProxy, Settings]
) -> None:
    """Stopped while the database is away, the ingest replays its spool after starting again."""
    broker, proxy, run_settings = outage_rig
    async with running(IngestService(run_settings, stats=IngestStats())) as first:
        await proxy.block()
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 0, 500)
        await eventually(lambda: _true(first.stats.messages), lambda m: m >= 500, timeout=30)
    assert any(settings.SPOOL_DIR.glob("*.seg"))

    await proxy.unblock()
    async with running(IngestService(run_settings, stats=IngestStats()), connected=False):
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 500, timeout=60)
        await _assert_exactly(settings.DATABASE_URL, 500)


async def test_start_while_the_database_is_down(
    settings: Settings, outage_rig: tuple[PrivateBroker, TcpProxy, Settings]
) -> None:
    """An ingest (re)started during an outage validates with its cached registry and spools."""
    broker, proxy, run_settings = outage_rig
    async with running(IngestService(run_settings, stats=IngestStats())):
        pass  # a first run with the database up leaves the registry cache in the spool folder
    assert (settings.SPOOL_DIR / "registry-cache.json").exists()

    await proxy.block()
    async with running(IngestService(run_settings, stats=IngestStats())) as second:
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 0, 200)
        await eventually(lambda: _true(second.stats.batches_spooled), bool, timeout=15)
        await proxy.unblock()
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 200, timeout=60)
        await _assert_exactly(settings.DATABASE_URL, 200)  # no dead letters: the cache knew the stations


async def _publish_resending(port: int, prefix: str, start: int, stop: int, k: int) -> int:
    """Publish [start, stop) as a station does: a message the broker has not acknowledged is sent
    again once it is back (QoS 1). Returns how many publishes had to be repeated."""
    repeated = 0
    i = start
    while i < stop:
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier=f"station-{prefix}-{k}", timeout=5) as client:
                while i < stop:
                    park, station, body = _payload(i)
                    await client.publish(readings_topic(prefix, park, station), body, qos=1, timeout=5)
                    i += 1
        except aiomqtt.MqttError:
            repeated += 1
            await asyncio.sleep(0.2)
    return repeated


@pytest.mark.parametrize("how", ["restart", "crash"])
async def test_broker_restart_or_crash_mid_stream_loses_nothing(
    settings: Settings, registry: None, broker: PrivateBroker, tmp_path: Path, how: str
) -> None:
    """Mosquitto (deploy/mosquitto.conf) stopped (SIGTERM) or killed (SIGKILL) while four stations
    publish and the ingest consumes; it comes back on the same port and folder; every reading is
    stored exactly once. A crash loses only what the broker had acknowledged and not yet passed
    on or saved (docs/storage.md#what-a-broker-crash-can-lose): with an ingest keeping up, nothing."""
    n = 6000
    log = tmp_path / "ingest.log"
    proc = _spawn_ingest(settings, broker, log)
    try:
        await _wait_subscribed(log, 1)
        # A broker that has run for its autosave interval has the ingest's session on disk; one
        # that crashes before its first save forgets it, and drops what stations send until the
        # ingest subscribes again (docs/storage.md#what-a-broker-crash-can-lose).
        broker.save()
        quarter = n // 4
        publishers = [
            asyncio.create_task(
                _publish_resending(broker.port, settings.TOPIC_PREFIX, k * quarter, (k + 1) * quarter, k)
            )
            for k in range(4)
        ]
        await eventually(
            lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 1000, timeout=30, interval=0.01
        )
        broker.kill() if how == "crash" else broker.stop()
        down_at = await count_readings(settings.DATABASE_URL)
        await asyncio.sleep(1.0)
        broker.start()
        repeated = await asyncio.gather(*publishers)
        assert down_at < 4 * n, "the broker went down too late to prove anything"
        assert sum(repeated) > 0, "no publisher noticed the broker going down"
        await _wait_subscribed(log, 2)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * n, timeout=60)
        await asyncio.sleep(0.5)
        await _assert_exactly(settings.DATABASE_URL, n)
        assert "no longer had the session" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, log.read_text()[-3000:]


async def test_a_broker_that_lost_the_ingests_session_is_reported(
    settings: Settings, registry: None, broker: PrivateBroker, tmp_path: Path
) -> None:
    """Killed before it ever saved, the broker comes back without the ingest's session: the ingest
    says so in its log and counts it; a broker that kept the session (stopped cleanly) says nothing."""
    log = tmp_path / "ingest.log"
    proc = _spawn_ingest(settings, broker, log)
    try:
        await _wait_subscribed(log, 1)
        broker.stop()  # saves: the session survives
        broker.start()
        await _wait_subscribed(log, 2)
        assert "no longer had the session" not in log.read_text()
        broker.kill()
        (broker.folder / "mosquitto.db").unlink()  # as if it had crashed before its first save
        broker.start()
        await _wait_subscribed(log, 3)
        assert log.read_text().count("no longer had the session") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, log.read_text()[-3000:]


@pytest.fixture
def small_spool_disk(settings: Settings) -> Iterator[Path]:
    """The spool folder on a 64 KiB tmpfs: a disk that fills (ENOSPC) during an outage."""
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(settings.SPOOL_DIR)], check=True)
    try:
        yield settings.SPOOL_DIR
    finally:
        subprocess.run(["umount", "--lazy", str(settings.SPOOL_DIR)], check=False)


async def test_a_full_spool_disk_stops_acks_and_the_ingest_recovers_by_itself(
    settings: Settings, outage_rig: tuple[PrivateBroker, TcpProxy, Settings], small_spool_disk: Path
) -> None:
    """The database is away and the spool's disk fills: the ingest stops acknowledging (the broker
    keeps the messages), says so in /healthz and /metrics, and once the database is back it
    replays the spool and stores everything exactly once, with no restart."""
    broker, proxy, run_settings = outage_rig
    async with (
        running(IngestService(run_settings, stats=IngestStats())) as service,
        serving_api(run_settings, service) as api,
    ):
        await proxy.block()
        # A few first, so that the spool holds something before the disk fills (one large
        # first batch could fill it at once and leave it empty).
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 0, 20)
        await eventually(lambda: _true(service.stats.batches_spooled), bool, timeout=30)
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 20, 1500)
        await eventually(lambda: _true(service.stats.durability_failures), bool, timeout=30)
        health = (await api.get("/healthz")).json()
        assert health["ingest"]["writes_stalled_s"] is not None
        assert health["ingest"]["spool_pending_batches"] > 0
        metrics = (await api.get("/metrics")).text
        assert "parkwatch_ingest_durability_failures_total 0" not in metrics
        assert "parkwatch_ingest_spool_pending_batches 0" not in metrics

        await proxy.unblock()
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 1500, timeout=90)
        await asyncio.sleep(0.3)
        await _assert_exactly(settings.DATABASE_URL, 1500)
        assert service.stalled_since is None
        health = (await api.get("/healthz")).json()
        assert health["ingest"]["writes_stalled_s"] is None and health["status"] == "ok", health


async def test_a_clock_jump_on_the_ingest_host_is_seen_and_loses_nothing(
    settings: Settings, ingest: IngestService
) -> None:
    """The host's clock set back an hour: stations' readings of now look an hour ahead and are
    refused (dead letters, nothing lost); the heartbeat finds the clock an hour behind the
    database server's and /healthz, /metrics and the log say so; once the clock is right, replay
    with --clock-shift stores them all. Set forward an hour, readings are accepted, and flagged."""
    real = ingest.clock
    ingest.clock = lambda: real() - timedelta(hours=1)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    for i in range(20):
        await publish(settings, "p1", "p1-out", message("p1-out", start + timedelta(seconds=i), {"cod": 10.0 + i}))
    dead = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT reason FROM dead_letters"), lambda rows: len(rows) == 20
    )
    assert {r["reason"] for r in dead} == {"bad_timestamp"} and await count_readings(settings.DATABASE_URL) == 0

    await ingest.heartbeat()
    assert ingest.clock_off and 3590 < (ingest.clock_offset_s or 0) < 3610
    async with serving_api(settings, ingest) as api:
        health = (await api.get("/healthz")).json()
        assert health["status"] == "degraded" and 3590 < health["ingest"]["clock_offset_s"] < 3610, health
        assert "parkwatch_ingest_clock_offset_seconds 3" in (await api.get("/metrics")).text

        ingest.clock = real
        await ingest.heartbeat()
        assert not ingest.clock_off
        assert (await api.get("/healthz")).json()["status"] == "ok"

    result = run_cli(
        "dead-letters", "replay", "--reason", "bad_timestamp", "--clock-shift", "3600", env=cli_env(settings)
    )
    assert result.returncode == 0, result.stderr
    assert "20 resolved" in result.stdout, result.stdout
    assert await count_readings(settings.DATABASE_URL) == 20

    ingest.clock = lambda: real() + timedelta(hours=1)
    later = datetime.now(UTC).replace(microsecond=0)
    for i in range(5):
        await publish(settings, "p1", "p1-out", message("p1-out", later + timedelta(seconds=i), {"cod": 1.0}))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 25)
    await ingest.heartbeat()
    assert ingest.clock_off and -3610 < (ingest.clock_offset_s or 0) < -3590
