"""How many ingest processes `serve` runs, their MQTT sessions, and the sessions a smaller plan retires."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from dataclasses import asdict, dataclass

import aiomqtt

from ingest.registry import REGISTRY_CACHE
from ingest.service import subscriptions
from parkwatch.settings import Settings
from parkwatch.supervisor import part_command, run_once

logger = logging.getLogger(__name__)

# The sessions serve used last time, kept beside the spools: a session it no longer uses must be
# retired, or the broker would go on queueing that member's share (or, unshared, a copy of
# everything) for no one.
SESSIONS_FILE = "sessions.json"
# The probe's round trip through the broker: a local broker answers in milliseconds.
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Member:
    """One ingest process's MQTT session: its client id, its shared group (None: unshared), its spool."""

    client_id: str
    group: str | None
    spool: str

    def env(self) -> dict[str, str]:
        """The settings that give an ingest process this session."""
        env = {"PARKWATCH_MQTT_CLIENT_ID": self.client_id, "PARKWATCH_SPOOL_DIR": self.spool}
        if self.group is not None:
            env["PARKWATCH_MQTT_SHARE_GROUP"] = self.group
        return env


def members(settings: Settings, n: int) -> list[Member]:
    """The sessions of n ingest processes: the configured one alone, or n members of one shared group."""
    if n == 1:
        return [Member(settings.MQTT_CLIENT_ID, settings.MQTT_SHARE_GROUP, str(settings.SPOOL_DIR))]
    group = settings.MQTT_SHARE_GROUP or re.sub(r"[#+/\s]", "_", settings.MQTT_CLIENT_ID)
    return [Member(f"{settings.MQTT_CLIENT_ID}-{k}", group, str(settings.SPOOL_DIR / f"ingest-{k}")) for k in range(n)]


def previous(settings: Settings) -> list[Member]:
    """The sessions recorded last time (none on a first start)."""
    path = settings.SPOOL_DIR / SESSIONS_FILE
    try:
        return [Member(**m) for m in json.loads(path.read_text())["members"]]
    except FileNotFoundError:
        # Before this file existed serve ran one ingest: its session, if it ran here, is the
        # configured client id, unshared.
        return [members(settings, 1)[0]] if (settings.SPOOL_DIR / REGISTRY_CACHE).exists() else []
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("%s unreadable (%s): sessions of an earlier layout are not retired", path, exc)
        return []


def record(settings: Settings, sessions: list[Member]) -> None:
    """Write the sessions in use (and any still to retire), atomically."""
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    path = settings.SPOOL_DIR / SESSIONS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"members": [asdict(m) for m in sessions]}, indent=2))
    tmp.replace(path)


async def shares(settings: Settings) -> bool | None:
    """True when the broker delivers through a shared subscription; None when it cannot be reached.

    A probe message published to a topic of our own must come back through `$share/...`. A broker
    without them (Mosquitto before 1.6) takes the filter literally and would deliver nothing.
    """
    target = settings.mqtt
    token = uuid.uuid4().hex[:12]
    topic = f"{settings.TOPIC_PREFIX}/probe/{token}"
    client = aiomqtt.Client(
        target.host,
        target.port,
        identifier=f"parkwatch-probe-{token}",
        username=target.username,
        password=target.password,
        tls_context=target.ssl_context(),
        timeout=PROBE_TIMEOUT,
    )
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        logger.warning("the broker cannot be reached to probe for shared subscriptions (%s)", exc)
        return None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await client.subscribe(f"$share/probe{token}/{topic}", qos=1)
            await client.publish(topic, b"probe", qos=1)
            async for message in client.messages:
                if str(message.topic) == topic:
                    return True
    except (TimeoutError, aiomqtt.MqttError) as exc:
        logger.warning("the broker did not pass a message through a shared subscription (%r)", exc)
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
    return False


async def choose(settings: Settings, wanted: int) -> list[Member]:
    """The sessions to run: `wanted` members when the broker shares, else the configured one alone.

    A broker that cannot be reached now keeps the plan of the last start: the ingest processes
    retry until it is back, and a plan changed now would retire sessions for nothing.
    """
    if wanted > 1:
        verdict = await shares(settings)
        if verdict is None:
            before = previous(settings)
            verdict = len(before) > 1 and all(m.group is not None for m in before)
        if not verdict:
            logger.warning(
                "running one ingest process: %d were wanted, but shared subscriptions could not be confirmed "
                "with this broker (docs/scale.md)",
                wanted,
            )
            wanted = 1
    return members(settings, wanted)


async def open_sessions(settings: Settings, sessions: list[Member]) -> None:
    """Make each session, subscribed, at the broker before anything is retired.

    The broker queues for a persistent session from its first subscription on: a session retired
    before its successors had subscribed would leave a gap in which stations' messages went to no
    one. Messages both receive meanwhile are stored once (ingest/store.py ignores duplicates).
    """
    target = settings.mqtt
    for member in sessions:
        async with aiomqtt.Client(
            target.host,
            target.port,
            identifier=member.client_id,
            clean_session=False,
            username=target.username,
            password=target.password,
            tls_context=target.ssl_context(),
            timeout=PROBE_TIMEOUT,
        ) as client:
            for topic in subscriptions(settings.TOPIC_PREFIX, member.group):
                await client.subscribe(topic, qos=1)


def to_retire(before: list[Member], now: list[Member]) -> list[Member]:
    """Sessions used before and not now (a changed group counts: its old filters must go)."""
    keep = {(m.client_id, m.group) for m in now}
    return [m for m in before if (m.client_id, m.group) not in keep]


# A retirement connects, replays the session's spool, unsubscribes and drains (ingest/mqtt.py:
# up to 20 s) and stops; past this it is killed and tried again at the next start.
RETIRE_TIMEOUT = 180.0


async def replan(settings: Settings, sessions: list[Member]) -> None:
    """Record the sessions serve runs now, and retire those an earlier plan used and this one does not."""
    stale = to_retire(previous(settings), sessions)
    record(settings, sessions + stale)  # a retirement cut short is tried again at the next start
    if stale:
        try:
            await open_sessions(settings, sessions)
        except aiomqtt.MqttError as exc:
            logger.error("the sessions of an earlier plan are not retired now: the broker refused (%s)", exc)
            return
        record(settings, sessions + await retire(stale))


async def retire(stale: list[Member]) -> list[Member]:
    """Retire each session: an ingest of its own drains it and leaves its subscriptions. Returns those that failed."""
    failed = []
    for member in stale:
        logger.info("retiring the MQTT session %s (no longer in this serve's plan)", member.client_id)
        code = await run_once(part_command("ingest", "retire", retire=True), member.env(), RETIRE_TIMEOUT)
        if code != 0:
            logger.error(
                "the session %s was not retired (status %d): it is tried again at the next start",
                member.client_id,
                code,
            )
            failed.append(member)
    return failed
