"""The store and the durable writer against a real database: paths, first-value-wins, revisions,
partitions on demand, and rows the database refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.batch import Batch, DeadLetter
from ingest.spool import Spool
from ingest.stats import IngestStats
from ingest.store import Store
from ingest.writer import DurableWriter
from parkwatch.settings import Settings
from tests.helpers import fetch, fetchval

NOW = datetime.now(UTC).replace(microsecond=0)


async def _ids(settings: Settings) -> tuple[int, int, int]:
    sid = await fetchval(settings.DATABASE_URL, "SELECT sid FROM stations WHERE id = 'p1-out'")
    cod = await fetchval(settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = 'w01018'")
    tp = await fetchval(settings.DATABASE_URL, "SELECT pid FROM parameters WHERE code = 'w21011'")
    return sid, cod, tp


async def test_copy_then_staging_first_value_wins(settings: Settings, registry: None) -> None:
    """Clean batches COPY; a batch with a stored key takes the staging path and keeps the first value."""
    sid, cod, tp = await _ids(settings)
    store = Store(settings.DATABASE_URL)
    try:
        first = await store.write(
            Batch(
                rows=[
                    (sid, cod, 0, NOW, 30.0, "N", NOW, None, None, None, None),
                    (sid, tp, 0, NOW, 0.3, "N", NOW, None, None, None, None),
                ]
            )
        )
        assert (first.path, first.new) == ("copy", 2)
        # same key twice inside one batch with different values, plus a redelivery and a revision
        second = await store.write(
            Batch(
                rows=[
                    (sid, cod, 0, NOW + timedelta(seconds=1), 31.0, "N", NOW, None, None, None, None),
                    (sid, cod, 0, NOW + timedelta(seconds=1), 99.0, "N", NOW, None, None, None, None),
                    (sid, cod, 0, NOW, 30.0, "N", NOW, None, None, None, None),
                    (sid, tp, 0, NOW, 0.3, "C", NOW, None, None, None, None),
                ]
            )
        )
        assert (second.path, second.new, second.duplicates, second.revisions) == ("staging", 1, 3, 2)
        # the same revision again is not recorded twice
        third = await store.write(
            Batch(rows=[(sid, tp, 0, NOW, 0.3, "C", NOW, None, None, None, None)]), idempotent=True
        )
        assert (third.new, third.revisions) == (0, 0)
    finally:
        await store.close()
    stored = await fetch(settings.DATABASE_URL, "SELECT pid, ts, value, flag FROM readings ORDER BY ts, pid")
    assert [(r["value"], r["flag"]) for r in stored] == [(30.0, "N"), (0.3, "N"), (31.0, "N")]
    revisions = await fetch(settings.DATABASE_URL, "SELECT value, flag FROM reading_revisions ORDER BY value")
    assert [(r["value"], r["flag"]) for r in revisions] == [(0.3, "C"), (99.0, "N")]
    series = await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM series")
    assert series == 2


async def test_partitions_are_created_for_back_filled_periods(settings: Settings, registry: None) -> None:
    """A batch reaching back years lands in week partitions made on demand, not in DEFAULT (with
    TimescaleDB, in chunks of its own)."""
    sid, cod, _ = await _ids(settings)
    old = [
        datetime(2019, 3, 31, 23, 0, tzinfo=UTC),
        datetime(2021, 12, 1, tzinfo=UTC),
        datetime(2024, 2, 29, tzinfo=UTC),
    ]
    store = Store(settings.DATABASE_URL)
    try:
        await store.write(Batch(rows=[(sid, cod, 2, ts, 20.0, "N", NOW, None, None, None, None) for ts in old]))
    finally:
        await store.close()
    where = await fetch(settings.DATABASE_URL, "SELECT tableoid::regclass::text AS part FROM readings ORDER BY ts")
    if await fetchval(settings.DATABASE_URL, "SELECT value FROM parkwatch_meta WHERE key = 'storage'") == "native":
        # ISO weeks: 2019-03-31 is the Sunday of week 13
        assert [r["part"] for r in where] == ["readings_2019_w13", "readings_2021_w48", "readings_2024_w09"]
    else:
        assert len({r["part"] for r in where}) == 3 and all("_hyper_" in r["part"] for r in where)


async def test_rows_the_database_refuses_are_isolated_and_dead_lettered(
    settings: Settings, registry: None, tmp_path: Path
) -> None:
    """A row the database refuses (here: a station id that does not exist) does not block the batch."""
    sid, cod, tp = await _ids(settings)
    stats = IngestStats()
    writer = DurableWriter(Store(settings.DATABASE_URL), Spool(tmp_path / "spool"), stats)
    good = [(sid, cod, 0, NOW + timedelta(seconds=i), 30.0 + i, "N", NOW, None, None, None, None) for i in range(7)]
    bad = (999_999, tp, 0, NOW, 1.0, "N", NOW, None, None, None, None)
    batch = Batch(rows=[*good[:3], bad, *good[3:]])
    try:
        outcome = await writer.write(batch)
    finally:
        await writer.store.close()
        writer.spool.close()
    assert outcome.where == "db"
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings") == 7
    [dead] = await fetch(settings.DATABASE_URL, "SELECT reason, message FROM dead_letters")
    assert dead["reason"] == "rejected_by_database"
    assert "23503" in dead["message"]  # foreign_key_violation, from the series catalogue
    assert stats.dead_letters["rejected_by_database"] == 1


async def test_spool_replay_does_not_duplicate_dead_letters(settings: Settings, registry: None, tmp_path: Path) -> None:
    """A spooled batch replayed twice (a crash mid-replay) stores everything in it once."""
    sid, cod, _ = await _ids(settings)
    rows = [(sid, cod, 1, NOW + timedelta(minutes=i), 1.0 * i, "N", NOW, 0.5, 2.0, 10.0, None) for i in range(5)]
    dead = [DeadLetter(NOW, "t/p1/x/readings", b"{", "invalid_json", "not valid JSON", [], "x")]
    packets = [(NOW, "t/hj212/MN1", sid, "MN1", "2051", "20261126080000000", NOW, b"##0000...", "[]")]
    events = [(sid, "facility_state", "SB1", NOW, 1.0, NOW)]
    spool = Spool(tmp_path / "spool")
    spool.append(Batch(rows=rows, dead=dead, packets=packets, events=events))
    spool.close()
    for _ in range(2):  # the second Spool starts from the segment's beginning again
        spool = Spool(tmp_path / "spool")
        writer = DurableWriter(Store(settings.DATABASE_URL), spool, IngestStats())
        _, spooled = spool.peek()  # type: ignore[misc]  # peeked, written, never committed: a crash
        assert (spooled.rows, spooled.dead, spooled.packets, spooled.events) == (rows, dead, packets, events)
        await writer._to_db(spooled, idempotent=True)
        await writer.store.close()
        spool.close()
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM readings") == 5
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM dead_letters") == 1
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM hj212_packets") == 1
    assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM station_events") == 1
    stats = await fetch(settings.DATABASE_URL, "SELECT vmin, vmax, cou FROM readings ORDER BY ts LIMIT 1")
    assert tuple(stats[0]) == (0.5, 2.0, 10.0)
