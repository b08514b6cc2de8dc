//! Time in status for `charger_utilisation`, computed when asked from the raw
//! connector-status events in **event-time order**, whatever order they
//! arrived in.
//!
//! The rule (the catalog and the README state it too):
//! - a connector's status lasts from its event until the connector's next
//!   status event by `observed_at` and `observed_ms` (ties broken by the
//!   device's `seq_no`, then by the status, so the order never depends on
//!   arrival), in whole seconds of `observed_at`, at most
//!   [`MAX_STATUS_INTERVAL_S`];
//! - a connector's newest status has no end yet and is not counted until the
//!   next event arrives (an open interval is not a measurement);
//! - an interval is split at bucket boundaries and clipped to the range;
//! - connector 0 (OCPP: the charging station as a whole) is not counted.
//!
//! Until issue #16 the sink stamped each row with the status it ended
//! (`prev_status`) from the newest *stored* status, and a materialized view
//! summed those into `charger_status_5m/1h`. A status arriving after a later
//! one was stored ended no interval and split none, so with 10 % of a day's
//! events sent late 14 of 24 connector-days were wrong. Computing the
//! intervals here, from rows deduplicated by `FINAL`, makes late data and
//! redelivery harmless, and takes the per-batch "latest status" round trip
//! out of the sink. ClickHouse 18.16 has no window functions, so each
//! connector's events are gathered into one sorted array (`groupArray`,
//! `arraySort`) and unrolled again (`ARRAY JOIN`); both servers run it.

use crate::catalog::{Bucket, Scope};
use crate::sql::Sql;

/// The longest a status counts for (7 days): a connector silent for longer
/// is not counted for the rest of the silence. Also how far before the
/// range the query looks for the status a range starts in, and how far
/// after it for the event that ends the last one.
pub const MAX_STATUS_INTERVAL_S: i64 = 7 * 86_400;

/// Where intervals are split: the bucket length for 5m and hour, whole UTC
/// days for day, week and month buckets (each of those is a union of days)
/// and for top-N (no buckets; the range clips the intervals).
fn split_step(bucket: Option<Bucket>) -> i64 {
    match bucket {
        Some(Bucket::FiveMinutes) => 300,
        Some(Bucket::Hour) => 3_600,
        Some(Bucket::Day | Bucket::Week | Bucket::Month) | None => 86_400,
    }
}

/// One row per (interval, slot of [`split_step`]) within the range: `t`
/// (the later of the slot's start and the interval's, so it falls in the
/// slot's bucket), `site`, `station_id`, `device_id`, `status` and
/// `seconds`. A connector's site and station are its newest in the rows
/// read: they do not change in practice, and carrying them with every event
/// made the query 1.5–1.9 times slower at 3,000 connectors.
pub fn charger_intervals(sql: &mut Sql, scope: &Scope<'_>) {
    let (from, to) = (scope.from, scope.to);
    let step = split_step(scope.bucket);
    sql.push(
        "SELECT toDateTime(greatest(slot, lo), 'UTC') AS t, site, station_id, device_id, status, \
         least(slot + ",
    )
    .int(step)
    .push(", hi) - greatest(slot, lo) AS seconds FROM (")
    // One row per interval that overlaps the range, clipped to it: [lo, hi)
    // in whole seconds. The last event of each connector gets end 0, so
    // hi <= lo drops it.
    .push(
        "SELECT device_id, site, station_id, e.3 AS status, \
         greatest(toInt64(intDiv(e.1, 1000)), ",
    )
    .int(from)
    .push(") AS lo, least(least(toInt64(intDiv(n, 1000)), toInt64(intDiv(e.1, 1000)) + ")
    .int(MAX_STATUS_INTERVAL_S)
    .push("), ")
    .int(to)
    .push(") AS hi FROM (")
    // Each connector's events in event-time order (milliseconds, then the
    // device's seq_no, then the status: equal keys are interchangeable), and
    // each one's end: the next event's time.
    .push(
        "SELECT device_id, argMax(site, observed_at) AS site, argMax(station_id, observed_at) AS station_id, \
         arraySort(groupArray((toUInt64(observed_at) * 1000 + observed_ms, ifNull(seq_no, 0), status))) AS ev, \
         arrayPushBack(arrayPopFront(arrayMap(x -> x.1, ev)), toUInt64(0)) AS ends FROM ",
    )
    .table(scope.database, "raw_connector_status")
    .push(" FINAL WHERE tenant_id = ")
    .str(scope.tenant)
    .push(" AND observed_at >= ")
    .time((from - MAX_STATUS_INTERVAL_S).max(0))
    .push(" AND observed_at < ")
    .time(to + MAX_STATUS_INTERVAL_S)
    // Connector 0 is a charging station as a whole (OCPP connectorId 0): its
    // status is kept (the live view shows it), but it is no connector's time.
    .push(" AND connector_id > 0")
    .push(" GROUP BY device_id) ARRAY JOIN ev AS e, ends AS n WHERE hi > lo)")
    // Split at every step boundary the interval crosses.
    .push(" ARRAY JOIN arrayMap(i -> (intDiv(lo, ")
    .int(step)
    .push(") + i) * ")
    .int(step)
    .push(", range(toUInt32(intDiv(hi - 1, ")
    .int(step)
    .push(") - intDiv(lo, ")
    .int(step)
    .push(") + 1))) AS slot");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Arg, Database};

    fn scope(database: &Database, bucket: Option<Bucket>) -> Scope<'_> {
        Scope {
            database,
            tenant: "t' --",
            from: 86_400 * 20_000,
            to: 86_400 * 20_001,
            bucket,
        }
    }

    #[test]
    fn the_range_is_widened_by_the_longest_interval_and_values_are_bound() {
        let db = Database::new("citybrain").unwrap();
        let mut sql = Sql::new();
        charger_intervals(&mut sql, &scope(&db, Some(Bucket::Hour)));
        assert!(!sql.text().contains("t'"));
        assert_eq!(sql.text().matches('?').count(), sql.args().len());
        assert!(
            sql.text()
                .contains("FROM citybrain.raw_connector_status FINAL")
        );
        let ints: Vec<i64> = sql
            .args()
            .iter()
            .filter_map(|a| match a {
                Arg::Int(i) => Some(*i),
                _ => None,
            })
            .collect();
        let (from, to) = (86_400 * 20_000, 86_400 * 20_001);
        assert!(ints.contains(&(from - MAX_STATUS_INTERVAL_S)));
        assert!(ints.contains(&(to + MAX_STATUS_INTERVAL_S)));
        assert!(ints.contains(&3_600));
    }

    #[test]
    fn intervals_split_at_the_bucket_or_at_days() {
        assert_eq!(split_step(Some(Bucket::FiveMinutes)), 300);
        assert_eq!(split_step(Some(Bucket::Hour)), 3_600);
        for bucket in [
            Some(Bucket::Day),
            Some(Bucket::Week),
            Some(Bucket::Month),
            None,
        ] {
            assert_eq!(split_step(bucket), 86_400);
        }
    }
}
