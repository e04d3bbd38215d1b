"""Scale: a supervised `serve` and several ingest instances sharing the readings lose nothing when killed.

Each test runs parkwatch as the user does (the console script, in subprocesses) against a private
broker from deploy/mosquitto.conf, and kills processes with SIGKILL mid-stream (docs/scale.md).
"""

from __future__ import annotations

import asyncio
import operator
import os
import re
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from parkwatch.settings import Settings
from simulators.broker import PrivateBroker, free_port
from tests.helpers import cli_env, count_readings, eventually, fetch, fetchval
from tests.test_no_loss import _assert_exactly, _publish_range

# Killing processes mid-stream and counting every reading: measured with the machine to
# ourselves, as the other no-loss tests (pyproject.toml, marker serial).
pytestmark = pytest.mark.serial

SHARE_GROUP = "ingest"
INSTANCES = 3
MULTI_CORE = (os.cpu_count() or 1) > 1


def _spawn(settings: Settings, broker: PrivateBroker, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    base |= cli_env(settings) | {"PARKWATCH_MQTT_URL": broker.url, "PARKWATCH_LOG_LEVEL": "INFO"} | env
    return subprocess.Popen(
        [sys.executable, "-m", "parkwatch.cli", "serve", *args],
        env=base,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def _logged(log: Path, text: str, times: int = 1, timeout: float = 30) -> None:
    async def seen() -> int:
        return log.read_text(errors="replace").count(text)

    await eventually(seen, lambda n: n >= times, timeout=timeout)


class Instances:
    """Ingest instances of one shared group, each its own client id, spool and log."""

    def __init__(self, settings: Settings, broker: PrivateBroker, folder: Path) -> None:
        self.settings = settings
        self.broker = broker
        self.folder = folder
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.starts = dict.fromkeys(range(INSTANCES), 0)

    def log(self, k: int) -> Path:
        return self.folder / f"ingest-{k}.log"

    async def start(self, k: int) -> None:
        self.procs[k] = _spawn(
            self.settings,
            self.broker,
            self.log(k),
            "--only",
            "ingest",
            "--single-process",
            "--stats-file",
            str(self.folder / f"stats-{k}.json"),
            PARKWATCH_MQTT_CLIENT_ID=f"{self.settings.MQTT_CLIENT_ID}-{k}",
            PARKWATCH_MQTT_SHARE_GROUP=SHARE_GROUP,
            PARKWATCH_SPOOL_DIR=str(self.folder / f"spool-{k}"),
        )
        self.starts[k] += 1
        await _logged(self.log(k), "subscribed to", self.starts[k])

    def kill(self, k: int) -> None:
        self.procs[k].send_signal(signal.SIGKILL)
        self.procs[k].wait(timeout=10)

    def stop_all(self) -> dict[int, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {k: proc.wait(timeout=60) for k, proc in self.procs.items()}


async def test_three_instances_share_the_readings_and_sigkills_lose_nothing(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """Three ingest instances in one shared group; one is SIGKILLed mid-batch again and again and
    comes back (as a supervisor or systemd brings it back): every reading stored once, none twice."""
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    fleet = Instances(settings, broker, tmp_path)
    n, kills = 9000, 4
    try:
        for k in range(INSTANCES):
            await fleet.start(k)
        publisher = asyncio.create_task(_publish_range(broker.port, settings.TOPIC_PREFIX, 0, n, pace=0.0004))
        for round_ in range(kills):
            # Kill while part of the stream is committed, part in the victim's hands, part unsent.
            floor = 4 * n * (round_ + 1) // (kills + 2)
            await eventually(lambda: count_readings(settings.DATABASE_URL), partial(operator.le, floor), timeout=60)
            fleet.kill(0)
            await asyncio.sleep(0.3)  # the broker queues the victim's share meanwhile
            await fleet.start(0)
        assert not publisher.done(), "the stream ended before the last kill: nothing was proven"
        await publisher
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * n, timeout=90)
        await asyncio.sleep(0.5)  # a reading stored twice would show up now
        await _assert_exactly(settings.DATABASE_URL, n)
        assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM reading_revisions") == 0
        codes = fleet.stop_all()
    finally:
        for proc in fleet.procs.values():
            if proc.poll() is None:
                proc.kill()
        broker.stop()
    assert codes == dict.fromkeys(range(INSTANCES), 0), codes
    for k in range(INSTANCES):
        # every instance took a share of the last stretch (the survivors: of the whole stream)
        stats = (tmp_path / f"stats-{k}.json").read_text()
        assert int(re.search(r'"messages": (\d+)', stats)[1]) > 0  # type: ignore[index]
    assert fleet.starts[0] == kills + 1


async def test_a_stopped_member_keeps_its_share_until_it_returns_or_is_retired(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """SIGTERM on a member keeps its session: its share waits at the broker (as a lone ingest's
    would during a restart). `serve --only ingest --retire` as that member drains the share and
    leaves the group; from then on the others take everything."""
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    fleet = Instances(settings, broker, tmp_path)
    try:
        for k in range(2):
            await fleet.start(k)
        fleet.procs[1].send_signal(signal.SIGTERM)
        assert fleet.procs[1].wait(timeout=60) == 0
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 0, 600)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 250, timeout=30)
        await asyncio.sleep(1.0)
        waiting = 4 * 600 - await count_readings(settings.DATABASE_URL)
        assert 4 * 200 <= waiting <= 4 * 400, "about half the stream should wait for the stopped member"

        retire = _spawn(
            settings,
            broker,
            fleet.log(1),
            "--only",
            "ingest",
            "--retire",
            PARKWATCH_MQTT_CLIENT_ID=f"{settings.MQTT_CLIENT_ID}-1",
            PARKWATCH_MQTT_SHARE_GROUP=SHARE_GROUP,
            PARKWATCH_SPOOL_DIR=str(tmp_path / "spool-1"),
        )
        assert await asyncio.to_thread(retire.wait, 90) == 0, fleet.log(1).read_text()[-2000:]
        await _assert_exactly(settings.DATABASE_URL, 600)
        assert "retired session" in fleet.log(1).read_text()
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 600, 900)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 900, timeout=30)
        await _assert_exactly(settings.DATABASE_URL, 900)
        fleet.stop_all()
    finally:
        for proc in fleet.procs.values():
            if proc.poll() is None:
                proc.kill()
        broker.stop()


async def test_serve_retires_the_sessions_its_new_plan_no_longer_uses(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """Two ingest processes, stopped while stations publish; the next start runs one: the two
    sessions' queues are drained and their subscriptions left, every reading stored once."""
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    log = tmp_path / "serve.log"
    two = {"PARKWATCH_INGEST_PROCESSES": "2"}
    try:
        proc = _spawn(settings, broker, log, "--only", "ingest", **two)
        await _logged(log, "subscribed to", 2 if MULTI_CORE else 1)
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 0, 300)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 300, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, log.read_text()[-2000:]
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 300, 2000)  # queued for the stopped sessions

        proc = _spawn(settings, broker, log, "--only", "ingest", PARKWATCH_INGEST_PROCESSES="1")
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 2000, timeout=90)
        await _publish_range(broker.port, settings.TOPIC_PREFIX, 2000, 2300)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 2300, timeout=30)
        await asyncio.sleep(0.5)
        await _assert_exactly(settings.DATABASE_URL, 2300)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()
    text = log.read_text()
    if MULTI_CORE:
        assert text.count("retired session") == 2, text[-3000:]
    sessions = (settings.SPOOL_DIR / "sessions.json").read_text()
    assert f'"client_id": "{settings.MQTT_CLIENT_ID}"' in sessions
    assert f"{settings.MQTT_CLIENT_ID}-0" not in sessions


async def test_supervised_serve_loses_nothing_when_a_part_or_itself_is_killed(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """`parkwatch serve` with its parts in processes: SIGKILL its ingest mid-stream and it is
    restarted and stores every reading exactly once; /healthz lists each part; SIGKILL the
    supervisor and its parts stop cleanly instead of living on as orphans."""
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    log = tmp_path / "serve.log"
    port = free_port()
    n = 4000
    proc = _spawn(
        settings,
        broker,
        log,
        PARKWATCH_API_PORT=str(port),
        PARKWATCH_INGEST_PROCESSES="2",
        PARKWATCH_METRICS_PUBLIC="true",
    )
    try:
        await _logged(log, "subscribed to", 2 if MULTI_CORE else 1)
        if not MULTI_CORE:
            assert "each in a process of its own" not in log.read_text()
            return
        assert "serve: ingest-0, ingest-1, compliance, alerts, api, each in a process of its own" in log.read_text()
        publisher = asyncio.create_task(_publish_range(broker.port, settings.TOPIC_PREFIX, 0, n, pace=0.0005))
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * 800, timeout=30)
        ingest_pid = int(re.findall(r"ingest-0 started \(pid (\d+)\)", log.read_text())[-1])
        os.kill(ingest_pid, signal.SIGKILL)
        await publisher
        await _logged(log, "ingest-0 started (pid", 2)
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda c: c >= 4 * n, timeout=60)
        await asyncio.sleep(0.5)
        await _assert_exactly(settings.DATABASE_URL, n)
        assert f"ingest-0 (pid {ingest_pid}) was killed by signal 9" in log.read_text()

        async def parts() -> list[str]:
            async with httpx.AsyncClient() as http:
                body = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
            return sorted(p["role"] for p in body.get("processes", []) if p["running"] and p["pid"] != ingest_pid)

        await eventually(parts, lambda roles: roles == ["alerts", "api", "compliance", "ingest", "ingest"], timeout=40)

        async def stored_by_ingests() -> int:
            # the API's process has no ingest: /metrics shows each ingest process's counters
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            found = re.findall(r'parkwatch_ingest_readings_new_total\{ingest="[^"]+-1"\} (\d+)', text)
            return int(float(found[0])) if found else 0

        await eventually(stored_by_ingests, lambda n: n > 0, timeout=40)
        children = [int(p) for p in re.findall(r"started \(pid (\d+)\)", log.read_text())[-5:]]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

        async def alive() -> list[int]:
            return [pid for pid in children if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]

        await eventually(alive, lambda left: not left, timeout=60)
        assert "ingest stopped" in log.read_text()
        # a clean stop removes the parts' rows
        left = await fetch(settings.DATABASE_URL, "SELECT role FROM service_processes")
        assert left == [], left
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_supervised_serve_stops_at_once_when_a_part_cannot_start(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """The API's port is taken: restarting cannot help, so serve stops, saying which part failed."""
    taken = free_port()
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    blocker = socket.create_server(("127.0.0.1", taken))
    log = tmp_path / "serve.log"
    try:
        proc = _spawn(settings, broker, log, PARKWATCH_API_PORT=str(taken))
        code = await asyncio.to_thread(proc.wait, 90)
    finally:
        blocker.close()
        broker.stop()
    text = log.read_text()
    if MULTI_CORE:
        assert code == 1, text[-2000:]
        assert "serve stopped: api exited with status" in text, text[-2000:]
        assert "ingest stopped" in text  # the other parts were stopped cleanly
    else:
        assert code != 0


def _member(port: int, client_id: str, got: list[int], *, subscribe: bool) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=MQTTProtocolVersion.MQTTv311
    )
    client.on_message = lambda _c, _u, m: got.append(int(m.payload))
    if subscribe:
        client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(f"$share/{SHARE_GROUP}/caveat/#", qos=1)
    client.connect("127.0.0.1", port, 5)
    client.loop_start()
    return client


def _publish_numbers(port: int, numbers: range) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"caveat-pub-{numbers.start}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    for i in numbers:
        client.publish("caveat/x", str(i), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


async def test_the_brokers_shared_subscription_caveats_are_as_documented(tmp_path: Path) -> None:
    """What docs/scale.md#caveats says of the shipped broker (deploy/mosquitto.conf), measured: a
    stopped member's share waits in its session for its return; and over a restart of the broker
    a shared subscription is not restored, so a member must subscribe again (the ingest does, on
    every connection) and what was published before it did reached no one. Should a broker
    upgrade change either, this fails and the documentation must change with it."""
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    got: dict[str, list[int]] = {"a": [], "b": []}
    try:
        a = _member(broker.port, "caveat-a", got["a"], subscribe=True)
        b = _member(broker.port, "caveat-b", got["b"], subscribe=True)
        await asyncio.sleep(0.5)
        b.disconnect()
        b.loop_stop()
        await asyncio.to_thread(_publish_numbers, broker.port, range(20))
        await asyncio.sleep(0.5)
        assert len(got["a"]) == 10, got  # round robin counts the absent member in
        b = _member(broker.port, "caveat-b", got["b"], subscribe=False)
        await eventually(lambda: _true(len(got["b"])), lambda n: n == 10, timeout=10)  # its share waited

        for client in (a, b):
            client.disconnect()
            client.loop_stop()
        broker.stop()  # cleanly: it saves the sessions
        broker.start()
        a = _member(broker.port, "caveat-a", got["a"], subscribe=False)  # session present, not subscribing
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_publish_numbers, broker.port, range(20, 30))
        await asyncio.sleep(1.0)
        assert max(got["a"]) < 20, "the shared subscription survived the restart: update docs/scale.md#caveats"
        a.subscribe(f"$share/{SHARE_GROUP}/caveat/#", qos=1)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_publish_numbers, broker.port, range(30, 40))
        await eventually(lambda: _true(sum(i >= 30 for i in got["a"])), lambda n: n == 10, timeout=10)
        a.disconnect()
        a.loop_stop()
    finally:
        broker.stop()


async def _true(value: int) -> int:
    return value
