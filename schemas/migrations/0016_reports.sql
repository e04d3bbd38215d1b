-- Generated reports (docs/kpis.md#reports): the daily and monthly reports of each park and of the
-- province, stored as their JSON content. XLSX and HTML are rendered from it when asked for: one
-- row serves every format, the figures stay as they were when the report was made (late data
-- change the rollups, not a report already issued), and the content can be queried.

CREATE TABLE reports (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('daily', 'monthly')),
    -- NULL: the province. No foreign key: a report issued is a record that outlives its park.
    park_id      text,
    period_start date        NOT NULL,
    content      jsonb       NOT NULL,
    generated_at timestamptz NOT NULL,
    generated_by text        NOT NULL CHECK (generated_by IN ('schedule', 'request')),
    CHECK (kind = 'daily' OR extract(day FROM period_start) = 1),
    -- One report per kind, scope and period: a report made again replaces the stored one.
    UNIQUE NULLS NOT DISTINCT (kind, park_id, period_start)
);
-- The listing reads the newest periods first.
CREATE INDEX reports_newest ON reports (period_start DESC, id DESC);

-- A report selects the alerts whose condition began in its period (docs/kpis.md#reports).
CREATE INDEX alerts_first_seen ON alerts (first_seen);
