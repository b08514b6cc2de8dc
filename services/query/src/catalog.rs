//! The metrics a caller can aggregate: each names its source (a roll-up, a
//! raw table, or a per-entity subquery over raw rows), its dimensions (which
//! are also its filters) and its measures. Every name and SQL fragment here
//! is a literal; callers choose among them by name.

use crate::sql::{Database, Sql};

/// Bucket sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    FiveMinutes,
    Hour,
    Day,
    Week,
    Month,
}

impl Bucket {
    pub const NAMES: &'static str = "5m, hour, day, week, month";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "5m" => Bucket::FiveMinutes,
            "hour" | "1h" => Bucket::Hour,
            "day" | "1d" => Bucket::Day,
            "week" => Bucket::Week,
            "month" => Bucket::Month,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::FiveMinutes => "5m",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }

    /// Nominal length, for counting buckets (a month counts as 28 days, so
    /// the count is never under-estimated).
    pub fn nominal_secs(self) -> i64 {
        match self {
            Bucket::FiveMinutes => 300,
            Bucket::Hour => 3_600,
            Bucket::Day => 86_400,
            Bucket::Week => 7 * 86_400,
            Bucket::Month => 28 * 86_400,
        }
    }

    /// The roll-up resolution that serves this bucket, in seconds: the 5m
    /// tables for 5m, the 1h tables for everything else.
    pub fn source_step(self) -> i64 {
        match self {
            Bucket::FiveMinutes => 300,
            _ => 3_600,
        }
    }

    /// The bucket start of time column `col` as `DateTime('UTC')`.
    fn expr(self, col: TimeCol) -> &'static str {
        use Bucket::*;
        use TimeCol::*;
        match (self, col) {
            (FiveMinutes, Rollup) => "toDateTime(toStartOfFiveMinute(bucket, 'UTC'), 'UTC')",
            (FiveMinutes, Observed) => "toDateTime(toStartOfFiveMinute(observed_at, 'UTC'), 'UTC')",
            (FiveMinutes, Entity) => "toDateTime(toStartOfFiveMinute(t, 'UTC'), 'UTC')",
            (Hour, Rollup) => "toDateTime(toStartOfHour(bucket, 'UTC'), 'UTC')",
            (Hour, Observed) => "toDateTime(toStartOfHour(observed_at, 'UTC'), 'UTC')",
            (Hour, Entity) => "toDateTime(toStartOfHour(t, 'UTC'), 'UTC')",
            (Day, Rollup) => "toDateTime(toStartOfDay(bucket, 'UTC'), 'UTC')",
            (Day, Observed) => "toDateTime(toStartOfDay(observed_at, 'UTC'), 'UTC')",
            (Day, Entity) => "toDateTime(toStartOfDay(t, 'UTC'), 'UTC')",
            (Week, Rollup) => "toDateTime(toMonday(bucket, 'UTC'), 'UTC')",
            (Week, Observed) => "toDateTime(toMonday(observed_at, 'UTC'), 'UTC')",
            (Week, Entity) => "toDateTime(toMonday(t, 'UTC'), 'UTC')",
            (Month, Rollup) => "toDateTime(toStartOfMonth(bucket, 'UTC'), 'UTC')",
            (Month, Observed) => "toDateTime(toStartOfMonth(observed_at, 'UTC'), 'UTC')",
            (Month, Entity) => "toDateTime(toStartOfMonth(t, 'UTC'), 'UTC')",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum TimeCol {
    Rollup,
    Observed,
    Entity,
}

/// A metric: where its rows come from, how they can be split and what is
/// measured.
pub struct Metric {
    pub name: &'static str,
    pub description: &'static str,
    pub source: Source,
    /// Dimensions to group by; each is also an equality filter.
    pub dimensions: &'static [Dim],
    pub default_group_by: &'static [&'static str],
    pub measures: &'static [Measure],
    /// The measure top-N ranks by unless told otherwise.
    pub default_order_by: &'static str,
}

pub struct Dim {
    pub name: &'static str,
    /// Its column in the source rows.
    pub column: &'static str,
}

pub struct Measure {
    pub name: &'static str,
    /// An aggregate expression over the source rows.
    pub expr: &'static str,
    pub description: &'static str,
}

pub enum Source {
    /// A roll-up kept by materialized views, in 5-minute and hourly tables.
    Rollup {
        five_minutes: &'static str,
        hour: &'static str,
    },
    /// A raw table, read with `FINAL` so a repeated event counts once.
    Raw(&'static str),
    /// A subquery of one row per entity (request, trip, vehicle-bucket,
    /// connector-status interval per slot) with a time column `t`; it
    /// applies the tenant and time range itself.
    Entity(fn(&mut Sql, &Scope<'_>)),
}

/// What every query is confined to.
pub struct Scope<'a> {
    pub database: &'a Database,
    pub tenant: &'a str,
    pub from: i64,
    pub to: i64,
    /// None for top-N (totals over the range).
    pub bucket: Option<Bucket>,
}

impl Metric {
    pub fn dimension(&self, name: &str) -> Option<&'static Dim> {
        self.dimensions.iter().find(|d| d.name == name)
    }

    pub fn measure(&self, name: &str) -> Option<&'static Measure> {
        self.measures.iter().find(|m| m.name == name)
    }

    pub fn dimension_names(&self) -> String {
        self.dimensions
            .iter()
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn measure_names(&self) -> String {
        self.measures
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

pub fn metric_names() -> String {
    METRICS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

// Aliases inside the generated query, so that no alias ever equals a column
// name (ClickHouse substitutes aliases, and `sum(x) AS x` would nest).
const DIM_ALIASES: [&str; 4] = ["_d0", "_d1", "_d2", "_d3"];
const MEASURE_ALIASES: [&str; 10] = [
    "_m0", "_m1", "_m2", "_m3", "_m4", "_m5", "_m6", "_m7", "_m8", "_m9",
];

/// How an aggregate is shaped after validation.
pub struct Shape<'a> {
    pub metric: &'static Metric,
    pub group_by: Vec<&'static Dim>,
    pub filters: Vec<(&'static Dim, &'a str)>,
    /// Some for top-N: rank by this measure, descending.
    pub order_by: Option<&'static Measure>,
    pub limit: i64,
}

/// The query for `shape` within `scope`: one row per bucket and group, a
/// column per measure.
pub fn aggregate_sql(shape: &Shape<'_>, scope: &Scope<'_>) -> Sql {
    let metric = shape.metric;
    let mut sql = Sql::new();
    sql.push("SELECT ");
    let mut first = true;
    let mut sep = |sql: &mut Sql| {
        if !std::mem::take(&mut first) {
            sql.push(", ");
        }
    };
    if scope.bucket.is_some() {
        sep(&mut sql);
        sql.push("_b AS bucket_start");
    }
    for (i, dim) in shape.group_by.iter().enumerate() {
        sep(&mut sql);
        sql.push(DIM_ALIASES[i]).push(" AS ").push(dim.name);
    }
    for (i, measure) in metric.measures.iter().enumerate() {
        sep(&mut sql);
        sql.push(MEASURE_ALIASES[i]).push(" AS ").push(measure.name);
    }

    sql.push(" FROM (SELECT ");
    let time_col = match metric.source {
        Source::Rollup { .. } => TimeCol::Rollup,
        Source::Raw(_) => TimeCol::Observed,
        Source::Entity(_) => TimeCol::Entity,
    };
    let mut keys: Vec<&'static str> = Vec::new();
    if let Some(bucket) = scope.bucket {
        sql.push(bucket.expr(time_col)).push(" AS _b, ");
        keys.push("_b");
    }
    for (i, dim) in shape.group_by.iter().enumerate() {
        sql.push(dim.column)
            .push(" AS ")
            .push(DIM_ALIASES[i])
            .push(", ");
        keys.push(DIM_ALIASES[i]);
    }
    for (i, measure) in metric.measures.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(measure.expr).push(" AS ").push(MEASURE_ALIASES[i]);
    }
    sql.push(" FROM ");
    match metric.source {
        Source::Rollup { five_minutes, hour } => {
            let table = match scope.bucket {
                Some(Bucket::FiveMinutes) => five_minutes,
                _ => hour,
            };
            sql.table(scope.database, table)
                .push(" WHERE tenant_id = ")
                .str(scope.tenant)
                .push(" AND bucket >= ")
                .time(scope.from)
                .push(" AND bucket < ")
                .time(scope.to);
        }
        Source::Raw(table) => {
            sql.table(scope.database, table)
                .push(" FINAL WHERE tenant_id = ")
                .str(scope.tenant)
                .push(" AND observed_at >= ")
                .time(scope.from)
                .push(" AND observed_at < ")
                .time(scope.to);
        }
        Source::Entity(entity) => {
            sql.push("(");
            entity(&mut sql, scope);
            sql.push(") WHERE 1 = 1");
        }
    }
    for (dim, value) in &shape.filters {
        sql.push(" AND ").push(dim.column).push(" = ").str(value);
    }
    if !keys.is_empty() {
        sql.push(" GROUP BY ");
        push_list(&mut sql, &keys);
    }
    sql.push(")");

    sql.push(" ORDER BY ");
    let mut order: Vec<&'static str> = Vec::new();
    if let Some(measure) = shape.order_by {
        sql.push(measure.name).push(" DESC");
        if !shape.group_by.is_empty() {
            sql.push(", ");
        }
    } else if scope.bucket.is_some() {
        order.push("bucket_start");
    }
    order.extend(shape.group_by.iter().map(|d| d.name));
    if order.is_empty() && shape.order_by.is_none() {
        order.push("1");
    }
    push_list(&mut sql, &order);
    sql.push(" LIMIT ").int(shape.limit);
    sql
}

fn push_list(sql: &mut Sql, items: &[&'static str]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(item);
    }
}

const CHARGER_DIMS: &[Dim] = &[
    Dim {
        name: "site",
        column: "site",
    },
    Dim {
        name: "station",
        column: "station_id",
    },
    Dim {
        name: "connector",
        column: "device_id",
    },
];

const PARKING_DIMS: &[Dim] = &[
    Dim {
        name: "village",
        column: "village",
    },
    Dim {
        name: "site",
        column: "site_id",
    },
];

const REQUEST_DIMS: &[Dim] = &[
    Dim {
        name: "village",
        column: "village",
    },
    Dim {
        name: "department",
        column: "department",
    },
    Dim {
        name: "category",
        column: "category",
    },
];

const PATROL_DIMS: &[Dim] = &[
    Dim {
        name: "village",
        column: "village",
    },
    Dim {
        name: "team",
        column: "team_id",
    },
];

/// Every metric, by name.
pub static METRICS: &[Metric] = &[
    Metric {
        name: "charger_utilisation",
        description: "Share of observed connector time spent charging, from the raw status events in event-time order (late events included): a status lasts until the connector's next status event, at most 7 days; a connector's newest status is not counted until the next one arrives. Connector 0 (OCPP: a charging station as a whole) is not a connector and is not counted.",
        source: Source::Entity(crate::intervals::charger_intervals),
        dimensions: CHARGER_DIMS,
        default_group_by: &["site"],
        measures: &[
            Measure {
                name: "utilisation",
                expr: "if(sum(seconds) = 0, 0, sumIf(seconds, status = 'charging') / sum(seconds))",
                description: "charging_seconds / observed_seconds (0–1)",
            },
            Measure {
                name: "charging_seconds",
                expr: "sumIf(seconds, status = 'charging')",
                description: "seconds in status charging",
            },
            Measure {
                name: "faulted_seconds",
                expr: "sumIf(seconds, status = 'faulted')",
                description: "seconds in status faulted",
            },
            Measure {
                name: "observed_seconds",
                expr: "sum(seconds)",
                description: "seconds with a known status",
            },
            Measure {
                name: "connectors",
                expr: "uniqExact(device_id)",
                description: "connectors reporting",
            },
        ],
        default_order_by: "utilisation",
    },
    Metric {
        name: "charging_energy",
        description: "Charging sessions started and ended, energy delivered and fees, from the energy roll-up.",
        source: Source::Rollup {
            five_minutes: "charging_energy_5m",
            hour: "charging_energy_1h",
        },
        dimensions: CHARGER_DIMS,
        default_group_by: &["site"],
        measures: &[
            Measure {
                name: "sessions_started",
                expr: "sum(sessions_started)",
                description: "sessions started",
            },
            Measure {
                name: "sessions_ended",
                expr: "sum(sessions_ended)",
                description: "sessions ended",
            },
            Measure {
                name: "energy_kwh",
                expr: "sum(energy_kwh)",
                description: "energy of sessions ended (kWh)",
            },
            Measure {
                name: "fee_total_cny",
                expr: "sum(fee_total_cny)",
                description: "fees of sessions ended (CNY)",
            },
        ],
        default_order_by: "energy_kwh",
    },
    Metric {
        name: "parking_occupancy",
        description: "Lot occupancy average and peak per report, entries and exits, from the parking roll-up.",
        source: Source::Rollup {
            five_minutes: "parking_occupancy_5m",
            hour: "parking_occupancy_1h",
        },
        dimensions: PARKING_DIMS,
        default_group_by: &["site"],
        measures: &[
            Measure {
                name: "occupancy_avg",
                expr: "avgMerge(occupancy_ratio_avg)",
                description: "mean occupied/total over reports (0–1)",
            },
            Measure {
                name: "occupancy_peak",
                expr: "maxMerge(occupancy_ratio_max)",
                description: "highest occupied/total (0–1)",
            },
            Measure {
                name: "occupied_avg",
                expr: "avgMerge(occupied_avg)",
                description: "mean occupied spots over reports",
            },
            Measure {
                name: "occupied_peak",
                expr: "maxMerge(occupied_max)",
                description: "most occupied spots",
            },
            Measure {
                name: "capacity",
                expr: "maxMerge(total_spots_max)",
                description: "largest total spots reported",
            },
            Measure {
                name: "entries",
                expr: "sumMerge(entries)",
                description: "vehicles entered",
            },
            Measure {
                name: "exits",
                expr: "sumMerge(exits)",
                description: "vehicles left",
            },
            Measure {
                name: "reports",
                expr: "countMerge(reports)",
                description: "count reports",
            },
        ],
        default_order_by: "occupancy_avg",
    },
    Metric {
        name: "vehicle_distance",
        description: "Distance driven (odometer advance per vehicle and bucket), positions and top speed, from the movement roll-up.",
        source: Source::Entity(vehicle_buckets),
        dimensions: &[
            Dim {
                name: "role",
                column: "role",
            },
            Dim {
                name: "vehicle",
                column: "vehicle_id",
            },
        ],
        default_group_by: &["role"],
        measures: &[
            Measure {
                name: "distance_km",
                expr: "sum(distance_km)",
                description: "odometer advance (km)",
            },
            Measure {
                name: "vehicles",
                expr: "uniqExact(vehicle_id)",
                description: "vehicles reporting",
            },
            Measure {
                name: "positions",
                expr: "sum(positions)",
                description: "positions reported",
            },
            Measure {
                name: "speed_max_kmh",
                expr: "max(speed_max)",
                description: "highest speed (km/h)",
            },
        ],
        default_order_by: "distance_km",
    },
    Metric {
        name: "vehicle_trips",
        description: "Trips (distinct trip ids, by their first position) and riders (boardings estimated from rises in the passenger count), from raw positions.",
        source: Source::Entity(trips),
        dimensions: &[
            Dim {
                name: "role",
                column: "trip_role",
            },
            Dim {
                name: "vehicle",
                column: "vehicle_id",
            },
            Dim {
                name: "route",
                column: "trip_route",
            },
        ],
        default_group_by: &["route"],
        measures: &[
            Measure {
                name: "trips",
                expr: "count()",
                description: "trips started",
            },
            Measure {
                name: "riders",
                expr: "sum(boardings)",
                description: "estimated boardings",
            },
            Measure {
                name: "vehicles",
                expr: "uniqExact(vehicle_id)",
                description: "vehicles serving",
            },
        ],
        default_order_by: "riders",
    },
    Metric {
        name: "patrol_compliance",
        description: "Patrol check-ins and waste-sorting compliance, from the patrol roll-up.",
        source: Source::Rollup {
            five_minutes: "patrol_compliance_5m",
            hour: "patrol_compliance_1h",
        },
        dimensions: PATROL_DIMS,
        default_group_by: &["village"],
        measures: &[
            Measure {
                name: "compliance",
                expr: "if(sum(classes_checked) = 0, NULL, sum(classes_correct) / sum(classes_checked))",
                description: "classes correct / classes checked (0–1)",
            },
            Measure {
                name: "check_ins",
                expr: "sum(check_ins)",
                description: "check-ins",
            },
            Measure {
                name: "classes_checked",
                expr: "sum(classes_checked)",
                description: "waste classes checked",
            },
            Measure {
                name: "classes_correct",
                expr: "sum(classes_correct)",
                description: "classes sorted correctly",
            },
            Measure {
                name: "classes_incorrect",
                expr: "sum(classes_incorrect)",
                description: "classes sorted incorrectly",
            },
            Measure {
                name: "contamination_avg",
                expr: "if(sum(contamination_reports) = 0, NULL, sum(contamination_sum) / sum(contamination_reports))",
                description: "mean contamination (%)",
            },
        ],
        default_order_by: "compliance",
    },
    Metric {
        name: "patrol_coverage",
        description: "Patrol coverage: distinct checkpoints, patrols and inspectors, from raw check-ins.",
        source: Source::Raw("raw_patrol_check_in"),
        dimensions: PATROL_DIMS,
        default_group_by: &["village"],
        measures: &[
            Measure {
                name: "checkpoints_visited",
                expr: "uniqExact(checkpoint_id)",
                description: "distinct checkpoints checked in",
            },
            Measure {
                name: "check_ins",
                expr: "count()",
                description: "check-ins",
            },
            Measure {
                name: "patrols",
                expr: "uniqExact(patrol_id)",
                description: "distinct patrols",
            },
            Measure {
                name: "inspectors",
                expr: "uniqExact(inspector_id)",
                description: "distinct inspectors",
            },
        ],
        default_order_by: "checkpoints_visited",
    },
    Metric {
        name: "service_requests",
        description: "Service requests opened, resolved, closed and reopened, from the request roll-up.",
        source: Source::Rollup {
            five_minutes: "service_requests_5m",
            hour: "service_requests_1h",
        },
        dimensions: REQUEST_DIMS,
        default_group_by: &["department"],
        measures: &[
            Measure {
                name: "opened",
                expr: "sum(opened)",
                description: "requests created",
            },
            Measure {
                name: "resolved",
                expr: "sum(resolved)",
                description: "resolutions",
            },
            Measure {
                name: "closed",
                expr: "sum(closed)",
                description: "closures",
            },
            Measure {
                name: "reopened",
                expr: "sum(reopened)",
                description: "reopenings",
            },
        ],
        default_order_by: "opened",
    },
    Metric {
        name: "service_request_sla",
        description: "Per request created in the range (bucketed by creation): time to assign and to resolve, share resolved by expected_by, reopen rate; from raw transitions.",
        source: Source::Entity(requests),
        dimensions: &[
            Dim {
                name: "village",
                column: "r_village",
            },
            Dim {
                name: "department",
                column: "r_department",
            },
            Dim {
                name: "category",
                column: "r_category",
            },
        ],
        default_group_by: &["department"],
        measures: &[
            Measure {
                name: "requests",
                expr: "count()",
                description: "requests created",
            },
            Measure {
                name: "assigned",
                expr: "countIf(isNotNull(hours_to_assign))",
                description: "requests assigned",
            },
            Measure {
                name: "resolved",
                expr: "countIf(isNotNull(hours_to_resolve))",
                description: "requests resolved",
            },
            Measure {
                name: "avg_hours_to_assign",
                expr: "avg(hours_to_assign)",
                description: "mean hours from creation to first assignment",
            },
            Measure {
                name: "avg_hours_to_resolve",
                expr: "avg(hours_to_resolve)",
                description: "mean hours from creation to first resolution",
            },
            Measure {
                name: "within_sla",
                expr: "avg(within_sla)",
                description: "share of resolved requests with expected_by resolved by then (0–1)",
            },
            Measure {
                name: "reopen_rate",
                expr: "avg(reopened)",
                description: "share of requests reopened at least once (0–1)",
            },
        ],
        default_order_by: "avg_hours_to_resolve",
    },
];

/// One row per vehicle and bucket: the odometer's advance within the bucket
/// (merging the hourly states gives the bucket's min and max directly).
fn vehicle_buckets(sql: &mut Sql, scope: &Scope<'_>) {
    sql.push("SELECT ");
    if let Some(bucket) = scope.bucket {
        sql.push(bucket.expr(TimeCol::Rollup)).push(" AS t, ");
    }
    sql.push(
        "role, vehicle_id, \
         greatest(maxIfMerge(odometer_max) - minIfMerge(odometer_min), 0) AS distance_km, \
         countMerge(positions) AS positions, maxMerge(speed_max) AS speed_max FROM ",
    );
    let table = match scope.bucket {
        Some(Bucket::FiveMinutes) => "vehicle_movement_5m",
        _ => "vehicle_movement_1h",
    };
    sql.table(scope.database, table)
        .push(" WHERE tenant_id = ")
        .str(scope.tenant)
        .push(" AND bucket >= ")
        .time(scope.from)
        .push(" AND bucket < ")
        .time(scope.to)
        .push(" GROUP BY ");
    if scope.bucket.is_some() {
        sql.push("t, ");
    }
    sql.push("role, vehicle_id");
}

/// One row per trip started in the range, with its estimated boardings:
/// the first passenger count plus every rise after it.
fn trips(sql: &mut Sql, scope: &Scope<'_>) {
    sql.push(
        "SELECT vehicle_id, trip_id, any(role) AS trip_role, any(route_id) AS trip_route, min(observed_at) AS t, \
         arrayMap(p -> toInt64(p.2), arraySort(p -> p.1, groupArrayIf((toUInt64(observed_at) * 1000 + observed_ms, assumeNotNull(passengers)), isNotNull(passengers)))) AS loads, \
         if(empty(loads), NULL, loads[1] + arraySum(arrayMap(d -> greatest(d, 0), arrayDifference(loads)))) AS boardings FROM ",
    );
    sql.table(scope.database, "raw_vehicle_position")
        .push(" FINAL WHERE tenant_id = ")
        .str(scope.tenant)
        .push(" AND trip_id != '' AND observed_at >= ")
        .time(scope.from)
        .push(" AND observed_at < ")
        .time(scope.to)
        .push(" GROUP BY vehicle_id, trip_id");
}

/// One row per request created in the range, with the request's latest
/// department, village and category.
fn requests(sql: &mut Sql, scope: &Scope<'_>) {
    sql.push(
        "SELECT request_id, minIf(observed_at, transition = 'created') AS t, \
         argMax(department, toUInt64(observed_at) * 1000 + observed_ms) AS r_department, \
         argMax(village, toUInt64(observed_at) * 1000 + observed_ms) AS r_village, \
         argMax(category, toUInt64(observed_at) * 1000 + observed_ms) AS r_category, \
         if(countIf(transition = 'assigned') > 0, (toInt64(minIf(observed_at, transition = 'assigned')) - toInt64(t)) / 3600, NULL) AS hours_to_assign, \
         if(countIf(transition = 'resolved') > 0, (toInt64(minIf(observed_at, transition = 'resolved')) - toInt64(t)) / 3600, NULL) AS hours_to_resolve, \
         max(expected_by) AS expected, \
         if(countIf(transition = 'resolved') > 0 AND isNotNull(expected), toUInt8(minIf(observed_at, transition = 'resolved') <= assumeNotNull(expected)), NULL) AS within_sla, \
         toUInt8(countIf(transition = 'reopened') > 0) AS reopened FROM ",
    );
    sql.table(scope.database, "raw_service_request")
        .push(" FINAL WHERE tenant_id = ")
        .str(scope.tenant)
        .push(" AND observed_at >= ")
        .time(scope.from)
        .push(" GROUP BY request_id HAVING countIf(transition = 'created') > 0 AND t >= ")
        .time(scope.from)
        .push(" AND t < ")
        .time(scope.to);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_fits_the_alias_tables_and_names_its_defaults() {
        for metric in METRICS {
            assert!(
                metric.dimensions.len() <= DIM_ALIASES.len(),
                "{}",
                metric.name
            );
            assert!(
                metric.measures.len() <= MEASURE_ALIASES.len(),
                "{}",
                metric.name
            );
            assert!(
                metric.measure(metric.default_order_by).is_some(),
                "{}",
                metric.name
            );
            for d in metric.default_group_by {
                assert!(metric.dimension(d).is_some(), "{}: {d}", metric.name);
            }
            for m in metric.measures {
                assert!(!m.expr.contains('?') && !m.name.contains('?'));
            }
        }
    }

    #[test]
    fn filters_are_bound_not_spliced() {
        let db = Database::new("citybrain").unwrap();
        let metric = metric("charging_energy").unwrap();
        let hostile = "x' OR 1=1 --";
        let shape = Shape {
            metric,
            group_by: vec![metric.dimension("site").unwrap()],
            filters: vec![(metric.dimension("site").unwrap(), hostile)],
            order_by: None,
            limit: 11,
        };
        let scope = Scope {
            database: &db,
            tenant: "t' --",
            from: 0,
            to: 3600,
            bucket: Some(Bucket::Day),
        };
        let sql = aggregate_sql(&shape, &scope);
        assert!(!sql.text().contains("OR 1=1") && !sql.text().contains("t'"));
        assert_eq!(sql.text().matches('?').count(), sql.args().len());
        assert!(sql.text().contains("citybrain.charging_energy_1h"));
    }
}
