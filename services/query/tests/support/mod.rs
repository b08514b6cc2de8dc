//! Shared set-up for the query service tests: the known data set sent by
//! both tenants through the real pipeline (ingest → Kafka → sink →
//! ClickHouse, where the real materialized views fill the roll-ups and
//! latest-state tables) once per test binary, a fresh migrated database for
//! tests that need data of their own, the service on port 0, and small HTTP
//! and gRPC clients.

#![allow(dead_code)]

pub mod dataset;
pub mod pipeline;

pub use pipeline::shared_database;

use citybrain_proto::query::v1 as pb;
use citybrain_query::config::{Limits, QueryConfig};
use clickhouse::Client;
use serde_json::Value as J;
use std::{
    sync::LazyLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

// The query service reads the key file ingest reads: the same keys, so the
// tenant that sent the events is the tenant that asks.
pub use citybrain_tests::{FULL_KEY as KEY_A, OTHER_TENANT_KEY as KEY_B, TENANT as TENANT_A};
pub use citybrain_tests::{RunningQuery as Service, TestDatabase, eventually, http::enc, with_key};

/// 00:00:00 UTC on the Monday of the week that began 7 to 13 days ago:
/// old enough that every bucket of the data set is closed and nothing is in
/// the future, young enough for ingest's 30-day limit and any retention.
pub fn t0() -> i64 {
    static T0: LazyLock<i64> = LazyLock::new(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let day = (now - 7 * 86_400).div_euclid(86_400);
        // 1970-01-01 was a Thursday: days since the last Monday.
        let since_monday = (day + 3).rem_euclid(7);
        (day - since_monday) * 86_400
    });
    *T0
}

/// `YYYY-MM-DDThh:mm:ssZ` of `t0() + offset`, as the API writes times.
pub fn at(offset: i64) -> String {
    citybrain_query::time::format(t0() + offset)
}

/// The first day of t0's month, as the API writes times.
pub fn month_of_t0() -> String {
    format!("{}01T00:00:00Z", &at(0)[..8])
}

pub fn clickhouse_url() -> String {
    citybrain_tests::stack_clickhouse_url()
}

pub fn admin_client() -> Client {
    citybrain_tests::clickhouse::client(&clickhouse_url())
}

/// Limits small enough for the tests to reach.
pub fn test_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(1),
        max_rows: 20,
        max_export_rows: 5,
        max_buckets: 300,
        max_track_points: 50,
        max_top_n: 5,
        ..Limits::default()
    }
}

pub fn config(url: &str, database: &str) -> QueryConfig {
    let keys = citybrain_tests::write_key_file(&citybrain_tests::scratch_dir("query"));
    let mut config = citybrain_tests::query_config(url, database, keys);
    config.limits = test_limits();
    config
}

/// Rows of a table answer as objects keyed by column name.
pub fn records(table: &J) -> Vec<serde_json::Map<String, J>> {
    let names: Vec<String> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            names
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// The record whose `column` equals `value`.
pub fn find<'a>(
    rows: &'a [serde_json::Map<String, J>],
    column: &str,
    value: &str,
) -> &'a serde_json::Map<String, J> {
    rows.iter()
        .find(|r| r[column] == value)
        .unwrap_or_else(|| panic!("no row with {column}={value} in {rows:?}"))
}

pub fn close(actual: &J, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual} is not a number"));
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: got {actual}, expected {expected}"
    );
}

/// A gRPC timestamp `offset` seconds after t0.
pub fn ts(offset: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t0() + offset,
        nanos: 0,
    })
}

/// Rows of a gRPC table as objects keyed by column name, with values as the
/// HTTP API writes them (times as `YYYY-MM-DDThh:mm:ssZ`), so the same
/// expectations apply to both APIs.
pub fn grpc_records(table: &pb::Table) -> Vec<serde_json::Map<String, J>> {
    use pb::value::Kind;
    table
        .rows
        .iter()
        .map(|row| {
            assert_eq!(row.values.len(), table.columns.len(), "{table:?}");
            table
                .columns
                .iter()
                .zip(&row.values)
                .map(|(column, value)| {
                    let value = match &value.kind {
                        None => J::Null,
                        Some(Kind::StringValue(s)) => J::from(s.as_str()),
                        Some(Kind::IntValue(i)) => J::from(*i),
                        Some(Kind::FloatValue(f)) => J::from(*f),
                        Some(Kind::TimeValue(t)) => {
                            J::from(citybrain_query::time::format(t.seconds))
                        }
                    };
                    (column.name.clone(), value)
                })
                .collect()
        })
        .collect()
}
