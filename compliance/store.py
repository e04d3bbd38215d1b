"""The compliance worker's SQL: claim dirty hours, aggregate them, write rollups, verdicts and AQI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from compliance.windows import HourStat

# Stations with the oldest pending hour first, and at most $3 hours of each (fair under a
# backlog: one station's month cannot fill every batch); a station's hours go together, so its
# day is recomputed once per batch, not once per hour. SKIP LOCKED: the worker never waits on an
# ingest transaction that is dirtying the same hours.
CLAIM = """
WITH pending AS (
    SELECT sid FROM rollup_queue
    WHERE claimed_at IS NULL OR claimed_at < now() - $2::interval
    GROUP BY sid ORDER BY min(queued_at), sid LIMIT $1
), ranked AS (
    SELECT q.sid, q.hour, row_number() OVER (PARTITION BY q.sid ORDER BY q.hour) AS k
    FROM rollup_queue q JOIN pending USING (sid)
    WHERE q.claimed_at IS NULL OR q.claimed_at < now() - $2::interval
), chosen AS (
    SELECT q.sid, q.hour FROM rollup_queue q JOIN ranked r ON r.sid = q.sid AND r.hour = q.hour AND r.k <= $3
    FOR UPDATE OF q SKIP LOCKED
)
UPDATE rollup_queue q SET claimed_at = now()
FROM chosen WHERE q.sid = chosen.sid AND q.hour = chosen.hour
RETURNING q.sid, q.hour, q.claimed_at
"""
# What was claimed and not dirtied again since (the ingest clears claimed_at) is done. Rows an
# ingest transaction holds are skipped: they are being dirtied again and will come back.
RELEASE = """
DELETE FROM rollup_queue WHERE (sid, hour) IN (
    SELECT q.sid, q.hour FROM rollup_queue q
    JOIN unnest($1::integer[], $2::timestamptz[]) AS c(sid, hour) ON q.sid = c.sid AND q.hour = c.hour
    WHERE q.claimed_at = $3
    FOR UPDATE OF q SKIP LOCKED
)
"""
QUEUE_STATE = """
SELECT count(*) AS depth, min(queued_at) AS oldest,
       (SELECT count(*) FROM compliance_failures WHERE resolved_at IS NULL) AS failures
FROM rollup_queue
"""
SET_ASIDE = "INSERT INTO compliance_failures (sid, hours, error) VALUES ($1, $2, $3)"

# One local clock hour per (station, hour start, minutes per minute-record). Each series of the
# station is read through its primary key (sid, pid, iv, ts): never a scan of a station's month.
# The hour is built from minute data whenever there are any (HJ 75 builds the hourly mean from
# them, and the 45-minute test needs them), else from real-time values, else from the station's
# own hourly value, which is taken at its word: one valid hourly record is a valid hour.
# Coverage: a minute record covers its MinInterval; real-time values cover the distinct minutes
# they fall in; a station-reported hourly value covers the hour.
AGGREGATE_HOURS = """
WITH w AS (
    SELECT * FROM unnest($1::integer[], $2::timestamptz[], $3::integer[]) AS w(sid, hour, mi)
), agg AS (
    SELECT w.sid, s.pid, w.hour, s.iv, w.mi, r.*
    FROM w
    JOIN series s ON s.sid = w.sid AND s.iv IN (0, 1, 2)
    CROSS JOIN LATERAL (
        SELECT count(*) AS n_observed,
               count(*) FILTER (WHERE flag = 'N' AND value IS NOT NULL) AS n_valid,
               count(*) FILTER (WHERE flag = 'T' AND value IS NOT NULL) AS n_over_range,
               count(*) FILTER (WHERE flag IN ('M', 'C')) AS n_maintenance,
               count(DISTINCT date_trunc('minute', ts)) FILTER (WHERE s.iv = 0 AND flag IN ('M', 'C'))
                   AS rtd_maintenance_minutes,
               count(DISTINCT date_trunc('minute', ts)) FILTER (WHERE s.iv = 0) AS rtd_minutes,
               count(DISTINCT date_trunc('minute', ts))
                   FILTER (WHERE s.iv = 0 AND flag = 'N' AND value IS NOT NULL) AS rtd_valid_minutes,
               count(DISTINCT date_trunc('minute', ts))
                   FILTER (WHERE s.iv = 0 AND flag IN ('N', 'T') AND value IS NOT NULL) AS rtd_measured_minutes,
               avg(value) FILTER (WHERE flag = 'N') AS avg,
               min(value) FILTER (WHERE flag = 'N') AS vmin,
               max(value) FILTER (WHERE flag = 'N') AS vmax,
               avg(value) FILTER (WHERE flag IN ('N', 'T')) AS avg_lower
        FROM readings r
        WHERE r.sid = s.sid AND r.pid = s.pid AND r.iv = s.iv
          AND r.ts >= w.hour AND r.ts < w.hour + interval '1 hour'
    ) r
    WHERE r.n_observed > 0
), minutes AS (
    SELECT sid, pid, hour, iv, n_observed, n_valid, n_over_range, avg, vmin, vmax, avg_lower,
           least(60, CASE iv WHEN 0 THEN rtd_minutes WHEN 1 THEN n_observed * mi ELSE 60 * n_observed END)
               AS observed_minutes,
           least(60, CASE iv WHEN 0 THEN rtd_valid_minutes WHEN 1 THEN n_valid * mi ELSE 60 * n_valid END)
               AS valid_minutes,
           least(60, CASE iv WHEN 0 THEN rtd_measured_minutes
                             WHEN 1 THEN (n_valid + n_over_range) * mi
                             ELSE 60 * (n_valid + n_over_range) END) AS measured_minutes,
           least(60, CASE iv WHEN 0 THEN rtd_maintenance_minutes WHEN 1 THEN n_maintenance * mi
                             ELSE 60 * n_maintenance END) AS maintenance_minutes
    FROM agg
), best AS (
    SELECT DISTINCT ON (sid, pid, hour) *
    FROM minutes
    ORDER BY sid, pid, hour, CASE iv WHEN 1 THEN 0 WHEN 0 THEN 1 ELSE 2 END
)
INSERT INTO rollup_hour (sid, pid, hour, source_iv, n_observed, n_valid, n_over_range, observed_minutes,
                         valid_minutes, measured_minutes, maintenance_minutes, avg, vmin, vmax, avg_lower)
SELECT sid, pid, hour, iv, n_observed, n_valid, n_over_range, observed_minutes, valid_minutes,
       measured_minutes, maintenance_minutes, avg, vmin, vmax, avg_lower
FROM best
ON CONFLICT (sid, pid, hour) DO UPDATE SET
    source_iv = EXCLUDED.source_iv, n_observed = EXCLUDED.n_observed, n_valid = EXCLUDED.n_valid,
    n_over_range = EXCLUDED.n_over_range, observed_minutes = EXCLUDED.observed_minutes,
    valid_minutes = EXCLUDED.valid_minutes, measured_minutes = EXCLUDED.measured_minutes,
    maintenance_minutes = EXCLUDED.maintenance_minutes,
    avg = EXCLUDED.avg, vmin = EXCLUDED.vmin, vmax = EXCLUDED.vmax, avg_lower = EXCLUDED.avg_lower,
    updated_at = now()
"""
FETCH_HOURS = """
SELECT h.* FROM unnest($1::integer[], $2::timestamptz[], $3::timestamptz[]) AS w(sid, lo, hi)
JOIN rollup_hour h ON h.sid = w.sid AND h.hour >= w.lo AND h.hour < w.hi
"""
# The day's minutes are summed from its hours, written just before in the same transaction.
UPSERT_DAYS = """
INSERT INTO rollup_day (sid, pid, day, day_start, hours_expected, hours_observed, hours_valid, n_observed,
                        n_valid, avg, avg_flow_weighted, vmin, vmax, observed_minutes, valid_minutes,
                        maintenance_minutes)
SELECT u.*, m.observed, m.valid, m.maintenance
FROM unnest($1::integer[], $2::smallint[], $3::date[], $4::timestamptz[], $5::smallint[],
            $6::smallint[], $7::smallint[], $8::integer[], $9::integer[], $10::float8[], $11::float8[],
            $12::float8[], $13::float8[]) AS u(sid, pid, day, day_start, hours_expected, hours_observed, hours_valid,
                                               n_observed, n_valid, avg, avg_flow_weighted, vmin, vmax)
CROSS JOIN LATERAL (
    SELECT coalesce(sum(h.observed_minutes), 0) AS observed, coalesce(sum(h.valid_minutes), 0) AS valid,
           coalesce(sum(h.maintenance_minutes), 0) AS maintenance
    FROM rollup_hour h
    WHERE h.sid = u.sid AND h.pid = u.pid AND h.hour >= u.day_start
      AND h.hour < u.day_start + u.hours_expected * interval '1 hour'
) m
ON CONFLICT (sid, pid, day) DO UPDATE SET
    day_start = EXCLUDED.day_start, hours_expected = EXCLUDED.hours_expected,
    hours_observed = EXCLUDED.hours_observed, hours_valid = EXCLUDED.hours_valid,
    n_observed = EXCLUDED.n_observed, n_valid = EXCLUDED.n_valid, avg = EXCLUDED.avg,
    avg_flow_weighted = EXCLUDED.avg_flow_weighted, vmin = EXCLUDED.vmin, vmax = EXCLUDED.vmax,
    observed_minutes = EXCLUDED.observed_minutes, valid_minutes = EXCLUDED.valid_minutes,
    maintenance_minutes = EXCLUDED.maintenance_minutes, updated_at = now()
"""
# The daily values of inlet stations (the influent of GB 18918 class 3's removal-rate rule).
FETCH_INFLUENT = """
SELECT d.sid, d.day, p.code, coalesce(d.avg_flow_weighted, d.avg) AS value, d.hours_valid
FROM unnest($1::integer[], $2::date[]) AS w(sid, day)
JOIN rollup_day d ON d.sid = w.sid AND d.day = w.day
JOIN parameters p ON p.pid = d.pid AND p.code = ANY($3::text[])
"""
# A verdict is rewritten only when something in it changed; `revision` counts changes of the
# verdict or of the value judged, which is what alerts and audits follow. Its times are one
# clock reading taken as the statement runs (the worker's transaction may have begun a while
# before): judged_at and verdict_since of one write agree.
UPSERT_VERDICTS = """
INSERT INTO verdicts AS v (sid, pid, window_kind, window_start, window_end, standard, class, verdict, value,
                           value_judged, limit_value, unit, exceedance_multiple, rule, coverage, notes, closed,
                           early_warning, first_judged_at, judged_at, verdict_since)
SELECT sid, pid, kind, ws, we, std, cls, verdict, value, judged, lim::jsonb, unit, multiple, rule::jsonb,
       coverage::jsonb, notes::jsonb, closed, early, t.at, t.at, t.at
FROM unnest($1::integer[], $2::smallint[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[],
            $7::text[], $8::text[], $9::float8[], $10::float8[], $11::text[], $12::text[], $13::float8[],
            $14::text[], $15::text[], $16::text[], $17::boolean[], $18::boolean[])
     AS u(sid, pid, kind, ws, we, std, cls, verdict, value, judged, lim, unit, multiple, rule, coverage, notes,
          closed, early)
CROSS JOIN (SELECT clock_timestamp() AS at) AS t
ON CONFLICT (sid, pid, window_kind, window_start, standard) DO UPDATE SET
    window_end = EXCLUDED.window_end, class = EXCLUDED.class, verdict = EXCLUDED.verdict,
    value = EXCLUDED.value, value_judged = EXCLUDED.value_judged, limit_value = EXCLUDED.limit_value,
    unit = EXCLUDED.unit, exceedance_multiple = EXCLUDED.exceedance_multiple, rule = EXCLUDED.rule,
    coverage = EXCLUDED.coverage, notes = EXCLUDED.notes, closed = EXCLUDED.closed,
    early_warning = EXCLUDED.early_warning, judged_at = EXCLUDED.judged_at,
    verdict_since = CASE WHEN v.verdict IS DISTINCT FROM EXCLUDED.verdict THEN EXCLUDED.verdict_since
                         ELSE v.verdict_since END,
    revision = v.revision + CASE WHEN (v.verdict, v.value_judged) IS DISTINCT FROM
                                      (EXCLUDED.verdict, EXCLUDED.value_judged) THEN 1 ELSE 0 END
WHERE (v.window_end, v.class, v.verdict, v.value, v.value_judged, v.limit_value, v.unit,
       v.exceedance_multiple, v.rule, v.coverage, v.notes, v.closed, v.early_warning)
      IS DISTINCT FROM
      (EXCLUDED.window_end, EXCLUDED.class, EXCLUDED.verdict, EXCLUDED.value, EXCLUDED.value_judged,
       EXCLUDED.limit_value, EXCLUDED.unit, EXCLUDED.exceedance_multiple, EXCLUDED.rule, EXCLUDED.coverage,
       EXCLUDED.notes, EXCLUDED.closed, EXCLUDED.early_warning)
"""
UPSERT_AQI = """
INSERT INTO aqi AS a (sid, period, window_start, window_end, standard, aqi, level, category, color,
                      primary_pollutants, iaqi, concentrations, notes, closed)
SELECT sid, period, ws, we, std, aqi, level, category, color,
       CASE WHEN prim = '' THEN '{}'::text[] ELSE string_to_array(prim, ',') END,
       iaqi::jsonb, conc::jsonb, notes::jsonb, closed
FROM unnest($1::integer[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::integer[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
            $14::boolean[])
     AS u(sid, period, ws, we, std, aqi, level, category, color, prim, iaqi, conc, notes, closed)
ON CONFLICT (sid, period, window_start) DO UPDATE SET
    window_end = EXCLUDED.window_end, standard = EXCLUDED.standard, aqi = EXCLUDED.aqi,
    level = EXCLUDED.level, category = EXCLUDED.category, color = EXCLUDED.color,
    primary_pollutants = EXCLUDED.primary_pollutants, iaqi = EXCLUDED.iaqi,
    concentrations = EXCLUDED.concentrations, notes = EXCLUDED.notes, closed = EXCLUDED.closed,
    judged_at = now()
WHERE (a.standard, a.aqi, a.iaqi, a.concentrations, a.notes, a.closed) IS DISTINCT FROM
      (EXCLUDED.standard, EXCLUDED.aqi, EXCLUDED.iaqi, EXCLUDED.concentrations, EXCLUDED.notes, EXCLUDED.closed)
"""
# Windows that ended since they were judged: their verdict stands, now final.
# A window that has ended has a final verdict and no more early warning.
CLOSE_VERDICTS = "UPDATE verdicts SET closed = true, early_warning = false WHERE NOT closed AND window_end <= now()"
CLOSE_AQI = "UPDATE aqi SET closed = true WHERE NOT closed AND window_end <= now()"


async def claim(
    conn: asyncpg.Connection, *, stations: int, hours_per_station: int, lease: timedelta
) -> tuple[list[tuple[int, datetime]], datetime | None]:
    """Claim dirty hours of the stations waiting longest; returns them and the claim's stamp."""
    rows = await conn.fetch(CLAIM, stations, lease, hours_per_station)
    if not rows:
        return [], None
    return [(r["sid"], r["hour"]) for r in rows], rows[0]["claimed_at"]


async def release(conn: asyncpg.Connection, claimed: Sequence[tuple[int, datetime]], stamp: datetime) -> None:
    """Drop the claimed hours that were not dirtied again meanwhile."""
    sids, hours = zip(*claimed, strict=True)
    await conn.execute(RELEASE, list(sids), list(hours), stamp)


async def aggregate_hours(conn: asyncpg.Connection, hours: Sequence[tuple[int, datetime, int]]) -> None:
    """Recompute rollup_hour for (station, local hour start, minutes per minute record)."""
    if not hours:
        return
    sids, starts, mis = zip(*hours, strict=True)
    await conn.execute(AGGREGATE_HOURS, list(sids), list(starts), list(mis))


async def fetch_hours(
    conn: asyncpg.Connection, ranges: Sequence[tuple[int, datetime, datetime]]
) -> dict[int, dict[int, dict[datetime, HourStat]]]:
    """Hours by station id, then parameter id, then hour start, for each station's [lo, hi) range."""
    out: dict[int, dict[int, dict[datetime, HourStat]]] = {}
    if not ranges:
        return out
    sids, los, his = zip(*ranges, strict=True)
    for r in await conn.fetch(FETCH_HOURS, list(sids), list(los), list(his)):
        out.setdefault(r["sid"], {}).setdefault(r["pid"], {})[r["hour"]] = HourStat.from_record(r)
    return out


async def upsert_days(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write rollup_day rows (DayStat.as_row)."""
    if rows:
        await conn.execute(UPSERT_DAYS, *(list(c) for c in zip(*rows, strict=True)))


async def fetch_influent(
    conn: asyncpg.Connection, wanted: Sequence[tuple[int, date]], codes: Sequence[str], min_hours: int
) -> dict[tuple[int, date], dict[str, float]]:
    """(inlet sid, day) → code → daily value, for days with enough valid hours."""
    out: dict[tuple[int, date], dict[str, float]] = {}
    if not wanted:
        return out
    sids, days = zip(*wanted, strict=True)
    for r in await conn.fetch(FETCH_INFLUENT, list(sids), list(days), list(codes)):
        if r["value"] is not None and r["hours_valid"] >= min_hours:
            out.setdefault((r["sid"], r["day"]), {})[r["code"]] = r["value"]
    return out


async def upsert_verdicts(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write verdict rows (assess.Assessment.verdicts)."""
    if rows:
        await conn.execute(UPSERT_VERDICTS, *(list(c) for c in zip(*rows, strict=True)))


async def upsert_aqi(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write AQI rows (assess.Assessment.aqi); primary pollutants travel as one comma-joined text."""
    if not rows:
        return
    cols = [list(c) for c in zip(*rows, strict=True)]
    cols[9] = [",".join(p) for p in cols[9]]
    await conn.execute(UPSERT_AQI, *cols)


async def close_windows(conn: asyncpg.Connection) -> tuple[int, int]:
    """Mark verdicts and AQI of windows that have ended as closed; returns how many."""
    verdicts = await conn.execute(CLOSE_VERDICTS)
    aqi = await conn.execute(CLOSE_AQI)
    return int(verdicts.split()[-1]), int(aqi.split()[-1])
