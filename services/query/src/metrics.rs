//! Every metric the query service exports, in one place.
//!
//! Labels come from fixed sets: the protocol, the endpoint (route family)
//! and the outcome. View and metric names are not labels; they are in logs.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const REQUESTS: &str = "citybrain_query_requests_total";
pub const REQUEST_DURATION: &str = "citybrain_query_request_duration_seconds";
pub const ROWS: &str = "citybrain_query_rows_returned_total";
pub const CLICKHOUSE_UP: &str = "citybrain_query_clickhouse_up";

/// Histogram buckets (seconds) by metric-name suffix.
pub const BUCKETS: &[(&str, &[f64])] = &[(
    REQUEST_DURATION,
    &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ],
)];

/// Route families: the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Live,
    Aggregate,
    Top,
    Track,
    Export,
    Catalog,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Live => "live",
            Endpoint::Aggregate => "aggregate",
            Endpoint::Top => "top",
            Endpoint::Track => "track",
            Endpoint::Export => "export",
            Endpoint::Catalog => "catalog",
        }
    }
}

/// `protocol` is "http" or "grpc"; `outcome` "ok" or a `QueryError::outcome`.
pub fn request_finished(
    protocol: &'static str,
    endpoint: Endpoint,
    outcome: &'static str,
    took: Duration,
) {
    let endpoint = endpoint.label();
    counter!(REQUESTS, "protocol" => protocol, "endpoint" => endpoint, "outcome" => outcome)
        .increment(1);
    histogram!(REQUEST_DURATION, "protocol" => protocol, "endpoint" => endpoint, "outcome" => outcome)
        .record(took.as_secs_f64());
}

pub fn rows_returned(endpoint: Endpoint, rows: usize) {
    counter!(ROWS, "endpoint" => endpoint.label()).increment(rows as u64);
}

pub fn clickhouse_up(up: bool) {
    gauge!(CLICKHOUSE_UP).set(if up { 1.0 } else { 0.0 });
}
