-- Minutes of an hour whose data are flagged M (maintenance) or C (calibration) by the station:
-- operators' work, which the data-delivery rates take out of the minutes expected
-- (docs/kpis.md; compliance/delivery.py).
ALTER TABLE rollup_hour ADD COLUMN maintenance_minutes smallint NOT NULL DEFAULT 0;
