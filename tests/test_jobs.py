"""The scheduler: every cluster job runs once per period however many processes run it, and catches up after downtime."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
import pytest

from parkwatch.jobs import Job, Jobs
from parkwatch.settings import Settings
from tests.helpers import fetchval


async def test_two_processes_run_each_job_once_per_period(settings: Settings) -> None:
    """Two schedulers (two parkwatch processes) with a 1-second job for 3.5 s: 3 or 4 runs in all, not 7 or 8."""
    runs: list[str] = []

    async def job(_conn: asyncpg.Connection) -> None:
        runs.append("ran")
        await asyncio.sleep(0.05)

    stop = asyncio.Event()
    schedulers = [Jobs(settings, [Job("count", timedelta(seconds=1), job)]) for _ in range(2)]
    tasks = [asyncio.create_task(s.run(stop)) for s in schedulers]
    await asyncio.sleep(3.5)
    stop.set()
    await asyncio.gather(*tasks)
    assert 3 <= len(runs) <= 5, runs
    assert await fetchval(settings.DATABASE_URL, "SELECT runs FROM scheduled_jobs WHERE name = 'count'") == len(runs)


async def test_a_job_overdue_after_downtime_runs_at_start(settings: Settings) -> None:
    """An hourly job last run a day ago runs as soon as the scheduler starts; one run an hour ago waits."""
    ran: list[str] = []

    def job(name: str) -> Job:
        async def run(_conn: asyncpg.Connection) -> None:
            ran.append(name)

        return Job(name, timedelta(hours=1), run)

    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await conn.execute(
            """INSERT INTO scheduled_jobs (name, last_started_at, runs)
               VALUES ('overdue', now() - interval '1 day', 1), ('fresh', now() - interval '10 minutes', 1)"""
        )
    finally:
        await conn.close()
    stop = asyncio.Event()
    task = asyncio.create_task(Jobs(settings, [job("overdue"), job("fresh")]).run(stop))
    await asyncio.sleep(1.0)
    stop.set()
    await task
    assert ran == ["overdue"]


async def test_a_failing_job_is_recorded_and_runs_again(settings: Settings) -> None:
    calls = 0

    async def flaky(_conn: asyncpg.Connection) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first run fails")

    jobs = Jobs(settings, [])
    job = Job("flaky", timedelta(milliseconds=10), flaky)
    assert await jobs.run_once(job) is False
    assert "first run fails" in await fetchval(
        settings.DATABASE_URL, "SELECT last_error FROM scheduled_jobs WHERE name = 'flaky'"
    )
    await asyncio.sleep(0.05)
    assert await jobs.run_once(job) is True
    assert await fetchval(settings.DATABASE_URL, "SELECT last_error FROM scheduled_jobs WHERE name = 'flaky'") is None


async def test_stopping_lets_a_running_job_finish(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A stop mid-job waits for it: it is neither cut short nor logged as a traceback (found by
    `parkwatch chaos`: every SIGTERM of the ingest logged its jobs' cancelled connects as errors)."""
    finished: list[str] = []
    started = asyncio.Event()

    async def job(_conn: asyncpg.Connection) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append("done")

    stop = asyncio.Event()
    task = asyncio.create_task(Jobs(settings, [Job("slow", timedelta(hours=1), job)]).run(stop))
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    await task
    assert finished == ["done"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
