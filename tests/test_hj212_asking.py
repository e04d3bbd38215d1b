"""The platform asks data loggers (ingest/hj212/asking.py, asker.py): a gap detected, asked for and
filled; a clock 10 minutes off set right. A simulated logger (simulators/logger.py) on the real
gateway, broker, ingest and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest

from ingest.hj212 import asker, asking
from ingest.hj212.gateway import Gateway
from ingest.service import IngestService
from parkwatch.settings import Settings
from simulators.logger import SimulatedLogger
from tests.helpers import count_readings, eventually, fetch, running_gateway

MN = "43010000000101"  # p1-out in tests/data/registry.yaml


@pytest.fixture
async def gateway(settings: Settings, ingest: IngestService, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.setattr(asker, "ASK_POLL", 0.1)
    async with running_gateway(settings) as gw:
        await gw.load_registry()
        yield gw


@pytest.fixture
async def logger_(gateway: Gateway) -> AsyncIterator[SimulatedLogger]:
    logger = SimulatedLogger("127.0.0.1", gateway.port, MN)
    await logger.connect()
    task = asyncio.create_task(logger.serve(), name="test.logger")
    try:
        yield logger
    finally:
        await logger.close()
        task.cancel()


async def _plan(settings: Settings) -> asking.Plan:
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        return await asking.plan_requests(conn)
    finally:
        await conn.close()


async def _requests(settings: Settings, kind: str) -> list[asyncpg.Record]:
    return await fetch(settings.DATABASE_URL, "SELECT * FROM logger_requests WHERE kind = $1 ORDER BY id", kind)


async def test_a_gap_is_detected_asked_for_and_filled(
    settings: Settings, logger_: SimulatedLogger, monkeypatch: pytest.MonkeyPatch, api: httpx.AsyncClient
) -> None:
    """Twenty minutes of minute data, three lost on the way (the logger still has them): the
    planner finds the gap, the gateway asks the logger for it (2051 with BeginTime/EndTime), the
    logger answers 9011, sends the three minutes and 9012; they are stored and the request is
    recorded as filled. Asked again, nothing more is requested."""
    minute = asking.POLICIES[0]
    monkeypatch.setattr(asking, "POLICIES", (replace(minute, grace=timedelta(seconds=90)),))
    start = logger_.now().replace(second=0, microsecond=0) - timedelta(minutes=20)
    for k in range(20):
        await logger_.record(
            "2051", start + timedelta(minutes=k), {"w01018": {"Avg": 30.0 + k}}, send=k not in (3, 4, 5)
        )
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 17)

    plan = await _plan(settings)
    assert plan.spans == 1
    [asked] = await _requests(settings, "history")
    # the gateway may already have sent it: it picks requests up as soon as they are recorded
    assert (asked["cn"], asked["missing"]) == ("2051", 3) and asked["state"] in ("pending", "sent")

    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 20)
    [request] = [p for p in logger_.requests if p.cn == "2051"]
    assert request.fields["BeginTime"] == (start + timedelta(minutes=3)).strftime("%Y%m%d%H%M%S")
    assert request.fields["EndTime"] == (start + timedelta(minutes=5)).strftime("%Y%m%d%H%M%S")
    assert request.pw == "123456" and request.flag == 5
    done = await eventually(lambda: _requests(settings, "history"), lambda r: r[0]["state"] == "completed")
    assert done[0]["qn"] == request.qn and done[0]["answered_at"] is not None

    again = await _plan(settings)
    assert again.filled == 1 and again.spans == 0
    [filled] = await _requests(settings, "history")
    assert filled["state"] == "filled" and filled["result"] == "all 3 record(s) of the span are stored"
    listed = await api.get("/api/v1/stations/p1-out/logger-requests", params={"state": "filled"})
    assert listed.status_code == 200, listed.text
    [shown] = [r for r in listed.json()["results"] if r["kind"] == "history"]
    assert shown["begin"] == (start + timedelta(minutes=3)).isoformat() + "+08:00" and shown["missing"] == 3


async def test_a_clock_ten_minutes_off_is_set(settings: Settings, logger_: SimulatedLogger) -> None:
    """A logger whose clock is 10 minutes behind sends real-time data: the planner asks for its
    clock to be set (1012), the gateway sends our time, the logger sets it and answers; its next
    data carry the right time."""
    logger_.offset = timedelta(minutes=-10)
    await logger_.realtime({"w01018": {"Rtd": 31.0}})
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    plan = await _plan(settings)
    assert plan.clocks == 1
    [asked] = await _requests(settings, "set_clock")
    assert asked["cn"] == "1012" and "about 6" in asked["reason"] and "behind" in asked["reason"]

    done = await eventually(lambda: _requests(settings, "set_clock"), lambda r: r[0]["state"] == "completed")
    assert abs(logger_.offset.total_seconds()) < 2, logger_.offset
    [request] = [p for p in logger_.requests if p.cn == "1012"]
    assert done[0]["qn"] == request.qn
    told = datetime.strptime(request.fields["SystemTime"], "%Y%m%d%H%M%S")
    assert abs((told - logger_.now()).total_seconds()) < 5
    await _plan(settings)
    [finished] = await _requests(settings, "set_clock")
    assert finished["state"] == "filled"
