-- "Latest state" tables: one row per thing after merges, the newest by
-- observed_at (ReplacingMergeTree keeps the row with the highest version).
-- Read them with FINAL, or argMax(col, observed_at) grouped by the key, since
-- unmerged parts can still hold older rows.

CREATE TABLE IF NOT EXISTS {db}.connector_status_latest (
    tenant_id String,
    device_id String,
    station_id String,
    connector_id UInt32,
    site String,
    status String,
    error_code String,
    observed_at DateTime,
    event_id UUID
) ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (tenant_id, device_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.connector_status_latest_mv TO {db}.connector_status_latest AS
SELECT tenant_id, device_id, station_id, connector_id, site, status, error_code, observed_at, event_id
FROM {db}.raw_connector_status;

CREATE TABLE IF NOT EXISTS {db}.parking_site_latest (
    tenant_id String,
    site_id String,
    village String,
    total_spots UInt32,
    occupied UInt32,
    available UInt32,
    ev_total Nullable(UInt32),
    ev_occupied Nullable(UInt32),
    status String,
    observed_at DateTime,
    event_id UUID
) ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (tenant_id, site_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.parking_site_latest_mv TO {db}.parking_site_latest AS
SELECT tenant_id, site_id, village, total_spots, occupied, available, ev_total, ev_occupied, status, observed_at, event_id
FROM {db}.raw_parking_site_counts;

CREATE TABLE IF NOT EXISTS {db}.vehicle_latest (
    tenant_id String,
    vehicle_id String,
    device_id String,
    role String,
    latitude Float64,
    longitude Float64,
    speed_kmh Float64,
    heading_deg Nullable(Float64),
    service_status String,
    observed_at DateTime,
    event_id UUID
) ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (tenant_id, vehicle_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.vehicle_latest_mv TO {db}.vehicle_latest AS
SELECT tenant_id, vehicle_id, device_id, role, ifNull(latitude, 0) AS latitude, ifNull(longitude, 0) AS longitude,
       speed_kmh, heading_deg, service_status, observed_at, event_id
FROM {db}.raw_vehicle_position;

CREATE TABLE IF NOT EXISTS {db}.bin_latest (
    tenant_id String,
    bin_id String,
    device_id String,
    village String,
    waste_class String,
    fill_level Float64,
    status String,
    observed_at DateTime,
    event_id UUID
) ENGINE = ReplacingMergeTree(observed_at)
ORDER BY (tenant_id, bin_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.bin_latest_mv TO {db}.bin_latest AS
SELECT tenant_id, bin_id, device_id, village, waste_class, fill_level, status, observed_at, event_id
FROM {db}.raw_bin_reading;
