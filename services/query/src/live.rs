//! Live state: the newest row per connector, lot, vehicle, bin or request.
//!
//! The latest-state tables are ReplacingMergeTree(observed_at): until parts
//! merge they can hold older rows, so each view takes `argMax(…, observed_at)`
//! per key, then filters the newest state (a connector that *was* faulted
//! must not match `status=faulted`).

use crate::sql::{Database, Sql};

pub struct View {
    pub name: &'static str,
    pub description: &'static str,
    table: &'static str,
    /// Per-key newest values, aliased `l_*` (never a column name).
    inner: &'static str,
    group_by: &'static str,
    /// The answer's columns, from the `l_*` aliases.
    outer: &'static str,
    /// A fixed condition on the newest state, if any.
    outer_where: &'static str,
    order_by: &'static str,
    pub filters: &'static [Filter],
}

pub struct Filter {
    pub name: &'static str,
    /// The `l_*` alias it applies to.
    column: &'static str,
    pub kind: FilterKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// Equal to the given text.
    Equals,
    /// At least the given number.
    AtLeast,
}

impl View {
    pub fn filter(&self, name: &str) -> Option<&'static Filter> {
        self.filters.iter().find(|f| f.name == name)
    }

    pub fn filter_names(&self) -> String {
        self.filters
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn view(name: &str) -> Option<&'static View> {
    VIEWS.iter().find(|v| v.name == name)
}

pub fn view_names() -> String {
    VIEWS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")
}

/// A validated filter value.
pub enum FilterValue<'a> {
    Text(&'a str),
    Number(f64),
}

pub fn live_sql(
    view: &View,
    database: &Database,
    tenant: &str,
    filters: &[(&'static Filter, FilterValue<'_>)],
    limit: i64,
) -> Sql {
    let mut sql = Sql::new();
    sql.push("SELECT ")
        .push(view.outer)
        .push(" FROM (SELECT ")
        .push(view.inner)
        .push(" FROM ")
        .table(database, view.table)
        .push(" WHERE tenant_id = ")
        .str(tenant)
        .push(" GROUP BY ")
        .push(view.group_by)
        .push(") WHERE 1 = 1")
        .push(view.outer_where);
    for (filter, value) in filters {
        sql.push(" AND ").push(filter.column);
        match value {
            FilterValue::Text(text) => sql.push(" = ").str(text),
            FilterValue::Number(n) => sql.push(" >= ").arg(crate::sql::Arg::Float(*n)),
        };
    }
    sql.push(" ORDER BY ")
        .push(view.order_by)
        .push(" LIMIT ")
        .int(limit);
    sql
}

const fn eq(name: &'static str, column: &'static str) -> Filter {
    Filter {
        name,
        column,
        kind: FilterKind::Equals,
    }
}

pub static VIEWS: &[View] = &[
    View {
        name: "connectors",
        description: "Each connector's newest status.",
        table: "connector_status_latest",
        inner: "device_id AS l_connector, argMax(station_id, observed_at) AS l_station, \
                argMax(connector_id, observed_at) AS l_connector_id, argMax(site, observed_at) AS l_site, \
                argMax(status, observed_at) AS l_status, argMax(error_code, observed_at) AS l_error_code, \
                max(observed_at) AS l_at",
        group_by: "device_id",
        outer: "l_connector AS connector, l_station AS station, l_connector_id AS connector_id, l_site AS site, \
                l_status AS status, l_error_code AS error_code, toDateTime(l_at, 'UTC') AS observed_at",
        outer_where: "",
        order_by: "site, station, connector_id, connector",
        filters: &[
            eq("site", "l_site"),
            eq("station", "l_station"),
            eq("status", "l_status"),
        ],
    },
    View {
        name: "parking",
        description: "Each lot's newest occupancy.",
        table: "parking_site_latest",
        inner: "site_id AS l_site, argMax(village, observed_at) AS l_village, \
                argMax(total_spots, observed_at) AS l_total, argMax(occupied, observed_at) AS l_occupied, \
                argMax(available, observed_at) AS l_available, argMax(ev_total, observed_at) AS l_ev_total, \
                argMax(ev_occupied, observed_at) AS l_ev_occupied, argMax(status, observed_at) AS l_status, \
                max(observed_at) AS l_at",
        group_by: "site_id",
        outer: "l_site AS site, l_village AS village, l_total AS total_spots, l_occupied AS occupied, \
                l_available AS available, l_occupied / greatest(l_total, 1) AS occupancy, \
                l_ev_total AS ev_total, l_ev_occupied AS ev_occupied, l_status AS status, \
                toDateTime(l_at, 'UTC') AS observed_at",
        outer_where: "",
        order_by: "village, site",
        filters: &[
            eq("village", "l_village"),
            eq("site", "l_site"),
            eq("status", "l_status"),
        ],
    },
    View {
        name: "vehicles",
        description: "Each vehicle's last position.",
        table: "vehicle_latest",
        inner: "vehicle_id AS l_vehicle, argMax(role, observed_at) AS l_role, argMax(device_id, observed_at) AS l_device, \
                argMax(latitude, observed_at) AS l_lat, argMax(longitude, observed_at) AS l_lon, \
                argMax(speed_kmh, observed_at) AS l_speed, argMax(heading_deg, observed_at) AS l_heading, \
                argMax(service_status, observed_at) AS l_service, max(observed_at) AS l_at",
        group_by: "vehicle_id",
        outer: "l_vehicle AS vehicle, l_role AS role, l_device AS device, l_lat AS latitude, l_lon AS longitude, \
                l_speed AS speed_kmh, l_heading AS heading_deg, l_service AS service_status, \
                toDateTime(l_at, 'UTC') AS observed_at",
        outer_where: "",
        order_by: "role, vehicle",
        filters: &[eq("role", "l_role"), eq("vehicle", "l_vehicle")],
    },
    View {
        name: "bins",
        description: "Each bin's newest fill level.",
        table: "bin_latest",
        inner: "bin_id AS l_bin, argMax(village, observed_at) AS l_village, argMax(waste_class, observed_at) AS l_class, \
                argMax(fill_level, observed_at) AS l_fill, argMax(status, observed_at) AS l_status, \
                max(observed_at) AS l_at",
        group_by: "bin_id",
        outer: "l_bin AS bin, l_village AS village, l_class AS waste_class, l_fill AS fill_level, \
                l_status AS status, toDateTime(l_at, 'UTC') AS observed_at",
        outer_where: "",
        order_by: "fill_level DESC, bin",
        filters: &[
            eq("village", "l_village"),
            eq("waste_class", "l_class"),
            eq("status", "l_status"),
            Filter {
                name: "min_fill",
                column: "l_fill",
                kind: FilterKind::AtLeast,
            },
        ],
    },
    View {
        name: "requests",
        description: "Open service requests (latest transition neither resolved nor closed), oldest first.",
        table: "raw_service_request FINAL",
        inner: "request_id AS l_request, argMax(transition, toUInt64(observed_at) * 1000 + observed_ms) AS l_state, \
                argMax(department, toUInt64(observed_at) * 1000 + observed_ms) AS l_department, \
                argMax(village, toUInt64(observed_at) * 1000 + observed_ms) AS l_village, \
                argMax(category, toUInt64(observed_at) * 1000 + observed_ms) AS l_category, \
                min(observed_at) AS l_created, max(expected_by) AS l_expected, max(observed_at) AS l_at",
        group_by: "request_id",
        outer: "l_request AS request, l_state AS state, l_department AS department, l_village AS village, \
                l_category AS category, toDateTime(l_created, 'UTC') AS created_at, \
                toDateTime(l_expected, 'UTC') AS expected_by, \
                toUInt8(isNotNull(l_expected) AND assumeNotNull(l_expected) < now()) AS overdue, \
                toDateTime(l_at, 'UTC') AS updated_at",
        outer_where: " AND l_state NOT IN ('resolved', 'closed')",
        order_by: "created_at, request",
        filters: &[
            eq("village", "l_village"),
            eq("department", "l_department"),
            eq("category", "l_category"),
            eq("state", "l_state"),
        ],
    },
];
