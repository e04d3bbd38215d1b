"""Unit tests of ingest.spool.Spool: append, peek/commit replay, segments, torn tails, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import ingest.spool
from ingest.batch import Batch, DeadLetter
from ingest.rows import Row
from ingest.spool import Position, Spool, SpoolError

T0 = datetime(2024, 6, 1, 4, 0, 0, 123456, tzinfo=UTC)


def rows(n: int, *, start: int = 0) -> list[Row]:
    """n distinguishable rows; the value encodes the row's number."""
    return [
        (
            7,
            (start + i) % 30000,
            i % 4,
            T0 + timedelta(minutes=start + i, microseconds=i),
            (start + i) + 0.1,
            "NFMSDCTBP"[i % 9],
            T0 + timedelta(seconds=1, microseconds=start + i),
            None if i % 2 else i - 0.5,  # statistics of HJ 212 interval data, present or not
            None if i % 2 else i + 0.5,
            None if i % 3 else 1e6 + i,
            None,
        )
        for i in range(n)
    ]


def dead(n: int) -> DeadLetter:
    """A dead letter with a non-UTF-8 payload and no station."""
    return DeadLetter(
        received_at=T0 + timedelta(microseconds=n),
        topic=f"pw/p1/ghost{n}/readings",
        payload=b"\xff\x00\xfe not json " + bytes([n % 256]),
        reason="invalid_json",
        message=f"not valid JSON #{n}",
        problems=[{"reason": "invalid_json", "message": f"not valid JSON #{n}", "at": ""}],
        station_id=None,
    )


def batch(k: int) -> tuple[list[Row], list[DeadLetter]]:
    """Batch number k: a few rows and one dead letter, all marked with k."""
    return rows(3, start=10 * k), [dead(k)]


def content(spooled: Batch) -> tuple[list[Row], list[DeadLetter]]:
    """The rows and dead letters of a batch read back from the spool."""
    return spooled.rows, spooled.dead


def segments(directory: Path) -> list[Path]:
    """The segment files of a spool directory, oldest first."""
    return sorted(directory.glob("*.seg"))


def drain(spool: Spool) -> list[tuple[list[Row], list[DeadLetter]]]:
    """Replay everything: peek, then commit, until peek says there is nothing."""
    out = []
    while (item := spool.peek()) is not None:
        position, spooled = item
        out.append(content(spooled))
        spool.commit(position)
    return out


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """A spool directory of this test's own."""
    return tmp_path / "spool"


@pytest.fixture
def spool(spool_dir: Path) -> Iterator[Spool]:
    """An open spool, closed after the test."""
    s = Spool(spool_dir)
    yield s
    s.close()


def reopen(spool: Spool) -> Spool:
    """Close a spool and open a new one on the same directory (a restart)."""
    spool.close()
    return Spool(spool.dir)


# -- append, peek, commit -------------------------------------------------------------------------


def test_new_spool_is_empty(spool: Spool, spool_dir: Path) -> None:
    """A fresh spool has nothing pending, nothing to peek, and no segment files."""
    assert spool_dir.is_dir()
    assert spool.is_empty()
    assert spool.pending_records == 0
    assert spool.peek() is None
    assert segments(spool_dir) == []


def test_append_then_peek_commit_in_order(spool: Spool) -> None:
    """Batches come back oldest first, each exactly as appended."""
    for k in range(5):
        spool.append(Batch(*batch(k)))
    assert drain(spool) == [batch(k) for k in range(5)]
    assert spool.is_empty()
    assert spool.peek() is None


def test_peek_without_commit_returns_the_same_batch(spool: Spool) -> None:
    """Peek does not advance: only commit does."""
    spool.append(Batch(*batch(1)))
    spool.append(Batch(*batch(2)))
    first = spool.peek()
    again = spool.peek()
    assert first is not None
    assert again == first
    assert content(first[1]) == batch(1)
    spool.commit(first[0])
    second = spool.peek()
    assert second is not None
    assert content(second[1]) == batch(2)
    assert second[0].offset > first[0].offset


def test_rows_round_trip_to_the_microsecond_in_utc(spool: Spool) -> None:
    """Row datetimes come back tz-aware in UTC, equal to the microsecond; other fields identical."""
    shanghai = ZoneInfo("Asia/Shanghai")
    written: list[Row] = [
        (1, 2, 0, datetime(2024, 6, 1, 12, 0, 0, 999999, tzinfo=shanghai), 0.1 + 0.2, "N", T0),
        (2**31 - 1, 32767, 3, datetime(2000, 1, 1, tzinfo=UTC), -1e-300, "P", T0 + timedelta(microseconds=1)),
        (3, 4, 1, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 1.7976931348623157e308, "F", T0),
        (4, 5, 2, datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC), 0.0, "D", T0),
    ]
    spool.append(Batch(written, []))
    item = spool.peek()
    assert item is not None
    got, got_dead = content(item[1])
    assert got_dead == []
    assert got == written
    for before, after in zip(written, got, strict=True):
        for column in (3, 6):
            assert after[column].tzinfo is UTC
            assert after[column].utcoffset() == timedelta(0)
            assert after[column] == before[column]
            assert after[column].microsecond == before[column].astimezone(UTC).microsecond
        assert type(after[4]) is float
        assert after[4] == before[4]
    assert got[0][3] == datetime(2024, 6, 1, 4, 0, 0, 999999, tzinfo=UTC)


def test_dead_letters_round_trip(spool: Spool) -> None:
    """Dead letters keep their bytes payload, problems, reason, topic and a None station_id."""
    letters = [dead(1), dead(2)]
    letters.append(
        DeadLetter(
            received_at=T0,
            topic="pw/p1/p1-out/readings",
            payload=b"",
            reason="schema",
            message="值 must be a number (and 1 more problems)",
            problems=[
                {"reason": "schema", "message": "值 must be a number", "at": "[1].readings[0].value"},
                {"reason": "non_finite", "message": "value of cod is nan", "at": "[2].readings[0].value"},
            ],
            station_id="p1-out",
        )
    )
    spool.append(Batch([], letters))
    item = spool.peek()
    assert item is not None
    got_rows, got = content(item[1])
    assert got_rows == []
    assert got == letters
    assert got[0].station_id is None
    assert isinstance(got[0].payload, bytes)
    assert got[0].payload == b"\xff\x00\xfe not json \x01"
    assert got[0].received_at.tzinfo is UTC


def test_pending_records_bookkeeping(spool: Spool) -> None:
    """pending_records counts appended batches; peek leaves it alone and commit takes one off."""
    assert spool.is_empty()
    for k in range(3):
        spool.append(Batch(*batch(k)))
        assert spool.pending_records == k + 1
        assert not spool.is_empty()
    item = spool.peek()
    assert item is not None
    assert spool.pending_records == 3
    spool.commit(item[0])
    assert spool.pending_records == 2
    spool.append(Batch(*batch(3)))
    assert spool.pending_records == 3
    assert len(drain(spool)) == 3
    assert spool.pending_records == 0
    assert spool.is_empty()


def test_empty_batch_is_a_record(spool: Spool) -> None:
    """A batch with neither rows nor dead letters is still one record that replays."""
    spool.append(Batch([], []))
    assert spool.pending_records == 1
    assert drain(spool) == [([], [])]


def test_segments_deleted_once_drained(spool: Spool, spool_dir: Path) -> None:
    """Segments exist while batches are pending and are all removed once drained."""
    for k in range(3):
        spool.append(Batch(*batch(k)))
    assert [p.name for p in segments(spool_dir)] == ["000000000001.seg"]
    item = spool.peek()
    assert item is not None
    spool.commit(item[0])
    assert len(segments(spool_dir)) == 1  # still holds two pending batches
    drain(spool)
    assert segments(spool_dir) == []
    assert (spool_dir / "spool.lock").exists()


def test_append_after_fully_draining_starts_cleanly(spool: Spool, spool_dir: Path) -> None:
    """After a full drain, new batches start a new first segment and replay normally."""
    spool.append(Batch(*batch(0)))
    drain(spool)
    spool.append(Batch(*batch(1)))
    spool.append(Batch(*batch(2)))
    assert spool.pending_records == 2
    assert [p.name for p in segments(spool_dir)] == ["000000000001.seg"]
    item = spool.peek()
    assert item is not None
    assert item[0] == Position(1, item[0].offset)
    assert content(item[1]) == batch(1)
    assert drain(spool) == [batch(1), batch(2)]
    assert segments(spool_dir) == []


def test_interleaved_append_and_replay(spool: Spool) -> None:
    """Appending while replaying keeps the order: nothing is skipped or repeated."""
    spool.append(Batch(*batch(0)))
    spool.append(Batch(*batch(1)))
    seen = []
    for k in range(2, 6):
        item = spool.peek()
        assert item is not None
        seen.append(content(item[1]))
        spool.commit(item[0])
        spool.append(Batch(*batch(k)))
    seen += drain(spool)
    assert seen == [batch(k) for k in range(6)]


# -- reopening ------------------------------------------------------------------------------------


def test_reopen_replays_pending_from_the_start(spool: Spool, spool_dir: Path) -> None:
    """After close and reopen, the oldest segment is replayed from its first record."""
    for k in range(3):
        spool.append(Batch(*batch(k)))
    item = spool.peek()
    assert item is not None
    spool.commit(item[0])
    assert spool.pending_records == 2
    spool = reopen(spool)
    try:
        assert spool.pending_records == 3  # the committed one comes again: replays are idempotent
        assert drain(spool) == [batch(0), batch(1), batch(2)]
        assert spool.is_empty()
        assert segments(spool_dir) == []
    finally:
        spool.close()


def test_reopen_then_append_replays_old_before_new(spool: Spool, spool_dir: Path) -> None:
    """A batch appended after a restart goes to a new segment and replays after the old ones."""
    spool.append(Batch(*batch(0)))
    spool.append(Batch(*batch(1)))
    spool = reopen(spool)
    try:
        spool.append(Batch(*batch(2)))
        assert spool.pending_records == 3
        assert [p.name for p in segments(spool_dir)] == ["000000000001.seg", "000000000002.seg"]
        assert drain(spool) == [batch(0), batch(1), batch(2)]
        assert segments(spool_dir) == []
    finally:
        spool.close()


def test_reopen_empty_directory_after_drain(spool: Spool) -> None:
    """A drained spool reopens empty."""
    spool.append(Batch(*batch(0)))
    drain(spool)
    spool = reopen(spool)
    try:
        assert spool.is_empty()
        assert spool.peek() is None
    finally:
        spool.close()


# -- torn tails -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 3, 9, 20])
def test_truncated_tail_is_repaired_on_open(spool: Spool, spool_dir: Path, cut: int) -> None:
    """A last record cut short is dropped on open; the whole records before it survive."""
    for k in range(3):
        spool.append(Batch(*batch(k)))
    spool.close()
    (seg,) = segments(spool_dir)
    two_records = _end_of_record(seg, 2)
    full = seg.stat().st_size
    with seg.open("r+b") as fh:
        fh.truncate(full - cut)
    spool = Spool(spool_dir)
    try:
        assert seg.stat().st_size == two_records
        assert spool.pending_records == 2
        spool.append(Batch(*batch(9)))
        assert drain(spool) == [batch(0), batch(1), batch(9)]
    finally:
        spool.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"x",
        b"garbage",
        b"\xff" * 64,
        b"\x02\x00\x00\x00\xde\xad\xbe\xef{}",
        b"\x05\x00\x00\x00\x00\x00\x00\x00ab",
    ],
    ids=["one-byte", "short", "huge-length", "bad-crc", "short-body"],
)
def test_garbage_tail_is_repaired_on_open(spool: Spool, spool_dir: Path, garbage: bytes) -> None:
    """Bytes after the last whole record are cut off on open; the records before them survive."""
    spool.append(Batch(*batch(0)))
    spool.append(Batch(*batch(1)))
    spool.close()
    (seg,) = segments(spool_dir)
    size = seg.stat().st_size
    with seg.open("ab") as fh:
        fh.write(garbage)
    spool = Spool(spool_dir)
    try:
        assert seg.stat().st_size == size
        assert spool.pending_records == 2
        assert drain(spool) == [batch(0), batch(1)]
    finally:
        spool.close()


def test_zero_filled_tail_is_repaired_on_open(spool: Spool, spool_dir: Path) -> None:
    """A tail of zero bytes (a crash after the file grew, before its data reached the disk) is dropped."""
    spool.append(Batch(*batch(0)))
    spool.append(Batch(*batch(1)))
    spool.close()
    (seg,) = segments(spool_dir)
    with seg.open("ab") as fh:
        fh.write(b"\x00" * 16)
    spool = Spool(spool_dir)
    try:
        assert drain(spool) == [batch(0), batch(1)]  # today: peek() raises orjson.JSONDecodeError
        assert spool.is_empty()
        assert segments(spool_dir) == []
    finally:
        spool.close()


def test_only_record_torn_leaves_an_empty_spool(spool: Spool, spool_dir: Path) -> None:
    """If the single record is torn, the reopened spool is empty and appends replay normally."""
    spool.append(Batch(*batch(0)))
    spool.close()
    (seg,) = segments(spool_dir)
    with seg.open("r+b") as fh:
        fh.truncate(5)
    spool = Spool(spool_dir)
    try:
        assert spool.is_empty()
        assert seg.stat().st_size == 0
        spool.append(Batch(*batch(1)))
        assert drain(spool) == [batch(1)]
        assert segments(spool_dir) == []
    finally:
        spool.close()


def _end_of_record(seg: Path, n: int) -> int:
    """Byte offset just after the n-th record of a segment file."""
    data = seg.read_bytes()
    pos = 0
    for _ in range(n):
        length = int.from_bytes(data[pos : pos + 4], "little")
        pos += 8 + length
    return pos


# -- the lock -------------------------------------------------------------------------------------


def test_second_spool_on_same_directory_is_refused(spool: Spool, spool_dir: Path) -> None:
    """Only one Spool may hold a directory; the second raises SpoolError."""
    spool.append(Batch(*batch(0)))
    with pytest.raises(SpoolError, match="locked") as info:
        Spool(spool_dir)
    assert info.value.path == spool_dir
    assert spool.pending_records == 1
    assert drain(spool) == [batch(0)]


def test_lock_is_released_on_close(spool: Spool, spool_dir: Path) -> None:
    """Once closed, another Spool can take the directory and sees the pending batches."""
    spool.append(Batch(*batch(0)))
    spool.close()
    other = Spool(spool_dir)
    try:
        assert other.pending_records == 1
        with pytest.raises(SpoolError):
            Spool(spool_dir)
    finally:
        other.close()


def test_unusable_directory_is_spool_error(tmp_path: Path) -> None:
    """A spool path that cannot be a directory raises SpoolError, not OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError):
        Spool(blocker / "spool")


# -- segments -------------------------------------------------------------------------------------


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> int:
    """Segments that hold about two batches each."""
    record = len(ingest.spool.encode_batch(Batch(*batch(0)))) + 8
    monkeypatch.setattr(ingest.spool, "SEGMENT_BYTES", 2 * record + record // 2)
    return record


@pytest.mark.usefixtures("small_segments")
def test_roll_over_to_new_segments(spool: Spool, spool_dir: Path) -> None:
    """Past SEGMENT_BYTES the spool rolls to a new, numbered segment."""
    for k in range(7):
        spool.append(Batch(*batch(k)))
    names = [p.name for p in segments(spool_dir)]
    assert names == [f"{n:012d}.seg" for n in range(1, 5)]
    assert all(p.stat().st_size <= ingest.spool.SEGMENT_BYTES for p in segments(spool_dir))
    assert spool.pending_records == 7


@pytest.mark.usefixtures("small_segments")
def test_replay_in_order_across_segments_frees_them_in_steps(spool: Spool, spool_dir: Path) -> None:
    """Replay crosses segment boundaries in order, deleting each segment once it is passed."""
    for k in range(7):
        spool.append(Batch(*batch(k)))
    seen = []
    counts = []
    while (item := spool.peek()) is not None:
        counts.append(len(segments(spool_dir)))
        seen.append(content(item[1]))
        spool.commit(item[0])
    assert seen == [batch(k) for k in range(7)]
    assert counts == [4, 4, 3, 3, 2, 2, 1]
    assert segments(spool_dir) == []
    assert spool.is_empty()


@pytest.mark.usefixtures("small_segments")
def test_reopen_with_many_segments_replays_in_order(spool: Spool, spool_dir: Path) -> None:
    """After a restart, every segment is replayed oldest first, then the new appends."""
    for k in range(5):
        spool.append(Batch(*batch(k)))
    spool = reopen(spool)
    try:
        assert spool.pending_records == 5
        spool.append(Batch(*batch(5)))
        spool.append(Batch(*batch(6)))
        assert drain(spool) == [batch(k) for k in range(7)]
        assert segments(spool_dir) == []
    finally:
        spool.close()


@pytest.mark.usefixtures("small_segments")
def test_append_while_replaying_across_segments(spool: Spool) -> None:
    """New batches appended mid-replay, in new segments, come after the older ones."""
    for k in range(3):
        spool.append(Batch(*batch(k)))
    seen = []
    for k in range(3, 9):
        item = spool.peek()
        assert item is not None
        seen.append(content(item[1]))
        spool.commit(item[0])
        spool.append(Batch(*batch(k)))
    seen += drain(spool)
    assert seen == [batch(k) for k in range(9)]


def test_record_larger_than_a_segment_is_kept(spool: Spool, spool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch bigger than SEGMENT_BYTES still goes in, alone in its segment."""
    monkeypatch.setattr(ingest.spool, "SEGMENT_BYTES", 64)
    spool.append(Batch(*batch(0)))
    spool.append(Batch(*batch(1)))
    assert len(segments(spool_dir)) == 2
    assert drain(spool) == [batch(0), batch(1)]


# -- a full disk ----------------------------------------------------------------------------------

FULL_DISK_SCRIPT = """
import json, os, sys
from pathlib import Path
from ingest.batch import Batch
from ingest.spool import Spool, SpoolError
from tests.test_spool import batch, drain

disk = Path(sys.argv[1])
ballast = disk / "ballast"
ballast.write_bytes(b"x" * (44 * 1024))  # someone else's file: the spool gets what is left
spool = Spool(disk / "spool")
kept, refused = [], []
for k in range(400):
    if k == 300:
        ballast.unlink()  # the other file goes: room again, with no replay in between
    try:
        spool.append(Batch(*batch(k)))
        kept.append(k)
    except SpoolError as exc:
        refused.append(k)
        assert "No space left" in str(exc), exc
back = drain(spool)
print(json.dumps({"kept": kept, "refused": refused, "back": [b[1][0].message for b in back],
                  "pending": spool.pending_records}))
"""


def test_a_full_disk_refuses_appends_and_loses_none_that_were_taken(tmp_path: Path) -> None:
    """ENOSPC on a real (tmpfs) file system of 64 KiB: an append that fails leaves no torn record
    behind, so every append taken before or after it is read back, in order."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK_SCRIPT)
    # A mount namespace of its own: the tmpfs is gone with the process, whatever happens.
    command = 'mount -t tmpfs -o size=64k tmpfs "$1" && exec "$2" "$3" "$1"'
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", command, "sh", str(disk), sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["refused"] and out["kept"][-1] == 399, "the disk never filled, or never had room again"
    assert any(k > 300 for k in out["kept"]) and any(k < 300 for k in out["refused"])
    assert out["back"] == [f"not valid JSON #{k}" for k in out["kept"]]
    assert out["pending"] == 0
