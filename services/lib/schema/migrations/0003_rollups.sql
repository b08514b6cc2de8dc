-- Roll-ups maintained by materialized views, instantiated once per
-- resolution: {res} is 5m or 1h, {bucket} toStartOfFiveMinute or
-- toStartOfHour, {step} the bucket length in seconds.
--
-- A view sees each inserted block of its raw table once. That is why the sink
-- must never insert an event twice: a second copy would be counted here even
-- though the raw table collapses it. Query with the -Merge combinators (or
-- sum() for SummingMergeTree columns), grouping by the key: rows are only
-- combined when parts merge.

-- Charger utilisation: seconds each connector spent in each status. The raw
-- row carries the status it ends (prev_status, since prev_observed_at); the
-- interval is split across the buckets it spans (at most {max_steps}).
CREATE TABLE IF NOT EXISTS {db}.charger_status_{res} (
    tenant_id String,
    bucket DateTime,
    site String,
    station_id String,
    connector_id UInt32,
    device_id String,
    status String,
    seconds UInt64,
    intervals UInt64
) ENGINE = SummingMergeTree((seconds, intervals))
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, site, station_id, connector_id, device_id, status);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.charger_status_{res}_mv TO {db}.charger_status_{res} AS
SELECT
    tenant_id,
    toDateTime(slot) AS bucket,
    site,
    station_id,
    connector_id,
    device_id,
    prev_status AS status,
    toUInt64(least(slot + {step}, toUInt32(observed_at)) - greatest(slot, toUInt32(prev_observed_at))) AS seconds,
    toUInt64(slot <= toUInt32(prev_observed_at)) AS intervals
FROM {db}.raw_connector_status
ARRAY JOIN arrayMap(
    i -> intDiv(toUInt32(prev_observed_at), {step}) * {step} + i * {step},
    -- Rows without a previous status get an empty array, which ARRAY JOIN drops.
    range(if(prev_status != '' AND toUInt32(prev_observed_at) > 0 AND observed_at > prev_observed_at,
        toUInt32(least(
            intDiv(toUInt32(observed_at) - 1, {step}) - intDiv(toUInt32(prev_observed_at), {step}) + 1,
            {max_steps})),
        toUInt32(0)))
) AS slot
WHERE prev_status != '' AND toUInt32(prev_observed_at) > 0 AND observed_at > prev_observed_at;

-- Energy delivered and sessions per connector (by the time of the event:
-- started sessions when they start, energy when they end).
CREATE TABLE IF NOT EXISTS {db}.charging_energy_{res} (
    tenant_id String,
    bucket DateTime,
    site String,
    station_id String,
    connector_id UInt32,
    device_id String,
    sessions_started UInt64,
    sessions_ended UInt64,
    energy_kwh Float64,
    fee_total_cny Float64
) ENGINE = SummingMergeTree((sessions_started, sessions_ended, energy_kwh, fee_total_cny))
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, site, station_id, connector_id, device_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.charging_energy_{res}_mv TO {db}.charging_energy_{res} AS
SELECT
    tenant_id,
    {bucket}(observed_at) AS bucket,
    site,
    station_id,
    connector_id,
    device_id,
    toUInt64(countIf(phase = 'started')) AS sessions_started,
    toUInt64(countIf(phase = 'ended')) AS sessions_ended,
    sumIf(ifNull(energy_kwh, 0), phase = 'ended') AS energy_kwh,
    sumIf(ifNull(fee_total_cny, 0), phase = 'ended') AS fee_total_cny
FROM {db}.raw_charging_session
GROUP BY tenant_id, bucket, site, station_id, connector_id, device_id;

-- Parking occupancy per site: average and peak.
CREATE TABLE IF NOT EXISTS {db}.parking_occupancy_{res} (
    tenant_id String,
    bucket DateTime,
    village String,
    site_id String,
    reports AggregateFunction(count),
    occupied_avg AggregateFunction(avg, UInt32),
    occupied_max AggregateFunction(max, UInt32),
    occupancy_ratio_avg AggregateFunction(avg, Float64),
    occupancy_ratio_max AggregateFunction(max, Float64),
    total_spots_max AggregateFunction(max, UInt32),
    entries AggregateFunction(sum, UInt32),
    exits AggregateFunction(sum, UInt32)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, village, site_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.parking_occupancy_{res}_mv TO {db}.parking_occupancy_{res} AS
SELECT
    tenant_id,
    {bucket}(observed_at) AS bucket,
    village,
    site_id,
    countState() AS reports,
    avgState(occupied) AS occupied_avg,
    maxState(occupied) AS occupied_max,
    avgState(occupied / greatest(total_spots, 1)) AS occupancy_ratio_avg,
    maxState(occupied / greatest(total_spots, 1)) AS occupancy_ratio_max,
    maxState(total_spots) AS total_spots_max,
    sumState(entries) AS entries,
    sumState(exits) AS exits
FROM {db}.raw_parking_site_counts
GROUP BY tenant_id, bucket, village, site_id;

-- Vehicle positions and distance per vehicle. Distance is the odometer's
-- advance within the bucket (max - min of odometer_km, where reported);
-- vehicle positions always carry a location (ingest requires it).
CREATE TABLE IF NOT EXISTS {db}.vehicle_movement_{res} (
    tenant_id String,
    bucket DateTime,
    role String,
    vehicle_id String,
    positions AggregateFunction(count),
    odometer_min AggregateFunction(minIf, Float64, UInt8),
    odometer_max AggregateFunction(maxIf, Float64, UInt8),
    speed_avg AggregateFunction(avg, Float64),
    speed_max AggregateFunction(max, Float64),
    last_latitude AggregateFunction(argMax, Float64, DateTime),
    last_longitude AggregateFunction(argMax, Float64, DateTime)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, role, vehicle_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.vehicle_movement_{res}_mv TO {db}.vehicle_movement_{res} AS
SELECT
    tenant_id,
    {bucket}(observed_at) AS bucket,
    role,
    vehicle_id,
    countState() AS positions,
    minIfState(assumeNotNull(odometer_km), isNotNull(odometer_km)) AS odometer_min,
    maxIfState(assumeNotNull(odometer_km), isNotNull(odometer_km)) AS odometer_max,
    avgState(speed_kmh) AS speed_avg,
    maxState(speed_kmh) AS speed_max,
    argMaxState(ifNull(latitude, 0), observed_at) AS last_latitude,
    argMaxState(ifNull(longitude, 0), observed_at) AS last_longitude
FROM {db}.raw_vehicle_position
GROUP BY tenant_id, bucket, role, vehicle_id;

-- Patrol check-ins and sorting compliance per village and team.
CREATE TABLE IF NOT EXISTS {db}.patrol_compliance_{res} (
    tenant_id String,
    bucket DateTime,
    village String,
    team_id String,
    check_ins UInt64,
    classes_checked UInt64,
    classes_correct UInt64,
    classes_incorrect UInt64,
    contamination_sum Float64,
    contamination_reports UInt64
) ENGINE = SummingMergeTree((check_ins, classes_checked, classes_correct, classes_incorrect, contamination_sum, contamination_reports))
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, village, team_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.patrol_compliance_{res}_mv TO {db}.patrol_compliance_{res} AS
SELECT
    tenant_id,
    {bucket}(observed_at) AS bucket,
    village,
    team_id,
    toUInt64(count()) AS check_ins,
    toUInt64(sum(length(compliance_result))) AS classes_checked,
    toUInt64(sum(arrayCount(r -> r = 'correct', compliance_result))) AS classes_correct,
    toUInt64(sum(arrayCount(r -> r = 'incorrect', compliance_result))) AS classes_incorrect,
    sum(ifNull(contamination_percent, 0)) AS contamination_sum,
    toUInt64(countIf(isNotNull(contamination_percent))) AS contamination_reports
FROM {db}.raw_patrol_check_in
GROUP BY tenant_id, bucket, village, team_id;

-- Service requests opened and resolved per department.
CREATE TABLE IF NOT EXISTS {db}.service_requests_{res} (
    tenant_id String,
    bucket DateTime,
    village String,
    department String,
    category String,
    opened UInt64,
    resolved UInt64,
    closed UInt64,
    reopened UInt64,
    transitions UInt64
) ENGINE = SummingMergeTree((opened, resolved, closed, reopened, transitions))
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, village, department, category);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.service_requests_{res}_mv TO {db}.service_requests_{res} AS
SELECT
    tenant_id,
    {bucket}(observed_at) AS bucket,
    village,
    department,
    category,
    toUInt64(countIf(transition = 'created')) AS opened,
    toUInt64(countIf(transition = 'resolved')) AS resolved,
    toUInt64(countIf(transition = 'closed')) AS closed,
    toUInt64(countIf(transition = 'reopened')) AS reopened,
    toUInt64(count()) AS transitions
FROM {db}.raw_service_request
GROUP BY tenant_id, bucket, village, department, category;
