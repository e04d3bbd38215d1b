-- The ingest notes, once an hour per station, each way its readings arrived (station_events kind
-- 'path', subject 'mqtt' or 'hj212'; ingest/messages.py). The data-quality check looks for
-- stations with two ways in the latest hours, across all stations: it needs kind and time.
CREATE INDEX station_events_kind_ts ON station_events (kind, ts);
