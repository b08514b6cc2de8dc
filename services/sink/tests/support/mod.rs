//! What the sink's end-to-end tests share: a fresh ClickHouse database and
//! topic prefix per test, the sink in-process or as its real binary, events
//! through the real ingest service, and counting queries.
//!
//! The broker and ClickHouse are the stack's (`CITYBRAIN_KAFKA_BROKERS`,
//! `CITYBRAIN_CLICKHOUSE_URL`), except where a test stops ClickHouse: it runs
//! a [`PrivateClickHouse`] of its own.

#![allow(dead_code, unused_imports)] // each test file uses a different part of this module

use citybrain_ingest::samples;
use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_sink::config::SinkConfig;
use citybrain_tests::{FULL_KEY, Kind, RunningIngest, eventually, scratch_dir};
use clickhouse::Client;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use citybrain_tests::{
    create_feed_topics, create_topics, stack_brokers, stack_clickhouse_url, unique_prefix,
};

/// A ClickHouse client for `url` (validation off: 18.16).
pub fn clickhouse(url: &str) -> Client {
    Client::default().with_url(url).with_validation(false)
}

/// A database name of the test's own.
pub fn fresh_database() -> String {
    format!(
        "test_sink_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The in-process sink and its test configuration are the shared harness's.
pub use citybrain_tests::{RunningSink, sink_config};

/// The real `citybrain-sink` binary as a child process.
pub struct SinkProcess {
    child: Child,
    log: PathBuf,
}

impl SinkProcess {
    pub fn spawn(config: &SinkConfig, log_dir: &std::path::Path, name: &str) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_citybrain-sink"))
            .env("CITYBRAIN_KAFKA_BROKERS", &config.kafka.brokers)
            .env("CITYBRAIN_TOPIC_PREFIX", &config.kafka.topic_prefix)
            .env("CITYBRAIN_SINK_GROUP_ID", &config.kafka.group_id)
            .env("CITYBRAIN_CLICKHOUSE_URL", &config.clickhouse.url)
            .env("CITYBRAIN_CLICKHOUSE_DATABASE", &config.clickhouse.database)
            .env("CITYBRAIN_SINK_ADMIN_ADDR", "127.0.0.1:0")
            .env(
                "CITYBRAIN_SINK_BATCH_MAX_AGE_MS",
                config.batch.max_age.as_millis().to_string(),
            )
            .env(
                "CITYBRAIN_SINK_BATCH_MAX_ROWS",
                config.batch.max_rows.to_string(),
            )
            .env(
                "CITYBRAIN_SINK_BACKOFF_MAX_MS",
                config.backoff.max.as_millis().to_string(),
            )
            .env(
                "RUST_LOG",
                std::env::var("SINK_CHILD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the sink binary");
        Self { child, log }
    }

    /// SIGKILL: no flush, no commit, no goodbye to the group.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// `n` valid events of `kind`, one second apart ending now, spread over
/// `devices` devices (so over partitions), each with its own event id.
pub fn events(kind: Kind, n: usize, devices: usize, now: SystemTime) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let at = now - Duration::from_secs((n - i) as u64);
            let mut event = samples::event(kind, at);
            event.event_id = uuid::Uuid::now_v7().to_string();
            let device = i % devices;
            event.device_id = format!("{}-{device}", event.device_id);
            set_identity(&mut event, device, i);
            event
        })
        .collect()
}

/// Makes the payload's own ids follow the device (site, vehicle, bin...) and
/// varies the numbers the roll-ups add up.
fn set_identity(event: &mut Event, device: usize, i: usize) {
    let statuses = [1, 3, 6, 1, 2, 3, 9];
    match event.payload.as_mut().expect("samples have payloads") {
        Payload::ConnectorStatus(p) => {
            p.station_id = format!("CP-{device}");
            p.status = statuses[i % statuses.len()];
        }
        Payload::MeterSample(p) => {
            p.energy_active_import_wh = p.energy_active_import_wh.map(|wh| wh + i as f64)
        }
        Payload::ChargingSession(p) => {
            p.transaction_id = format!("tx-{i}");
            if i.is_multiple_of(2) {
                p.phase = citybrain_proto::events::v1::SessionPhase::Started as i32;
                p.meter_stop_wh = None;
                p.energy_kwh = None;
                p.duration_s = None;
                p.stop_reason = 0;
                p.fee_electricity_cny = None;
                p.fee_service_cny = None;
                p.fee_total_cny = None;
            } else {
                p.energy_kwh = Some(10.0 + (i % 7) as f64);
                p.meter_stop_wh = p
                    .meter_start_wh
                    .map(|wh| wh + 1000.0 * (10.0 + (i % 7) as f64));
            }
        }
        Payload::ParkingSiteCounts(p) => {
            p.site_id = format!("P-{device}");
            p.occupied = (i % 100) as u32;
            p.available = p.total_spots - p.occupied;
        }
        Payload::ParkingSpotStatus(p) => p.spot_id = format!("S-{i}"),
        Payload::VehiclePosition(p) => {
            p.vehicle_id = format!("V-{device}");
            p.odometer_km = Some(1000.0 + i as f64 * 0.1);
            p.speed_kmh = (i % 60) as f64;
        }
        Payload::PatrolCheckIn(p) => p.team_id = format!("team-{}", device % 3),
        Payload::BinReading(p) => {
            p.bin_id = format!("BIN-{device}");
            p.fill_level = (i % 100) as f64 / 100.0;
        }
        Payload::WasteCollection(p) => p.truck_id = format!("T-{device}"),
        Payload::ServiceRequest(p) => {
            p.request_id = format!("SR-{device}");
            p.transition = [1, 2, 4, 5][i % 4];
            p.department = "civil-affairs".into();
        }
    }
}

/// Sends `events` through ingest with the full-access key until every one
/// is accepted, resending those answered RETRYABLE with the same ids.
pub async fn send(ingest: &RunningIngest, events: Vec<Event>) {
    citybrain_tests::ingest_all(ingest, FULL_KEY, events).await;
}

/// `SELECT <expr>` over a table of `database`, as a number.
pub async fn number(client: &Client, sql: &str) -> f64 {
    client
        .query_raw(&format!("SELECT toFloat64(ifNull(({sql}), 0))"))
        .fetch_one::<f64>()
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Waits until `SELECT <sql>` answers `want`. For tables the views write: a
/// raw part is visible before the views fed by the same INSERT have written,
/// so right after the raw counts are reached a roll-up may still lag.
pub async fn settles_to(client: &Client, what: &str, sql: &str, want: f64) {
    eventually(Duration::from_secs(30), what, || async move {
        number(client, sql).await == want
    })
    .await;
}

/// Waits until `SELECT <a>` and `SELECT <b>` answer the same (see
/// [`settles_to`]).
pub async fn settles_equal(client: &Client, what: &str, a: &str, b: &str) {
    eventually(Duration::from_secs(30), what, || async move {
        number(client, a).await == number(client, b).await
    })
    .await;
}

/// Rows in `database.table`, counted plainly (no FINAL: what a roll-up sees).
pub async fn rows(client: &Client, database: &str, table: &str) -> u64 {
    number(client, &format!("SELECT count() FROM {database}.{table}")).await as u64
}

/// Waits until every raw table of `expected` holds its count, then checks
/// no table holds more and no event id is there twice.
pub async fn assert_exact_rows(
    client: &Client,
    database: &str,
    expected: &[(Kind, u64)],
    timeout: Duration,
) {
    for (kind, n) in expected {
        let table = citybrain_schema::raw_table(*kind);
        let what = format!("{n} rows in {table}");
        eventually(timeout, &what, || {
            let table = table.clone();
            async move {
                // The database appears with the sink's migration.
                let sql = format!("SELECT count() FROM {database}.{table}");
                client
                    .query_raw(&sql)
                    .fetch_one::<u64>()
                    .await
                    .is_ok_and(|rows| rows >= *n)
            }
        })
        .await;
    }
    for (kind, n) in expected {
        let table = citybrain_schema::raw_table(*kind);
        assert_eq!(rows(client, database, &table).await, *n, "rows in {table}");
        let distinct = number(
            client,
            &format!("SELECT uniqExact(event_id) FROM {database}.{table}"),
        )
        .await as u64;
        assert_eq!(distinct, *n, "distinct event ids in {table}");
    }
}

/// A ClickHouse server of the test's own (ports, data dir), for tests that
/// stop and restart it. Uses the local stack's config template.
pub struct PrivateClickHouse {
    pub http_port: u16,
    tcp_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateClickHouse {
    pub async fn start() -> Self {
        let dir = scratch_dir("clickhouse");
        for sub in ["data", "tmp", "log", "user_files", "format_schemas"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let template_dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/clickhouse");
        let mut server = Self {
            http_port: free_port().await,
            tcp_port: free_port().await,
            dir,
            child: None,
        };
        let config = std::fs::read_to_string(template_dir.join("config.xml.in"))
            .expect("deploy/local/clickhouse/config.xml.in")
            .replace("@DIR@", server.dir.to_str().unwrap())
            .replace("@HTTP_PORT@", &server.http_port.to_string())
            .replace("@TCP_PORT@", &server.tcp_port.to_string());
        std::fs::write(server.dir.join("config.xml"), config).unwrap();
        std::fs::copy(template_dir.join("users.xml"), server.dir.join("users.xml")).unwrap();
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts (again) with the same data.
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("log/stdout.log")).unwrap();
        let child = Command::new("clickhouse-server")
            .current_dir(&self.dir)
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let client = clickhouse(&self.url());
        eventually(
            Duration::from_secs(60),
            "the private ClickHouse to answer",
            || {
                let client = client.clone();
                async move { client.query_raw("SELECT 1").fetch_one::<u8>().await.is_ok() }
            },
        )
        .await;
    }

    /// Stops the server (SIGTERM, as an operator or the OS would) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
