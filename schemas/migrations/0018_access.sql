-- Who may see what (docs/access.md): principals (API keys and user accounts), their scopes, the
-- dashboard's sessions, the audit log, and the row-level security that confines every query an
-- API request makes to its principal's scope.
--
-- An API request runs its SQL as one of two roles without BYPASSRLS, parkwatch_reader (SELECT
-- only: inspectors, and every GET) or parkwatch_writer (the changes a role may make), with its
-- principal's scope computed once into the connection's settings (parkwatch.province, .sids,
-- .parks, .listed_parks). The policies below read it, so a query cannot forget the filter: a
-- forgotten WHERE returns only what is in scope. The ingest, the workers and administrators run as
-- the owner, which the policies do not bind.

CREATE TABLE principals (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('key', 'user')),
    -- a user's login, or a key's label
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    role          text        NOT NULL CHECK (role IN ('admin', 'bureau', 'operator', 'enterprise', 'inspector')),
    -- keys: SHA-256 of the key (a 256-bit random secret needs no slow hash); users: NULL
    key_hash      text UNIQUE,
    -- the key's first characters, so that a listing can name a key without showing it
    key_prefix    text,
    -- users: an Argon2id hash (PHC string); keys: NULL
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK ((kind = 'key') = (key_hash IS NOT NULL)),
    CHECK (kind = 'key' OR password_hash IS NOT NULL)
);
CREATE UNIQUE INDEX principals_user_name ON principals (name) WHERE kind = 'user';

-- What a principal may see: the whole province, cities, parks or single stations (enterprises).
CREATE TABLE access_scopes (
    principal_id bigint NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    kind         text   NOT NULL CHECK (kind IN ('province', 'city', 'park', 'station')),
    value        text   NOT NULL DEFAULT '',
    PRIMARY KEY (principal_id, kind, value)
);

-- Dashboard sessions: the cookie's token and the CSRF token, both stored hashed.
CREATE TABLE sessions (
    token_hash   text PRIMARY KEY,
    csrf_hash    text        NOT NULL,
    principal_id bigint      NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    address      text
);
CREATE INDEX sessions_principal ON sessions (principal_id);

-- Every change, every login and every inspector's read of readings or exports: who, when, what,
-- from where, and how it ended.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    principal_id bigint,
    principal    text        NOT NULL,
    role         text,
    action       text        NOT NULL,
    target       text,
    detail       jsonb       NOT NULL DEFAULT '{}',
    address      text,
    status       integer
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);

-- A principal's scope, for enter-scope (api/access.py), which computes it once a request and
-- keeps it in settings the policies read. SECURITY DEFINER: they read the registry and the scopes
-- as their owner, whatever role the connection has taken.
CREATE FUNCTION parkwatch_scope_province_of(principal bigint) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM access_scopes WHERE principal_id = principal AND kind = 'province') $$;

-- Parks wholly in scope (province, city or park scopes): a park's own figures and reports.
CREATE FUNCTION parkwatch_scope_parks_of(principal bigint) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT p.id FROM parks p
        WHERE EXISTS (
            SELECT 1 FROM access_scopes s
            WHERE s.principal_id = principal
              AND (s.kind = 'province' OR (s.kind = 'city' AND s.value = p.city) OR (s.kind = 'park' AND s.value = p.id))
        )
    $$;

-- Stations in scope: those of the parks in scope, and stations named one by one.
CREATE FUNCTION parkwatch_scope_sids_of(principal bigint) RETURNS SETOF integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT st.sid FROM stations st
        WHERE st.park_id IN (SELECT parkwatch_scope_parks_of(principal))
           OR st.id IN (SELECT value FROM access_scopes WHERE principal_id = principal AND kind = 'station')
    $$;

-- Parks listed to a principal: those in scope, and the parks of an enterprise's stations.
CREATE FUNCTION parkwatch_listed_parks_of(principal bigint) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT DISTINCT park_id FROM stations WHERE sid IN (SELECT parkwatch_scope_sids_of(principal)) $$;

-- What the policies read: the scope enter-scope put in the connection's settings. The policies
-- call them as scalar subqueries, `sid = ANY ((SELECT parkwatch_sids())::integer[])`: an
-- InitPlan, computed once a query, where a bare call in a filter would parse the list again for
-- every row. Unset settings are an empty scope: a request that did not say who it is sees
-- nothing. The province scope is a flag: a province of 50,000 stations needs no list.
CREATE FUNCTION parkwatch_province() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('parkwatch.province', true), '') = 'on' $$;
CREATE FUNCTION parkwatch_sids() RETURNS integer[]
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(nullif(current_setting('parkwatch.sids', true), ''), '{}')::integer[] $$;
CREATE FUNCTION parkwatch_parks() RETURNS text[]
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(nullif(current_setting('parkwatch.parks', true), ''), '{}')::text[] $$;
-- Parks listed: those in scope, and the parks of an enterprise's stations.
CREATE FUNCTION parkwatch_listed_parks() RETURNS text[]
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(nullif(current_setting('parkwatch.listed_parks', true), ''), '{}')::text[] $$;

-- The roles are the cluster's: made by the first database's migration, or beforehand by a
-- superuser when the migrating user may not create roles (docs/access.md).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['parkwatch_reader', 'parkwatch_writer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migration made it
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role % is missing and % may not create roles', r, current_user
                        USING HINT = format('as a superuser: CREATE ROLE parkwatch_reader NOLOGIN; '
                            'CREATE ROLE parkwatch_writer NOLOGIN; GRANT parkwatch_reader, parkwatch_writer TO %I;',
                            current_user);
            END;
        END IF;
    END LOOP;
END $$;
-- The API's login role switches to these per request (SET ROLE needs membership).
DO $$
BEGIN
    EXECUTE format('GRANT parkwatch_reader, parkwatch_writer TO %I', current_user);
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL;  -- a superuser needs none
END $$;

GRANT USAGE ON SCHEMA public TO parkwatch_reader, parkwatch_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO parkwatch_reader, parkwatch_writer;
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO parkwatch_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO parkwatch_writer;
-- Secrets and bookkeeping no request reads through a scoped role: credentials, the audit log,
-- the cursor secret (parkwatch_meta) and the notification channels' addresses and tokens.
REVOKE ALL ON principals, access_scopes, sessions, audit_log, parkwatch_meta, alert_channels
    FROM parkwatch_reader, parkwatch_writer;

-- Row-level security: one predicate per way a table names what it belongs to.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'stations', 'station_parameters', 'series', 'reading_revisions', 'hj212_packets',
        'station_events', 'logger_requests', 'compliance_failures', 'rollup_hour', 'rollup_day',
        'verdicts', 'aqi', 'station_activity', 'reported_volumes'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY scoped ON %I USING ((SELECT parkwatch_province()) OR sid = ANY ((SELECT parkwatch_sids())::integer[]))', t
        );
    END LOOP;
    FOREACH t IN ARRAY ARRAY[
        'assessment_inputs', 'assessment_input_history', 'solid_waste_reports', 'solid_waste_report_history'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY scoped ON %I USING ((SELECT parkwatch_province()) OR park_id = ANY ((SELECT parkwatch_parks())::text[]))',
            t
        );
    END LOOP;
    FOREACH t IN ARRAY ARRAY['alert_windows', 'alert_events', 'notifications'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        -- alerts has its own policy, which applies inside this subquery
        EXECUTE format('CREATE POLICY scoped ON %I USING (alert_id IN (SELECT id FROM alerts))', t);
    END LOOP;
END $$;

ALTER TABLE parks ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON parks USING ((SELECT parkwatch_province()) OR id = ANY ((SELECT parkwatch_listed_parks())::text[]));

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON alerts USING (
    (SELECT parkwatch_province())
    OR CASE WHEN sid IS NOT NULL THEN sid = ANY ((SELECT parkwatch_sids())::integer[]) ELSE park = ANY ((SELECT parkwatch_parks())::text[]) END
);

-- Silences and routes may name a station, a park, or neither (the whole province).
ALTER TABLE alert_silences ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON alert_silences USING (
    (SELECT parkwatch_province())
    OR CASE WHEN sid IS NOT NULL THEN sid = ANY ((SELECT parkwatch_sids())::integer[])
            WHEN park_id IS NOT NULL THEN park_id = ANY ((SELECT parkwatch_parks())::text[])
            ELSE false END
);
ALTER TABLE alert_routes ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON alert_routes USING ((SELECT parkwatch_province()) OR park_id = ANY ((SELECT parkwatch_parks())::text[]));

-- A province report (no park) is the province's.
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON reports USING ((SELECT parkwatch_province()) OR park_id = ANY ((SELECT parkwatch_parks())::text[]));

-- A refused message names a station when it could be read that far; otherwise it is the province's.
ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY scoped ON dead_letters USING (
    (SELECT parkwatch_province()) OR station_id IN (SELECT id FROM stations WHERE sid = ANY ((SELECT parkwatch_sids())::integer[]))
);

-- Readings: a view, not a policy. TimescaleDB refuses row-level security on a hypertable with
-- compression ("cannot enable RLS on hypertables using compression"), so on both storages the
-- scoped roles cannot read the table at all and read this security-barrier view instead, which
-- enter-scope puts first on their search_path: `FROM readings` in a request means the view. The
-- request's own conditions (sid, pid, iv, ts: leakproof operators) still reach the table's index.
-- A column added to readings later needs the view made again.
CREATE SCHEMA parkwatch_scoped;
CREATE VIEW parkwatch_scoped.readings WITH (security_barrier) AS
    SELECT * FROM public.readings
    WHERE (SELECT parkwatch_province()) OR sid = ANY ((SELECT parkwatch_sids())::integer[]);
REVOKE ALL ON public.readings FROM parkwatch_reader, parkwatch_writer;
-- and none of its partitions, which the grant on every table above reached (partitions made later
-- get no grant: there are no default privileges for these roles)
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'public.readings'::regclass LOOP
        EXECUTE format('REVOKE ALL ON %s FROM parkwatch_reader, parkwatch_writer', part);
    END LOOP;
END $$;
GRANT USAGE ON SCHEMA parkwatch_scoped TO parkwatch_reader, parkwatch_writer;
GRANT SELECT ON parkwatch_scoped.readings TO parkwatch_reader, parkwatch_writer;

-- A station's HJ 212 password and SM4 key are for the ingest alone: the scoped roles may read
-- every other column (a column added later needs its own grant).
REVOKE SELECT, UPDATE ON stations FROM parkwatch_reader, parkwatch_writer;
DO $$
DECLARE
    cols text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
    FROM pg_attribute
    WHERE attrelid = 'stations'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT IN ('pw', 'sm4_key');
    EXECUTE format('GRANT SELECT (%s) ON stations TO parkwatch_reader, parkwatch_writer', cols);
END $$;
-- SELECT ... FOR UPDATE (a reported volume locks its station) needs UPDATE on some column.
GRANT UPDATE (updated_at) ON stations TO parkwatch_writer;
