-- When each verdict took its current value: the moment parkwatch knew a window was compliant or
-- an exceedance. Alerts fire from it and audits ask for it ("when did you know?"); the
-- benchmark times reading → verdict by it. clock_timestamp(), not now(): the worker's
-- transaction may have run a while before it writes the verdict.
ALTER TABLE verdicts ADD COLUMN verdict_since timestamptz;
UPDATE verdicts SET verdict_since = judged_at;
ALTER TABLE verdicts
    ALTER COLUMN verdict_since SET DEFAULT clock_timestamp(),
    ALTER COLUMN verdict_since SET NOT NULL;
