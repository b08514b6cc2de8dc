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
use citybrain_query::config::{ClickHouseConfig as QueryClickHouse, Limits, QueryConfig};
use citybrain_simulator::client::{Counters, IngestClient};
use citybrain_simulator::clock::{self, DAY, HOUR, MINUTE};
use citybrain_simulator::{Town, TownConfig};
use citybrain_tests::*;
use clickhouse::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

fn clickhouse(url: &str) -> Client {
    Client::default().with_url(url).with_validation(false)
}

async fn number(client: &Client, sql: &str) -> u64 {
    client
        .query_raw(&format!("SELECT toUInt64(ifNull(({sql}), 0))"))
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// The real sink binary, built next to this test (`cargo test` builds the
/// workspace's binaries; `make test-cluster` builds it first).
fn sink_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("citybrain-sink");
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p citybrain-sink --bin citybrain-sink",
        bin.display()
    );
    bin
}

/// A sink process: SIGKILL is a crash (no flush, no commit, no leaving the
/// group).
struct SinkProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl SinkProcess {
    fn spawn(name: &str, brokers: &str, prefix: &str, url: &str, db: &str, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(sink_binary())
            .env("CITYBRAIN_KAFKA_BROKERS", brokers)
            .env("CITYBRAIN_TOPIC_PREFIX", prefix)
            .env("CITYBRAIN_SINK_GROUP_ID", format!("{prefix}sink"))
            .env("CITYBRAIN_CLICKHOUSE_URL", url)
            .env("CITYBRAIN_CLICKHOUSE_DATABASE", db)
            .env("CITYBRAIN_CLICKHOUSE_CLUSTER", CLUSTER)
            .env("CITYBRAIN_SINK_ADMIN_ADDR", "127.0.0.1:0")
            .env("CITYBRAIN_SINK_INSERT_TIMEOUT_MS", "3000")
            .env("CITYBRAIN_SINK_BATCH_MAX_AGE_MS", "200")
            .env("CITYBRAIN_SINK_BATCH_MAX_ROWS", "2000")
            .env("CITYBRAIN_SINK_BACKOFF_INITIAL_MS", "100")
            .env("CITYBRAIN_SINK_BACKOFF_MAX_MS", "1000")
            .env(
                "RUST_LOG",
                std::env::var("SINK_CHILD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the sink binary");
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.kill_9();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- {} (last lines, newest first)", self.name);
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
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

/// A GET with the API key, answered as JSON.
async fn query_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nx-api-key: {FULL_KEY}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.contains(" 200 "), "{path}: {response}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
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

/// The query service in this process, on `url`'s Distributed tables.
async fn query_service(url: &str, db: &str, dir: &Path) -> std::net::SocketAddr {
    let config = QueryConfig {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        admin_addr: ([127, 0, 0, 1], 0).into(),
        api_keys_file: write_key_file(dir),
        production: false,
        log_json: false,
        clickhouse: QueryClickHouse::new(url, db),
        limits: Limits::default(),
    };
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (grpc, http, admin) = (
        bind().await.unwrap(),
        bind().await.unwrap(),
        bind().await.unwrap(),
    );
    let addr = http.local_addr().unwrap();
    tokio::spawn(citybrain_query::serve(
        config,
        grpc,
        http,
        admin,
        std::future::pending(),
    ));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts ZooKeeper, two ClickHouse servers and sink processes: make test-cluster"]
async fn two_ingests_three_sinks_two_replicas_survive_a_killed_sink_and_a_stopped_replica() {
    let started = Instant::now();
    cluster_script(&["up"]).await;
    let replicas = REPLICA_URLS.map(clickhouse);
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
    create_pipeline_topics(&brokers, &prefix, PARTITIONS).await;
    let dir = scratch_dir("scale-out");
    let keys = write_key_file(&dir);
    let ingests = [
        RunningIngest::start(ingest_config(&brokers, &prefix, keys.clone())).await,
        RunningIngest::start(ingest_config(&brokers, &prefix, keys)).await,
    ];

    let mut sinks: Vec<SinkProcess> = [("sink-1", 0), ("sink-2", 1), ("sink-3", 0)]
        .into_iter()
        .map(|(name, replica)| {
            SinkProcess::spawn(name, &brokers, &prefix, REPLICA_URLS[replica], &db, &dir)
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
    sinks.push(SinkProcess::spawn(
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
        sinks[1..].iter_mut().all(SinkProcess::running),
        "sinks 2, 3 and 4 live on"
    );

    // Every event once in each replica's raw storage (no FINAL: what the
    // roll-ups saw), and nothing else.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (replica, client) in replicas.iter().enumerate() {
        for (kind, n) in &expected {
            let table = citybrain_schema::raw_table(*kind);
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
            let table = format!("{db}.{}_local", citybrain_schema::raw_table(*kind));
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
        let http = query_service(url, &db, &dir).await;
        for (metric, measure, kind) in [
            ("parking_occupancy", "reports", Kind::ParkingSiteCounts),
            ("vehicle_distance", "positions", Kind::VehiclePosition),
            ("patrol_compliance", "check_ins", Kind::PatrolCheckIn),
        ] {
            let answer = query_json(
                http,
                &format!("/v1/aggregates/{metric}?from={from}&to={to}&bucket=hour"),
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
        let answer = query_json(
            http,
            &format!(
                "/v1/aggregates/charger_utilisation?from={from}&to={to}&bucket=hour&group_by=none"
            ),
        )
        .await;
        assert_eq!(
            column_sum(&answer, "observed_seconds"),
            seconds_in_status(&events),
            "replica {}: charger_utilisation.observed_seconds through the query service",
            replica + 1
        );
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
