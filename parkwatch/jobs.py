"""Every periodic job in one APScheduler: each cluster job run by one instance at a time, missed runs caught up.

Cluster jobs (partitions, retention, closing windows, offline stations, data quality, alert follow-up) take a PostgreSQL
advisory lock for their run and skip a tick another instance has just run: however many
parkwatch processes run, each job runs once per period, and when the process that ran it dies
another one's next tick takes over. When each job last ran is kept in `scheduled_jobs`, so a
job overdue after downtime runs at start. Local jobs (the ingest's heartbeat) run in every
process that has the component they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.followup import follow_up
from alerts.instruments import check_instruments
from alerts.kpi import check_kpis
from alerts.quality import check_offline, check_series
from alerts.suspicious import check_suspicious
from compliance.report_store import generate_due_reports
from compliance.store import close_windows
from ingest.hj212.asking import plan_requests
from ingest.maintenance import drop_expired_readings, ensure_partitions
from parkwatch.settings import Settings

logger = logging.getLogger(__name__)

# Periods. Partitions are created days to months ahead, so six hours is plenty; windows close and open
# alerts are followed up within half a minute, which is what a notice's latency can afford.
# At stop, how long running jobs may take to finish: a connect is bounded by CONNECT_TIMEOUT,
# and the jobs' statements take well under a second on a healthy database.
JOB_DRAIN_TIMEOUT = 10.0
PARTITIONS_EVERY = timedelta(hours=6)
# Raw readings leave a whole partition (at least a day wide) at a time: a look every six hours
# drops one within hours of its passing the retention, and a look with nothing to drop is one
# catalogue query (docs/storage.md#retention).
RETENTION_EVERY = timedelta(hours=6)
CLOSE_WINDOWS_EVERY = timedelta(seconds=30)
OFFLINE_EVERY = timedelta(seconds=30)
FOLLOW_UP_EVERY = timedelta(seconds=30)
# Missing parameters and flat values are judged on closed hours: a few looks an hour suffice.
DATA_QUALITY_EVERY = timedelta(minutes=5)
# A refused out-of-range value or a drifting clock is a minute-scale fact: a look a minute.
INSTRUMENTS_EVERY = timedelta(minutes=1)
# Suspicious patterns span hours to days: four looks an hour.
SUSPICIOUS_EVERY = timedelta(minutes=15)
# Asking loggers for gaps and clock settings: gaps are judged after 15 minutes' grace, so a
# look every few minutes asks soon enough (ingest/hj212/asking.py).
LOGGER_REQUESTS_EVERY = timedelta(minutes=2)
# The KPI figures are of days, months and years, computed from the rollups: a look every
# quarter of an hour finds a target missed soon enough; the annual caps, whose loads cost the
# most to add up (docs/benchmarks.md), once an hour.
KPI_EVERY = timedelta(minutes=15)
KPI_CAPS_EVERY = timedelta(hours=1)
# Daily and monthly reports are due once a day or a month: a look every quarter of an hour
# stores each soon after it is due, and a look with nothing due is a few small queries.
REPORTS_EVERY = timedelta(minutes=15)
# A run that started less than this share of a period ago elsewhere makes this tick skip.
RECENT_SHARE = 0.8
CONNECT_TIMEOUT = 5.0

LAST_RUNS = "SELECT name, last_started_at FROM scheduled_jobs"
CLAIM_RUN = """
INSERT INTO scheduled_jobs AS j (name, last_started_at, runs) VALUES ($1, clock_timestamp(), 1)
ON CONFLICT (name) DO UPDATE SET last_started_at = clock_timestamp(), runs = j.runs + 1
WHERE j.last_started_at IS NULL OR j.last_started_at < clock_timestamp() - $2::interval
RETURNING name
"""
FINISH_RUN = "UPDATE scheduled_jobs SET last_finished_at = clock_timestamp(), last_error = $2 WHERE name = $1"


@dataclass(frozen=True)
class Job:
    """A periodic job; a cluster job gets a connection that holds its lock for the run."""

    name: str
    every: timedelta
    run: Callable[[asyncpg.Connection], Awaitable[object]]


@dataclass(frozen=True)
class LocalJob:
    """A periodic job of this process alone."""

    name: str
    every: timedelta
    run: Callable[[], Awaitable[object]]


def cluster_jobs(settings: Settings) -> list[Job]:
    """The cluster's periodic jobs."""
    return [
        Job("partitions", PARTITIONS_EVERY, ensure_partitions),
        Job("retention", RETENTION_EVERY, lambda conn: drop_expired_readings(conn, settings.READINGS_RETENTION_DAYS)),
        Job("close-windows", CLOSE_WINDOWS_EVERY, close_windows),
        Job("offline-stations", OFFLINE_EVERY, lambda conn: check_offline(conn, settings)),
        Job("data-quality", DATA_QUALITY_EVERY, check_series),
        Job("instruments", INSTRUMENTS_EVERY, check_instruments),
        Job("suspicious-data", SUSPICIOUS_EVERY, check_suspicious),
        Job("alert-follow-up", FOLLOW_UP_EVERY, lambda conn: follow_up(conn, settings)),
        Job("logger-requests", LOGGER_REQUESTS_EVERY, plan_requests),
        Job("kpi-targets", KPI_EVERY, lambda conn: check_kpis(conn, settings, caps=False)),
        Job("kpi-caps", KPI_CAPS_EVERY, lambda conn: check_kpis(conn, settings, targets=False)),
        Job("reports", REPORTS_EVERY, lambda conn: generate_due_reports(conn, settings)),
    ]


def _lock_key(name: str) -> int:
    """A stable advisory-lock key per job name (a signed 64-bit integer)."""
    return int.from_bytes(hashlib.sha256(f"parkwatch-job:{name}".encode()).digest()[:8], "big", signed=True)


class Jobs:
    """The process's scheduler."""

    def __init__(self, settings: Settings, jobs: list[Job], local: list[LocalJob] | None = None) -> None:
        self.settings = settings
        self.jobs = jobs
        self.local = local or []
        self.runs: dict[str, int] = {}
        self._active = 0  # jobs running now
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule every job until stopped."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        last = await self._last_runs()
        now = datetime.now(UTC)
        for job in self.jobs:
            previous = last.get(job.name)
            first = now if previous is None or previous + job.every <= now else previous + job.every
            scheduler.add_job(
                self.run_once,
                "interval",
                seconds=job.every.total_seconds(),
                args=[job],
                id=job.name,
                next_run_time=first,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        for local in self.local:
            scheduler.add_job(
                self._run_local,
                "interval",
                seconds=local.every.total_seconds(),
                args=[local],
                id=local.name,
                next_run_time=now,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        scheduler.start()
        try:
            await stop.wait()
        finally:
            # Shutting down cancels running jobs, mid-connect or mid-statement, each logged as a
            # traceback at every stop: start no new one, let those running finish, then shut down.
            scheduler.pause()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(JOB_DRAIN_TIMEOUT):
                    await self._idle.wait()
            scheduler.shutdown(wait=False)

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _last_runs(self) -> dict[str, datetime]:
        try:
            conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            logger.warning("jobs: database unreachable at start (%s); every job runs at its first tick", exc)
            return {}
        try:
            return {r["name"]: r["last_started_at"] for r in await conn.fetch(LAST_RUNS) if r["last_started_at"]}
        except asyncpg.UndefinedTableError:
            return {}
        finally:
            await conn.close()

    async def run_once(self, job: Job) -> bool:
        """Run a cluster job if no other instance holds it or ran it just now; True when it ran here."""
        async with self._running():
            return await self._run_once(job)

    async def _run_once(self, job: Job) -> bool:
        try:
            conn = await asyncpg.connect(self.settings.DATABASE_URL, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            logger.warning("job %s skipped: database unreachable (%s)", job.name, exc)
            return False
        key = _lock_key(job.name)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return False
            try:
                if await conn.fetchval(CLAIM_RUN, job.name, job.every * RECENT_SHARE) is None:
                    return False
                error = None
                try:
                    await job.run(conn)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    logger.warning("job %s failed: %s", job.name, error)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    logger.exception("job %s failed", job.name)
                await conn.execute(FINISH_RUN, job.name, error)
                self.runs[job.name] = self.runs.get(job.name, 0) + 1
                return error is None
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("job %s interrupted: %s", job.name, exc)
            return False
        finally:
            await conn.close()

    async def _run_local(self, job: LocalJob) -> None:
        async with self._running():
            try:
                await job.run()
            except Exception:
                logger.exception("job %s failed", job.name)
