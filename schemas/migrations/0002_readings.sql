-- Readings, the series catalogue, revisions and dead letters.
--
-- readings is keyed by (station, parameter, interval, ts). On plain PostgreSQL it is range
-- partitioned by month on ts, with a DEFAULT partition so that no insert can ever fail for a
-- missing partition; the writer creates a month's partition before it first writes into it
-- (parkwatch_ensure_partition below) and maintenance creates the coming months ahead of need.
-- With TimescaleDB (the migrate command sets parkwatch.storage) it is a hypertable instead, with
-- compression where the licence allows it. No foreign keys on readings: they would be checked
-- per row on the hottest path; the writer only ever uses ids it read from the registry.

DO $$
DECLARE
    columns constant text := $cols$
        sid         integer          NOT NULL,
        pid         smallint         NOT NULL,
        iv          smallint         NOT NULL,
        ts          timestamptz      NOT NULL,
        value       double precision,
        flag        char(1)          NOT NULL DEFAULT 'N',
        received_at timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (sid, pid, iv, ts)
    $cols$;
BEGIN
    IF current_setting('parkwatch.storage', true) = 'timescaledb' THEN
        EXECUTE format('CREATE TABLE readings (%s)', columns);
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '7 days');
        BEGIN
            -- Compression is a Timescale-License feature; an Apache-only build refuses it.
            EXECUTE 'ALTER TABLE readings SET (timescaledb.compress,
                     timescaledb.compress_segmentby = ''sid, pid, iv'',
                     timescaledb.compress_orderby = ''ts'')';
            PERFORM add_compression_policy('readings', INTERVAL '30 days');
        EXCEPTION WHEN feature_not_supported OR insufficient_privilege OR undefined_function
                       OR invalid_parameter_value THEN
            RAISE NOTICE 'TimescaleDB compression unavailable here: %', SQLERRM;
        END;
        INSERT INTO parkwatch_meta VALUES ('storage', 'timescaledb');
    ELSE
        EXECUTE format('CREATE TABLE readings (%s) PARTITION BY RANGE (ts)', columns);
        CREATE TABLE readings_default PARTITION OF readings DEFAULT;
        INSERT INTO parkwatch_meta VALUES ('storage', 'native');
    END IF;
END
$$;

-- The month partition that holds p_ts, created if missing. Returns its name, or NULL when it
-- cannot be created because rows of that month already sit in the DEFAULT partition (they stay
-- there, queryable; maintenance reports them).
CREATE FUNCTION parkwatch_ensure_partition(p_ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamp := date_trunc('month', p_ts AT TIME ZONE 'UTC');
    part text := format('readings_%s', to_char(month_start, 'YYYY_MM'));
BEGIN
    IF (SELECT value FROM parkwatch_meta WHERE key = 'storage') <> 'native' THEN
        RETURN NULL;
    END IF;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
        part,
        month_start AT TIME ZONE 'UTC',
        (month_start + INTERVAL '1 month') AT TIME ZONE 'UTC');
    RETURN part;
EXCEPTION
    WHEN check_violation THEN
        RAISE WARNING 'partition % not created: the default partition holds rows of that month', part;
        RETURN NULL;
    WHEN duplicate_table OR unique_violation THEN
        RETURN part;  -- created concurrently by another session
END
$$;

SELECT parkwatch_ensure_partition(now());
SELECT parkwatch_ensure_partition(now() + INTERVAL '1 month');

-- Every (station, parameter, interval) that has ever reported: lets a query walk the primary
-- key series by series instead of scanning a station's whole month.
CREATE TABLE series (
    sid        integer  NOT NULL REFERENCES stations (sid),
    pid        smallint NOT NULL REFERENCES parameters (pid),
    iv         smallint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, pid, iv)
);

-- A value or flag that differs from the one already stored for the same key. The first value
-- received stays in readings (what queries return); every later different one is kept here.
CREATE TABLE reading_revisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid         integer          NOT NULL,
    pid         smallint         NOT NULL,
    iv          smallint         NOT NULL,
    ts          timestamptz      NOT NULL,
    value       double precision,
    flag        char(1)          NOT NULL,
    received_at timestamptz      NOT NULL,
    recorded_at timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX reading_revisions_key ON reading_revisions (sid, pid, iv, ts);

-- Everything refused, with the raw bytes, so that nothing is lost and it can be replayed.
CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    topic           text        NOT NULL,
    payload         bytea       NOT NULL,
    reason          text        NOT NULL,
    message         text        NOT NULL,
    problems        jsonb       NOT NULL DEFAULT '[]',
    station_id      text,
    attempts        integer     NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    resolved_at     timestamptz,
    resolution      text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
-- One row per receipt: a spooled batch replayed twice after a crash must not count its dead
-- letters twice (ingest/spool.py).
CREATE UNIQUE INDEX dead_letters_receipt ON dead_letters (received_at, topic, md5(payload));
CREATE INDEX dead_letters_open ON dead_letters (reason, id) WHERE resolved_at IS NULL;
