-- One raw table per event kind, typed columns, one row per event.
--
-- {envelope} expands to the columns every kind shares (event id, tenant,
-- source, device, observed_at, seq_no, location, received_at and the Kafka
-- lineage topic/partition/offset); {raw_engine} to
--   ReplacingMergeTree PARTITION BY toYYYYMM(observed_at)
--   ORDER BY (tenant_id, device_id, observed_at, event_id)
-- so a repeated event id collapses on merge and under FINAL. Roll-ups do not
-- rely on that: the sink never inserts an event twice (see the sink README).
--
-- Enum values are stored as lower-case names without the enum's prefix
-- ("charging", not CONNECTOR_STATUS_VALUE_CHARGING = 3).

CREATE TABLE IF NOT EXISTS {db}.raw_connector_status (
    {envelope},
    station_id String,
    evse_id UInt32,
    connector_id UInt32,
    status String,
    vendor_status String,
    error_code String,
    vendor_error_code String,
    info String,
    site String,
    -- Filled by the sink from the connector's latest stored status: the
    -- status this event ends and when it began ('' and 0 when unknown). The
    -- time-in-status roll-up is computed from these.
    prev_status String,
    prev_observed_at DateTime
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_meter_sample (
    {envelope},
    station_id String,
    connector_id UInt32,
    transaction_id String,
    energy_active_import_wh Float64,
    power_active_import_w Nullable(Float64),
    current_import_a Array(Float64),
    voltage_v Array(Float64),
    soc_percent Nullable(Float64),
    temperature_c Nullable(Float64),
    site String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_charging_session (
    {envelope},
    station_id String,
    connector_id UInt32,
    transaction_id String,
    phase String,
    id_token_hash String,
    meter_start_wh Float64,
    meter_stop_wh Nullable(Float64),
    energy_kwh Nullable(Float64),
    duration_s Nullable(UInt32),
    stop_reason String,
    fee_electricity_cny Nullable(Float64),
    fee_service_cny Nullable(Float64),
    fee_total_cny Nullable(Float64),
    started_at Nullable(DateTime),
    site String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_parking_site_counts (
    {envelope},
    site_id String,
    total_spots UInt32,
    occupied UInt32,
    available UInt32,
    ev_total Nullable(UInt32),
    ev_occupied Nullable(UInt32),
    status String,
    entries UInt32,
    exits UInt32,
    period_s UInt32,
    village String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_parking_spot_status (
    {envelope},
    site_id String,
    spot_id String,
    state String,
    detection String,
    ev_bay UInt8,
    village String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_vehicle_position (
    {envelope},
    vehicle_id String,
    role String,
    speed_kmh Float64,
    heading_deg Nullable(Float64),
    odometer_km Nullable(Float64),
    ignition_on UInt8,
    fix String,
    route_id String,
    trip_id String,
    stop_id String,
    stop_status String,
    occupancy_status String,
    passengers Nullable(UInt32),
    service_status String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_patrol_check_in (
    {envelope},
    patrol_id String,
    team_id String,
    inspector_id String,
    checkpoint_id String,
    method String,
    -- Parallel arrays: one entry per waste class checked.
    compliance_class Array(String),
    compliance_result Array(String),
    contamination_percent Nullable(Float64),
    photo_refs Array(String),
    follow_up_request_id String,
    village String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_bin_reading (
    {envelope},
    bin_id String,
    waste_class String,
    fill_level Float64,
    status String,
    last_emptied_at Nullable(DateTime),
    village String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_waste_collection (
    {envelope},
    truck_id String,
    bin_id String,
    station_id String,
    -- Parallel arrays: one entry per waste class weighed.
    weight_class Array(String),
    weight_kg Array(Float64),
    total_weight_kg Float64,
    village String
) ENGINE = {raw_engine};

CREATE TABLE IF NOT EXISTS {db}.raw_service_request (
    {envelope},
    request_id String,
    transition String,
    service_code String,
    category String,
    channel String,
    village String,
    address String,
    department String,
    expected_by Nullable(DateTime),
    note String
) ENGINE = {raw_engine};
