-- What OCPP chargers report (services/ocpp-gateway): a meter sample may carry
-- only power or current, and a session may start or end without a meter
-- register, so those registers become Nullable (NULL: not reported, never a
-- made-up 0); samples and sessions a charger recorded while it had no
-- connection to the platform keep that fact (OCPP 2.0.1 `offline`).
--
-- MODIFY COLUMN to the same type is a no-op, so a repeat is harmless; ADD
-- COLUMN is not idempotent on 18.16 (no IF NOT EXISTS): `migrate` accepts
-- "column already exists" from it.

ALTER TABLE {db}.raw_meter_sample MODIFY COLUMN energy_active_import_wh Nullable(Float64);

ALTER TABLE {db}.raw_meter_sample ADD COLUMN offline UInt8 DEFAULT 0 AFTER site;

ALTER TABLE {db}.raw_charging_session MODIFY COLUMN meter_start_wh Nullable(Float64);

ALTER TABLE {db}.raw_charging_session ADD COLUMN offline UInt8 DEFAULT 0 AFTER site;
