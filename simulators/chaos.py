"""`parkwatch chaos`: faults injected into a running pipeline for a chosen time, then a report.

The pipeline is private: an embedded PostgreSQL, a Mosquitto from deploy/mosquitto.conf and the
ingest as a process of its own. Stations publish at QoS 1 and send again, byte for byte, what the
broker did not acknowledge, as real ones do. Every `every` seconds one fault is injected, in turn
from those chosen (FAULTS). At the end publishing stops, the pipeline is given time to catch up,
and the report counts what was acknowledged to stations, what was stored, what was lost
(acknowledged, never stored) and stored twice (a differing copy, a dead letter), and for each
fault how long until every message acknowledged before it was stored (docs/faults.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import asyncpg
import psycopg

from parkwatch.embedded.postgres import SUPERUSER, system_user
from parkwatch.embedded.process import pick_port
from schemas.readings import readings_topic
from schemas.registry import RegistryFile
from simulators.broker import PrivateBroker
from simulators.fleet import kiln_fleet
from simulators.loadgen import payload
from simulators.procs import parkwatch_env
from simulators.replica import Replica, require_synchronous_standby, streaming
from simulators.scratch import recreate

logger = logging.getLogger(__name__)

# How long each component stays down before it is started again: long enough that stations,
# the ingest and the pool all notice, short enough for many faults in a run.
INGEST_DOWN = 0.5
BROKER_DOWN = 1.0
DB_DOWN = 2.0
# The disk-full fault: the spool lives on a file system this small, and the database stays down
# long enough for the spool to fill (at the test's 40 messages/s, ~32 KB/s) and stay full a while.
SPOOL_DISK_KB = 64
DISK_FULL_DOWN = 8.0
# The db-disk-full fault: the database's data folder is on a file system this large (room for the
# cluster, its WAL and a long run's readings), and a filler takes all its free space for
# DB_DISK_FULL_HOLD seconds, long enough for writes, checkpoints and new WAL segments to hit it.
DB_DISK_MB = 768
DB_DISK_FULL_HOLD = 8.0
FILLER = "chaos-filler"
WAL_SWITCHES = 12  # more than the segments PostgreSQL keeps ready (min_wal_size 80 MB)
FAULTS = (
    "ingest-kill",
    "ingest-term",
    "broker-kill",
    "broker-restart",
    "db-restart",
    "db-crash",
    "db-failover",
    "disk-full",
    "db-disk-full",
)
# How long a standby may take to stream again after it was rebuilt.
STANDBY_TIMEOUT = 60.0
# A station that lost its connection waits this long before it connects again (real loggers
# wait seconds; shorter keeps a run's recovery figures about parkwatch, not the stations).
RECONNECT_PAUSE = 0.2
# After publishing stops, how long the pipeline may take to store what was acknowledged. A fault's
# recovery is looked for until then: in a storm of faults, recovery may wait for the storm's end.
CATCH_UP = 120.0
# How often the recovery of a fault is looked at.
PROBE_EVERY = 0.1
# An ingest that cannot stop on SIGTERM within this (it drains its batches) is killed.
STOP_GRACE = 40.0
TOPIC_PREFIX = "chaos"
DATABASE = "parkwatch_chaos"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # message i of a station is stamped T0 + i seconds
STEP = timedelta(seconds=1)

STORED_BELOW = """
SELECT count(*) FROM (
    SELECT DISTINCT r.sid, r.ts
    FROM readings r
    JOIN stations s USING (sid)
    JOIN unnest($1::text[], $2::timestamptz[]) AS u(station, upto) ON s.id = u.station AND r.ts < u.upto
) AS stored
"""
STORED_PER_STATION = """
SELECT s.id AS station, count(DISTINCT r.ts) AS messages, count(*) AS readings
FROM readings r JOIN stations s USING (sid)
GROUP BY s.id
"""
REVISIONS = "SELECT count(*) FROM reading_revisions"
DEAD_LETTERS = "SELECT count(*) FROM dead_letters"


@dataclass
class FaultRecord:
    """One fault: what, when (seconds into the run) and how long until it was caught up."""

    kind: str
    at_s: float
    recovered_s: float | None = None


@dataclass
class ChaosReport:
    """What a chaos run published, stored, lost and how it recovered."""

    seconds: float
    stations: int
    acknowledged: int = 0  # messages the broker acknowledged to stations
    resent: int = 0  # publishes repeated after a fault
    stored: int = 0  # acknowledged messages found stored
    stored_unacknowledged: int = 0  # stored, though the station never saw the acknowledgement
    readings: int = 0
    lost: int = 0
    revisions: int = 0  # a key stored again with a differing copy
    dead_letters: int = 0
    faults: list[FaultRecord] = field(default_factory=list)
    ingest_log: dict[str, int] = field(default_factory=dict)  # WARNING/ERROR lines by message

    @property
    def clean(self) -> bool:
        """Nothing lost or stored twice, and every fault recovered from."""
        return (
            self.lost == 0
            and self.revisions == 0
            and self.dead_letters == 0
            and all(f.recovered_s is not None for f in self.faults)
        )


_PROBE_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class ChaosError(Exception):
    """A chaos run cannot be set up as asked."""


class _Ingest:
    """The ingest as a process of its own, killed and started again by faults."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = env
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "parkwatch.cli", "serve", "--only", "ingest"],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def signal(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(sig)
        try:
            self._proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def subscriptions(self) -> int:
        return self._log.read_text(errors="replace").count("subscribed to")


class ChaosRun:
    """One run: start the private pipeline, publish, inject faults, stop, count."""

    def __init__(self, folder: Path, *, stations: int, rate: float, faults: list[str], every: float) -> None:
        unknown = sorted(set(faults) - set(FAULTS))
        if unknown:
            raise ChaosError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
        self.folder = folder
        self.stations = [(f"chaos-p{i % 4}", f"chaos-s{i:03d}") for i in range(stations)]
        self.interval = 1.0 / rate
        self.faults = faults
        self.every = every
        self.db = Replica(folder / "postgres", port=pick_port())
        # With the failover fault: a synchronous standby, promoted when the primary is killed; the
        # old primary is then rebuilt as the new one's standby, so the fault can come again.
        self.standby = Replica(folder / "postgres-b", port=pick_port()) if "db-failover" in faults else None
        self.broker = PrivateBroker(folder / "broker")
        self.acked = [0] * stations  # messages of each station acknowledged by the broker
        self.resent = 0
        self._stopping = asyncio.Event()
        self._started = 0.0
        self._seconds = 0.0  # how long stations publish
        self._ingest: _Ingest | None = None

    # -- the run -----------------------------------------------------------------------------

    async def run(self, seconds: float, *, min_faults: int = 0) -> ChaosReport:
        """Publish for `seconds`, a fault every `every` seconds; then catch up and count.

        With `min_faults`, publishing goes on past `seconds` until that many faults were injected
        (a slow machine stretches faults such as a failover, and so the schedule).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._spool_disk(), self._database_disks():
            await asyncio.to_thread(self.db.start)
            try:
                await recreate(self.db.url(DATABASE), timescale="off", registry=self._registry())
                if self.standby is not None:
                    await asyncio.to_thread(self._add_standby, self.db, self.standby)
                self.broker.start()
                try:
                    return await self._run_started(seconds, min_faults)
                finally:
                    self.broker.stop()
            finally:
                await asyncio.to_thread(self.db.stop)
                if self.standby is not None:
                    await asyncio.to_thread(self.standby.stop)

    @staticmethod
    def _add_standby(primary: Replica, standby: Replica) -> None:
        standby.start_as_standby_of(primary)
        require_synchronous_standby(primary)
        deadline = time.monotonic() + STANDBY_TIMEOUT
        while not streaming(primary):
            if time.monotonic() > deadline:
                raise ChaosError(f"the standby does not stream (log {standby.log_path})")
            time.sleep(PROBE_EVERY)

    def database_url(self) -> str:
        """The URL the ingest and the probes use: the primary, or with a standby both, writable first."""
        if self.standby is None:
            return self.db.url(DATABASE)
        password = self.db.password_file.read_text().strip()
        hosts = f"127.0.0.1:{self.db.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://{SUPERUSER}:{password}@{hosts}/{DATABASE}?target_session_attrs=read-write"

    @contextlib.contextmanager
    def _spool_disk(self) -> Iterator[None]:
        """For the disk-full fault, the spool on a tmpfs of SPOOL_DISK_KB (a real ENOSPC)."""
        spool = self.folder / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        if "disk-full" not in self.faults:
            yield
            return
        if os.geteuid() != 0:
            raise ChaosError("the disk-full fault mounts a small file system for the spool: run it as root")
        mount = ["mount", "-t", "tmpfs", "-o", f"size={SPOOL_DISK_KB}k", "tmpfs", str(spool)]
        subprocess.run(mount, check=True)  # noqa: S603 - the system's mount, arguments we build
        try:
            yield
        finally:
            subprocess.run(["umount", "--lazy", str(spool)], check=False)  # noqa: S603, S607 - as above

    @contextlib.contextmanager
    def _database_disks(self) -> Iterator[None]:
        """For the db-disk-full fault, each server's data folder on a tmpfs of DB_DISK_MB."""
        if "db-disk-full" not in self.faults:
            yield
            return
        if os.geteuid() != 0:
            raise ChaosError("the db-disk-full fault mounts a file system for the database: run it as root")
        user = system_user()
        mounted: list[Path] = []
        try:
            for server in (self.db, self.standby):
                if server is None:
                    continue
                server.data.mkdir(parents=True, exist_ok=True)
                for folder in (server.data.parent, server.data.parent.parent):
                    folder.chmod(0o755)  # the server's user must reach its data folder
                options = f"size={DB_DISK_MB}m,mode=0700,uid={user.pw_uid},gid={user.pw_gid}"
                subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(server.data)], check=True)  # noqa: S603, S607 - the system's mount, arguments we build
                mounted.append(server.data)
            yield
        finally:
            for folder in mounted:
                subprocess.run(["umount", "--lazy", str(folder)], check=False)  # noqa: S603, S607 - as above

    def _fill_database_disk(self) -> None:
        """Take every free byte of the primary's disk, hold, free it; start the server if it gave up.

        PostgreSQL refuses a write it cannot extend a file for (SQLSTATE 53100), and stops when
        it cannot create a WAL segment (PANIC); a supervisor such as systemd then starts it again
        once there is room, as this does (docs/faults.md#a-full-disk).
        """
        filler = self.db.data / FILLER
        chunk = bytes(1 << 20)
        with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
            while True:  # an unbuffered write takes what fits; the next one meets ENOSPC
                out.write(chunk)
        # New WAL segments too: a switch needs one, and PostgreSQL stops (PANIC) when it cannot
        # write it; the rest of the time, full data files refuse writes (53100).
        url = self.db.url("postgres")
        with contextlib.suppress(psycopg.Error), psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            for _ in range(WAL_SWITCHES):
                conn.execute("SELECT pg_logical_emit_message(false, 'chaos', 'x'), pg_switch_wal()")
        time.sleep(DB_DISK_FULL_HOLD)
        filler.unlink(missing_ok=True)
        if self.db.proc is None or self.db.proc.poll() is not None:
            logger.info("the database stopped on the full disk; starting it again")
            self.db.stop()
            self.db.start()

    async def _run_started(self, seconds: float, min_faults: int) -> ChaosReport:
        url = self.database_url()
        env = parkwatch_env(
            PARKWATCH_DATABASE_URL=url,
            PARKWATCH_MQTT_URL=self.broker.url,
            PARKWATCH_TOPIC_PREFIX=TOPIC_PREFIX,
            PARKWATCH_SPOOL_DIR=str(self.folder / "spool"),
            PARKWATCH_LOG_LEVEL="INFO",
        )
        log = self.folder / "ingest.log"
        log.write_bytes(b"")
        ingest = self._ingest = _Ingest(env, log)
        ingest.start()
        await _until(lambda: ingest.subscriptions() >= 1, within=60, what="the ingest to subscribe")
        # A broker that has run for its autosave interval holds the ingest's session on disk; a
        # crash before that first save forgets it (docs/storage.md#what-a-broker-crash-can-lose).
        self.broker.save()
        report = ChaosReport(seconds=seconds, stations=len(self.stations))
        self._started = time.monotonic()
        self._seconds = seconds
        recoveries: list[asyncio.Task[None]] = []
        try:
            async with asyncio.TaskGroup() as tg:
                for k, (park, station) in enumerate(self.stations):
                    tg.create_task(self._station(k, park, station), name=f"chaos-station-{station}")
                n = 0
                while (elapsed := time.monotonic() - self._started) + self.every <= seconds or n < min_faults:
                    await asyncio.sleep(self.every - elapsed % self.every)
                    kind = self.faults[n % len(self.faults)]
                    n += 1
                    record = FaultRecord(kind, round(time.monotonic() - self._started, 1))
                    report.faults.append(record)
                    thresholds = list(self.acked)
                    await self._inject(kind)
                    recoveries.append(
                        tg.create_task(self._recovery(record, thresholds, url), name=f"chaos-recovery-{n}")
                    )
                await asyncio.sleep(max(0.0, seconds - (time.monotonic() - self._started)))
                self._stopping.set()
        finally:
            self._stopping.set()
        await self._catch_up(url)
        ingest.signal(signal.SIGTERM)
        await self._count(report, url, log)
        return report

    def _registry(self) -> RegistryFile:
        return kiln_fleet(self.stations, label="Chaos")

    async def _station(self, k: int, park: str, station: str) -> None:
        """Publish message after message; what the broker did not acknowledge is sent again."""
        topic = readings_topic(TOPIC_PREFIX, park, station)
        body: bytes | None = None
        while not self._stopping.is_set():
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.broker.port, identifier=f"chaos-{station}", timeout=5
                ) as client:
                    while not self._stopping.is_set():
                        i = self.acked[k]
                        if body is None:
                            body = payload(station, T0 + i * STEP, i)
                        await client.publish(topic, body, qos=1, timeout=5)
                        self.acked[k] = i + 1
                        body = None
                        await asyncio.sleep(self.interval)
            except (aiomqtt.MqttError, OSError):
                self.resent += 1  # `body` is kept: the same bytes go again
                await asyncio.sleep(RECONNECT_PAUSE)

    async def _inject(self, kind: str) -> None:
        ingest = self._ingest
        assert ingest is not None  # noqa: S101 - set before any fault
        if kind.startswith("ingest-"):
            await asyncio.to_thread(ingest.signal, signal.SIGKILL if kind == "ingest-kill" else signal.SIGTERM)
            await asyncio.sleep(INGEST_DOWN)
            ingest.start()
        elif kind.startswith("broker-"):
            await asyncio.to_thread(self.broker.kill if kind == "broker-kill" else self.broker.stop)
            await asyncio.sleep(BROKER_DOWN)
            await asyncio.to_thread(self.broker.start)
        elif kind == "db-failover":
            await asyncio.to_thread(self._failover)
        elif kind == "db-disk-full":
            await asyncio.to_thread(self._fill_database_disk)
        else:
            await asyncio.to_thread(self.db.stop, immediate=kind == "db-crash")
            await asyncio.sleep(DISK_FULL_DOWN if kind == "disk-full" else DB_DOWN)
            await asyncio.to_thread(self.db.start)
        logger.info("fault %s injected", kind)

    def _failover(self) -> None:
        """Kill the primary as a crash would, promote the standby, rebuild the old primary as its standby."""
        old, new = self.db, self.standby
        if new is None:
            raise ChaosError("the failover fault needs the standby started with the run")
        old.stop(immediate=True)
        new.promote()
        self.db, self.standby = new, old
        self._add_standby(new, old)

    async def _recovery(self, record: FaultRecord, thresholds: list[int], url: str) -> None:
        """Time until every message acknowledged before the fault is stored."""
        names = [s for _, s in self.stations]
        uptos = [T0 + n * STEP for n in thresholds]
        want = sum(thresholds)
        started = self._started + record.at_s
        deadline = self._started + self._seconds + CATCH_UP
        while time.monotonic() < deadline:
            # The database may die under the probe mid-query (asyncpg then raises client errors
            # too): any failure means "not yet".
            with contextlib.suppress(*_PROBE_ERRORS):
                conn = await asyncpg.connect(url, timeout=2)
                try:
                    if await conn.fetchval(STORED_BELOW, names, uptos) >= want:
                        record.recovered_s = round(time.monotonic() - started, 2)
                        return
                finally:
                    conn.terminate()
            await asyncio.sleep(PROBE_EVERY)

    async def _catch_up(self, url: str) -> None:
        record = FaultRecord("end of run", round(time.monotonic() - self._started, 1))
        await self._recovery(record, list(self.acked), url)

    async def _count(self, report: ChaosReport, url: str, log: Path) -> None:
        report.acknowledged = sum(self.acked)
        report.resent = self.resent
        conn = await asyncpg.connect(url)
        try:
            per_station = {r["station"]: r for r in await conn.fetch(STORED_PER_STATION)}
            names = [s for _, s in self.stations]
            uptos = [T0 + n * STEP for n in self.acked]
            report.stored = await conn.fetchval(STORED_BELOW, names, uptos)
            report.revisions = await conn.fetchval(REVISIONS)
            report.dead_letters = await conn.fetchval(DEAD_LETTERS)
        finally:
            await conn.close()
        report.readings = sum(r["readings"] for r in per_station.values())
        report.stored_unacknowledged = sum(r["messages"] for r in per_station.values()) - report.stored
        report.lost = report.acknowledged - report.stored
        report.ingest_log = _log_summary(log)


async def _until(check: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(PROBE_EVERY)
    raise TimeoutError(f"waited {within:g} s for {what}")


def _log_summary(log: Path) -> dict[str, int]:
    """WARNING and ERROR lines of the ingest's log, counted by their message (numbers blanked)."""
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split(maxsplit=4)
        if len(parts) == 5 and parts[2] in {"WARNING", "ERROR", "CRITICAL"}:
            message = "".join("#" if c.isdigit() else c for c in parts[4])[:160]
            counts[f"{parts[2]} {message}"] += 1
    return dict(counts.most_common(12))


def render(report: ChaosReport, faults: list[str], every: float) -> str:
    """The report as printed."""
    lines = [
        f"chaos: {report.seconds:g} s, a fault every {every:g} s in turn from {', '.join(faults)}",
        f"  stations {report.stations}: {report.acknowledged:,} messages acknowledged, {report.resent:,} "
        "connections lost and publishes repeated",
        f"  stored {report.stored:,} of them ({report.readings:,} readings), "
        f"{report.stored_unacknowledged:,} more never acknowledged to their station",
        f"  lost {report.lost:,}, stored twice {report.revisions:,}, dead letters {report.dead_letters:,}",
        f"  faults injected {len(report.faults)}:",
    ]
    for f in report.faults:
        took = f"recovered in {f.recovered_s:.1f} s" if f.recovered_s is not None else "NOT recovered"
        lines.append(f"    at {f.at_s:>7.1f} s  {f.kind:<15} {took}")
    times = sorted(f.recovered_s for f in report.faults if f.recovered_s is not None)
    if times:
        lines.append(f"  recovery: median {times[len(times) // 2]:.1f} s, worst {times[-1]:.1f} s")
    if report.ingest_log:
        lines.append("  what the operator read in the ingest's log (warnings and errors, counted):")
        lines += [f"    {n:>5} x {message}" for message, n in report.ingest_log.items()]
    lines.append("clean: nothing lost or stored twice" if report.clean else "NOT CLEAN")
    return "\n".join(lines)


def run(
    *,
    folder: Path,
    seconds: float,
    every: float,
    faults: list[str],
    stations: int,
    rate: float,
    json_path: Path | None,
) -> int:
    """The `parkwatch chaos` command: prints the report; exit 1 unless clean."""
    chaos = ChaosRun(folder, stations=stations, rate=rate, faults=faults, every=every)
    # The simulated stations' MQTT client reports a connection cut by a fault, and publishes cut
    # short as futures never retrieved; they are sent again, and the noise would hide the report.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)
    print(f"chaos: private pipeline in {folder}; {stations} stations at {rate:g} messages/s each", flush=True)
    report = asyncio.run(chaos.run(seconds))
    print(render(report, faults, every))
    if json_path is not None:
        json_path.write_text(json.dumps(asdict(report), indent=2))
    return 0 if report.clean else 1
