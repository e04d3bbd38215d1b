-- Hours the compliance worker could not judge because of their own data (an overflow, a value
-- the SQL refuses): set aside with the error so that they stop no other station's hours, shown
-- by /healthz, /metrics and the watchdog, and judged again by `parkwatch compliance rejudge`,
-- which resolves them.
CREATE TABLE compliance_failures (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid         integer     NOT NULL,
    hours       timestamptz[] NOT NULL,
    error       text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX compliance_failures_open ON compliance_failures (sid) WHERE resolved_at IS NULL;
