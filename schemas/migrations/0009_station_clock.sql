-- What a station's clock says against ours, for the clock-drift alarm (alerts/instruments.py).
-- The ingest writes, batch by batch, how long after the end of its latest real-time or minute
-- datum a batch was received: the least of these in an hour is the network's delay plus the
-- logger's clock error (back-filled data only ever add to it). Negative: the clock is ahead.
ALTER TABLE station_activity
    ADD COLUMN lag_hour  timestamptz,       -- the hour of receipt lag_min_s belongs to
    ADD COLUMN lag_min_s double precision,  -- the least lag received in that hour, seconds
    ADD COLUMN lag_prev_s double precision; -- the least lag of the hour before, if data came then
