//! Late data (issue #16, item 5): a connector status that arrives after a
//! later status of the same connector was stored still splits the interval
//! it falls in. `charger_utilisation` counts the intervals of the event-time
//! order, whatever order the events arrived in.
//!
//! Eight connectors report status changes over three days. About a sixth of
//! the events (at least 10 %) are held back and sent only after the sink has
//! stored all the others, through the real ingest → Kafka → sink →
//! ClickHouse → query API. The expected seconds are computed here from the
//! events themselves: each status lasts until the connector's next event in
//! event time, split at bucket boundaries; a connector's last event has no
//! end yet and is not counted (the documented rule, see the catalog).

#[allow(unused_imports)]
mod support;

use citybrain_proto::events::v1::{self as ev, Event, event::Payload};
use citybrain_query::config::Limits;
use citybrain_tests::{
    RunningIngest, RunningSink, TestTopics, ingest_all, ingest_config, scratch_dir, sink_config,
    stack_brokers, stack_clickhouse_url, unique_prefix, write_key_file,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

const CONNECTORS: usize = 8;
const DAYS: i64 = 3;
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// Stored names of the statuses the connectors move between.
const STATUSES: &[&str] = &[
    "available",
    "preparing",
    "charging",
    "suspended_ev",
    "finishing",
    "faulted",
    "unavailable",
];
/// How long the sink may take to store a phase.
const STORED_WITHIN: Duration = Duration::from_secs(120);

/// One status change of one connector.
#[derive(Debug, Clone)]
struct Change {
    connector: usize,
    at: i64,
    status: &'static str,
    late: bool,
}

fn device(connector: usize) -> String {
    format!("LD-CP-{connector:02}:1")
}

fn site(connector: usize) -> &'static str {
    ["north", "south"][connector % 2]
}

/// 00:00 UTC five days ago: every bucket of the three days is closed, and
/// ingest takes events up to 30 days old.
fn day0() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now / DAY - 5) * DAY
}

/// A small deterministic generator (SplitMix64), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every connector's changes over the three days (and a little after, so the
/// last day's intervals end): a change every 5 minutes to 3 hours. Some are
/// marked late, among them connector 0's first event (it then starts the
/// connector's history after everything else is stored) and events whose
/// neighbours lie on other days.
fn history(day0: i64) -> Vec<Change> {
    let mut rng = Rng(0x1a7e_da7a);
    let mut changes = Vec::new();
    for connector in 0..CONNECTORS {
        let mut at = day0 + rng.below(2 * HOUR as u64) as i64;
        let mut status = STATUSES[rng.below(STATUSES.len() as u64) as usize];
        let mut first = true;
        while at < day0 + DAYS * DAY + 4 * HOUR {
            let late = (first && connector == 0) || rng.below(100) < 16;
            changes.push(Change {
                connector,
                at,
                status,
                late,
            });
            first = false;
            at += 300 + rng.below(3 * HOUR as u64 - 300) as i64;
            let next = STATUSES[rng.below(STATUSES.len() as u64 - 1) as usize];
            status = if next == status {
                STATUSES[STATUSES.len() - 1]
            } else {
                next
            };
        }
    }
    changes
}

/// Seconds per (connector, bucket start, status) over `[from, to)`: each
/// change lasts until the connector's next change in event time, split at
/// `bucket` boundaries; the last change of a connector is not counted.
fn expected_seconds(
    changes: &[Change],
    bucket: i64,
    from: i64,
    to: i64,
) -> BTreeMap<(String, i64), BTreeMap<&'static str, i64>> {
    let mut out: BTreeMap<(String, i64), BTreeMap<&'static str, i64>> = BTreeMap::new();
    for connector in 0..CONNECTORS {
        let mut own: Vec<&Change> = changes
            .iter()
            .filter(|c| c.connector == connector)
            .collect();
        own.sort_by_key(|c| c.at);
        for pair in own.windows(2) {
            let (mut a, b) = (pair[0].at.max(from), pair[1].at.min(to));
            while a < b {
                let start = a - a.rem_euclid(bucket);
                let end = (start + bucket).min(b);
                *out.entry((device(connector), start))
                    .or_default()
                    .entry(pair[0].status)
                    .or_insert(0) += end - a;
                a = end;
            }
        }
    }
    out
}

fn event(change: &Change) -> Event {
    let status = format!(
        "CONNECTOR_STATUS_VALUE_{}",
        change.status.to_ascii_uppercase()
    );
    let error_code = if change.status == "faulted" {
        ev::ChargePointErrorCode::GroundFailure
    } else {
        ev::ChargePointErrorCode::NoError
    };
    Event {
        // Set here, so that a resend after RETRYABLE is recognised.
        event_id: uuid::Uuid::new_v4().to_string(),
        device_id: device(change.connector),
        observed_at: Some(prost_types::Timestamp {
            seconds: change.at,
            nanos: 0,
        }),
        seq_no: None,
        location: None,
        observed_at_assumed: false,
        payload: Some(Payload::ConnectorStatus(ev::ConnectorStatus {
            station_id: format!("LD-CP-{:02}", change.connector),
            evse_id: 1,
            connector_id: 1,
            status: ev::ConnectorStatusValue::from_str_name(&status)
                .unwrap_or_else(|| panic!("{status}"))
                .into(),
            error_code: error_code.into(),
            site: site(change.connector).into(),
            ..Default::default()
        })),
    }
}

/// Sends `changes` (in event-time order) and waits until the sink stored
/// `total` rows and its INSERTs returned.
async fn send_and_store(
    ingest: &RunningIngest,
    sink: &RunningSink,
    db: &TestDatabase,
    changes: &[&Change],
    total: u64,
) {
    let mut changes = changes.to_vec();
    changes.sort_by_key(|c| c.at);
    ingest_all(ingest, KEY_A, changes.iter().copied().map(event).collect()).await;
    let sql = format!("SELECT count() FROM {}.raw_connector_status", db.name);
    eventually(
        STORED_WITHIN,
        &format!("{total} connector statuses stored"),
        || async {
            db.client()
                .query(&sql)
                .fetch_one::<u64>()
                .await
                .is_ok_and(|n| n >= total)
                && sink.rows_inserted().await >= total
        },
    )
    .await;
}

/// The API's seconds per (connector, bucket start) for `charging`,
/// `faulted` and all statuses.
async fn answered(
    service: &Service,
    bucket: &str,
    from: i64,
    to: i64,
) -> BTreeMap<(String, i64), [i64; 3]> {
    let t = service
        .table(
            &format!(
                "/v1/aggregates/charger_utilisation?from={from}&to={to}&bucket={bucket}&group_by=connector"
            ),
            KEY_A,
        )
        .await;
    records(&t)
        .into_iter()
        .map(|r| {
            let start = citybrain_query::time::parse(r["bucket_start"].as_str().unwrap()).unwrap();
            let seconds = ["charging_seconds", "faulted_seconds", "observed_seconds"]
                .map(|m| r[m].as_i64().unwrap_or_else(|| panic!("{m}: {r:?}")));
            (
                (r["connector"].as_str().unwrap().to_string(), start),
                seconds,
            )
        })
        .collect()
}

fn as_measures(
    expected: BTreeMap<(String, i64), BTreeMap<&'static str, i64>>,
) -> BTreeMap<(String, i64), [i64; 3]> {
    expected
        .into_iter()
        .map(|(key, per_status)| {
            let get = |s: &str| per_status.get(s).copied().unwrap_or(0);
            (
                key,
                [get("charging"), get("faulted"), per_status.values().sum()],
            )
        })
        .collect()
}

/// The keys whose values differ (or that only one side has).
fn differing(
    got: &BTreeMap<(String, i64), [i64; 3]>,
    want: &BTreeMap<(String, i64), [i64; 3]>,
) -> Vec<String> {
    let keys: BTreeSet<_> = got.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            format!(
                "{} {}: got {:?}, expected {:?} [charging, faulted, observed]",
                k.0,
                citybrain_query::time::format(k.1),
                got.get(k),
                want.get(k)
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_status_counts_event_time_order_whatever_the_arrival_order() {
    let day0 = day0();
    let changes = history(day0);
    let (on_time, late): (Vec<&Change>, Vec<&Change>) = changes.iter().partition(|c| !c.late);
    let share = late.len() as f64 / changes.len() as f64;
    assert!(
        share >= 0.10,
        "only {:.1} % of the events are late",
        share * 100.0
    );
    // Late events that split an interval of stored ones, not only extend
    // the end: what the old chaining got wrong.
    let splits = late
        .iter()
        .filter(|l| {
            on_time
                .iter()
                .any(|o| o.connector == l.connector && o.at < l.at)
        })
        .count();
    assert!(
        splits > late.len() / 2,
        "{splits} of {} late events split an interval",
        late.len()
    );

    let (brokers, url, prefix) = (stack_brokers(), stack_clickhouse_url(), unique_prefix());
    let db = TestDatabase::migrated(&url, "late_data").await;
    let _topics = TestTopics::pipeline(&brokers, &prefix, 2).await;
    let keys = write_key_file(&scratch_dir("late-data-ingest"));
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, keys)).await;
    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &db.name)).await;

    // Phase 1: everything on time, stored. Phase 2: the late events.
    send_and_store(&ingest, &sink, &db, &on_time, on_time.len() as u64).await;
    send_and_store(&ingest, &sink, &db, &late, changes.len() as u64).await;
    sink.shutdown().await.expect("sink stops cleanly");
    ingest.shutdown().await.expect("ingest stops cleanly");

    let mut config = config(&url, &db.name);
    config.limits = Limits {
        max_rows: 5_000,
        ..Limits::default()
    };
    let service = Service::start(config).await;
    let (from, to) = (day0, day0 + DAYS * DAY);

    let want = as_measures(expected_seconds(&changes, DAY, from, to));
    assert_eq!(
        want.len(),
        CONNECTORS * DAYS as usize,
        "every connector-day"
    );
    let got = answered(&service, "day", from, to).await;
    let wrong = differing(&got, &want);
    eprintln!(
        "{} events ({} late, {:.1} %): {} of {} connector-days differ from the events' own time in status",
        changes.len(),
        late.len(),
        share * 100.0,
        wrong.len(),
        want.len()
    );
    assert!(wrong.is_empty(), "connector-days:\n{}", wrong.join("\n"));

    // Hour buckets split the same intervals at every hour.
    let want = as_measures(expected_seconds(&changes, HOUR, from, to));
    let got = answered(&service, "hour", from, to).await;
    let wrong = differing(&got, &want);
    assert!(
        wrong.is_empty(),
        "{} of {} connector-hours differ:\n{}",
        wrong.len(),
        want.len(),
        wrong.join("\n")
    );

    // A range that starts inside intervals counts only their part in it:
    // the middle day alone, from noon to noon.
    let (from, to) = (day0 + DAY + 12 * HOUR, day0 + 2 * DAY + 12 * HOUR);
    let want = as_measures(expected_seconds(&changes, DAY, from, to));
    let got = answered(&service, "day", from, to).await;
    let wrong = differing(&got, &want);
    assert!(wrong.is_empty(), "noon to noon:\n{}", wrong.join("\n"));

    service.stop().await;
}
