//! Shared set-up for the query service tests: the known data set sent by
//! both tenants through the real pipeline (ingest → Kafka → sink →
//! ClickHouse, where the real materialized views fill the roll-ups and
//! latest-state tables) once per test binary, a fresh migrated database for
//! tests that need data of their own, the service on port 0, and small HTTP
//! and gRPC clients.

// Each test binary uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod dataset;
pub mod pipeline;

pub use pipeline::shared_database;

use citybrain_proto::query::v1 as pb;
use citybrain_query::config::{ClickHouseConfig, Limits, QueryConfig};
use clickhouse::Client;
use serde_json::Value as J;
use std::{
    net::SocketAddr,
    sync::LazyLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

// The query service reads the key file ingest reads: the same keys, so the
// tenant that sent the events is the tenant that asks.
pub use citybrain_tests::{FULL_KEY as KEY_A, OTHER_TENANT_KEY as KEY_B, TENANT as TENANT_A};

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
    std::env::var("CITYBRAIN_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

pub fn admin_client() -> Client {
    Client::default()
        .with_url(clickhouse_url())
        .with_validation(false)
}

/// A fresh database with the schema applied; dropped by [`Db::drop`].
pub struct Db {
    pub name: String,
    pub client: Client,
}

impl Db {
    pub async fn fresh() -> Self {
        let name = format!("qt_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let client = admin_client();
        citybrain_schema::migrate(&client, &citybrain_schema::SchemaOptions::new(&name))
            .await
            .expect("migrate");
        Self { name, client }
    }

    pub async fn drop(self) {
        citybrain_schema::drop_database(&self.client, &self.name)
            .await
            .expect("drop database");
    }
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
    QueryConfig {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        admin_addr: ([127, 0, 0, 1], 0).into(),
        api_keys_file: citybrain_tests::write_key_file(&citybrain_tests::scratch_dir("query")),
        production: false,
        log_json: false,
        clickhouse: ClickHouseConfig::new(url, database),
        limits: test_limits(),
    }
}

pub struct Service {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), citybrain_query::ServeError>>,
}

impl Service {
    pub async fn start(config: QueryConfig) -> Self {
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (g, h, a) = (
            bind().await.unwrap(),
            bind().await.unwrap(),
            bind().await.unwrap(),
        );
        let (grpc, http, admin) = (
            g.local_addr().unwrap(),
            h.local_addr().unwrap(),
            a.local_addr().unwrap(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(citybrain_query::serve(config, g, h, a, async {
            let _ = stopped.await;
        }));
        Self {
            grpc,
            http,
            admin,
            stop: Some(stop),
            task,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        http_get(self.http, path, key).await
    }

    /// GET that must answer 200 with a table; returns it.
    pub async fn table(&self, path: &str, key: &str) -> J {
        let reply = self.get(path, Some(key)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", reply.body))
    }

    pub async fn grpc_client(
        &self,
    ) -> citybrain_proto::query::v1::query_service_client::QueryServiceClient<
        tonic::transport::Channel,
    > {
        citybrain_proto::query::v1::query_service_client::QueryServiceClient::connect(format!(
            "http://{}",
            self.grpc
        ))
        .await
        .expect("connect gRPC")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("service stops")
            .expect("task")
            .expect("serve ended cleanly");
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
    /// False when a chunked body ended without its final chunk (aborted).
    pub complete: bool,
}

/// HTTP/1.1 GET with `Connection: close`, decoding a chunked body.
pub async fn http_get(addr: SocketAddr, path: &str, key: Option<&str>) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let key_line = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{key_line}\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    // A connection closed before any answer: status 0, incomplete.
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply {
            status: 0,
            headers: String::new(),
            body: String::new(),
            complete: false,
        };
    };
    let headers = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rest = &raw[split + 4..];
    let (body, complete) = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        (rest.to_vec(), true)
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        complete,
    }
}

fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            return (body, false);
        };
        data = &data[eol + 2..];
        if size == 0 {
            return (body, true);
        }
        if data.len() < size + 2 {
            body.extend_from_slice(&data[..size.min(data.len())]);
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// A gRPC request carrying `key`.
pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().expect("key is ASCII"));
    request
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
