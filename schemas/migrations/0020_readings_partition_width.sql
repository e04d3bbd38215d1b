-- Readings partitions of a configurable width (docs/storage.md#partitions): a day, an ISO week
-- (Monday 00:00 UTC; the default) or a month. At 100 M readings a month's partition outgrew
-- memory and the writer slowed to 0.51-0.87x (docs/benchmarks.md, "Scale"); a week's primary key
-- stays small. The width is what `parkwatch migrate` passes as parkwatch.readings_partition
-- (PARKWATCH_READINGS_PARTITION) when it applies this migration, kept in parkwatch_meta after.
--
-- Partitions already there, of whatever width, are kept: a new partition only fills the gap
-- between existing ones, so an upgraded month-partitioned database keeps its months and the
-- new width begins at the first boundary after its last month. With TimescaleDB the width is
-- the chunk interval instead.

INSERT INTO parkwatch_meta (key, value)
VALUES ('readings_partition', coalesce(nullif(current_setting('parkwatch.readings_partition', true), ''), 'week'))
ON CONFLICT (key) DO NOTHING;

-- The period of the given width that holds p_ts (UTC) and the partition name it reads as:
-- readings_2026_12_03 (day), readings_2026_w49 (ISO week and its ISO year), readings_2026_12.
CREATE FUNCTION parkwatch_partition_period(p_ts timestamptz, p_width text,
                                           OUT lo timestamptz, OUT hi timestamptz, OUT name text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t constant timestamp := p_ts AT TIME ZONE 'UTC';
    start timestamp;
BEGIN
    CASE p_width
        WHEN 'day' THEN
            start := date_trunc('day', t);
            hi := (start + INTERVAL '1 day') AT TIME ZONE 'UTC';
            name := 'readings_' || to_char(start, 'YYYY_MM_DD');
        WHEN 'week' THEN
            start := date_trunc('week', t);  -- ISO: Monday
            hi := (start + INTERVAL '7 days') AT TIME ZONE 'UTC';
            name := 'readings_' || to_char(start, 'IYYY_"w"IW');
        WHEN 'month' THEN
            start := date_trunc('month', t);
            hi := (start + INTERVAL '1 month') AT TIME ZONE 'UTC';
            name := 'readings_' || to_char(start, 'YYYY_MM');
        ELSE
            RAISE EXCEPTION 'unknown readings partition width %: day, week or month', p_width;
    END CASE;
    lo := start AT TIME ZONE 'UTC';
END
$$;

-- Every partition of readings but the DEFAULT one, with its bounds (read back from the
-- catalogue, so that partitions of any width and age are seen alike). The bounds are printed
-- and read back in ISO style: another DateStyle prints zone abbreviations (CST), which do not
-- read back as the zone they were printed in.
CREATE FUNCTION parkwatch_readings_partitions() RETURNS TABLE (name text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE SET datestyle = 'ISO, YMD' AS $$
    SELECT c.relname::text, b[1]::timestamptz, b[2]::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    $re$FROM \('([^']+)'\) TO \('([^']+)'\)$re$) AS b
    WHERE i.inhparent = 'readings'::regclass AND c.relispartition AND b IS NOT NULL
$$;

-- A partition for [p_lo, p_hi), named p_name unless that name is taken (two gaps in one
-- period, where partitions of another width meet). NULL when rows of the range already sit in
-- the DEFAULT partition: they stay there, queryable, and maintenance reports them.
CREATE FUNCTION parkwatch_create_partition(p_lo timestamptz, p_hi timestamptz, p_name text) RETURNS text
LANGUAGE plpgsql SET datestyle = 'ISO, YMD' AS $$
DECLARE
    part text := p_name;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        part := 'readings_' || to_char(p_lo AT TIME ZONE 'UTC', 'YYYY_MM_DD_HH24MISS');
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)', part, p_lo, p_hi);
    RETURN part;
EXCEPTION
    WHEN check_violation THEN
        RAISE WARNING 'partition % not created: the default partition holds rows of % to %', part, p_lo, p_hi;
        RETURN NULL;
    WHEN duplicate_table OR unique_violation THEN
        RETURN part;  -- created concurrently by another session
    WHEN invalid_object_definition THEN
        -- another session created an overlapping partition meanwhile: the one holding p_lo
        RETURN (SELECT p.name FROM parkwatch_readings_partitions() p WHERE p.lo <= p_lo AND p.hi > p_lo);
END
$$;

-- The partition that holds p_ts. Every instant of p_ts's period (of the configured width) is
-- covered when it returns: what existing partitions cover is left to them, each gap between
-- them gets a partition of its own. So a caller may pass any instant of a period (the writer
-- and maintenance pass its start), and an earlier month partition that overlaps the period is
-- returned, never overlapped. NULL with TimescaleDB, or when the DEFAULT partition holds rows
-- of the range. Same signature as migration 0002's, which it replaces.
CREATE OR REPLACE FUNCTION parkwatch_ensure_partition(p_ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    -- Before this migration every partition was a month.
    width constant text := coalesce((SELECT value FROM parkwatch_meta WHERE key = 'readings_partition'), 'month');
    period record;
    cur timestamptz;
    upto timestamptz;
    covering record;
    part text;
    found_part text;
BEGIN
    IF (SELECT value FROM parkwatch_meta WHERE key = 'storage') <> 'native' THEN
        RETURN NULL;
    END IF;
    period := parkwatch_partition_period(p_ts, width);
    cur := period.lo;
    WHILE cur < period.hi LOOP
        SELECT p.name, p.hi INTO covering FROM parkwatch_readings_partitions() p WHERE p.lo <= cur AND p.hi > cur;
        IF FOUND THEN
            part := covering.name;
            upto := covering.hi;
        ELSE
            SELECT least(period.hi, min(p.lo)) INTO upto FROM parkwatch_readings_partitions() p WHERE p.lo > cur;
            part := parkwatch_create_partition(cur, upto, period.name);
        END IF;
        IF p_ts >= cur AND p_ts < upto THEN
            found_part := part;
        END IF;
        cur := upto;
    END LOOP;
    RETURN found_part;
END
$$;

-- Whether raw readings of [p_lo, p_hi) may be dropped: every hour of theirs is rolled up
-- (nothing in rollup_queue). An hour either side, for stations whose local hours straddle UTC
-- hours (half-hour offsets), whose rollup reads across the boundary.
CREATE FUNCTION parkwatch_rolled_up(p_lo timestamptz, p_hi timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM rollup_queue
        WHERE hour >= p_lo - INTERVAL '1 hour' AND hour < p_hi + INTERVAL '1 hour')
$$;

-- Drops one native partition of raw readings and the revisions of its range, when its hours
-- are all rolled up; false, dropping nothing, when some are not (docs/storage.md#retention).
-- The caller's transaction holds readings' ACCESS EXCLUSIVE lock (which dropping a partition
-- takes anyway): no reading can land in the partition between the check and the drop.
CREATE FUNCTION parkwatch_drop_readings_partition(p_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part record;
BEGIN
    SELECT * INTO part FROM parkwatch_readings_partitions() p WHERE p.name = p_name;
    IF NOT FOUND OR NOT parkwatch_rolled_up(part.lo, part.hi) THEN
        RETURN false;
    END IF;
    DELETE FROM reading_revisions WHERE ts >= part.lo AND ts < part.hi;
    EXECUTE format('DROP TABLE %I', p_name);
    RETURN true;
END
$$;

DO $$
DECLARE
    width constant text := (SELECT value FROM parkwatch_meta WHERE key = 'readings_partition');
    storage constant text := (SELECT value FROM parkwatch_meta WHERE key = 'storage');
    -- TimescaleDB refuses chunk intervals of months: a month is 30 days there.
    chunk constant interval := CASE width WHEN 'day' THEN INTERVAL '1 day' WHEN 'week' THEN INTERVAL '7 days'
                                          ELSE INTERVAL '30 days' END;
    part record;
    nat record;
    is_empty boolean;
    idx regclass;
BEGIN
    PERFORM parkwatch_partition_period(now(), width);  -- refuses an unknown width
    IF storage = 'native' THEN
        -- The empty partitions of this and the coming periods that migration 0002 (or
        -- maintenance) made a month wide are remade at the new width; those holding rows stay.
        -- The lock keeps the writer out until the new partitions exist.
        LOCK TABLE readings IN ACCESS EXCLUSIVE MODE;
        FOR part IN SELECT * FROM parkwatch_readings_partitions() p WHERE p.hi > now() LOOP
            nat := parkwatch_partition_period(part.lo, width);
            CONTINUE WHEN nat.lo = part.lo AND nat.hi = part.hi;
            EXECUTE format('SELECT NOT EXISTS (SELECT FROM %I)', part.name) INTO is_empty;
            IF is_empty THEN
                EXECUTE format('DROP TABLE %I', part.name);
            END IF;
        END LOOP;
        PERFORM parkwatch_ensure_partition(now());
        PERFORM parkwatch_ensure_partition((parkwatch_partition_period(now(), width)).hi);
    ELSIF storage = 'timescaledb' THEN
        PERFORM set_chunk_time_interval('readings', chunk);
        -- create_hypertable's default index on ts alone: the primary key (sid, pid, iv, ts)
        -- serves every query, and each chunk's extra index only costs the writer.
        FOR idx IN
            SELECT i.indexrelid::regclass FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = 'ts'
            WHERE i.indrelid = 'readings'::regclass AND NOT i.indisprimary AND i.indnkeyatts = 1
              AND i.indkey[0] = a.attnum
        LOOP
            EXECUTE format('DROP INDEX %s', idx);
        END LOOP;
        -- Compression after 30 days (migration 0002), or two chunks where a chunk is longer
        -- than half of that: only chunks whose late data have come in are compressed.
        IF chunk * 2 > INTERVAL '30 days' THEN
            BEGIN
                PERFORM remove_compression_policy('readings', if_exists => true);
                PERFORM add_compression_policy('readings', chunk * 2);
            EXCEPTION WHEN feature_not_supported OR insufficient_privilege OR undefined_function
                           OR invalid_parameter_value THEN
                RAISE NOTICE 'TimescaleDB compression unavailable here: %', SQLERRM;
            END;
        END IF;
    END IF;
END
$$;
