"""Station identity on the broker: `parkwatch broker-auth` files in a real Mosquitto run from deploy/mosquitto-production.conf.

The ACL matrix is tried from outside, with MQTT clients logging in as each identity: a station
publishes only on its own topics, reads nothing, and cannot pose as another station, as the
ingest or as the notices; the services get exactly their rights; a reload adds and removes
stations without dropping a connected client; stations reach the TLS listener with the
private CA of deploy/make-certs.sh and are refused without it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import orjson
import pytest

from ingest.registry import load_registry_file
from ingest.service import IngestService
from ingest.stats import IngestStats
from parkwatch import brokerauth
from parkwatch.brokerauth import GATEWAY_USER, INGEST_USER, StationTopics
from parkwatch.brokerconf import PRODUCTION_CONF, read_config
from parkwatch.settings import Settings
from schemas.readings import gateway_events_topic, hj212_topic, readings_topic
from schemas.registry import RegistryFile
from simulators.broker import PrivateBroker
from tests.conftest import DATA
from tests.helpers import cli_env, count_readings, eventually, run_cli, running
from tests.services import free_port

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parent.parent
PREFIX = "pw"
STATIONS = [
    StationTopics("a-out", "pa", "AAAA0000000000000000A001"),
    StationTopics("b-out", "pb", "BBBB0000000000000000B001"),
    StationTopics("c-air", "pa", None),
]
# Long enough for Mosquitto to route a message to a connected subscriber on this machine; a
# message not seen within it after a later one from the same sender was seen was refused.
SETTLE = 0.5


# -- the files -------------------------------------------------------------------------------


def test_generate_issues_once_keeps_rotates_and_removes(tmp_path: Path) -> None:
    """First run: every identity issued; second: all kept, none shown again; new, rotated and removed ones as asked."""
    out = tmp_path / "auth"
    first = brokerauth.generate(out, PREFIX, STATIONS)
    assert set(first.issued) == {INGEST_USER, GATEWAY_USER, "a-out", "b-out", "c-air"} and not first.kept
    creds = json.loads((out / "credentials.json").read_text())
    assert creds["ingest"] == {"username": INGEST_USER, "password": first.issued[INGEST_USER]}
    assert creds["stations"]["a-out"]["password"] == first.issued["a-out"]
    assert len(first.issued["a-out"]) >= 32
    passwd = (out / "passwd").read_text()
    assert first.issued["a-out"] not in passwd and "a-out:$7$101$" in passwd
    assert stat.S_IMODE((out / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "passwd").stat().st_mode) == 0o640

    second = brokerauth.generate(out, PREFIX, STATIONS)
    assert not second.issued and len(second.kept) == 5
    assert json.loads((out / "credentials.json").read_text()) == {"stations": {}}, "passwords are shown once"
    assert (out / "passwd").read_text() == passwd

    third = brokerauth.generate(out, PREFIX, [*STATIONS[1:], StationTopics("d-new", "pb", None)], rotate=["b-out"])
    assert set(third.issued) == {"b-out", "d-new"} and third.removed == ["a-out"]
    assert "a-out:" not in (out / "passwd").read_text()
    with pytest.raises(ValueError, match="unknown identities: nobody"):
        brokerauth.generate(out, PREFIX, STATIONS, rotate=["nobody"])


def test_the_hash_is_the_one_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """Mosquitto's own tool hashes a password; ours, with its salt, gives the very same line."""
    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "u", "s3cret-Password"], check=True)
    theirs = path.read_text().strip().split(":", 1)[1]
    _, kind, iterations, salt, _digest = theirs.split("$")
    assert (kind, iterations) == ("7", "101")
    assert brokerauth.mosquitto_hash("s3cret-Password", base64.b64decode(salt)) == theirs


def test_production_conf_keeps_every_durability_setting() -> None:
    """deploy/mosquitto-production.conf differs from deploy/mosquitto.conf only in listeners and access."""
    dev = read_config(ROOT / "deploy" / "mosquitto.conf")
    prod = read_config(PRODUCTION_CONF)
    access = {"listener", "allow_anonymous", "password_file", "acl_file", "per_listener_settings"}
    tls = {"cafile", "certfile", "keyfile", "tls_version"}
    assert {k: v for k, v in dev.items() if k not in access} == {k: v for k, v in prod.items() if k not in access | tls}
    assert prod["allow_anonymous"] == "false" and prod["per_listener_settings"] == "false"


# -- a real broker ---------------------------------------------------------------------------


@dataclass
class Secured:
    broker: PrivateBroker
    auth: Path
    certs: Path
    passwords: dict[str, str]

    def client(self, user: str | None, *, password: str | None = None, ident: str | None = None) -> aiomqtt.Client:
        pw = password if password is not None else self.passwords.get(user or "")
        return aiomqtt.Client("127.0.0.1", self.broker.port, username=user, password=pw, identifier=ident)

    def tls_client(self, user: str, *, trust: bool = True) -> aiomqtt.Client:
        context = (
            ssl.create_default_context(cafile=str(self.certs / "ca.crt")) if trust else ssl.create_default_context()
        )
        assert self.broker.tls_port is not None
        return aiomqtt.Client(
            "127.0.0.1", self.broker.tls_port, username=user, password=self.passwords[user], tls_context=context
        )


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    """A Mosquitto from the production file with broker-auth's files and make-certs.sh's certificates."""
    auth = tmp_path / "auth"
    certs = tmp_path / "certs"
    subprocess.run(["bash", str(ROOT / "deploy" / "make-certs.sh"), str(certs), "127.0.0.1"], check=True)
    outcome = brokerauth.generate(auth, PREFIX, STATIONS)
    broker = PrivateBroker(
        tmp_path / "broker",
        source=PRODUCTION_CONF,
        tls_port=free_port(),
        overrides={
            "password_file": str(auth / "passwd"),
            "acl_file": str(auth / "acl"),
            "cafile": str(certs / "ca.crt"),
            "certfile": str(certs / "server.crt"),
            "keyfile": str(certs / "server.key"),
        },
    )
    broker.start()
    try:
        yield Secured(broker, auth, certs, dict(outcome.issued))
    finally:
        broker.stop()


@asynccontextmanager
async def listening(client: aiomqtt.Client, *topics: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Subscribe and collect (topic, payload) until the block ends."""
    got: list[tuple[str, bytes]] = []
    async with client:
        for t in topics:
            await client.subscribe(t, qos=1)

        async def collect() -> None:
            async for m in client.messages:
                got.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()


async def _publish_all(client: aiomqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    async with client:
        for topic, body in messages:
            await client.publish(topic, body, qos=1)


async def _seen(got: list[tuple[str, bytes]], body: bytes) -> None:
    await eventually(lambda: _value([b for _, b in got]), lambda bodies: body in bodies, timeout=5)


async def _value(v: Any) -> Any:
    return v


async def test_nobody_connects_without_a_password(secured: Secured) -> None:
    for user, password in ((None, None), ("a-out", "wrong"), ("a-out", ""), ("nobody", "x"), (INGEST_USER, "x")):
        with pytest.raises(aiomqtt.MqttError):
            async with secured.client(user, password=password):
                pass
    async with secured.client("a-out"):
        pass


async def test_a_station_publishes_only_for_itself_and_reads_nothing(secured: Secured) -> None:
    """Station a-out tries every topic that is not its own; the ingest, subscribed to all of
    them, receives only a-out's own messages."""
    a_own = readings_topic(PREFIX, "pa", "a-out")
    forged = [
        (readings_topic(PREFIX, "pb", "b-out"), b"as b-out"),
        (readings_topic(PREFIX, "pa", "c-air"), b"as c-air, same park"),
        (readings_topic(PREFIX, "pb", "a-out"), b"own id, other park"),
        (hj212_topic(PREFIX, "BBBB0000000000000000B001"), b"as b-out's logger"),
        (hj212_topic(PREFIX, "ZZZZ0000000000000000Z001"), b"an unknown MN"),
        (f"{PREFIX}/pa/alerts", b"a fake notice"),
        (f"{PREFIX}/watchdog/serve", b"a fake watchdog state"),
        ("elsewhere/x", b"outside the prefix"),
    ]
    own = [(a_own, b"a-out reading"), (hj212_topic(PREFIX, "AAAA0000000000000000A001"), b"a-out packet")]
    async with (
        listening(secured.client(INGEST_USER), f"{PREFIX}/+/+/readings", f"{PREFIX}/hj212/+") as ingest,
        listening(secured.client(GATEWAY_USER), "#") as gateway_reads,
        listening(secured.client("b-out"), "#", f"{PREFIX}/pa/a-out/readings") as b_reads,
    ):
        await _publish_all(secured.client("a-out"), [*forged, *own])
        await _seen(ingest, b"a-out packet")
        await asyncio.sleep(SETTLE)
        assert sorted(b for _, b in ingest) == [b"a-out packet", b"a-out reading"]
        assert gateway_reads == [] and b_reads == [], "nobody but the ingest reads station data"


async def test_the_services_have_their_rights_and_no_more(secured: Secured) -> None:
    """The gateway forwards HJ 212 packets for any MN but cannot write readings; the ingest
    publishes notices and the watchdog's state but cannot pose as a station."""
    events = gateway_events_topic(PREFIX)
    async with listening(secured.client(INGEST_USER), f"{PREFIX}/+/+/readings", f"{PREFIX}/hj212/+", events) as ingest:
        await _publish_all(
            secured.client(GATEWAY_USER),
            [
                (readings_topic(PREFIX, "pa", "a-out"), b"gateway as a station"),
                (hj212_topic(PREFIX, "BBBB0000000000000000B001"), b"forwarded packet"),
                (events, b"gateway event"),
            ],
        )
        await _publish_all(
            secured.client(INGEST_USER), [(readings_topic(PREFIX, "pa", "a-out"), b"ingest as a station")]
        )
        await _publish_all(
            secured.client("a-out"),
            [(events, b"a station posing as the gateway"), (readings_topic(PREFIX, "pa", "a-out"), b"last")],
        )
        await _seen(ingest, b"last")
        await asyncio.sleep(SETTLE)
        assert sorted(b for _, b in ingest) == [b"forwarded packet", b"gateway event", b"last"]
    async with listening(secured.client("b-out"), f"{PREFIX}/pb/alerts") as b_reads:
        await _publish_all(secured.client(INGEST_USER), [(f"{PREFIX}/pb/alerts", b"notice")])
        await asyncio.sleep(SETTLE)
        assert b_reads == [], "notices are for the park's operators' identities, not its stations"


async def test_a_reload_adds_and_removes_stations_without_dropping_anyone(secured: Secured) -> None:
    """The registry gains d-new and loses c-air: after broker-auth and SIGHUP, the ingest's
    connection (opened before) still receives, d-new publishes, c-air cannot log in."""
    async with listening(secured.client(INGEST_USER), f"{PREFIX}/+/+/readings") as ingest:
        outcome = brokerauth.generate(secured.auth, PREFIX, [*STATIONS[:2], StationTopics("d-new", "pb", None)])
        assert set(outcome.issued) == {"d-new"} and outcome.removed == ["c-air"]
        secured.passwords.update(outcome.issued)
        secured.broker.reload()
        await asyncio.sleep(SETTLE)
        await _publish_all(secured.client("d-new"), [(readings_topic(PREFIX, "pb", "d-new"), b"d-new reading")])
        await _seen(ingest, b"d-new reading")
        await _publish_all(secured.client("a-out"), [(readings_topic(PREFIX, "pa", "a-out"), b"a-out still")])
        await _seen(ingest, b"a-out still")
    with pytest.raises(aiomqtt.MqttError):
        async with secured.client("c-air"):
            pass


async def test_stations_reach_the_tls_listener_with_the_private_ca_only(secured: Secured) -> None:
    async with listening(secured.client(INGEST_USER), f"{PREFIX}/+/+/readings") as ingest:
        await _publish_all(secured.tls_client("a-out"), [(readings_topic(PREFIX, "pa", "a-out"), b"over tls")])
        await _seen(ingest, b"over tls")
    with pytest.raises(aiomqtt.MqttError):
        async with secured.tls_client("a-out", trust=False):
            pass


async def test_the_ingest_logs_in_and_stores_only_what_stations_may_send(secured: Secured, settings: Settings) -> None:
    """parkwatch's ingest with its credentials over TLS (PARKWATCH_MQTT_CA_FILE): a station's
    own reading is stored; its forgery for another station never reaches the ingest."""
    assert secured.broker.tls_port is not None
    password = secured.passwords[INGEST_USER]
    mine = settings.model_copy(
        update={
            "MQTT_URL": f"mqtts://{INGEST_USER.replace('@', '%40')}:{password}@127.0.0.1:{secured.broker.tls_port}",
            "MQTT_CA_FILE": secured.certs / "ca.crt",
            "TOPIC_PREFIX": PREFIX,
        }
    )
    registry = RegistryFile.model_validate(
        {
            "parks": [{"id": "pa", "name": "A", "city": "长沙"}, {"id": "pb", "name": "B", "city": "株洲"}],
            "stations": [
                {"id": "a-out", "park_id": "pa", "kind": "wastewater_outlet", "parameters": ["w01018"]},
                {"id": "b-out", "park_id": "pb", "kind": "wastewater_outlet", "parameters": ["w01018"]},
            ],
        }
    )
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await load_registry_file(conn, registry)
    finally:
        await conn.close()

    def reading(station: str, value: float) -> bytes:
        return orjson.dumps(
            {
                "station_id": station,
                "ts": "2026-11-30T08:00:00+08:00",
                "readings": [{"parameter": "w01018", "value": value}],
            }
        )

    async with running(IngestService(mine, stats=IngestStats())):
        await _publish_all(
            secured.tls_client("a-out"),
            [
                (readings_topic(PREFIX, "pb", "b-out"), reading("b-out", 999.0)),
                (readings_topic(PREFIX, "pa", "a-out"), reading("a-out", 20.0)),
            ],
        )
        await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n >= 1)
        await asyncio.sleep(SETTLE)
        assert await count_readings(settings.DATABASE_URL) == 1


# -- the command -----------------------------------------------------------------------------


def test_broker_auth_command_from_the_database_and_from_a_file(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """`parkwatch broker-auth --out DIR` reads the registered stations; `--registry FILE` a file;
    a second run issues nothing new; a bad file is refused naming it."""
    out = tmp_path / "auth"
    done = run_cli("broker-auth", "--out", str(out), env=cli_env(settings))
    assert done.returncode == 0, done.stderr
    assert "4 station(s): 6 password(s) issued, 0 kept, 0 removed" in done.stdout
    creds = json.loads((out / "credentials.json").read_text())
    assert set(creds["stations"]) == {"p1-out", "p1-air", "p1-stack", "p2-out"}
    acl = (out / "acl").read_text()
    assert f"user p2-out\ntopic write {settings.TOPIC_PREFIX}/p2/p2-out/readings\n" in acl
    assert f"topic write {settings.TOPIC_PREFIX}/hj212/43020000000101" in acl

    again = run_cli("broker-auth", "--out", str(out), "--registry", str(DATA / "registry.yaml"), env=cli_env(settings))
    assert again.returncode == 0 and "0 password(s) issued, 6 kept" in again.stdout
    assert "hand them out" not in again.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("stations: [{id: 'no spaces allowed'}]\n")
    refused = run_cli("broker-auth", "--out", str(out), "--registry", str(bad), env=cli_env(settings))
    assert refused.returncode == 1 and str(bad) in refused.stderr
