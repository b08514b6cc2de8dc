//! Every metric the sink exports, in one place.
//!
//! Label values come from fixed sets (tables, kinds, reasons) or from the
//! deployment's own topics and partition numbers, never from message content.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const ROWS_INSERTED: &str = "citybrain_sink_rows_inserted_total";
pub const MESSAGES_SKIPPED: &str = "citybrain_sink_messages_skipped_total";
pub const DEAD_LETTERS: &str = "citybrain_sink_dead_letters_total";
pub const BATCH_ROWS: &str = "citybrain_sink_batch_rows";
pub const BATCH_BYTES: &str = "citybrain_sink_batch_bytes";
pub const INSERT_DURATION: &str = "citybrain_sink_insert_duration_seconds";
pub const FLUSH_FAILURES: &str = "citybrain_sink_flush_failures_total";
pub const FRESHNESS: &str = "citybrain_sink_freshness_seconds";
pub const CONSUMER_LAG: &str = "citybrain_sink_consumer_lag_messages";
pub const CLICKHOUSE_UP: &str = "citybrain_sink_clickhouse_up";
pub const REBALANCES: &str = "citybrain_sink_rebalances_total";
pub const ASSIGNED_PARTITIONS: &str = "citybrain_sink_assigned_partitions";
pub const REWINDS: &str = "citybrain_sink_fetch_rewinds_total";

/// Histogram buckets by metric-name suffix.
pub const BUCKETS: &[(&str, &[f64])] = &[
    (
        INSERT_DURATION,
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
    (
        BATCH_ROWS,
        &[
            1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0, 100000.0, 500000.0,
        ],
    ),
    (BATCH_BYTES, &[1e3, 1e4, 1e5, 1e6, 4e6, 16e6, 64e6]),
    // Event time to insert: seconds for live data, days for late data.
    (
        FRESHNESS,
        &[
            0.1,
            0.25,
            0.5,
            1.0,
            2.0,
            5.0,
            10.0,
            30.0,
            60.0,
            300.0,
            3600.0,
            86400.0,
            2_592_000.0,
        ],
    ),
];

pub fn rows_inserted(table: &'static str, rows: usize, took: Duration) {
    counter!(ROWS_INSERTED, "table" => table).increment(rows as u64);
    histogram!(INSERT_DURATION, "table" => table).record(took.as_secs_f64());
}

/// A redelivered message whose row ClickHouse already holds.
pub fn skipped_already_stored() {
    counter!(MESSAGES_SKIPPED, "reason" => "already_stored").increment(1);
}

/// Messages whose event id was already stored (the same event sent twice).
pub fn skipped_repeated_event(count: usize) {
    counter!(MESSAGES_SKIPPED, "reason" => "repeated_event_id").increment(count as u64);
}

pub fn dead_lettered(reason: &'static str) {
    counter!(DEAD_LETTERS, "reason" => reason).increment(1);
}

pub fn batch_written(rows: usize, bytes: usize) {
    histogram!(BATCH_ROWS).record(rows as f64);
    histogram!(BATCH_BYTES).record(bytes as f64);
}

/// A flush that must be retried: `stage` is `dead_letter`, `lookup`,
/// `broker_metadata` or `insert`.
pub fn flush_failed(stage: &'static str) {
    counter!(FLUSH_FAILURES, "stage" => stage).increment(1);
}

pub fn freshness(kind: &'static str, seconds: f64) {
    histogram!(FRESHNESS, "kind" => kind).record(seconds.max(0.0));
}

pub fn consumer_lag(topic: &str, partition: i32, lag: i64) {
    gauge!(CONSUMER_LAG, "topic" => topic.to_string(), "partition" => partition.to_string())
        .set(lag as f64);
}

pub fn clickhouse_up(up: bool) {
    gauge!(CLICKHOUSE_UP).set(if up { 1.0 } else { 0.0 });
}

pub fn rebalanced(kind: &'static str) {
    counter!(REBALANCES, "kind" => kind).increment(1);
}

/// A fetch skipped ahead of the expected offset and was sought back.
pub fn rewound() {
    counter!(REWINDS).increment(1);
}

/// Partitions this instance owns; `instance` is its Kafka client id, so
/// the members of a group can be told apart.
pub fn assigned_partitions(instance: &str, count: usize) {
    gauge!(ASSIGNED_PARTITIONS, "instance" => instance.to_string()).set(count as f64);
}

/// Creates the labelled series up front, so dashboards show 0 instead of no data.
pub fn register(tables: &[&'static str], reasons: &[&'static str]) {
    for table in tables {
        counter!(ROWS_INSERTED, "table" => *table).increment(0);
    }
    for reason in reasons {
        counter!(DEAD_LETTERS, "reason" => *reason).increment(0);
    }
    counter!(MESSAGES_SKIPPED, "reason" => "already_stored").increment(0);
    counter!(MESSAGES_SKIPPED, "reason" => "repeated_event_id").increment(0);
}
