-- Early warnings: a window still running that is already over its limit (compliance/assess.py
-- sets the flag; docs/alerts.md). Verdict changes of the flag reach the alert engine through the
-- same inbox as every other change.
ALTER TABLE verdicts ADD COLUMN early_warning boolean NOT NULL DEFAULT false;
ALTER TABLE alert_inbox ADD COLUMN early_warning boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION parkwatch_verdicts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_inbox (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                             previous, closed, value, value_judged, limit_value, unit, exceedance_multiple,
                             rule, revision, verdict_since, early_warning)
    SELECT n.sid, n.pid, n.window_kind, n.window_start, n.window_end, n.standard, n.class, n.verdict,
           NULL, n.closed, n.value, n.value_judged, n.limit_value, n.unit, n.exceedance_multiple,
           n.rule, n.revision, n.verdict_since, n.early_warning
    FROM new_rows n
    WHERE n.verdict = 'exceedance' OR (n.verdict = 'compliant' AND n.closed) OR n.early_warning;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION parkwatch_verdicts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_inbox (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                             previous, closed, value, value_judged, limit_value, unit, exceedance_multiple,
                             rule, revision, verdict_since, early_warning)
    SELECT n.sid, n.pid, n.window_kind, n.window_start, n.window_end, n.standard, n.class, n.verdict,
           o.verdict, n.closed, n.value, n.value_judged, n.limit_value, n.unit, n.exceedance_multiple,
           n.rule, n.revision, n.verdict_since, n.early_warning
    FROM new_rows n
    JOIN old_rows o USING (sid, pid, window_kind, window_start, standard)
    WHERE n.verdict IS DISTINCT FROM o.verdict
       OR (n.closed AND NOT o.closed AND n.verdict IN ('exceedance', 'compliant'))
       OR (n.verdict = 'exceedance' AND n.value_judged IS DISTINCT FROM o.value_judged)
       OR n.early_warning IS DISTINCT FROM o.early_warning;
    RETURN NULL;
END
$$;
