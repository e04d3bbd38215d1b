-- Rollups (hourly and daily aggregates with coverage), the dirty-window queue that keeps them
-- current as data arrive (late and back-filled data included), and the verdicts and AQI judged
-- from them.

-- Hours of a station to recompute: written by the ingest in the same transaction as the
-- readings, consumed by the compliance worker in the transaction that writes the results.
CREATE TABLE rollup_queue (
    sid       integer     NOT NULL,
    hour      timestamptz NOT NULL,  -- start of a UTC hour that received data
    queued_at timestamptz NOT NULL DEFAULT now(),
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
    valid_minutes    smallint    NOT NULL,
    avg              double precision,      -- over valid values
    vmin             double precision,
    vmax             double precision,
    avg_lower        double precision,      -- over valid and over-range values (a lower bound)
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, pid, hour)
);

-- One row per station, parameter and local day.
CREATE TABLE rollup_day (
    sid            integer     NOT NULL,
    pid            smallint    NOT NULL,
    day            date        NOT NULL,   -- the station's local day
    day_start      timestamptz NOT NULL,
    hours_observed smallint    NOT NULL,
    hours_valid    smallint    NOT NULL,   -- hours valid by the station kind's hourly rule
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
    closed              boolean     NOT NULL,  -- the window had ended when judged
    judged_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, pid, window_kind, window_start, standard)
);
CREATE INDEX verdicts_start ON verdicts (window_start);
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
    iaqi         jsonb       NOT NULL,
    notes        jsonb       NOT NULL DEFAULT '[]',
    closed       boolean     NOT NULL,
    judged_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sid, period, window_start)
);
