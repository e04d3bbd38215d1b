"""A local, fsynced, append-only spool of batches kept while PostgreSQL is unreachable.

Mosquitto cannot hold a long outage for us (past max_queued_messages it silently drops QoS 1
messages; with no limit, 2.0.11 stalls for good past ~65k queued messages), so while the
database is away the ingest acknowledges a batch only once it is fsynced here, and replays the
spool, oldest first, when the database returns.

Layout: segment files `NNNNNNNNNNNN.seg` of records `<u32 length><u32 crc32><body>`, where body
is one batch as JSON. A segment is deleted once every record in it is in the database; after a
crash the oldest segment is replayed from its start, which is harmless because replays use the
idempotent write path and dead letters are deduplicated by their receive stamp. A torn record
at the end of the newest segment was never acknowledged (acks follow the fsync), so it is
dropped.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ingest.batch import Batch, DeadLetter, EventRow, PacketRecord
from ingest.rows import Row

logger = logging.getLogger(__name__)

# Roll to a new segment past this size, so drained data is freed in steps during a long replay.
SEGMENT_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct("<II")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SpoolError(Exception):
    """The spool cannot be used (locked by another process, unreadable or unwritable)."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"spool {path}: {detail}")


def _us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _opt_us(ts: datetime | None) -> int | None:
    return None if ts is None else _us(ts)


def _opt_ts(us: int | None) -> datetime | None:
    return None if us is None else _from_us(us)


def encode_batch(batch: Batch) -> bytes:
    """Serialise what a batch must make durable (not its envelopes) for the spool."""
    body: dict[str, Any] = {
        "r": [[*r[:3], _us(r[3]), r[4], r[5], _us(r[6]), *r[7:]] for r in batch.rows],
        "d": [
            [
                _us(d.received_at),
                d.topic,
                base64.b64encode(d.payload).decode(),
                d.reason,
                d.message,
                d.problems,
                d.station_id,
            ]
            for d in batch.dead
        ],
        "p": [[_us(p[0]), p[1], p[2], p[3], p[4], p[5], _opt_us(p[6]), _b64(p[7]), p[8]] for p in batch.packets],
        "e": [[e[0], e[1], e[2], _us(e[3]), e[4], _us(e[5])] for e in batch.events],
    }
    return orjson.dumps(body)


def decode_batch(body: bytes) -> Batch:
    """Inverse of encode_batch."""
    doc = orjson.loads(body)
    rows: list[Row] = [(r[0], r[1], r[2], _from_us(r[3]), r[4], r[5], _from_us(r[6]), *r[7:11]) for r in doc["r"]]
    dead = [
        DeadLetter(
            received_at=_from_us(d[0]),
            topic=d[1],
            payload=base64.b64decode(d[2]),
            reason=d[3],
            message=d[4],
            problems=d[5],
            station_id=d[6],
        )
        for d in doc["d"]
    ]
    packets: list[PacketRecord] = [
        (_from_us(p[0]), p[1], p[2], p[3], p[4], p[5], _opt_ts(p[6]), base64.b64decode(p[7]), p[8])
        for p in doc.get("p", [])
    ]
    events: list[EventRow] = [(e[0], e[1], e[2], _from_us(e[3]), e[4], _from_us(e[5])) for e in doc.get("e", [])]
    return Batch(rows=rows, dead=dead, packets=packets, events=events)


@dataclass(frozen=True)
class Position:
    """Where the next unreplayed record starts."""

    segment: int
    offset: int


class Spool:
    """The spool directory; one process at a time (an exclusive lock file guards it)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = (self.dir / "spool.lock").open("a+")
        except OSError as exc:
            raise SpoolError(directory, exc.strerror or str(exc)) from None
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolError(directory, "locked by another parkwatch process") from None
        self._writer: BinaryIO | None = None
        self._write_seg = 0
        self._write_size = 0
        segments = self._segments()
        if segments:
            self._repair_tail(segments[-1])
        self._read = Position(segments[0], 0) if segments else None
        self.pending_records = sum(1 for _ in self._scan_all()) if segments else 0

    # -- files -------------------------------------------------------------------------------

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.seg") if p.stem.isdigit())

    def _path(self, seg: int) -> Path:
        return self.dir / f"{seg:012d}.seg"

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _records(self, seg: int, offset: int = 0) -> Iterator[tuple[int, bytes]]:
        """(offset after the record, body) for each whole, checksummed record from offset."""
        with self._path(seg).open("rb") as fh:
            fh.seek(offset)
            pos = offset
            while True:
                head = fh.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    return
                length, crc = _HEADER.unpack(head)
                # A zero length is never written (a batch always encodes to JSON); eight zero
                # bytes are a tail the file system extended but never filled before a crash.
                if length == 0:
                    return
                body = fh.read(length)
                if len(body) < length or zlib.crc32(body) != crc:
                    return
                pos += _HEADER.size + length
                yield pos, body

    def _scan_all(self) -> Iterator[bytes]:
        for seg in self._segments():
            for _, body in self._records(seg):
                yield body

    def _repair_tail(self, seg: int) -> None:
        good = 0
        for good, _ in self._records(seg):  # noqa: B007 - the last whole record's end is wanted
            pass
        size = self._path(seg).stat().st_size
        if size != good:
            logger.warning("spool segment %d: dropping %d bytes of a torn, never-acknowledged record", seg, size - good)
            with self._path(seg).open("r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())

    # -- writing -----------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """True when nothing waits to be replayed."""
        return self.pending_records == 0

    def append(self, batch: Batch) -> None:
        """Append one batch and fsync it; once this returns the batch survives a crash."""
        body = encode_batch(batch)
        record = _HEADER.pack(len(body), zlib.crc32(body)) + body
        try:
            if self._writer is None or self._write_size + len(record) > SEGMENT_BYTES:
                self._roll()
            writer = self._writer
            if writer is None:  # _roll() always opens one
                raise SpoolError(self.dir, "no open segment")
            view = memoryview(record)
            while view:  # unbuffered: a write may take only part
                view = view[writer.write(view) or 0 :]
            os.fsync(writer.fileno())
        except OSError as exc:
            self._undo_partial_write()
            raise SpoolError(self.dir, f"cannot write: {exc.strerror or exc}") from exc
        self._write_size += len(record)
        self.pending_records += 1
        if self._read is None:
            self._read = Position(self._write_seg, self._write_size - len(record))

    def _undo_partial_write(self) -> None:
        """Cut what a failed append left (a full disk takes part of a record).

        Records appended after a torn one would never be read back. Failing the cut, the segment
        is left for a new one: the reader stops at its torn tail and goes on to the next.
        """
        if self._writer is None:
            return
        try:
            os.ftruncate(self._writer.fileno(), self._write_size)
        except OSError:
            self._writer.close()
            self._writer = None

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        segments = self._segments()
        self._write_seg = (segments[-1] + 1) if segments else 1
        self._writer = self._path(self._write_seg).open("ab", buffering=0)
        self._write_size = 0
        self._fsync_dir()

    # -- replaying ---------------------------------------------------------------------------

    def peek(self) -> tuple[Position, Batch] | None:
        """The oldest unreplayed batch and the position after it, or None."""
        while self._read is not None:
            seg, offset = self._read.segment, self._read.offset
            for end, body in self._records(seg, offset):
                return Position(seg, end), decode_batch(body)
            # Nothing more in this segment: move on, or stop at the one being written.
            if seg == self._write_seg and self._writer is not None:
                return None
            later = [s for s in self._segments() if s > seg]
            self._release(seg)
            self._read = Position(later[0], 0) if later else None
        return None

    def commit(self, position: Position) -> None:
        """Mark everything before position as replayed into the database."""
        self._read = position
        self.pending_records = max(0, self.pending_records - 1)
        if self.pending_records == 0:
            # Drained: free every segment, including the one being written.
            for seg in self._segments():
                self._release(seg)
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._read = None

    def _release(self, seg: int) -> None:
        if seg == self._write_seg and self._writer is not None:
            self._writer.close()
            self._writer = None
        try:
            self._path(seg).unlink()
        except FileNotFoundError:
            return
        self._fsync_dir()

    def close(self) -> None:
        """Close files and release the lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._lock.close()
