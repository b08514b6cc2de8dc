//! Scale-out on a replicated ClickHouse, for real, on this machine.
//!
//! ZooKeeper and two ClickHouse 18.16 servers as replicas of one shard
//! (`deploy/local/cluster.sh up`), the cluster schema applied (`Replicated*`
//! storage, `Distributed` tables, `ON CLUSTER`), a private Tansu broker in
//! memory with 6 partitions per topic, two in-process ingest services and
//! three sink *processes* (the real binary: sink 1 and 3 on replica 1, sink 2
//! on replica 2). The simulator's town streams through both ingests; during
//! the stream sink 1 is killed with SIGKILL (and replaced by sink 4 on
//! replica 2), then replica 2 is stopped and started again. At the end every event ingest acknowledged is in the raw
//! tables exactly once and in the roll-ups once, on both replicas, and the
//! query service answers the same through the Distributed tables of either
//! server.
//!
//! Ignored by the plain `cargo test` (it starts servers of its own and takes
//! a few minutes on 2 cores); `make test-cluster`, part of `make test`, runs
//! it: `cargo test -p citybrain-tests --test scale_out -- --ignored`.

use citybrain_proto::events::v1::Event;
use citybrain_simulator::client::{Counters, IngestClient};
use citybrain_simulator::clock::{self, DAY, HOUR, MINUTE};
use citybrain_simulator::{Town, TownConfig};
use citybrain_tests::clickhouse::Client;
use citybrain_tests::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const CLUSTER: &str = "citybrain";
const REPLICA_URLS: [&str; 2] = ["http://127.0.0.1:38123", "http://127.0.0.1:38124"];
const PARTITIONS: i32 = 6;
/// Events streamed (the first this many of the town's last hours).
const EVENTS: usize = 48_000;
/// How long the stream lasts, roughly: events go out in steady chunks.
const STREAM: Duration = Duration::from_secs(48);
const CHUNK: usize = 250;

/// Runs `deploy/local/cluster.sh args` off the runtime's threads (stopping a
/// replica takes ~20 s; the stream must go on meanwhile).
async fn cluster_script(args: &'static [&'static str]) {
    tokio::task::spawn_blocking(move || cluster_script_blocking(args))
        .await
        .expect("cluster.sh task");
}

fn cluster_script_blocking(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/cluster.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .expect("run cluster.sh");
    assert!(status.success(), "deploy/local/cluster.sh {args:?} failed");
}

async fn number(client: &Client, sql: &str) -> u64 {
    citybrain_tests::clickhouse::number(client, sql).await as u64
}

/// A sink process on the replica at `url`: SIGKILL is a crash (no flush,
/// no commit, no leaving the group).
fn spawn_sink(
    name: &str,
    brokers: &str,
    prefix: &str,
    url: &str,
    db: &str,
    dir: &Path,
) -> ChildProcess {
    let mut config = sink_config(brokers, url, prefix, db);
    config.store.cluster = Some(CLUSTER.into());
    config.batch.max_rows = 2000;
    process::spawn_service(name, &process::binary("citybrain-sink"), &config, dir)
}

/// Where the streamed part of the town's history starts: 06:00 (local) of
/// the latest day before today that is not a Sunday, so the window holds a
/// working day (patrols have no Sunday shifts) and lies wholly in the past.
fn town_origin(now: clock::Millis) -> clock::Millis {
    let mut day = clock::local_midnight(now) - DAY;
    while clock::local_weekday_is_sunday(day + 12 * HOUR) {
        day -= DAY;
    }
    day + 6 * HOUR
}

/// The town's first `n` events from `origin`, all before `now`.
fn town_events(origin: clock::Millis, now: clock::Millis, n: usize) -> Vec<Event> {
    let events: Vec<Event> = Town::new(TownConfig {
        seed: 6,
        origin,
        scale: 3.0,
    })
    .take_while(|e| clock::from_timestamp(e.observed_at.as_ref().unwrap()) < now - MINUTE)
    .take(n)
    .collect();
    assert_eq!(
        events.len(),
        n,
        "the town made only {} events",
        events.len()
    );
    events
}

fn per_kind(events: &[Event]) -> BTreeMap<Kind, u64> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts
            .entry(Kind::of(event.payload.as_ref().unwrap()))
            .or_insert(0) += 1;
    }
    counts
}

/// Seconds with a known status, summed over the connectors: each status
/// lasts until the connector's next event in event time (whole seconds); a
/// connector's last status is open and not counted.
fn seconds_in_status(events: &[Event]) -> u64 {
    use citybrain_proto::events::v1::event::Payload;
    let mut by_device: BTreeMap<&str, Vec<(i64, i32)>> = BTreeMap::new();
    for event in events {
        if let Some(Payload::ConnectorStatus(_)) = &event.payload {
            let at = event.observed_at.as_ref().unwrap();
            by_device
                .entry(&event.device_id)
                .or_default()
                .push((at.seconds, at.nanos));
        }
    }
    by_device
        .into_values()
        .map(|mut times| {
            times.sort();
            times
                .windows(2)
                .map(|w| (w[1].0 - w[0].0) as u64)
                .sum::<u64>()
        })
        .sum()
}

/// The sum of column `measure` over every row of an aggregate answer.
fn column_sum(answer: &serde_json::Value, measure: &str) -> u64 {
    let columns = answer["columns"].as_array().expect("columns");
    let at = columns
        .iter()
        .position(|c| c["name"] == measure)
        .unwrap_or_else(|| panic!("no {measure} in {answer}"));
    answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row[at].as_f64().unwrap_or(0.0) as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts ZooKeeper, two ClickHouse servers and sink processes: make test-cluster"]
async fn two_ingests_three_sinks_two_replicas_survive_a_killed_sink_and_a_stopped_replica() {
    let started = Instant::now();
    cluster_script(&["up"]).await;
    let replicas = REPLICA_URLS.map(citybrain_tests::clickhouse::client);
    let db = format!(
        "test_scale_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut schema = citybrain_schema::SchemaOptions::new(&db);
    schema.cluster = Some(CLUSTER.into());
    citybrain_schema::migrate(&replicas[0], &schema)
        .await
        .expect("cluster schema");
    eprintln!("[{:>5.1?}] cluster schema applied", started.elapsed());

    let broker = PrivateBroker::start(BrokerStorage::Memory).await;
    let brokers = broker.brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::pipeline(&brokers, &prefix, PARTITIONS).await;
    let dir = scratch_dir("scale-out");
    let keys = write_key_file(&dir);
    let ingests = [
        RunningIngest::start(ingest_config(&brokers, &prefix, keys.clone())).await,
        RunningIngest::start(ingest_config(&brokers, &prefix, keys)).await,
    ];

    let mut sinks: Vec<ChildProcess> = [("sink-1", 0), ("sink-2", 1), ("sink-3", 0)]
        .into_iter()
        .map(|(name, replica)| {
            spawn_sink(name, &brokers, &prefix, REPLICA_URLS[replica], &db, &dir)
        })
        .collect();

    let now = clock::from_system(SystemTime::now());
    let origin = town_origin(now);
    let events = town_events(origin, now, EVENTS);
    let expected = per_kind(&events);
    for kind in [
        Kind::ParkingSiteCounts,
        Kind::VehiclePosition,
        Kind::PatrolCheckIn,
        Kind::ServiceRequest,
    ] {
        assert!(
            expected.contains_key(&kind),
            "no {kind:?} in the stream: {expected:?}"
        );
    }
    eprintln!(
        "[{:>5.1?}] streaming {EVENTS} events through two ingests: {expected:?}",
        started.elapsed()
    );

    // The steady stream: chunks alternate between the two ingests, paced so
    // that the whole takes about STREAM. The simulator's client resends
    // RETRYABLE events with the same ids until ingest accepts them.
    let counters = std::sync::Arc::new(Counters::default());
    let clients = ingests
        .each_ref()
        .map(|ingest| IngestClient::new(&ingest.endpoint(), FULL_KEY).expect("ingest client"));
    let chunks: Vec<Vec<Event>> = events.chunks(CHUNK).map(<[Event]>::to_vec).collect();
    let pause = STREAM / chunks.len() as u32;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let stream = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let total = chunks.len();
            for (i, chunk) in chunks.into_iter().enumerate() {
                let client = clients[i % 2].clone();
                client
                    .send(chunk, &counters)
                    .await
                    .expect("ingest refused a call");
                let _ = progress_tx.send((i + 1) * 100 / total);
                tokio::time::sleep(pause).await;
            }
        })
    };
    let mut reach = async |percent: usize| {
        progress
            .wait_for(|p| *p >= percent)
            .await
            .expect("the stream ended early");
    };

    reach(25).await;
    sinks[0].kill_9();
    eprintln!(
        "[{:>5.1?}] 25% sent: killed sink-1 (replica 1) with SIGKILL",
        started.elapsed()
    );
    // Its replacement, as an orchestrator would start one, on the *other*
    // replica: sink-1's partitions move to a sink that reads what sink-1
    // wrote through replica 1. (Tansu 0.6 does not hand a SIGKILLed
    // member's partitions to the survivors: measured here, the group
    // rebalanced after the session timeout with the dead member's share
    // still assigned to it. A member joining makes it reassign everything.)
    reach(35).await;
    sinks.push(spawn_sink(
        "sink-4",
        &brokers,
        &prefix,
        REPLICA_URLS[1],
        &db,
        &dir,
    ));
    eprintln!(
        "[{:>5.1?}] 35% sent: started sink-4 on replica 2",
        started.elapsed()
    );
    reach(45).await;
    eprintln!(
        "[{:>5.1?}] 45% sent: stopping ClickHouse replica 2 (sink-2's and sink-4's server)",
        started.elapsed()
    );
    cluster_script(&["stop-replica", "2"]).await;
    eprintln!("[{:>5.1?}] replica 2 stopped", started.elapsed());
    reach(75).await;
    cluster_script(&["start-replica", "2"]).await;
    eprintln!(
        "[{:>5.1?}] 75% sent: started replica 2 again",
        started.elapsed()
    );
    stream.await.expect("stream task");
    let accepted = Counters::get(&counters.accepted);
    assert_eq!(Counters::get(&counters.rejected), 0);
    assert_eq!(Counters::get(&counters.duplicates), 0);
    assert_eq!(accepted, EVENTS as u64, "ingest acknowledged every event");
    eprintln!(
        "[{:>5.1?}] stream done: {accepted} acknowledged ({} resent after RETRYABLE)",
        started.elapsed(),
        Counters::get(&counters.retried)
    );
    assert!(
        sinks[1..].iter_mut().all(ChildProcess::is_running),
        "sinks 2, 3 and 4 live on"
    );

    // Every event once in each replica's raw storage (no FINAL: what the
    // roll-ups saw), and nothing else.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (replica, client) in replicas.iter().enumerate() {
        for (kind, n) in &expected {
            let table = kind.raw_table();
            loop {
                let rows = number(client, &format!("SELECT count() FROM {db}.{table}_local")).await;
                if rows >= *n {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {}: {rows} of {n} rows in {table}",
                    replica + 1
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    eprintln!("[{:>5.1?}] every row on both replicas", started.elapsed());
    // Let anything extra (a duplicate in flight) arrive before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (replica, client) in replicas.iter().enumerate() {
        let r = replica + 1;
        for (kind, n) in &expected {
            let table = format!("{db}.{}_local", kind.raw_table());
            assert_eq!(
                number(client, &format!("SELECT count() FROM {table}")).await,
                *n,
                "replica {r}: {table}"
            );
            assert_eq!(
                number(client, &format!("SELECT uniqExact(event_id) FROM {table}")).await,
                *n,
                "replica {r}: distinct events in {table}"
            );
        }
        // Roll-ups count each event once.
        let count = |kind: Kind| expected.get(&kind).copied().unwrap_or(0);
        for res in ["5m", "1h"] {
            for (sql, want, what) in [
                (
                    format!("SELECT countMerge(reports) FROM {db}.parking_occupancy_{res}_local"),
                    count(Kind::ParkingSiteCounts),
                    "parking reports",
                ),
                (
                    format!("SELECT countMerge(positions) FROM {db}.vehicle_movement_{res}_local"),
                    count(Kind::VehiclePosition),
                    "vehicle positions",
                ),
                (
                    format!("SELECT sum(check_ins) FROM {db}.patrol_compliance_{res}_local"),
                    count(Kind::PatrolCheckIn),
                    "patrol check-ins",
                ),
                (
                    format!("SELECT sum(transitions) FROM {db}.service_requests_{res}_local"),
                    count(Kind::ServiceRequest),
                    "request transitions",
                ),
                (
                    format!("SELECT sum(sessions_started + sessions_ended) FROM {db}.charging_energy_{res}_local"),
                    number(client, &format!(
                        "SELECT countIf(phase IN ('started', 'ended')) FROM {db}.raw_charging_session_local"
                    )).await,
                    "charging sessions",
                ),
            ] {
                assert_eq!(number(client, &sql).await, want, "replica {r}: {what} in the {res} roll-up");
            }
        }
    }
    eprintln!(
        "[{:>5.1?}] raw tables and roll-ups exact on both replicas",
        started.elapsed()
    );

    // The query service, unchanged, through each server's Distributed tables.
    let from = citybrain_query::time::format((origin - HOUR) / 1000);
    let to = citybrain_query::time::format((now + HOUR) / 1000);
    for (replica, url) in REPLICA_URLS.iter().enumerate() {
        let query = RunningQuery::start(query_config(url, &db, write_key_file(&dir))).await;
        for (metric, measure, kind) in [
            ("parking_occupancy", "reports", Kind::ParkingSiteCounts),
            ("vehicle_distance", "positions", Kind::VehiclePosition),
            ("patrol_compliance", "check_ins", Kind::PatrolCheckIn),
        ] {
            let answer = query
                .table(
                    &format!("/v1/aggregates/{metric}?from={from}&to={to}&bucket=hour"),
                    FULL_KEY,
                )
                .await;
            assert_eq!(
                column_sum(&answer, measure),
                expected.get(&kind).copied().unwrap_or(0),
                "replica {}: {metric}.{measure} through the query service",
                replica + 1
            );
        }
        // Time in status, computed at query time from the raw rows (FINAL
        // through the Distributed table), against the events as sent.
        let answer = query
            .table(
                &format!(
                    "/v1/aggregates/charger_utilisation?from={from}&to={to}&bucket=hour&group_by=none"
                ),
                FULL_KEY,
            )
            .await;
        assert_eq!(
            column_sum(&answer, "observed_seconds"),
            seconds_in_status(&events),
            "replica {}: charger_utilisation.observed_seconds through the query service",
            replica + 1
        );
        query.stop().await;
    }
    eprintln!(
        "[{:>5.1?}] the query service agrees on both servers",
        started.elapsed()
    );

    for ingest in ingests {
        ingest.shutdown().await.expect("ingest stop");
    }
    drop(sinks);
    citybrain_schema::drop_schema(&replicas[0], &schema)
        .await
        .expect("drop the test schema");
    eprintln!("[{:>5.1?}] done", started.elapsed());
}
