-- Every running parkwatch process says it is alive, what it runs and which watchdog alarms it
-- has, every watchdog pass (alerts/processes.py). `serve` runs its parts as processes of their
-- own and several ingest instances may share the readings (docs/scale.md): /healthz, answered by
-- whichever process runs the API, reads here how each part is doing. A process that stops
-- cleanly removes its row; one that was killed leaves it, ageing, until it comes back.
CREATE TABLE service_processes (
    name       text        PRIMARY KEY,  -- host/role, and the MQTT client id for an ingest
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    role       text        NOT NULL,     -- the parts it runs, comma-separated
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    alarms     text[]      NOT NULL DEFAULT '{}',
    detail     jsonb       NOT NULL DEFAULT '{}'
);
