-- Parameter ids are a smallint sequence (readings.pid), and until this release every registry
-- load and every unknown HJ 212 code drew an id for each code offered even when the code was
-- already there (ingest/registry.py now offers only new codes). Give back what was drawn in vain,
-- so that a database that loaded large registries many times does not run out of ids.
SELECT setval('parameters_pid_seq', greatest((SELECT max(pid) FROM parameters), 1));
