-- What the platform asks data loggers through the gateway (docs/data-loggers.md#the-platform-asks):
-- set the clock (CN 1012) when it drifts, and send again the data of a gap (CN 2051/2061/2031 with
-- BeginTime/EndTime). Each request and what came of it is kept.
CREATE TABLE logger_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid          integer     NOT NULL REFERENCES stations (sid) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('set_clock', 'history')),
    cn           text        NOT NULL,
    begin_ts     timestamptz,            -- history: the first missing record
    end_ts       timestamptz,            -- history: the last missing record
    missing      integer,                -- history: records missing when asked
    reason       text        NOT NULL,   -- why it was asked (the drift, the gap)
    -- pending → sent → acknowledged (9011 QnRtn=1) → completed (9012 ExeRtn=1) → filled | unfilled;
    -- refused (QnRtn ≠ 1), failed (ExeRtn ≠ 1), expired (no answer in time)
    state        text        NOT NULL DEFAULT 'pending',
    qn           text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    answered_at  timestamptz,
    finished_at  timestamptz,
    result       text
);
CREATE INDEX logger_requests_station ON logger_requests (sid, created_at);
CREATE INDEX logger_requests_open ON logger_requests (state) WHERE state IN ('pending', 'sent', 'acknowledged', 'completed');
CREATE UNIQUE INDEX logger_requests_qn ON logger_requests (qn) WHERE qn IS NOT NULL;
