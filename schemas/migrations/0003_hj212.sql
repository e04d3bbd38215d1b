-- HJ 212 packets: per-reading statistics, the station's protocol settings, the raw packet log,
-- and station events (treatment-facility state and running time, logger restarts).

-- Minute/hour/day uploads carry min, max and the cumulative amount (Cou) besides the average,
-- and converted (折算) values; real-time JSON readings leave them NULL (no space used).
ALTER TABLE readings ADD COLUMN vmin double precision, ADD COLUMN vmax double precision,
    ADD COLUMN cou double precision, ADD COLUMN zs double precision;
ALTER TABLE reading_revisions ADD COLUMN vmin double precision, ADD COLUMN vmax double precision,
    ADD COLUMN cou double precision, ADD COLUMN zs double precision;

-- PW: the access password a station must send, when it has one. CRC: the routine its logger
-- computes; anything but the standard's is an explicit opt-in (hj212.md §9.1).
ALTER TABLE stations ADD COLUMN pw text,
    ADD COLUMN crc text NOT NULL DEFAULT 'hj212' CHECK (crc IN ('hj212', 'modbus', 'modbus-swapped'));

-- Every accepted HJ 212 packet, as received, with what decoding noticed: the audit trail of
-- what a station actually sent, and the source for re-processing.
CREATE TABLE hj212_packets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    topic       text        NOT NULL,
    sid         integer,
    mn          text,
    cn          text,
    qn          text,
    data_time   timestamptz,
    raw         bytea       NOT NULL,
    findings    jsonb       NOT NULL DEFAULT '[]'
);
CREATE INDEX hj212_packets_station ON hj212_packets (sid, received_at);
CREATE INDEX hj212_packets_mn ON hj212_packets (mn, received_at);
-- once per receipt, even when a spooled batch is replayed twice
CREATE UNIQUE INDEX hj212_packets_receipt ON hj212_packets (received_at, topic, md5(raw));

CREATE TABLE station_events (
    sid         integer     NOT NULL REFERENCES stations (sid),
    kind        text        NOT NULL,  -- facility_state | facility_runtime | logger_restart
    subject     text        NOT NULL,  -- the facility (SB1, ...) or '' for the station
    ts          timestamptz NOT NULL,
    value       double precision,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (sid, kind, subject, ts)
);
