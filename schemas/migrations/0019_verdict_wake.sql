-- The live dashboard (docs/dashboard.md) refreshes when verdicts change, as it does when alert
-- events commit: one notification per statement (and PostgreSQL folds identical ones within a
-- transaction into one), so the compliance worker's batches cost one NOTIFY each, not one a row.
CREATE TRIGGER verdicts_wake_insert AFTER INSERT ON verdicts
    FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_notify_channel('parkwatch_verdicts');
CREATE TRIGGER verdicts_wake_update AFTER UPDATE ON verdicts
    FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_notify_channel('parkwatch_verdicts');
