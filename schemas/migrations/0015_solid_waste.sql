-- Industrial solid waste (docs/kpis.md): no sensor measures it, so parks and their enterprises
-- report monthly quantities, in tonnes, through the API. The disposal-and-utilisation and the
-- comprehensive utilisation rates are computed from these reports.

-- One report per park, enterprise (NULL: the park as a whole), month and category. A correction
-- replaces the row; the version it replaces goes to solid_waste_report_history, in the same
-- transaction (compliance/solidwaste.py), so inspectors see what changed, who changed it, when.
CREATE TABLE solid_waste_reports (
    id                     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    park_id                text        NOT NULL REFERENCES parks (id) ON DELETE CASCADE,
    -- Enterprises have no registry of their own yet: the id is the park's name for them.
    enterprise             text        CHECK (enterprise ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    month                  date        NOT NULL CHECK (extract(day FROM month) = 1),
    category               text        NOT NULL CHECK (category IN ('general', 'hazardous')),
    -- The bound, far above any park's month, keeps a runaway figure out of the sums.
    generated_t            double precision NOT NULL CHECK (generated_t >= 0 AND generated_t < 1e12),
    utilised_t             double precision NOT NULL CHECK (utilised_t >= 0 AND utilised_t < 1e12),
    disposed_t             double precision NOT NULL CHECK (disposed_t >= 0 AND disposed_t < 1e12),
    stored_t               double precision NOT NULL CHECK (stored_t >= 0 AND stored_t < 1e12),
    utilised_from_stock_t  double precision NOT NULL DEFAULT 0
        CHECK (utilised_from_stock_t >= 0 AND utilised_from_stock_t <= utilised_t),
    disposed_from_stock_t  double precision NOT NULL DEFAULT 0
        CHECK (disposed_from_stock_t >= 0 AND disposed_from_stock_t <= disposed_t),
    dumped_t               double precision NOT NULL DEFAULT 0 CHECK (dumped_t >= 0 AND dumped_t < 1e12),
    reported_by            text        NOT NULL CHECK (btrim(reported_by) <> ''),
    reported_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    note                   text,
    -- NULLS NOT DISTINCT: one park-level report per month and category, as for enterprises.
    UNIQUE NULLS NOT DISTINCT (park_id, month, category, enterprise)
);
CREATE INDEX solid_waste_reports_month ON solid_waste_reports (month, id);

-- Replaced versions, as they were, with who replaced them and when. Not tied to parks by a
-- foreign key: the record of a correction outlives the report it corrected.
CREATE TABLE solid_waste_report_history (
    id                     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id              bigint      NOT NULL,
    park_id                text        NOT NULL,
    enterprise             text,
    month                  date        NOT NULL,
    category               text        NOT NULL,
    generated_t            double precision NOT NULL,
    utilised_t             double precision NOT NULL,
    disposed_t             double precision NOT NULL,
    stored_t               double precision NOT NULL,
    utilised_from_stock_t  double precision NOT NULL,
    disposed_from_stock_t  double precision NOT NULL,
    dumped_t               double precision NOT NULL,
    reported_by            text        NOT NULL,
    reported_at            timestamptz NOT NULL,
    note                   text,
    replaced_by            text        NOT NULL,
    replaced_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX solid_waste_report_history_park ON solid_waste_report_history (park_id, month, id);
