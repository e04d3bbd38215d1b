"""Write batches into PostgreSQL: COPY when clean, an idempotent staging path on duplicates."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from ingest.batch import Batch
from ingest.partitions import LEGACY_WIDTH, Width, partition_width, period_starts
from ingest.rows import READING_COLUMNS, RECEIVED_AT, Row

logger = logging.getLogger(__name__)

# A write that takes longer than this is treated as an outage (a stalled network path does not
# fail by itself): the batch goes to the spool and the connection is dropped. Writing a full
# batch takes tens of milliseconds, so this only fires when something is really wrong.
WRITE_TIMEOUT = 20.0
CONNECT_TIMEOUT = 5.0


CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_readings (
    seq bigint, sid integer, pid smallint, iv smallint, ts timestamptz,
    value double precision, flag char(1), received_at timestamptz,
    vmin double precision, vmax double precision, cou double precision, zs double precision
)
"""
TRUNCATE_STAGING = "TRUNCATE staging_readings"
# First value wins: ON CONFLICT DO NOTHING keeps what is stored; ORDER BY seq makes the earlier
# of two rows with one key inside the same batch the one that is kept.
MERGE_STAGING = """
WITH inserted AS (
    INSERT INTO readings (sid, pid, iv, ts, value, flag, received_at, vmin, vmax, cou, zs)
    SELECT sid, pid, iv, ts, value, flag, received_at, vmin, vmax, cou, zs FROM staging_readings ORDER BY seq
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted
"""
# Rows whose key is stored with another value, flag or statistic are kept as revisions, once each.
RECORD_REVISIONS = """
WITH revised AS (
    INSERT INTO reading_revisions (sid, pid, iv, ts, value, flag, received_at, vmin, vmax, cou, zs)
    SELECT DISTINCT ON (s.sid, s.pid, s.iv, s.ts, s.value, s.flag, s.vmin, s.vmax, s.cou, s.zs)
           s.sid, s.pid, s.iv, s.ts, s.value, s.flag, s.received_at, s.vmin, s.vmax, s.cou, s.zs
    FROM staging_readings s
    JOIN readings r USING (sid, pid, iv, ts)
    WHERE (r.value, r.flag, r.vmin, r.vmax, r.cou, r.zs) IS DISTINCT FROM (s.value, s.flag, s.vmin, s.vmax, s.cou, s.zs)
      AND NOT EXISTS (
          SELECT 1 FROM reading_revisions v
          WHERE (v.sid, v.pid, v.iv, v.ts) = (s.sid, s.pid, s.iv, s.ts)
            AND (v.value, v.flag, v.vmin, v.vmax, v.cou, v.zs)
                IS NOT DISTINCT FROM (s.value, s.flag, s.vmin, s.vmax, s.cou, s.zs))
    ORDER BY s.sid, s.pid, s.iv, s.ts, s.value, s.flag, s.vmin, s.vmax, s.cou, s.zs, s.seq
    RETURNING 1
)
SELECT count(*) FROM revised
"""
INSERT_SERIES = """
INSERT INTO series (sid, pid, iv)
SELECT * FROM unnest($1::integer[], $2::smallint[], $3::smallint[])
ON CONFLICT DO NOTHING
"""
INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (received_at, topic, payload, reason, message, problems, station_id)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
ON CONFLICT DO NOTHING
"""
INSERT_PACKETS = """
INSERT INTO hj212_packets (received_at, topic, sid, mn, cn, qn, data_time, raw, findings)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::bytea[], $9::jsonb[])
ON CONFLICT DO NOTHING
"""
INSERT_EVENTS = """
INSERT INTO station_events (sid, kind, subject, ts, value, received_at)
SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::timestamptz[], $5::double precision[],
                     $6::timestamptz[])
ON CONFLICT DO NOTHING
"""
# Hours with new data, for the compliance worker (compliance/worker.py); in the batch's
# transaction, so the queue holds exactly the hours whose data are committed. An hour the worker
# has claimed is dirtied again (claimed_at cleared) so that it is recomputed with these rows.
# Keys arrive sorted: two writers lock queue rows in the same order and cannot deadlock.
QUEUE_HOURS = """
INSERT INTO rollup_queue (sid, hour)
SELECT * FROM unnest($1::integer[], $2::timestamptz[])
ON CONFLICT (sid, hour) DO UPDATE SET claimed_at = NULL, queued_at = now()
WHERE rollup_queue.claimed_at IS NOT NULL
"""
# The latest data of the batch's stations, for offline detection (alerts/quality.py); sorted
# keys, like QUEUE_HOURS, so two writers cannot deadlock on them.
# The lag columns keep the least lag of the hour of receipt and of the hour before (migration
# 0009); least() ignores the NULL lag of a batch with no real-time or minute data.
TOUCH_ACTIVITY = """
INSERT INTO station_activity AS a (sid, last_received_at, last_ts, lag_hour, lag_min_s)
SELECT sid, received, ts, date_trunc('hour', received), lag
FROM unnest($1::integer[], $2::timestamptz[], $3::timestamptz[], $4::float8[]) AS t (sid, received, ts, lag)
ON CONFLICT (sid) DO UPDATE SET
    last_received_at = greatest(a.last_received_at, EXCLUDED.last_received_at),
    last_ts = greatest(a.last_ts, EXCLUDED.last_ts),
    lag_hour = greatest(a.lag_hour, EXCLUDED.lag_hour),
    lag_min_s = CASE WHEN a.lag_hour IS NULL OR a.lag_hour < EXCLUDED.lag_hour THEN EXCLUDED.lag_min_s
                     WHEN a.lag_hour = EXCLUDED.lag_hour THEN least(a.lag_min_s, EXCLUDED.lag_min_s)
                     ELSE a.lag_min_s END,
    lag_prev_s = CASE WHEN a.lag_hour = EXCLUDED.lag_hour - interval '1 hour' THEN a.lag_min_s
                      WHEN a.lag_hour IS NULL OR a.lag_hour < EXCLUDED.lag_hour THEN NULL
                      ELSE a.lag_prev_s END
"""
# Every ingest says it is alive, and whether it is receiving and spooling (alerts/quality.py).
UPSERT_HEARTBEAT = """
INSERT INTO ingest_heartbeats (instance, seen_at, broker_connected, spool_pending)
VALUES ($1, clock_timestamp(), $2, $3)
ON CONFLICT (instance) DO UPDATE SET seen_at = EXCLUDED.seen_at, broker_connected = EXCLUDED.broker_connected,
    spool_pending = EXCLUDED.spool_pending
RETURNING seen_at
"""
ENSURE_PARTITION = "SELECT parkwatch_ensure_partition($1)"
SELECT_STORAGE = "SELECT value FROM parkwatch_meta WHERE key = 'storage'"

# SQLSTATE classes that mean "the database cannot take writes now" rather than "these rows are
# wrong": 08 connection exception, 53 insufficient resources (disk full, too many connections),
# 57P operator intervention (shutdown, crash recovery, cannot connect now), 25006 a read-only
# server (a standby, reached during a failover: docs/faults.md).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P", "25006")


class DatabaseUnavailableError(Exception):
    """The database could not be reached or could not take the write; retry later."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(f"database unavailable: {type(cause).__name__}: {cause}")


def is_unavailable(exc: BaseException) -> bool:
    """True when the error says the database is out of reach, not that the data is bad."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    return False


@dataclass
class WriteResult:
    """What one batch did to the database."""

    new: int
    duplicates: int
    revisions: int
    path: str  # "copy" or "staging"


# How long after its timestamp a real-time (0) or minute (1) datum is complete: a minute
# value is stamped with the start of its minute (docs/reference/hj212.md).
_LIVE_SPAN = {0: timedelta(0), 1: timedelta(minutes=1)}


def _clock_lags(rows: list[Row], received: datetime) -> dict[int, float]:
    """Per station, seconds from the end of its latest real-time or minute datum to the batch's receipt."""
    latest: dict[tuple[int, int], datetime] = {}
    for r in rows:
        if r[2] <= 1:
            key = (r[0], r[2])
            seen = latest.get(key)
            if seen is None or r[3] > seen:
                latest[key] = r[3]
    lags: dict[int, float] = {}
    for (sid, iv), ts in latest.items():
        lag = (received - ts - _LIVE_SPAN[iv]).total_seconds()
        lags[sid] = min(lag, lags.get(sid, lag))
    return lags


class Store:
    """One dedicated connection that writes batches; reconnects on demand."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: asyncpg.Connection | None = None
        self._width: Width = LEGACY_WIDTH  # read at each connect (docs/storage.md#partitions)
        self._periods: set[datetime] = set()  # partition periods known to exist
        self._series: set[tuple[int, int, int]] = set()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
        await conn.execute(CREATE_STAGING)
        self._width = await partition_width(conn)
        self._conn = conn
        return conn

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await conn.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def write(self, batch: Batch, *, idempotent: bool = False) -> WriteResult:
        """Make a batch's rows, dead letters, packets and events durable in one transaction.

        Raises DatabaseUnavailableError when the database is out of reach; any other
        asyncpg.PostgresError means the database refused this data.
        """
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                conn = await self._connection()
                # The readings of one record share station and time: the work per timestamp below
                # (time zones, hours, partitions) is done once a record, not once a reading.
                stamps = {(r[0], r[3]) for r in batch.rows}
                await self._ensure_partitions(conn, stamps)
                if not idempotent:
                    try:
                        return await self._copy(conn, batch, stamps)
                    except asyncpg.UniqueViolationError:
                        pass  # a redelivery or a re-sent reading: take the idempotent path
                return await self._staged(conn, batch, stamps)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                self._drop()
                raise
            if is_unavailable(exc):
                self._drop()
                raise DatabaseUnavailableError(exc) from exc
            raise

    async def _copy(self, conn: asyncpg.Connection, batch: Batch, stamps: set[tuple[int, datetime]]) -> WriteResult:
        rows = batch.rows
        async with conn.transaction():
            if rows:
                await conn.copy_records_to_table("readings", records=rows, columns=READING_COLUMNS)
            fresh = await self._finish(conn, batch, stamps)
        self._series |= fresh  # only once committed
        return WriteResult(new=len(rows), duplicates=0, revisions=0, path="copy")

    async def _staged(self, conn: asyncpg.Connection, batch: Batch, stamps: set[tuple[int, datetime]]) -> WriteResult:
        rows = batch.rows
        new = revisions = 0
        async with conn.transaction():
            if rows:
                await conn.execute(TRUNCATE_STAGING)
                await conn.copy_records_to_table(
                    "staging_readings",
                    records=[(i, *row) for i, row in enumerate(rows)],
                    columns=("seq", *READING_COLUMNS),
                )
                new = await conn.fetchval(MERGE_STAGING)
                revisions = await conn.fetchval(RECORD_REVISIONS)
            fresh = await self._finish(conn, batch, stamps)
        self._series |= fresh  # only once committed
        return WriteResult(new=new, duplicates=len(rows) - new, revisions=revisions, path="staging")

    async def _finish(
        self, conn: asyncpg.Connection, batch: Batch, stamps: set[tuple[int, datetime]]
    ) -> set[tuple[int, int, int]]:
        """Series, dead letters, packets and events of the batch, in its transaction.

        Returns the series seen for the first time.
        """
        dead = batch.dead
        rows = batch.rows
        fresh = {(r[0], r[1], r[2]) for r in rows} - self._series
        if stamps:
            hours = sorted({(sid, ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)) for sid, ts in stamps})
            sids, starts = zip(*hours, strict=True)
            await conn.execute(QUEUE_HOURS, list(sids), list(starts))
            latest: dict[int, datetime] = {}
            for sid, ts in stamps:
                if sid not in latest or ts > latest[sid]:
                    latest[sid] = ts
            received = max(r[RECEIVED_AT] for r in rows)  # one batch is received within ~100 ms
            keys = sorted(latest)
            lags = _clock_lags(rows, received)
            await conn.execute(
                TOUCH_ACTIVITY, keys, [received] * len(keys), [latest[k] for k in keys], [lags.get(k) for k in keys]
            )
        if fresh:
            sids, pids, ivs = zip(*fresh, strict=True)
            await conn.execute(INSERT_SERIES, list(sids), list(pids), list(ivs))
        if dead:
            await conn.executemany(
                INSERT_DEAD_LETTER,
                [
                    (
                        d.received_at,
                        d.topic,
                        d.payload,
                        d.reason,
                        d.message,
                        json.dumps(d.problems, ensure_ascii=False),
                        d.station_id,
                    )
                    for d in dead
                ],
            )
        if batch.packets:
            await conn.execute(INSERT_PACKETS, *(list(col) for col in zip(*batch.packets, strict=True)))
        if batch.events:
            await conn.execute(INSERT_EVENTS, *(list(col) for col in zip(*batch.events, strict=True)))
        return fresh

    async def _ensure_partitions(self, conn: asyncpg.Connection, stamps: set[tuple[int, datetime]]) -> None:
        # Once per partition period in the store's lifetime, not once per batch: a period's
        # partitions exist once parkwatch_ensure_partition has returned (migration 0020).
        for start in sorted(period_starts({ts for _, ts in stamps}, self._width) - self._periods):
            await conn.fetchval(ENSURE_PARTITION, start)
            self._periods.add(start)
