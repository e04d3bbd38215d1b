"""The queries of an export: the stations it covers, and each kind's rows and their count."""

from __future__ import annotations

# The stations an export covers: those named, those of a park, or every one the connection
# sees (row-level security makes that the caller's scope).
SELECT_STATIONS = """
SELECT sid, id, park_id, kind, name, timezone FROM stations
WHERE ($1::text[] IS NULL AND $2::text IS NULL) OR id = any($1::text[]) OR park_id = $2
ORDER BY sid
"""
SELECT_PARK = "SELECT 1 FROM parks WHERE id = $1"
SELECT_PARAMETERS = "SELECT pid, code, name, name_zh FROM parameters"
SELECT_PARAMETER_IDS = "SELECT code, pid FROM parameters WHERE code = any($1::text[])"

# Each query walks its table's primary key (or, for alerts, the (raised_at, id) index) in order,
# so rows stream from the first fetch; SET LOCAL enable_sort below keeps the planner from
# sorting instead, which for millions of rows would spill to disk and hold the first byte back
# past the statement timeout.
READINGS_WHERE = """
FROM readings
WHERE sid = any($1::integer[]) AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND ($3::smallint IS NULL OR iv = $3) AND ts >= $4 AND ts < $5
"""
SELECT_READINGS = (
    "SELECT sid, pid, iv, ts, value, flag, vmin, vmax, cou, zs" + READINGS_WHERE + "ORDER BY sid, pid, iv, ts"
)
COUNT_READINGS = "SELECT count(*)" + READINGS_WHERE
HOURLY_WHERE = """
FROM rollup_hour
WHERE sid = any($1::integer[]) AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND hour >= $3 AND hour < $4
"""
SELECT_HOURLY = (
    "SELECT sid, pid, hour, avg, vmin, vmax, n_observed, n_valid, n_over_range, observed_minutes, valid_minutes, "
    "source_iv" + HOURLY_WHERE + "ORDER BY sid, pid, hour"
)
COUNT_HOURLY = "SELECT count(*)" + HOURLY_WHERE
DAILY_WHERE = """
FROM rollup_day
WHERE sid = any($1::integer[]) AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND day_start >= $3 AND day_start < $4
"""
SELECT_DAILY = (
    "SELECT sid, pid, day, day_start, avg, avg_flow_weighted, vmin, vmax, n_observed, n_valid, hours_expected, "
    "hours_observed, hours_valid" + DAILY_WHERE + "ORDER BY sid, pid, day"
)
COUNT_DAILY = "SELECT count(*)" + DAILY_WHERE
VERDICTS_WHERE = """
FROM verdicts
WHERE sid = any($1::integer[]) AND ($2::smallint[] IS NULL OR pid = any($2::smallint[]))
  AND window_start >= $3 AND window_start < $4
  AND ($5::text[] IS NULL OR verdict = any($5::text[])) AND ($6::text[] IS NULL OR window_kind = any($6::text[]))
"""
SELECT_VERDICTS = (
    "SELECT sid, pid, window_kind, window_start, window_end, verdict, value, value_judged, limit_value, unit, "
    "exceedance_multiple, standard, class, closed, revision, judged_at, verdict_since"
    + VERDICTS_WHERE
    + "ORDER BY sid, pid, window_kind, window_start, standard"
)
COUNT_VERDICTS = "SELECT count(*)" + VERDICTS_WHERE
# $1 NULL: no station or park asked for, every alert in scope. Otherwise the stations' alerts
# and, when a park was asked for, the park's own (a KPI of the park as a whole has no station).
ALERTS_WHERE = """
FROM alerts
WHERE ($1::integer[] IS NULL OR sid = any($1::integer[]) OR (sid IS NULL AND park = $2))
  AND ($3::smallint[] IS NULL OR pid = any($3::smallint[]))
  AND ($4::timestamptz IS NULL OR last_seen >= $4) AND ($5::timestamptz IS NULL OR first_seen < $5)
  AND ($6::text[] IS NULL OR status = any($6::text[])) AND ($7::text[] IS NULL OR severity = any($7::text[]))
  AND ($8::text[] IS NULL OR rule = any($8::text[]) OR family = any($8::text[]))
"""
SELECT_ALERTS = (
    "SELECT id, sid, park, pid, rule, family, status, severity, first_seen, last_seen, raised_at, cleared_at, "
    "clear_reason, occurrences, value, limit_value, unit, standard, exceedance_multiple, acked_at, acked_by, "
    "verification, verified_at, verified_by" + ALERTS_WHERE + "ORDER BY raised_at, id"
)
COUNT_ALERTS = "SELECT count(*)" + ALERTS_WHERE
# For this transaction only: see above.
NO_SORT = "SET LOCAL enable_sort = off"
