-- The minutes of a day's hours, summed into rollup_day: the data-delivery rates of a month read
-- 30 rows a parameter instead of 720 (docs/kpis.md; measured with `parkwatch bench kpis`).
ALTER TABLE rollup_day
    ADD COLUMN observed_minutes    integer NOT NULL DEFAULT 0,
    ADD COLUMN valid_minutes       integer NOT NULL DEFAULT 0,
    ADD COLUMN maintenance_minutes integer NOT NULL DEFAULT 0;

UPDATE rollup_day d SET observed_minutes = h.observed, valid_minutes = h.valid, maintenance_minutes = h.maintenance
FROM (
    SELECT d2.sid, d2.pid, d2.day, sum(r.observed_minutes) AS observed, sum(r.valid_minutes) AS valid,
           sum(r.maintenance_minutes) AS maintenance
    FROM rollup_day d2
    JOIN rollup_hour r ON r.sid = d2.sid AND r.pid = d2.pid AND r.hour >= d2.day_start
                      AND r.hour < d2.day_start + d2.hours_expected * interval '1 hour'
    GROUP BY d2.sid, d2.pid, d2.day
) h
WHERE d.sid = h.sid AND d.pid = h.pid AND d.day = h.day;
