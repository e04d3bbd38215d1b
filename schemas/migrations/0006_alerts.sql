-- Alerts: what is wrong at a station, its lifecycle and timeline, the notices it sends, and
-- where they go (docs/alerts.md).

-- The latest data of each station, written by the ingest in each batch's transaction: offline
-- detection reads it instead of scanning readings.
CREATE TABLE station_activity (
    sid              integer     PRIMARY KEY REFERENCES stations (sid) ON DELETE CASCADE,
    last_received_at timestamptz NOT NULL,  -- when the latest batch with its data was received
    last_ts          timestamptz NOT NULL   -- the latest data time it has sent
);

-- Verdict changes the alert engine has not applied yet. Written by triggers on verdicts, so in
-- the transaction that changes the verdict: whoever judges (the worker, a rejudge), the engine
-- sees every change exactly once, and a crash between the two loses nothing.
CREATE TABLE alert_inbox (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid                 integer     NOT NULL,
    pid                 smallint    NOT NULL,
    window_kind         text        NOT NULL,
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    standard            text        NOT NULL,
    class               text        NOT NULL,
    verdict             text        NOT NULL,
    previous            text,                  -- the verdict before; NULL for a window judged first
    closed              boolean     NOT NULL,
    value               double precision,
    value_judged        double precision,
    limit_value         jsonb,
    unit                text,
    exceedance_multiple double precision,
    rule                jsonb       NOT NULL,
    revision            integer     NOT NULL,
    verdict_since       timestamptz NOT NULL,
    queued_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- New windows matter when they are exceedances, or compliant windows that ended (they may clear
-- an alert); open compliant and insufficient windows matter once they close or change.
CREATE FUNCTION parkwatch_verdicts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_inbox (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                             previous, closed, value, value_judged, limit_value, unit, exceedance_multiple,
                             rule, revision, verdict_since)
    SELECT n.sid, n.pid, n.window_kind, n.window_start, n.window_end, n.standard, n.class, n.verdict,
           NULL, n.closed, n.value, n.value_judged, n.limit_value, n.unit, n.exceedance_multiple,
           n.rule, n.revision, n.verdict_since
    FROM new_rows n
    WHERE n.verdict = 'exceedance' OR (n.verdict = 'compliant' AND n.closed);
    RETURN NULL;
END
$$;

CREATE FUNCTION parkwatch_verdicts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_inbox (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                             previous, closed, value, value_judged, limit_value, unit, exceedance_multiple,
                             rule, revision, verdict_since)
    SELECT n.sid, n.pid, n.window_kind, n.window_start, n.window_end, n.standard, n.class, n.verdict,
           o.verdict, n.closed, n.value, n.value_judged, n.limit_value, n.unit, n.exceedance_multiple,
           n.rule, n.revision, n.verdict_since
    FROM new_rows n
    JOIN old_rows o USING (sid, pid, window_kind, window_start, standard)
    WHERE n.verdict IS DISTINCT FROM o.verdict
       OR (n.closed AND NOT o.closed AND n.verdict IN ('exceedance', 'compliant'))
       OR (n.verdict = 'exceedance' AND n.value_judged IS DISTINCT FROM o.value_judged);
    RETURN NULL;
END
$$;

CREATE TRIGGER verdicts_to_alert_inbox_insert AFTER INSERT ON verdicts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_verdicts_inserted();
CREATE TRIGGER verdicts_to_alert_inbox_update AFTER UPDATE ON verdicts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_verdicts_updated();

-- Wake the engine and the dispatcher at commit instead of making them poll fast.
CREATE FUNCTION parkwatch_notify_channel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_inbox_wake AFTER INSERT ON alert_inbox
    FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_notify_channel('parkwatch_alert_inbox');

-- One row per alert: an episode of one rule at one station (and parameter). Open alerts
-- (pending or active) are unique per (station, parameter, rule) by the index below, so two
-- engines, or two instances of parkwatch, can never open the same alert twice.
CREATE TABLE alerts (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid                 integer     NOT NULL REFERENCES stations (sid),
    pid                 smallint    REFERENCES parameters (pid),  -- NULL: the station as a whole
    rule                text        NOT NULL,
    family              text        NOT NULL
        CHECK (family IN ('exceedance', 'early_warning', 'data_quality', 'suspicious', 'watchdog')),
    status              text        NOT NULL CHECK (status IN ('pending', 'active', 'cleared')),
    severity            text        NOT NULL CHECK (severity IN ('advisory', 'warning', 'major', 'critical')),
    first_seen          timestamptz NOT NULL,  -- when the condition began (the first window's start)
    last_seen           timestamptz NOT NULL,  -- the latest time it held (the latest window's end)
    raised_at           timestamptz NOT NULL DEFAULT clock_timestamp(),  -- when parkwatch knew
    activated_at        timestamptz,
    cleared_at          timestamptz,
    clear_reason        text,
    occurrences         integer     NOT NULL DEFAULT 1,
    late                boolean     NOT NULL DEFAULT false,  -- found long after the window ended
    value               double precision,      -- the latest value judged
    limit_value         double precision,
    unit                text,
    standard            text,
    clause              jsonb,
    exceedance_multiple double precision,      -- the episode's largest
    details             jsonb       NOT NULL DEFAULT '{}',
    clear_streak        integer     NOT NULL DEFAULT 0,  -- compliant windows since the latest exceedance
    acked_at            timestamptz,
    acked_by            text,
    ack_comment         text,
    verified_at         timestamptz,
    verified_by         text,
    verification        text,
    verify_comment      text,
    escalated_at        timestamptz,
    notified_at         timestamptz,           -- the latest first notice or reminder
    explanation_due_at  timestamptz,           -- the enterprise's 情况说明 is due (超标异常督办)
    explanation         text,
    explained_at        timestamptz,
    explained_by        text,
    review              text CHECK (review IN ('accepted', 'rejected')),
    reviewed_at         timestamptz,
    reviewed_by         text,
    review_comment      text,
    overdue_at          timestamptz,           -- when the explanation was found overdue
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (sid, coalesce(pid, 0), rule) WHERE status <> 'cleared';
CREATE INDEX alerts_raised ON alerts (raised_at, id);
CREATE INDEX alerts_open ON alerts (status, severity) WHERE status <> 'cleared';
CREATE INDEX alerts_station ON alerts (sid, raised_at);

-- The windows an exceedance alert stands on: a late revision that makes one compliant again
-- takes it out, and an alert left without windows was never an exceedance.
CREATE TABLE alert_windows (
    alert_id            bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    value_judged        double precision,
    exceedance_multiple double precision,
    PRIMARY KEY (alert_id, window_start)
);

-- Every change of an alert, in order: the timeline the API shows and the SSE stream replays.
CREATE TABLE alert_events (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind     text        NOT NULL,
    actor    text        NOT NULL DEFAULT 'parkwatch',
    detail   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);
CREATE TRIGGER alert_events_wake AFTER INSERT ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_notify_channel('parkwatch_alert_events');

-- Where notices go: channels (a webhook, a work-chat robot, SMS, e-mail, MQTT) and the routes
-- that choose them by park, family and severity. Loaded from the registry file; the API shows
-- channels without their secrets.
CREATE TABLE alert_channels (
    id         text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    kind       text        NOT NULL CHECK (kind IN ('webhook', 'dingtalk', 'wecom', 'feishu', 'sms', 'email', 'mqtt')),
    config     jsonb       NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE alert_routes (
    id           bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    park_id      text     REFERENCES parks (id) ON DELETE CASCADE,  -- NULL: every park
    channel_id   text     NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    min_severity text     NOT NULL DEFAULT 'warning'
        CHECK (min_severity IN ('advisory', 'warning', 'major', 'critical')),
    families     text[]   NOT NULL,
    escalation   boolean  NOT NULL DEFAULT false,  -- only alerts left unacknowledged too long
    resolved     boolean  NOT NULL DEFAULT true,   -- also the notice that an alert has cleared
    repeat_every interval                          -- reminders while active and unacknowledged
);

-- Silences and maintenance windows: matching alerts are still raised and recorded, their
-- notices are kept as 'muted' instead of being sent.
CREATE TABLE alert_silences (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('silence', 'maintenance')),
    park_id      text        REFERENCES parks (id) ON DELETE CASCADE,
    sid          integer     REFERENCES stations (sid) ON DELETE CASCADE,
    pid          smallint    REFERENCES parameters (pid),
    rule         text,       -- a rule or a prefix of one: 'exceedance', 'data_quality.offline'
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason       text        NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz
);
CREATE INDEX alert_silences_current ON alert_silences (ends_at) WHERE cancelled_at IS NULL;

-- The transactional outbox: a notice is written with the alert change that causes it, in one
-- transaction, and the dispatcher delivers it later with retries. One notice per event and
-- channel (the unique key doubles as the receiver's idempotency key).
CREATE TABLE notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event_id        bigint      NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    channel_id      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'muted')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    UNIQUE (event_id, channel_id)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status IN ('queued', 'sending');
CREATE INDEX notifications_alert ON notifications (alert_id);
CREATE TRIGGER notifications_wake AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION parkwatch_notify_channel('parkwatch_notifications');

-- Periodic jobs (parkwatch/jobs.py): when each last ran, so a restart catches up a missed run.
CREATE TABLE scheduled_jobs (
    name             text PRIMARY KEY,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    last_error       text,
    runs             bigint NOT NULL DEFAULT 0
);

-- Each running ingest says, every half minute, that it is connected to the broker and whether
-- its spool still holds batches. Offline detection trusts a station's silence only while an
-- ingest is receiving and nothing waits in a spool: after an outage, stations whose data are
-- still being replayed are not offline (alerts/quality.py).
CREATE TABLE ingest_heartbeats (
    instance         text        PRIMARY KEY,  -- the ingest's MQTT client id
    seen_at          timestamptz NOT NULL,
    broker_connected boolean     NOT NULL,
    spool_pending    integer     NOT NULL
);
