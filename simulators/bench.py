"""`parkwatch bench`: the whole path on this machine, next to its baselines.

A fleet of cement-kiln stacks publishes minute data in accelerated time (each station's
consecutive minutes from a few days back, so hours fill and get judged within a run) through
Mosquitto into `parkwatch serve --only ingest,compliance`: ingest, PostgreSQL, rollups and
verdicts. Runs, in one invocation and against one scratch database:
1. a paced run (`--rate`, default 20,000 readings/s) for publish → commit latency, deciding
   reading → verdict latency and loss;
2. a saturated run: publishers as fast as parkwatch takes it, with the backlog held under the
   broker's queue limit, for the sustained rate (and CPU and memory per million readings);
3. the naive consumer (one INSERT per reading, the tutorial approach) under the same load;
4. the raw ceiling: asyncpg COPY of the same rows, no MQTT.
Figures are comparable only within one run: the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import asyncpg

from alerts.config import load_routing
from parkwatch.settings import Settings
from schemas.registry import RegistryFile
from simulators import broker
from simulators.broker import PrivateBroker
from simulators.fleet import kiln_fleet
from simulators.loadgen import BENCH_CODES, PublisherSpec, payload, run_publisher
from simulators.procs import (
    cpu_by_part,
    cpu_seconds,
    parkwatch_env,
    peak_rss_mb,
    stop,
    with_descendants,
)
from simulators.scratch import recreate, with_db

READINGS_PER_MESSAGE = len(BENCH_CODES)
# The saturated run searches the highest rate the ingest sustains: every CONTROL_PERIOD it raises
# the offered rate while the backlog (published, not yet committed) stays under one period's
# worth, and lowers it when the backlog grows. A backlog above BACKLOG_HIGH pauses publishing,
# keeping the broker's queue far under deploy/mosquitto.conf's max_queued_messages (50,000).
CONTROL_PERIOD = 1.0
RATE_STEP_UP = 1.08
RATE_STEP_DOWN = 0.9
BACKLOG_HIGH = 20_000
# Rate figures ignore the first seconds of a paced run (connections, caches) and the first half
# of a saturated one (the rate search).
WARMUP = 3.0
# Where the saturation search starts (readings/s).
START_RATE = 30_000.0
COPY_BATCH = 5000
# The ceiling is measured on at most this many rows (a minute or so of COPY; stable enough).
COPY_MAX_ROWS = 5_000_000
# The fleet's data start far enough back that no run reaches the present at this rate.
MAX_READINGS_PER_S = 150_000
# After the last reading is stored, how long the worker may take to bring verdicts current.
VERDICT_DRAIN_TIMEOUT = 300.0
# The drain run: the backlog is published as fast as the publishers go (messages/s, all of them),
# then the database is polled this often until it holds all of it, or has not grown for
# DRAIN_STALL_POLLS polls (10 s: something is wrong).
BACKLOG_PUBLISH_RATE = 100_000.0
DRAIN_POLL = 0.2
DRAIN_STALL_POLLS = 50
# The minute that makes a stack hour valid (HJ 75: 45 valid minutes), counted from 1.
DECIDING_MINUTE = 45
CST = ZoneInfo("Asia/Shanghai")
# Each verdict of an hour, timed from the deciding reading's arrival at the ingest (received_at)
# to the moment the verdict took its value (verdicts.verdict_since, written by the worker just
# before its commit).
SELECT_VERDICT_LATENCY = """
SELECT extract(epoch FROM v.verdict_since - d.received_at)::float8 AS seconds
FROM verdicts v
CROSS JOIN LATERAL (
    SELECT r.received_at FROM readings r
    WHERE r.sid = v.sid AND r.pid = v.pid AND r.iv = 1 AND r.ts >= v.window_start AND r.ts < v.window_end
    ORDER BY r.ts OFFSET $1 - 1 LIMIT 1
) d
WHERE v.window_kind = 'hour' AND v.verdict <> 'insufficient_data' AND v.window_start >= $2
"""
# With alerts on, the run ends when verdict changes are applied and their notices delivered too.
SELECT_PENDING_WITH_ALERTS = """
SELECT (SELECT count(*) FROM rollup_queue) + (SELECT count(*) FROM alert_inbox)
     + (SELECT count(*) FROM notifications WHERE status IN ('queued', 'sending'))
"""
SELECT_VERDICT_COUNTS = """
SELECT verdict, count(*) AS n FROM verdicts WHERE window_kind = 'hour' AND window_start >= $1 GROUP BY verdict
"""


@dataclass
class RunResult:
    """One load run through the ingest."""

    name: str
    published: int = 0
    stored: int = 0
    lost: int = 0
    seconds: float = 0.0
    readings_per_s: float = 0.0
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    cpu_s_per_million: float | None = None
    peak_rss_mb: float | None = None
    verdicts: int = 0
    verdict_p50_s: float | None = None
    verdict_p99_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def _count(conn: asyncpg.Connection, since: datetime) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM readings WHERE ts >= $1", since))


# The readings table's partitions (native) or chunks (TimescaleDB) are its children either way.
SELECT_INSERTED = """
SELECT coalesce(sum(s.n_tup_ins), 0)
FROM pg_inherits i JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
WHERE i.inhparent = 'readings'::regclass
"""


async def _inserted(conn: asyncpg.Connection) -> int:
    """Rows inserted into readings per the statistics collector (cheap; lags by about a second)."""
    return int(await conn.fetchval(SELECT_INSERTED))


class Broker:
    """A private Mosquitto from deploy/mosquitto.conf when possible, else the configured broker."""

    def __init__(self, settings: Settings) -> None:
        self.private: PrivateBroker | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="parkwatch-bench-broker-"))
        if broker.available():
            self.private = PrivateBroker(self.folder)
            self.private.start()
            self.host, self.port = "127.0.0.1", self.private.port
            self.kind = "private (deploy/mosquitto.conf)"
        else:
            target = settings.mqtt
            self.host, self.port = target.host, target.port
            self.kind = f"external {settings.MQTT_URL}"

    @property
    def url(self) -> str:
        """MQTT URL of the broker."""
        return f"mqtt://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop a private broker."""
        if self.private is not None:
            self.private.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Bench:
    """State shared by the runs of one benchmark invocation."""

    def __init__(
        self,
        settings: Settings,
        *,
        stations: int,
        publishers: int,
        duration: float,
        processes: int,
        instances: int = 1,
        routing: RegistryFile | None = None,
        exceed_every: int = 0,
    ) -> None:
        self.settings = settings
        # With routing, the alerts component runs beside the worker and notices go where it says;
        # every exceed_every-th station then exceeds in every third hour (simulators/loadgen.py).
        self.routing = routing
        self.exceeding = frozenset(
            station for i, (_, station) in enumerate(self._fleet(stations)) if exceed_every and i % exceed_every == 0
        )
        self.db_name = f"{settings.database_name}_bench"
        self.db_url = with_db(settings.DATABASE_URL, self.db_name)
        self.n_stations = stations
        self.n_publishers = max(1, min(publishers, stations))
        self.processes = processes
        self.instances = instances
        self.prefix = f"bench{os.getpid()}"
        self.stations = self._fleet(stations)
        minutes = MAX_READINGS_PER_S * duration / READINGS_PER_MESSAGE / stations
        days = math.ceil(minutes / 1440) + 1
        today = datetime.now(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        self.start = today - timedelta(days=days)
        self.broker = Broker(settings)
        self.workdir = Path(tempfile.mkdtemp(prefix="parkwatch-bench-"))

    @staticmethod
    def _fleet(stations: int) -> list[tuple[str, str]]:
        return [(f"bench-p{i % 20:02d}", f"bench-s{i:04d}") for i in range(stations)]

    async def reset_database(self) -> None:
        """Drop and re-create the scratch database with the registry of the bench fleet."""
        registry = kiln_fleet(self.stations, label="Bench")
        await recreate(
            self.db_url,
            timescale=self.settings.TIMESCALE,
            registry=registry,
            partition=self.settings.READINGS_PARTITION,
        )
        if self.routing is not None:
            conn = await asyncpg.connect(self.db_url)
            try:
                await load_routing(conn, self.routing)
            finally:
                await conn.close()

    def _publishers(self, rate_msgs: float) -> tuple[list[Any], list[Any], Any, Any]:
        ctx = mp.get_context("spawn")
        rate, stop = ctx.Value("d", rate_msgs / self.n_publishers), ctx.Value("b", 0)
        counters = []
        procs = []
        for i in range(self.n_publishers):
            spec = PublisherSpec(
                index=i,
                host=self.broker.host,
                port=self.broker.port,
                prefix=self.prefix,
                stations=self.stations[i :: self.n_publishers],
                start=self.start,
                exceeding=self.exceeding,
            )
            sent, acked = ctx.Value("q", 0), ctx.Value("q", 0)
            counters.append((sent, acked))
            procs.append(ctx.Process(target=run_publisher, args=(spec, sent, acked, rate, stop), daemon=True))
        return procs, counters, rate, stop

    @property
    def layout(self) -> str:
        """How parkwatch runs: one process, `serve` supervising a process per part, or N ingest instances."""
        if self.instances > 1:
            return f"{self.instances} ingest instances (shared subscription) + compliance"
        return "one process (serve --single-process)" if self.processes == 1 else "serve: a process per part"

    def _client_id(self, name: str, k: int) -> str:
        return f"parkwatch-bench-ingest-{name}-{os.getpid()}-{k}"

    async def _launch(self, name: str) -> tuple[list[asyncio.subprocess.Process], list[str]]:
        """Start parkwatch as the layout says; returns the processes and the ingests' client ids."""
        common = {
            "PARKWATCH_DATABASE_URL": self.db_url,
            "PARKWATCH_MQTT_URL": self.broker.url,
            "PARKWATCH_TOPIC_PREFIX": self.prefix,
            "PARKWATCH_LOG_LEVEL": "INFO",
        }
        base = (sys.executable, "-m", "parkwatch.cli", "serve")
        judging = "compliance,alerts" if self.routing is not None else "compliance"
        commands: list[tuple[tuple[str, ...], dict[str, str]]] = []
        ids = [self._client_id(name, k) for k in range(self.instances)]
        for k, client_id in enumerate(ids):
            env = common | {
                "PARKWATCH_MQTT_CLIENT_ID": client_id,
                "PARKWATCH_SPOOL_DIR": str(self.workdir / f"spool-{name}-{k}"),
            }
            stats = ("--stats-file", str(self.workdir / f"{name}-{k}.json"))
            if self.instances > 1:
                env["PARKWATCH_MQTT_SHARE_GROUP"] = "bench"
                commands.append(((*base, "--only", "ingest", *stats), env))
            elif self.processes == 1:
                commands.append(((*base, "--single-process", "--only", f"ingest,{judging}", *stats), env))
            else:
                # as a user runs it on a multi-core host: the supervisor starts a process per part
                commands.append(((*base, "--only", f"ingest,{judging}", *stats), env))
        if self.instances > 1:
            commands.append(((*base, "--only", judging), common | {"PARKWATCH_MQTT_CLIENT_ID": f"{ids[0]}-judging"}))
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            procs = [
                await asyncio.create_subprocess_exec(*c, env=parkwatch_env(**env), stdout=log, stderr=log)
                for c, env in commands
            ]
        finally:
            log.close()
        return procs, ids

    async def _subscribed(self, name: str, n: int) -> None:
        """Wait until every ingest instance has subscribed (a probe proves the path is open first)."""
        await self._wait_subscribed(self._client_id(name, 0))
        deadline = time.monotonic() + 30
        log = self.workdir / f"{name}.log"
        while log.read_text(errors="replace").count("subscribed to") < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} ingest instance(s) did not all subscribe within 30 s")
            await asyncio.sleep(0.1)

    async def run_parkwatch(self, name: str, *, duration: float, rate_readings: float) -> RunResult:
        """One run through `parkwatch serve`, laid out as self.layout says."""
        await self.reset_database()
        # A prefix per run: the broker must not queue this run's messages for an earlier run's
        # persistent session (it would cost the broker, and the later runs, for nothing).
        self.prefix = f"bench{os.getpid()}-{name}"
        procs, ids = await self._launch(name)
        try:
            await self._subscribed(name, len(ids))
            pids = with_descendants(p.pid for p in procs)
            result = await self._drive(name, duration=duration, rate_readings=rate_readings, consumer_pids=pids)
            await self._verdicts(result)
            result.peak_rss_mb = round(sum(peak_rss_mb(pid) for pid in pids), 1)
        finally:
            await stop(procs)
            for client_id in ids:
                await self._forget_session(client_id)
        self._read_stats(name, result, len(ids))
        return result

    def _read_stats(self, name: str, result: RunResult, n: int) -> None:
        stats = [json.loads((self.workdir / f"{name}-{k}.json").read_text()) for k in range(n)]
        # several instances: the worst instance's latencies
        result.latency_p50_s = max((s["delivery_latency_s"]["p50"] or 0.0) for s in stats)
        result.latency_p99_s = max((s["delivery_latency_s"]["p99"] or 0.0) for s in stats)
        merged = dict(stats[0])
        merged["delivery_latency_s"] = {
            "p50": result.latency_p50_s,
            "p99": result.latency_p99_s,
            "count": sum(s["delivery_latency_s"]["count"] for s in stats),
        }
        result.extra["ingest_stats"] = merged
        total = sum(s["readings_new"] for s in stats) or 1
        result.extra["instances"] = [
            {
                "instance": k,
                "messages": s["messages"],
                "readings_new": s["readings_new"],
                "share": round(s["readings_new"] / total, 3),
                "readings_per_s": round(result.readings_per_s * s["readings_new"] / total),
            }
            for k, s in enumerate(stats)
        ]

    async def run_drain(self, name: str, *, readings: int) -> RunResult:
        """A broker backlog of `readings` queued while parkwatch was away, drained on its return."""
        await self.reset_database()
        self.prefix = f"bench{os.getpid()}-{name}"
        procs, ids = await self._launch(name)
        try:
            await self._subscribed(name, len(ids))
        finally:
            # SIGKILL leaves every session subscribed (a shared-group member leaves the group on
            # SIGTERM); a supervisor's parts stop by themselves when it dies.
            pids = with_descendants(p.pid for p in procs)
            for proc in procs:
                proc.kill()
                await proc.wait()
            await _gone(pids)
        messages = readings // READINGS_PER_MESSAGE
        acked = await self._publish_backlog(messages)
        expected = acked * READINGS_PER_MESSAGE
        conn = await asyncpg.connect(self.db_url)
        procs, ids = await self._launch(name)
        launched = time.monotonic()
        first: tuple[float, int] | None = None
        try:
            pids = with_descendants(p.pid for p in procs)
            cpu0 = 0.0
            stored, last, still = 0, -1, 0
            while stored < expected and still < DRAIN_STALL_POLLS:
                await asyncio.sleep(DRAIN_POLL)
                stored = await _count(conn, self.start)
                if first is None and stored:
                    pids = with_descendants(p.pid for p in procs)
                    first, cpu0 = (time.monotonic(), stored), cpu_seconds(*pids)
                still = still + 1 if stored == last else 0
                last = stored
            ended = time.monotonic()
            cpu = cpu_seconds(*pids) - cpu0
            rss = round(sum(peak_rss_mb(pid) for pid in pids), 1)
        finally:
            await conn.close()
            await stop(procs)
            for client_id in ids:
                await self._forget_session(client_id)
        result = RunResult(name=name, published=acked, stored=stored, lost=max(0, expected - stored))
        if first is not None and first[1] >= stored:
            # drained between two polls: only the time from launch bounds it (start-up included)
            first = (launched, 0)
            result.extra["rate_includes_start"] = True
        if first is not None and ended > first[0]:
            rows = stored - first[1]
            result.seconds = round(ended - first[0], 1)
            result.readings_per_s = round(rows / (ended - first[0]))
            result.cpu_s_per_million = round(cpu / rows * 1e6, 1) if rows else None
        result.peak_rss_mb = rss
        result.extra["start_to_drained_s"] = round(ended - launched, 1)
        self._read_stats(name, result, len(ids))
        return result

    async def _publish_backlog(self, messages: int) -> int:
        """Publish `messages` as fast as the publishers go; returns how many the broker acknowledged."""
        procs, counters, _rate, stop_flag = self._publishers(BACKLOG_PUBLISH_RATE)
        for p in procs:
            p.start()
        while sum(s.value for s, _ in counters) < messages and all(p.is_alive() for p in procs):  # noqa: ASYNC110 - counters of other processes
            await asyncio.sleep(0.05)
        stop_flag.value = 1
        for p in procs:
            await asyncio.to_thread(p.join, 60)
        return int(sum(a.value for _, a in counters))

    async def _forget_session(self, client_id: str) -> None:
        """End the ingest's persistent session at the broker (a clean connect under its id)."""
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(self.broker.host, self.broker.port, identifier=client_id, clean_session=True):
                pass

    async def _wait_subscribed(self, client_id: str) -> None:
        # The ingest subscribes a moment after start; a probe message proves the path is open.
        deadline = time.monotonic() + 30
        conn = await asyncpg.connect(self.db_url)
        try:
            async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
                park, station = self.stations[0]
                probe_ts = self.start - timedelta(days=1)  # before the fleet's data: judged apart
                body = payload(station, probe_ts, 0)
                while time.monotonic() < deadline:
                    await client.publish(f"{self.prefix}/{park}/{station}/readings", body, qos=1)
                    await asyncio.sleep(0.3)
                    if await _count(conn, probe_ts) > 0:
                        # A probe still in flight lands before self.start: never counted as stored.
                        await conn.execute("DELETE FROM readings WHERE ts < $1", self.start)
                        return
        finally:
            await conn.close()
        raise RuntimeError(f"the ingest ({client_id}) did not start consuming within 30 s")

    async def _verdicts(self, result: RunResult) -> None:
        """Wait until verdicts are current, then time each from its deciding reading."""
        conn = await asyncpg.connect(self.db_url)
        try:
            started = time.monotonic()
            pending = SELECT_PENDING_WITH_ALERTS if self.routing is not None else "SELECT count(*) FROM rollup_queue"
            while await conn.fetchval(pending):
                if time.monotonic() - started > VERDICT_DRAIN_TIMEOUT:
                    result.extra["verdicts_not_current_after_s"] = VERDICT_DRAIN_TIMEOUT
                    break
                await asyncio.sleep(0.2)
            result.extra["verdicts_current_after_s"] = round(time.monotonic() - started, 1)
            counts = {r["verdict"]: r["n"] for r in await conn.fetch(SELECT_VERDICT_COUNTS, self.start)}
            result.extra["hour_verdicts"] = counts
            seconds = sorted(
                r["seconds"] for r in await conn.fetch(SELECT_VERDICT_LATENCY, DECIDING_MINUTE, self.start)
            )
        finally:
            await conn.close()
        result.verdicts = len(seconds)
        if seconds:
            result.verdict_p50_s = round(seconds[len(seconds) // 2], 3)
            result.verdict_p99_s = round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))], 3)

    async def _drive(
        self, name: str, *, duration: float, rate_readings: float, consumer_pids: list[int], start_rate: float = 0.0
    ) -> RunResult:
        """Publish for `duration` at rate_readings (0: search the saturation rate); wait for the drain."""
        saturate = not rate_readings
        offered = (rate_readings or start_rate or START_RATE) / READINGS_PER_MESSAGE  # messages/s, all publishers
        procs, counters, rate, stop = self._publishers(offered)
        conn = await asyncpg.connect(self.db_url)
        base_inserted = await _inserted(conn)
        cpu0 = cpu_seconds(*consumer_pids)
        for p in procs:
            p.start()
        started = time.monotonic()
        mark: tuple[float, int, float] | None = None
        end_mark: tuple[float, int, float] | None = None
        parts0: dict[str, float] = {}
        parts1: dict[str, float] = {}
        try:
            while time.monotonic() - started < duration:
                await asyncio.sleep(CONTROL_PERIOD)
                published = sum(s.value for s, _ in counters)
                committed = (await _inserted(conn) - base_inserted) // READINGS_PER_MESSAGE
                backlog = published - committed
                if saturate:
                    if backlog > BACKLOG_HIGH:
                        offered *= RATE_STEP_DOWN
                        rate.value = 0.0
                    else:
                        # the statistics collector lags ~1 s: a backlog of two periods is "keeping up"
                        offered *= RATE_STEP_UP if backlog < 2 * offered * CONTROL_PERIOD else RATE_STEP_DOWN
                        rate.value = offered / self.n_publishers
                now = time.monotonic()
                if mark is None and now - started >= (duration / 2 if saturate else WARMUP):
                    mark = (now, await _inserted(conn), cpu_seconds(*consumer_pids))
                    parts0 = cpu_by_part(consumer_pids)
            if mark is not None:
                end_mark = (time.monotonic(), await _inserted(conn), cpu_seconds(*consumer_pids))
                parts1 = cpu_by_part(consumer_pids)
            stop.value = 1
            for p in procs:
                await asyncio.to_thread(p.join, 60)
            failed = [i for i, p in enumerate(procs) if p.exitcode != 0]
            if failed:
                raise RuntimeError(f"publisher process(es) {failed} failed: the load was not what was asked")
            published_acked = sum(a.value for _, a in counters)
            published_sent = sum(s.value for s, _ in counters)
            expected = published_acked * READINGS_PER_MESSAGE
            # drain: wait until the database holds everything (or stops growing)
            last, still = -1, 0
            while True:
                stored = await _count(conn, self.start)
                if stored >= expected:
                    break
                still = still + 1 if stored == last else 0
                if still >= 20:  # 10 s without progress
                    break
                last = stored
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        result = RunResult(name=name, published=published_acked, stored=stored, lost=max(0, expected - stored))
        result.extra["published_not_acked_by_broker"] = published_sent - published_acked
        if mark is not None and end_mark is not None:
            seconds = end_mark[0] - mark[0]
            rows = end_mark[1] - mark[1]
            result.seconds = round(seconds, 1)
            result.readings_per_s = round(rows / seconds)
            cpu = end_mark[2] - mark[2]
            result.cpu_s_per_million = round(cpu / rows * 1e6, 1) if rows else None
            # each part's and the database's CPU, per million readings stored (the capacity plan's unit)
            result.extra["cpu_s_per_million_by_part"] = {
                part: round((parts1[part] - parts0.get(part, 0.0)) / rows * 1e6, 2)
                for part in sorted(parts1)
                if rows and part != "gone"
            }
        result.extra["consumer_cpu_s"] = round(cpu_seconds(*consumer_pids) - cpu0, 1)
        return result

    async def run_naive(self, *, duration: float) -> RunResult:
        """The tutorial consumer: aiomqtt, json.loads, one autocommit INSERT per reading."""
        await self.reset_database()
        self.prefix = f"bench{os.getpid()}-naive"
        ready = mp.get_context("spawn").Event()
        proc = mp.get_context("spawn").Process(
            target=_naive_consumer,
            args=(self.db_url, self.broker.host, self.broker.port, self.prefix, ready),
            daemon=True,
        )
        proc.start()
        await asyncio.to_thread(ready.wait, 30)
        result = await self._drive(
            "naive", duration=duration, rate_readings=0, consumer_pids=[proc.pid or 0], start_rate=2000.0
        )
        result.peak_rss_mb = round(peak_rss_mb(proc.pid or 0), 1)
        proc.terminate()
        await asyncio.to_thread(proc.join, 10)
        return result

    async def run_copy(self, n_rows: int) -> RunResult:
        """Asyncpg copy_records_to_table of the same rows (the fleet's minute records), 5,000 at a time."""
        await self.reset_database()
        n_rows = min(n_rows, COPY_MAX_ROWS) // READINGS_PER_MESSAGE * READINGS_PER_MESSAGE
        conn = await asyncpg.connect(self.db_url)
        try:
            ids = {r["id"]: r["sid"] for r in await conn.fetch("SELECT id, sid FROM stations")}
            pids = list(await conn.fetchval(SELECT_PIDS, BENCH_CODES))
            sids = [ids[station] for _, station in self.stations]
            received = datetime.now(UTC)
            minute = timedelta(minutes=1)
            values = [10.0 + k for k in range(READINGS_PER_MESSAGE)]

            def batches() -> Iterator[list[tuple[Any, ...]]]:
                # built as sent, so that an hour-long run's millions of rows never sit in memory
                rows: list[tuple[Any, ...]] = []
                for i in range(n_rows // READINGS_PER_MESSAGE):
                    sid, ts = sids[i % len(sids)], self.start + minute * (i // len(sids))
                    rows += [(sid, pid, 1, ts, v, "N", received) for pid, v in zip(pids, values, strict=True)]
                    if len(rows) >= COPY_BATCH:
                        yield rows
                        rows = []
                if rows:
                    yield rows

            seconds = 0.0
            for batch in batches():
                started = time.perf_counter()
                await conn.copy_records_to_table(
                    "readings", records=batch, columns=("sid", "pid", "iv", "ts", "value", "flag", "received_at")
                )
                seconds += time.perf_counter() - started
            stored = await _count(conn, self.start)
        finally:
            await conn.close()
        return RunResult(
            name="copy",
            published=n_rows,
            stored=stored,
            lost=n_rows - stored,
            seconds=round(seconds, 1),
            readings_per_s=round(n_rows / seconds) if seconds else 0.0,
        )

    def close(self, *, keep_logs: bool = False) -> None:
        """Stop the broker; remove scratch files unless kept (the scratch database stays for inspection)."""
        self.broker.close()
        if keep_logs:
            print(f"logs of the runs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


async def _gone(pids: list[int]) -> None:
    """Wait until the processes have exited (a killed supervisor's parts stop by themselves)."""
    deadline = time.monotonic() + 60
    while _running(pids) and time.monotonic() < deadline:  # noqa: ASYNC110 - other processes' state
        await asyncio.sleep(0.1)


def _running(pids: list[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


SELECT_PIDS = (
    "SELECT array_agg(pid ORDER BY array_position($1::text[], code)) AS pids FROM parameters WHERE code = any($1)"
)
NAIVE_INSERT = """
INSERT INTO readings (sid, pid, iv, ts, value, flag) VALUES ($1, $2, 1, $3, $4, 'N') ON CONFLICT DO NOTHING
"""


def _naive_consumer(db_url: str, host: str, port: int, prefix: str, ready: Any) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(db_url)
        ids = {r["id"]: r["sid"] for r in await conn.fetch("SELECT id, sid FROM stations")}
        pids = {r["code"]: r["pid"] for r in await conn.fetch("SELECT code, pid FROM parameters")}
        async with aiomqtt.Client(host, port, identifier=f"naive-{os.getpid()}") as client:
            await client.subscribe(f"{prefix}/+/+/readings", qos=1)
            ready.set()
            async for message in client.messages:
                doc = json.loads(message.payload if isinstance(message.payload, bytes) else str(message.payload))
                ts = datetime.fromisoformat(doc["ts"])
                for r in doc["readings"]:
                    await conn.execute(
                        NAIVE_INSERT,
                        ids[doc["station_id"]],
                        pids[r["parameter"]],
                        ts,
                        r["value"],
                    )

    asyncio.run(main())
