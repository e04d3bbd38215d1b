"""A station publishes over the real broker; readings land in PostgreSQL and come out of the API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import httpx
import orjson
import pytest

from ingest import batcher, mqtt
from ingest.service import IngestService
from ingest.stats import IngestStats
from ingest.writer import DurableWriter
from parkwatch.settings import Settings
from simulators.broker import PrivateBroker
from tests.helpers import count_readings, eventually, fetch, fetchval, message, publish, recent, running


async def test_reading_is_stored_and_served(settings: Settings, ingest: IngestService, api: httpx.AsyncClient) -> None:
    """A JSON reading goes MQTT → PostgreSQL → API, with code, UTC and local time."""
    ts = recent(60)
    await publish(settings, "p1", "p1-out", message("p1-out", ts, [("cod", 32.1), ("w21003", 1.25)]))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)

    rows = await fetch(
        settings.DATABASE_URL,
        "SELECT p.code, r.value, r.flag, r.ts, r.iv FROM readings r JOIN parameters p USING (pid) ORDER BY p.code",
    )
    assert [(r["code"], r["value"], r["flag"], r["iv"]) for r in rows] == [
        ("w01018", 32.1, "N", 0),
        ("w21003", 1.25, "N", 0),
    ]
    assert rows[0]["ts"] == ts

    resp = await api.get(
        "/api/v1/readings",
        params={"station_id": "p1-out", "parameter": "cod", "start": (ts - timedelta(minutes=1)).isoformat()},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["next_cursor"] is None
    [reading] = body["results"]
    assert reading["station_id"] == "p1-out"
    assert reading["parameter"] == "w01018"
    assert reading["interval"] == "rtd"
    assert reading["value"] == 32.1
    assert reading["flag"] == "N"
    assert reading["unit"] == "mg/L"
    assert reading["ts"] == ts.isoformat().replace("+00:00", "Z")
    assert reading["ts_local"] == ts.astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    assert reading["revised"] is False


async def test_same_message_twice_is_one_row(settings: Settings, ingest: IngestService) -> None:
    """A redelivered message (same key, same value) is a no-op, not a second row."""
    payload = message("p1-out", recent(30), [("w01018", 40.0), ("w01001", 7.2)])
    await publish(settings, "p1", "p1-out", payload)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 2)
    await publish(settings, "p1", "p1-out", payload)
    await eventually(lambda: _duplicates(ingest), lambda n: n == 2)
    assert await count_readings(settings.DATABASE_URL) == 2
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM reading_revisions") == 0


async def _duplicates(service: IngestService) -> int:
    return service.stats.readings_duplicate


async def test_array_payload_stores_every_element(settings: Settings, ingest: IngestService) -> None:
    """A back-fill array stores each object; naive timestamps are read in the station's zone."""
    base = datetime.now(UTC) - timedelta(hours=3)
    backfill = [
        message("p1-out", base + timedelta(minutes=i), {"cod": 30 + i, "tp": 0.2}, interval="min") for i in range(50)
    ]
    # one element with a naive local timestamp: 08:00 in Asia/Shanghai is 00:00 UTC
    backfill.append(message("p1-out", "2026-01-15T08:00:00", {"cod": 25.0}, interval="hour"))
    await publish(settings, "p1", "p1-out", backfill)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 101)
    hourly = await fetch(settings.DATABASE_URL, "SELECT ts, value FROM readings WHERE iv = 2")
    assert [(r["ts"], r["value"]) for r in hourly] == [(datetime(2026, 1, 15, 0, 0, tzinfo=UTC), 25.0)]


async def test_station_time_zone_applies_to_naive_ts(settings: Settings, ingest: IngestService) -> None:
    """p2-out is registered in Asia/Urumqi (UTC+6): its naive 08:00 is 02:00 UTC."""
    await publish(settings, "p2", "p2-out", message("p2-out", "2026-02-01T08:00:00", {"cod": 11.0}))
    rows = await eventually(lambda: fetch(settings.DATABASE_URL, "SELECT ts FROM readings"), lambda r: len(r) == 1)
    assert rows[0]["ts"] == datetime(2026, 2, 1, 2, 0, tzinfo=UTC)


async def test_different_value_is_kept_as_revision(
    settings: Settings, ingest: IngestService, api: httpx.AsyncClient
) -> None:
    """A second, different value for a stored key is neither dropped nor overwritten."""
    ts = recent(120)
    await publish(settings, "p1", "p1-out", message("p1-out", ts, {"cod": 30.0}))
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)
    corrected = message("p1-out", ts, {"cod": 31.5})
    corrected["readings"][0]["flag"] = "M"
    await publish(settings, "p1", "p1-out", corrected)
    await eventually(
        lambda: fetchval(settings.DATABASE_URL, "SELECT count(*) FROM reading_revisions"), lambda n: n == 1
    )
    # redelivery of the correction is not a second revision
    await publish(settings, "p1", "p1-out", corrected)
    await eventually(lambda: _duplicates(ingest), lambda n: n == 2)
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM reading_revisions") == 1

    resp = await api.get(
        "/api/v1/readings", params={"station_id": "p1-out", "start": (ts - timedelta(seconds=1)).isoformat()}
    )
    [reading] = resp.json()["results"]
    assert (reading["value"], reading["flag"], reading["revised"]) == (30.0, "N", True)
    resp = await api.get(
        "/api/v1/readings/revisions",
        params={"station_id": "p1-out", "start": (ts - timedelta(seconds=1)).isoformat()},
    )
    [rev] = resp.json()["results"]
    assert rev["stored"]["value"] == 30.0
    assert (rev["revision"]["value"], rev["revision"]["flag"]) == (31.5, "M")


async def test_units_are_converted_to_the_stored_unit(settings: Settings, ingest: IngestService) -> None:
    """µg/L for COD becomes mg/L; ppm SO2 at a stack becomes mg/m³ at standard state."""
    ts = recent(10)
    await publish(
        settings,
        "p1",
        "p1-out",
        {
            "station_id": "p1-out",
            "ts": ts.isoformat(),
            "readings": [{"parameter": "cod", "value": 32100, "unit": "ug/L"}],
        },
    )
    await publish(
        settings,
        "p1",
        "p1-stack",
        {
            "station_id": "p1-stack",
            "ts": ts.isoformat(),
            "readings": [{"parameter": "so2", "value": 10, "unit": "ppm"}],
        },
    )
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL,
            "SELECT p.code, r.value FROM readings r JOIN parameters p USING (pid) ORDER BY 1",
        ),
        lambda r: len(r) == 2,
    )
    values = {r["code"]: r["value"] for r in rows}
    assert values["w01018"] == 32.1
    assert abs(values["a21026"] - 10 * 64.066 / 22.414) < 1e-9


async def test_vendor_code_declared_by_station_is_accepted(settings: Settings, ingest: IngestService) -> None:
    """A code outside the HJ 212 tables is stored when the station's registry entry declares it."""
    await publish(settings, "p2", "p2-out", message("p2-out", recent(5), {"ys1000": 3.0}))
    rows = await eventually(
        lambda: fetch(
            settings.DATABASE_URL, "SELECT p.code, p.in_catalogue FROM readings JOIN parameters p USING (pid)"
        ),
        lambda r: len(r) == 1,
    )
    assert (rows[0]["code"], rows[0]["in_catalogue"]) == ("ys1000", False)


async def test_qos0_message_is_stored_too(settings: Settings, ingest: IngestService) -> None:
    """A station publishing at QoS 0 is still ingested (there is simply nothing to acknowledge)."""
    await publish(settings, "p1", "p1-air", message("p1-air", recent(5), {"pm25": 35.0}), qos=0)
    await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 1)


async def test_payload_bytes_of_a_batch_survive_unicode(settings: Settings, ingest: IngestService) -> None:
    """Non-ASCII in a refused payload is kept byte for byte in the dead letter."""
    raw = orjson.dumps({"station_id": "p1-out", "ts": "昨天", "readings": [{"parameter": "cod", "value": 1}]})
    await publish(settings, "p1", "p1-out", raw)
    rows = await eventually(
        lambda: fetch(settings.DATABASE_URL, "SELECT payload, reason FROM dead_letters"),
        lambda r: len(r) == 1,
    )
    assert bytes(rows[0]["payload"]) == raw
    assert rows[0]["reason"] == "bad_timestamp"


async def test_inbox_stays_bounded_while_the_writer_is_slow(
    settings: Settings, registry: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the database slow, the ingest stops reading its socket instead of buffering without bound.

    Runs against a broker from deploy/mosquitto.conf, whose in-flight window (4,000) is far above
    the inbox limit set here, so only the ingest's own back-pressure can keep the inbox small.
    """
    monkeypatch.setattr(mqtt, "INBOX_HIGH", 40)
    monkeypatch.setattr(mqtt, "INBOX_LOW", 10)
    monkeypatch.setattr(batcher, "BATCH_MAX_ROWS", 20)
    peak = 0
    real_take = mqtt.Subscriber.take

    async def take(self: mqtt.Subscriber, limit: int) -> list[Any]:
        nonlocal peak
        peak = max(peak, len(self.inbox))
        return await real_take(self, limit)

    real_write = DurableWriter.write

    async def slow_write(self: DurableWriter, batch: Any) -> Any:
        await asyncio.sleep(0.05)  # a database that takes 50 ms per batch
        return await real_write(self, batch)

    monkeypatch.setattr(mqtt.Subscriber, "take", take)
    monkeypatch.setattr(DurableWriter, "write", slow_write)
    broker = PrivateBroker(tmp_path / "broker")
    broker.start()
    settings = settings.model_copy(update={"MQTT_URL": broker.url})
    try:
        async with running(IngestService(settings, stats=IngestStats())):
            base = recent(600)
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                for i in range(600):
                    body = orjson.dumps(message("p1-out", base + timedelta(milliseconds=i), {"cod": float(i)}))
                    await client.publish(f"{settings.TOPIC_PREFIX}/p1/p1-out/readings", body, qos=1)
            await eventually(lambda: count_readings(settings.DATABASE_URL), lambda n: n == 600, timeout=60)
    finally:
        broker.stop()
    assert 0 < peak <= 40
