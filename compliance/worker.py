"""The compliance worker: keeps rollups, verdicts and AQI current as readings arrive, late ones too.

The ingest writes each batch's (station, UTC hour) pairs into rollup_queue in the batch's own
transaction. The worker claims the hours of the stations waiting longest, rebuilds those local
clock hours from the readings, recomputes the local days they fall in, judges every window they
touch and writes it all in one transaction; then it releases the claim. One worker works at a
time (a session advisory lock); another process's worker waits as a standby.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from compliance import store
from compliance.assess import INFLUENT, assess, compute_days
from compliance.profiles import Profile, Profiles
from compliance.windows import HOUR, WATER_DAY_MIN_HOURS, Hours, day_bounds
from ingest.store import is_unavailable
from parkwatch.aio import sleep_or_stop
from parkwatch.connected import LoopPolicy, run_connected

logger = logging.getLogger(__name__)

# Stations per batch, and hours of each: a day of minute data for 200 stations is ~5k hours;
# bigger batches amortise the round trips, smaller ones keep each transaction (and the lag)
# short, and the cap per station keeps one station's month-long back-fill from filling batches.
CLAIM_STATIONS = 200
CLAIM_HOURS_PER_STATION = 48
# A claim older than this is taken again: the worker that held it died mid-batch.
CLAIM_LEASE = timedelta(minutes=5)
# Sleep between polls of an empty queue: the floor of the lag behind the ingest.
POLL_INTERVAL = 0.5
# A standby retries the leadership lock this often.
STANDBY_INTERVAL = 5.0
# Reconnect backoff (with jitter) when the database is out of reach.
RETRY_BASE = 0.5
RETRY_MAX = 30.0
# One worker at a time, across processes.
LEADER_LOCK = 0x70776370  # "pwcp"


@dataclass
class WorkerStats:
    """Counters for /metrics and the benchmark."""

    batches: int = 0
    hours: int = 0
    verdicts: int = 0
    aqi: int = 0
    last_batch_seconds: float = 0.0
    busy_seconds: float = 0.0
    errors: int = 0
    set_aside: int = 0  # hours that could not be judged (compliance_failures)


def local_hours(utc_hour: datetime, tz: Any) -> set[datetime]:
    """The station's local clock hours a UTC hour overlaps (two where the offset has half hours)."""
    first = utc_hour.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    last = (utc_hour + HOUR - timedelta(microseconds=1)).astimezone(tz).replace(minute=0, second=0, microsecond=0)
    return {first.astimezone(UTC), last.astimezone(UTC)}


class ComplianceWorker:
    """Drains rollup_queue into rollups, verdicts and AQI."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.profiles = Profiles()
        self.stats = WorkerStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until stopped, reconnecting with backoff; a standby while another worker leads.

        A failed batch (a bug, a refused statement) is logged and retried after a pause; its
        claimed hours come back after their lease.
        """
        await run_connected(
            "compliance worker",
            self.dsn,
            stop,
            self._work,
            lock_key=LEADER_LOCK,
            policy=LoopPolicy(retry_base=RETRY_BASE, retry_cap=RETRY_MAX, standby_interval=STANDBY_INTERVAL),
            on_error=self._count_error,
        )

    def _count_error(self) -> None:
        self.stats.errors += 1

    async def _work(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            done = await self.step(conn)
            if not done:
                await sleep_or_stop(stop, POLL_INTERVAL)

    async def drain(self, conn: asyncpg.Connection, *, wait: bool = True) -> int | None:
        """Work until the queue is empty (tests, benchmarks, `compliance catch-up`); returns hours done.

        Takes the leadership like `run` does (two workers recomputing one day concurrently would
        each miss the other's hours): waits for it, or returns None at once when `wait` is false
        and another worker leads.
        """
        if wait:
            await conn.execute("SELECT pg_advisory_lock($1)", LEADER_LOCK)
        elif not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
            return None
        try:
            total = 0
            while n := await self.step(conn):
                total += n
            await store.close_windows(conn)
            return total
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LEADER_LOCK)

    async def step(self, conn: asyncpg.Connection) -> int:
        """One batch: claim, recompute, judge, write, release; returns the hours claimed."""
        claimed, stamp = await store.claim(
            conn, stations=CLAIM_STATIONS, hours_per_station=CLAIM_HOURS_PER_STATION, lease=CLAIM_LEASE
        )
        if not claimed or stamp is None:
            return 0
        started = time.perf_counter()
        await self.profiles.refresh(conn)
        if any(sid not in self.profiles.by_sid for sid, _ in claimed):
            await self.profiles.refresh(conn, force=True)
        try:
            async with conn.transaction():
                written = await self._recompute(conn, claimed)
        except asyncpg.PostgresError as exc:
            if is_unavailable(exc):
                raise
            # One station's data (an overflow, a value the SQL refuses) must not stop the others:
            # judge station by station, and set aside the hours that fail on their own.
            logger.warning("compliance batch failed (%s); judging its %d stations one by one", exc, len(claimed))
            written = await self._isolate(conn, claimed)
        await store.release(conn, claimed, stamp)
        elapsed = time.perf_counter() - started
        s = self.stats
        s.batches += 1
        s.hours += len(claimed)
        s.verdicts += written[0]
        s.aqi += written[1]
        s.last_batch_seconds = elapsed
        s.busy_seconds += elapsed
        logger.debug("compliance batch: %d hours, %d verdicts in %.3fs", len(claimed), written[0], elapsed)
        return len(claimed)

    async def _isolate(self, conn: asyncpg.Connection, claimed: list[tuple[int, datetime]]) -> tuple[int, int]:
        """Recompute each station's hours in a transaction of its own; record the hours that fail."""
        by_station: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
        for sid, hour in claimed:
            by_station[sid].append((sid, hour))
        verdicts = aqi = 0
        for sid, hours in sorted(by_station.items()):
            try:
                async with conn.transaction():
                    v, a = await self._recompute(conn, hours)
            except asyncpg.PostgresError as exc:
                if is_unavailable(exc):
                    raise
                self.stats.errors += 1
                self.stats.set_aside += len(hours)
                station = self.profiles.by_sid.get(sid)
                logger.error(
                    "compliance worker: %d hour(s) of station %s set aside, their data cannot be judged: %s; "
                    "`parkwatch compliance rejudge --station %s` once fixed",
                    len(hours),
                    station.id if station else sid,
                    exc,
                    station.id if station else sid,
                )
                await conn.execute(store.SET_ASIDE, sid, [h for _, h in hours], f"{type(exc).__name__}: {exc}"[:1000])
                continue
            verdicts += v
            aqi += a
        return verdicts, aqi

    async def _recompute(self, conn: asyncpg.Connection, claimed: list[tuple[int, datetime]]) -> tuple[int, int]:
        profiles = self.profiles
        dirty_hours: dict[int, set[datetime]] = defaultdict(set)
        for sid, utc_hour in claimed:
            p = profiles.by_sid.get(sid)
            if p is not None:
                dirty_hours[sid] |= local_hours(utc_hour, p.tz)
        dirty_days: dict[int, set[date]] = defaultdict(set)
        for sid, starts in dirty_hours.items():
            tz = profiles.by_sid[sid].tz
            dirty_days[sid] |= {t.astimezone(tz).date() for t in starts}
        # An inlet's new data change its outlets' removal-rate verdicts of the same days.
        for sid in list(dirty_days):
            for outlet in profiles.outlets_of.get(sid, []):
                if outlet in profiles.by_sid:
                    dirty_days[outlet] |= dirty_days[sid]

        await store.aggregate_hours(
            conn,
            [(sid, t, profiles.by_sid[sid].min_interval) for sid, starts in dirty_hours.items() for t in starts],
        )
        ranges = [r for sid, days in dirty_days.items() for r in _ranges(profiles.by_sid[sid], days)]
        by_pid = await store.fetch_hours(conn, ranges)
        if any(pid not in profiles.codes for per_pid in by_pid.values() for pid in per_pid):
            await profiles.refresh(conn, force=True)  # a parameter registered since the last load
        hours: dict[int, Hours] = {
            sid: {profiles.codes.get(pid, str(pid)): series for pid, series in per_pid.items()}
            for sid, per_pid in by_pid.items()
        }

        days = {sid: compute_days(profiles.by_sid[sid], hours.get(sid, {}), dirty_days[sid]) for sid in dirty_days}
        await store.upsert_days(
            conn,
            [
                stat.as_row(sid, profiles.pids[code])
                for sid, per_code in days.items()
                for code, per_day in per_code.items()
                if code in profiles.pids
                for day, stat in per_day.items()
                if day in dirty_days[sid]
            ],
        )
        influent = await self._influent(conn, dirty_days)

        now = datetime.now(UTC)
        verdicts: list[tuple[Any, ...]] = []
        aqi: list[tuple[Any, ...]] = []
        for sid, station_days in dirty_days.items():
            p = profiles.by_sid[sid]
            try:
                result = assess(
                    p,
                    hours.get(sid, {}),
                    days[sid],
                    dirty_hours=dirty_hours.get(sid, set()),
                    dirty_days=station_days,
                    influent={day: influent.get((p.inlet_sid, day), {}) for day in station_days} if p.inlet_sid else {},
                    pids=profiles.pids,
                    now=now,
                )
            except Exception:
                # One station's judgement failing (a bug, a standard file it trips) leaves the
                # others and every rollup current; it is logged with the station named.
                self.stats.errors += 1
                logger.exception(
                    "compliance worker: judging station %s failed; its rollups are current, its verdicts stale "
                    "until `parkwatch compliance rejudge --station %s`",
                    p.id,
                    p.id,
                )
                continue
            verdicts.extend(result.verdicts)
            aqi.extend(result.aqi)
        await store.upsert_verdicts(conn, verdicts)
        await store.upsert_aqi(conn, aqi)
        return len(verdicts), len(aqi)

    async def _influent(
        self, conn: asyncpg.Connection, dirty_days: dict[int, set[date]]
    ) -> dict[tuple[int, date], dict[str, float]]:
        wanted = [
            (p.inlet_sid, day)
            for sid, days in dirty_days.items()
            if (p := self.profiles.by_sid[sid]).inlet_sid is not None
            for day in days
        ]
        return await store.fetch_influent(conn, wanted, INFLUENT, WATER_DAY_MIN_HOURS)


def _ranges(p: Profile, days: set[date]) -> list[tuple[int, datetime, datetime]]:
    """The hours judging these days reads: each day (± a day for ambient moving averages), merged.

    A late packet from March does not load April to June.
    """
    margin = timedelta(days=1) if p.medium == "ambient" else timedelta(0)
    spans: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        lo, hi = day_bounds(day, p.tz)
        lo, hi = lo.astimezone(UTC) - margin, hi.astimezone(UTC) + margin
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(hi, spans[-1][1]))
        else:
            spans.append((lo, hi))
    return [(p.sid, lo, hi) for lo, hi in spans]
