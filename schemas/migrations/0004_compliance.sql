-- Rollups (hourly and daily aggregates with coverage), the dirty-window queue that keeps them
-- current as data arrive (late and back-filled data included), and the verdicts and AQI judged
-- from them.

-- Hours of a station to recompute: written by the ingest in the same transaction as the
-- readings. The compliance worker claims entries in a short transaction (claimed_at), computes,
-- and deletes what it claimed unless the ingest dirtied the hour again meanwhile (which resets
-- claimed_at). A claim older than the worker's lease is taken again: a crashed worker loses
-- nothing, and the ingest never waits on a long worker transaction.
CREATE TABLE rollup_queue (
    sid        integer     NOT NULL,
    hour       timestamptz NOT NULL,  -- start of a UTC hour that received data
    queued_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at timestamptz,
    PRIMARY KEY (sid, hour)
);

-- One row per station, parameter and local clock hour.
CREATE TABLE rollup_hour (
    sid              integer     NOT NULL,
    pid              smallint    NOT NULL,
    hour             timestamptz NOT NULL,  -- start of the station's local clock hour
    source_iv        smallint    NOT NULL,  -- interval the hour was built from (0 rtd, 1 min, 2 station hourly)
    n_observed       integer     NOT NULL,
    n_valid          integer     NOT NULL,  -- values flagged N
    n_over_range     integer     NOT NULL,  -- values flagged T: lower bounds of the true value
    observed_minutes smallint    NOT NULL,
    valid_minutes    smallint    NOT NULL,  -- minutes with a valid (N) value
    measured_minutes smallint    NOT NULL,  -- minutes with a valid or over-range (N, T) value
    avg              double precision,      -- over valid values
    vmin             double precision,
    vmax             double precision,
    avg_lower        double precision,      -- over valid and over-range values (a lower bound)
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, pid, hour)
);
-- The worker reads a station's hours around the days it recomputes, every parameter at once.
CREATE INDEX rollup_hour_station ON rollup_hour (sid, hour);

-- One row per station, parameter and local day.
CREATE TABLE rollup_day (
    sid            integer     NOT NULL,
    pid            smallint    NOT NULL,
    day            date        NOT NULL,   -- the station's local day
    day_start      timestamptz NOT NULL,
    hours_expected smallint    NOT NULL,   -- 24, or 23/25 across a DST change
    hours_observed smallint    NOT NULL,
    hours_valid    smallint    NOT NULL,   -- hours valid by the station kind's hourly rule
    n_observed     integer     NOT NULL,   -- values received in the day
    n_valid        integer     NOT NULL,   -- of which flagged N
    avg            double precision,       -- mean of the valid hours' means
    avg_flow_weighted double precision,    -- Σ(C_h·Q_h)/ΣQ_h where flow is reported (water)
    vmin           double precision,
    vmax           double precision,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, pid, day)
);

-- Each judged window, re-judged when late data change it.
CREATE TABLE verdicts (
    sid                 integer     NOT NULL,
    pid                 smallint    NOT NULL,
    window_kind         text        NOT NULL,  -- hour | day | 1h | 24h | 8h
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    standard            text        NOT NULL,
    class               text        NOT NULL,
    verdict             text        NOT NULL CHECK (verdict IN ('compliant', 'exceedance', 'insufficient_data')),
    value               double precision,      -- the window's value before corrections
    value_judged        double precision,      -- after corrections (O2), in the limit's unit
    limit_value         jsonb,                 -- a number, a [low, high] range, or null
    unit                text,
    exceedance_multiple double precision,
    rule                jsonb       NOT NULL,
    coverage            jsonb       NOT NULL,
    notes               jsonb       NOT NULL DEFAULT '[]',
    closed              boolean     NOT NULL,  -- the window has ended
    first_judged_at     timestamptz NOT NULL DEFAULT now(),
    judged_at           timestamptz NOT NULL DEFAULT now(),  -- last change of the verdict or its value
    revision            integer     NOT NULL DEFAULT 1,      -- how many times late data changed it
    PRIMARY KEY (sid, pid, window_kind, window_start, standard)
);
CREATE INDEX verdicts_start ON verdicts (window_start);
CREATE INDEX verdicts_open ON verdicts (window_end) WHERE NOT closed;
CREATE INDEX verdicts_exceedances ON verdicts (window_start) WHERE verdict = 'exceedance';

-- HJ 633 AQI per ambient station: hourly (real-time report) and daily.
CREATE TABLE aqi (
    sid          integer     NOT NULL,
    period       text        NOT NULL,  -- 1h | 24h
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    standard     text        NOT NULL,
    aqi          integer,
    level        text,
    category     text,
    color        text,
    primary_pollutants text[] NOT NULL DEFAULT '{}',
    iaqi         jsonb       NOT NULL,   -- per input (so2, no2, co, pm10, pm25, o3_1h, o3_8h): IAQI or null (NA)
    concentrations jsonb     NOT NULL,   -- the averages indexed, in µg/m³ (CO mg/m³)
    notes        jsonb       NOT NULL DEFAULT '[]',
    closed       boolean     NOT NULL,
    judged_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, period, window_start)
);
