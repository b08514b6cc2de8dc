//! The gateway's end-to-end harness: the real pipeline (ingest → Kafka →
//! sink → ClickHouse, and the query service), the gateway on port 0 with a
//! registry of the test's own, real OCPP charge points (PyPI `ocpp` through
//! `tests/ocpp/charger.py`) and raw WebSocket frames for what no correct
//! client sends.
//!
//! `CITYBRAIN_OCPP_PYTHON` names the Python of a virtualenv with PyPI `ocpp`
//! and `websockets`; `make test` installs it (`tests/ocpp/install.sh`,
//! cached outside the checkout) and sets it.

#![allow(dead_code)]

use citybrain_ocpp_gateway::config::GatewayConfig;
use citybrain_ocpp_gateway::registry;
use citybrain_tests::{
    FULL_KEY, RunningIngest, RunningQuery, RunningSink, TENANT, TestDatabase, TestTopics,
    eventually, ingest_config, query_config, scratch_dir, sink_config, stack_brokers,
    stack_clickhouse_url, unique_prefix, write_key_file,
};
use clickhouse::Client;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const OCPP_PYTHON: &str = "CITYBRAIN_OCPP_PYTHON";
/// Every test station's password.
pub const PASSWORD: &str = "test-station-password-0001";
/// How long the pipeline may take to store what a charger was told is stored.
pub const STORED_WITHIN: Duration = Duration::from_secs(60);

/// One registry entry.
pub struct Spec {
    pub id: &'static str,
    pub site: &'static str,
    pub connectors: u32,
}

pub fn registry_toml(stations: &[Spec]) -> String {
    stations
        .iter()
        .map(|s| {
            format!(
                "[[stations]]\nid = \"{}\"\ntenant = \"{TENANT}\"\nsite = \"{}\"\nconnectors = {}\nsha256 = \"{}\"\nlatitude = 39.9012\nlongitude = 116.7498\n\n",
                s.id,
                s.site,
                s.connectors,
                hex::encode(registry::digest(s.id, PASSWORD))
            )
        })
        .collect()
}

/// The pipeline and a gateway, each test with its own topics and database.
pub struct Pipeline {
    pub ingest: Option<RunningIngest>,
    pub ingest_config: citybrain_ingest::config::IngestConfig,
    pub sink: RunningSink,
    pub gateway: RunningGateway,
    pub database: TestDatabase,
    pub topics: TestTopics,
    pub dir: PathBuf,
    pub registry_file: PathBuf,
}

impl Pipeline {
    pub async fn start(stations: &[Spec]) -> Self {
        Self::start_with(stations, |_| {}).await
    }

    /// Starts everything; `tune` adjusts the gateway's settings.
    pub async fn start_with(stations: &[Spec], tune: impl FnOnce(&mut GatewayConfig)) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            citybrain_runtime::init_tracing(false);
        }
        let (brokers, url, prefix) = (stack_brokers(), stack_clickhouse_url(), unique_prefix());
        let topics = TestTopics::pipeline(&brokers, &prefix, 2).await;
        let dir = scratch_dir("ocpp");
        // Ingest on a port of its own that it can come back on (outage tests).
        let mut ingest_config = ingest_config(&brokers, &prefix, write_key_file(&dir));
        ingest_config.grpc_addr = free_addr().await;
        let ingest = RunningIngest::start(ingest_config.clone()).await;
        let database = TestDatabase::named(&url, "ocpp");
        let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &database.name)).await;
        let registry_file = dir.join("stations.toml");
        std::fs::write(&registry_file, registry_toml(stations)).unwrap();
        let mut config = GatewayConfig::new(&registry_file, &ingest.endpoint());
        config.listen_addr = ([127, 0, 0, 1], 0).into();
        config.admin_addr = ([127, 0, 0, 1], 0).into();
        config.ingest_keys = vec![(TENANT.to_string(), FULL_KEY.to_string())];
        config.ingest_timeout = Duration::from_secs(5);
        config.registry_reload = Duration::from_millis(200);
        config.shutdown_timeout = Duration::from_secs(10);
        tune(&mut config);
        let gateway = RunningGateway::start(config).await;
        Self {
            ingest: Some(ingest),
            ingest_config,
            sink,
            gateway,
            database,
            topics,
            dir,
            registry_file,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ocpp", self.gateway.addr)
    }

    /// Stops ingest (the charger's messages can then not be stored).
    pub async fn stop_ingest(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.shutdown().await.expect("ingest stops cleanly");
        }
    }

    /// Starts ingest again on the same address.
    pub async fn restart_ingest(&mut self) {
        assert!(self.ingest.is_none());
        self.ingest = Some(RunningIngest::start(self.ingest_config.clone()).await);
    }

    /// Rows of `table` in the test's database (0 until the sink made it).
    pub async fn count(&self, table: &str) -> u64 {
        self.database
            .client()
            .query(&format!(
                "SELECT count() FROM {}.{table}",
                self.database.name
            ))
            .fetch_one::<u64>()
            .await
            .unwrap_or(0)
    }

    /// Waits until the sink stored `rows` rows in total across the
    /// charging tables, then a little longer to catch any extra.
    pub async fn wait_for_rows(&self, expected: &[(&str, u64)]) {
        for (table, n) in expected {
            eventually(STORED_WITHIN, &format!("{n} rows in {table}"), || async {
                self.count(table).await >= *n
            })
            .await;
        }
        let total: u64 = expected.iter().map(|(_, n)| n).sum();
        eventually(STORED_WITHIN, "the sink's INSERTs to return", || async {
            self.sink.rows_inserted().await >= total
        })
        .await;
        for (table, n) in expected {
            assert_eq!(self.count(table).await, *n, "rows in {table}");
        }
    }

    pub fn client(&self) -> Client {
        self.database.client()
    }

    pub async fn shutdown(mut self) {
        self.gateway.shutdown().await;
        self.stop_ingest().await;
        self.sink.shutdown().await.expect("sink stops cleanly");
    }
}

/// The gateway in this process.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), citybrain_ocpp_gateway::ServeError>>>,
}

impl RunningGateway {
    pub async fn start(config: GatewayConfig) -> Self {
        let listener = TcpListener::bind(config.listen_addr).await.unwrap();
        let admin = TcpListener::bind(config.admin_addr).await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(citybrain_ocpp_gateway::serve(
            config,
            listener,
            admin,
            async {
                let _ = stopped.await;
            },
        ));
        let gateway = Self {
            addr,
            admin: admin_addr,
            stop: Some(stop),
            task: Some(task),
        };
        eventually(Duration::from_secs(10), "the gateway to serve", || async {
            gateway.get("/healthz").await.0 == 200
        })
        .await;
        gateway
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let reply = citybrain_tests::http::get(self.admin, path, &[]).await;
        (reply.status, reply.body)
    }

    /// The sum of the metric's samples whose labels contain every `labels`
    /// pair (`name="value"`).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter(|line| {
                line[name.len()..].starts_with(['{', ' '])
                    && labels
                        .iter()
                        .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the gateway stops within its shutdown timeout")
                .expect("gateway task")
                .expect("serve ended cleanly");
        }
    }
}

pub async fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---- the real charge point ----------------------------------------------

pub fn python() -> PathBuf {
    match std::env::var_os(OCPP_PYTHON).filter(|path| !path.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "{OCPP_PYTHON} is not set: it names the Python of a virtualenv with PyPI ocpp. \
             `make test` sets it; by hand: export {OCPP_PYTHON}=\"$(bash tests/ocpp/install.sh)\""
        ),
    }
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/ocpp")
        .join(name)
}

/// A charger process running one scenario of `tests/ocpp/charger.py`.
pub struct Charger {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// Every record so far.
    pub records: Vec<Value>,
}

impl Charger {
    pub fn start(url: &str, id: &str, version: &str, scenario: &str) -> Self {
        let mut child = tokio::process::Command::new(python())
            .arg(script("charger.py"))
            .args([url, id, PASSWORD, version, scenario])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the charger");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            lines,
            records: Vec::new(),
        }
    }

    /// Reads records until one of `kind` (e.g. a pause), or the end.
    pub async fn until(&mut self, kind: &str) -> Option<Value> {
        let read = async {
            while let Some(line) = self.lines.next_line().await.expect("read the charger") {
                let record: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("the charger wrote {line:?}: {e}"));
                self.records.push(record.clone());
                if record["type"] == kind {
                    return Some(record);
                }
            }
            None
        };
        tokio::time::timeout(Duration::from_secs(120), read)
            .await
            .expect("the charger went silent")
    }

    /// Lets a paused scenario go on.
    pub async fn resume(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Runs the scenario to its end; it must succeed.
    pub async fn finish(mut self) -> Vec<Value> {
        assert!(self.until("<end>").await.is_none());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the charger exits")
            .unwrap();
        assert!(
            status.success(),
            "the charger failed ({status}); records: {:#?}",
            self.records
        );
        self.records
    }
}

/// Runs one scenario to its end.
pub async fn run_charger(url: &str, id: &str, version: &str, scenario: &str) -> Vec<Value> {
    Charger::start(url, id, version, scenario).finish().await
}

/// The answered calls of `action`, as (request, response).
pub fn calls<'a>(records: &'a [Value], action: &str) -> Vec<(&'a Value, &'a Value)> {
    records
        .iter()
        .filter(|r| r["type"] == "call" && r["action"] == action && r.get("response").is_some())
        .map(|r| (&r["request"], &r["response"]))
        .collect()
}

/// Unix seconds of an OCPP timestamp the test client wrote (`…Z`).
pub fn unix(text: &Value) -> i64 {
    citybrain_ocpp_gateway::time::parse(text.as_str().expect("a timestamp"))
        .expect("the client writes valid timestamps")
        .at
        .seconds
}

// ---- the query service ----------------------------------------------------

/// The query service over the test's database, with the test keys.
pub async fn start_query(pipeline: &Pipeline) -> RunningQuery {
    RunningQuery::start(query_config(
        &stack_clickhouse_url(),
        &pipeline.database.name,
        write_key_file(&pipeline.dir),
    ))
    .await
}

/// An aggregate's rows as maps from column name to value.
pub async fn rows(query: &RunningQuery, path: &str) -> Vec<serde_json::Map<String, Value>> {
    let table = query.table(path, FULL_KEY).await;
    let columns: Vec<String> = table["columns"]
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
            columns
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn day(unix: i64) -> String {
    citybrain_ocpp_gateway::time::format(
        std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64),
    )[..10]
        .to_string()
}

// ---- expectations -------------------------------------------------------

use std::collections::BTreeMap;

/// Seconds per status, summed over connectors numbered from 1, from each
/// connector's status changes in time order (the last one closes nothing).
pub fn seconds_by_status(changes: &BTreeMap<u32, Vec<(i64, &str)>>) -> BTreeMap<String, i64> {
    let mut seconds = BTreeMap::new();
    for (connector, list) in changes {
        if *connector == 0 {
            continue;
        }
        let mut list = list.clone();
        list.sort();
        for pair in list.windows(2) {
            *seconds.entry(pair[0].1.to_string()).or_insert(0) += pair[1].0 - pair[0].0;
        }
    }
    seconds
}

/// The roll-ups' answers for the site over the days the test covers, summed
/// over day buckets.
pub async fn site_totals(
    query: &RunningQuery,
    site: &str,
    from: i64,
) -> (BTreeMap<String, f64>, i64) {
    let range = format!("from={}&to={}", day(from), day(from + 3 * 86_400));
    let mut totals = BTreeMap::new();
    let mut connectors = 0;
    for metric in ["charging_energy", "charger_utilisation"] {
        let path = format!("/v1/aggregates/{metric}?{range}&bucket=day&group_by=site");
        for row in rows(query, &path).await {
            if row["site"] != site {
                continue;
            }
            for (name, value) in &row {
                if name == "connectors" {
                    connectors = connectors.max(value.as_i64().unwrap());
                } else if let Some(n) = value.as_f64() {
                    *totals.entry(name.clone()).or_insert(0.0) += n;
                }
            }
        }
    }
    (totals, connectors)
}

pub fn offline_at(rows: &[(String, String, u32)]) -> i64 {
    let times: Vec<u32> = rows
        .iter()
        .filter(|(_, status, _)| status == "offline")
        .map(|r| r.2)
        .collect();
    assert!(
        !times.is_empty(),
        "the disconnect reports the station offline: {rows:?}"
    );
    i64::from(times[0])
}

mod raw;
#[allow(unused_imports)]
pub use raw::*;
