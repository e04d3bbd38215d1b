-- The KPIs' own inputs and alerts (docs/kpis.md): volumes reported where no meter exists, the
-- assessment indicators no sensor measures, and alerts about a park as a whole (a treatment rate,
-- a solid-waste rate) besides those about a station.

-- Wastewater volumes reported through the API for a station with no flow meter (or a broken one),
-- over a span of local days. The treatment rate spreads a span's volume evenly over its days.
CREATE TABLE reported_volumes (
    sid          integer     NOT NULL REFERENCES stations (sid) ON DELETE CASCADE,
    first_day    date        NOT NULL,
    last_day     date        NOT NULL,            -- inclusive
    volume_m3    double precision NOT NULL CHECK (volume_m3 >= 0 AND volume_m3 < 1e12),
    reported_by  text        NOT NULL,
    reported_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    note         text,
    CHECK (last_day >= first_day AND last_day - first_day < 366),
    PRIMARY KEY (sid, first_day)
);

-- Indicators of the park assessment that parkwatch cannot measure (environmental facility
-- coverage, energy use per 10,000 yuan of industrial value added, ...), reported per park and
-- period, with who reported them. A new report of the same indicator replaces the value; the
-- replaced one stays in assessment_input_history.
CREATE TABLE assessment_inputs (
    park_id      text        NOT NULL REFERENCES parks (id) ON DELETE CASCADE,
    period       text        NOT NULL CHECK (period IN ('month', 'quarter', 'year')),
    period_start date        NOT NULL,
    indicator    text        NOT NULL,
    value        double precision NOT NULL,
    reported_by  text        NOT NULL,
    reported_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    note         text,
    PRIMARY KEY (park_id, period, period_start, indicator)
);
CREATE TABLE assessment_input_history (
    park_id      text        NOT NULL,
    period       text        NOT NULL,
    period_start date        NOT NULL,
    indicator    text        NOT NULL,
    value        double precision NOT NULL,
    reported_by  text        NOT NULL,
    reported_at  timestamptz NOT NULL,
    note         text,
    replaced_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Park alerts: a KPI of a park has no station. An alert names a station (sid) or a park (park);
-- a station's park is its station's, so the column is named apart from the park_id that queries
-- join in from stations.
ALTER TABLE alerts ALTER COLUMN sid DROP NOT NULL;
ALTER TABLE alerts ADD COLUMN park text REFERENCES parks (id);
ALTER TABLE alerts ADD CONSTRAINT alerts_subject CHECK ((sid IS NULL) <> (park IS NULL));
ALTER TABLE alerts DROP CONSTRAINT alerts_family_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_family_check
    CHECK (family IN ('exceedance', 'early_warning', 'data_quality', 'suspicious', 'watchdog', 'kpi'));
-- One open alert per park and rule, decided in the database as alerts_one_open does for stations.
CREATE UNIQUE INDEX alerts_one_open_park ON alerts (park, rule) WHERE status <> 'cleared' AND sid IS NULL;
