//! The services running in the test's own process, on port 0, through their
//! public `serve` functions, with test configurations; and sending events
//! through ingest the way a well-behaved vendor does.

use crate::http::{self, Reply};
use citybrain_config::ClickHouseConfig;
use citybrain_ingest::config::IngestConfig;
use citybrain_proto::events::v1::Event;
use citybrain_query::config::QueryConfig;
use citybrain_sink::config::SinkConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// An ingest configuration for tests: the given broker and topic prefix,
/// every address on port 0, otherwise production defaults (idempotent
/// producer included).
///
/// The delivery timeout is generous: on Tansu 0.6.0 a timed-out delivery of
/// an idempotent producer makes it bump the producer epoch, which the broker
/// cannot handle (it stops serving), so the shared broker must never see one
/// merely because CI is busy. Tests that want timeouts use a private broker.
pub fn ingest_config(brokers: &str, prefix: &str, key_file: PathBuf) -> IngestConfig {
    let mut config = IngestConfig::new(brokers);
    config.grpc_addr = ([127, 0, 0, 1], 0).into();
    config.http_addr = ([127, 0, 0, 1], 0).into();
    config.admin_addr = ([127, 0, 0, 1], 0).into();
    config.api_keys_file = key_file;
    config.kafka.topic_prefix = prefix.to_string();
    config.producer.settings.delivery_timeout = Duration::from_secs(30);
    config
}

/// Ingest in this process on `brokers` under `prefix`, with the test keys in
/// a scratch directory named after `label`: what most suites start from.
pub async fn start_ingest(brokers: &str, prefix: &str, label: &str) -> RunningIngest {
    let keys = crate::write_key_file(&crate::scratch_dir(label));
    RunningIngest::start(ingest_config(brokers, prefix, keys)).await
}

/// A sink configuration for tests: the given broker, ClickHouse, topic
/// prefix and database; short group timeouts, small batches, quick retries.
pub fn sink_config(
    brokers: &str,
    clickhouse_url: &str,
    prefix: &str,
    database: &str,
) -> SinkConfig {
    let mut config = SinkConfig::new(brokers, clickhouse_url);
    config.admin_addr = ([127, 0, 0, 1], 0).into();
    config.kafka.topic_prefix = prefix.to_string();
    config.group.group_id = format!("{prefix}sink");
    config.clickhouse.database = database.to_string();
    config.store.insert_timeout = Duration::from_secs(3);
    config.batch.max_age = Duration::from_millis(200);
    config.batch.max_rows = 5_000;
    config.backoff.initial = Duration::from_millis(100);
    config.backoff.max = Duration::from_secs(1);
    config
}

/// A query configuration for tests: `database` on the ClickHouse at `url`,
/// every address on port 0, the test keys.
pub fn query_config(url: &str, database: &str, key_file: PathBuf) -> QueryConfig {
    let mut config = QueryConfig::new(ClickHouseConfig::new(url, database));
    config.grpc_addr = ([127, 0, 0, 1], 0).into();
    config.http_addr = ([127, 0, 0, 1], 0).into();
    config.admin_addr = ([127, 0, 0, 1], 0).into();
    config.api_keys_file = key_file;
    config
}

async fn bind(addr: SocketAddr) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|err| panic!("bind {addr}: {err}"));
    let local = listener.local_addr().expect("local addr");
    (listener, local)
}

/// A service task with a stop signal.
struct Task<E> {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), E>>,
}

impl<E> Task<E> {
    fn stop_signal() -> (
        oneshot::Sender<()>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop, stopped) = oneshot::channel::<()>();
        (stop, async {
            let _ = stopped.await;
        })
    }

    async fn shutdown(&mut self, what: &str) -> Result<(), E> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle)
            .await
            .unwrap_or_else(|_| panic!("{what} task panicked"))
    }
}

/// An ingest service running in this process.
pub struct RunningIngest {
    pub grpc_addr: SocketAddr,
    /// `POST /v1/events` and `/openapi.json`.
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    task: Task<citybrain_ingest::ServeError>,
}

impl RunningIngest {
    pub async fn start(config: IngestConfig) -> Self {
        let (grpc, grpc_addr) = bind(config.grpc_addr).await;
        let (http, http_addr) = bind(config.http_addr).await;
        let (admin, admin_addr) = bind(config.admin_addr).await;
        let (stop, stopped) = Task::<citybrain_ingest::ServeError>::stop_signal();
        let listeners = citybrain_ingest::Listeners { grpc, http, admin };
        let handle = tokio::spawn(citybrain_ingest::serve(config, listeners, stopped));
        Self {
            grpc_addr,
            http_addr,
            admin_addr,
            task: Task {
                stop: Some(stop),
                handle,
            },
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// GETs `path` from the admin port.
    pub async fn admin_get(&self, path: &str) -> Reply {
        http::get(self.admin_addr, path, &[]).await
    }

    /// POSTs `body` to `/v1/events` with `headers` (the key among them).
    pub async fn post_events(&self, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http::post(self.http_addr, "/v1/events", headers, body).await
    }

    /// Stops the service gracefully and returns how `serve` ended.
    pub async fn shutdown(mut self) -> Result<(), citybrain_ingest::ServeError> {
        self.task.shutdown("ingest").await
    }

    /// Whether `serve` is still running.
    pub fn is_running(&self) -> bool {
        !self.task.handle.is_finished()
    }
}

/// The sink running in this process.
pub struct RunningSink {
    pub admin_addr: SocketAddr,
    task: Task<citybrain_sink::ServeError>,
}

impl RunningSink {
    pub async fn start(config: SinkConfig) -> Self {
        let (admin, admin_addr) = bind(config.admin_addr).await;
        let (stop, stopped) = Task::<citybrain_sink::ServeError>::stop_signal();
        let handle = tokio::spawn(citybrain_sink::serve(config, admin, stopped));
        Self {
            admin_addr,
            task: Task {
                stop: Some(stop),
                handle,
            },
        }
    }

    /// GETs `path` from the admin port.
    pub async fn admin_get(&self, path: &str) -> Reply {
        http::get(self.admin_addr, path, &[]).await
    }

    /// Rows the sink's INSERTs have stored so far (its own counter). Unlike
    /// counting raw rows in ClickHouse, this is reached only once the views
    /// fed by the same INSERTs (roll-ups, latest state) have written too: a
    /// raw part is visible before them.
    pub async fn rows_inserted(&self) -> u64 {
        let metrics = self.admin_get("/metrics").await.body;
        metrics
            .lines()
            .filter(|line| line.starts_with(citybrain_sink::metrics::ROWS_INSERTED))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Stops gracefully (flush and commit) and returns how `serve` ended.
    pub async fn shutdown(mut self) -> Result<(), citybrain_sink::ServeError> {
        self.task.shutdown("sink").await
    }
}

/// The query service running in this process.
pub struct RunningQuery {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    task: Task<citybrain_query::ServeError>,
}

impl RunningQuery {
    pub async fn start(config: QueryConfig) -> Self {
        let (grpc, grpc_addr) = bind(config.grpc_addr).await;
        let (http, http_addr) = bind(config.http_addr).await;
        let (admin, admin_addr) = bind(config.admin_addr).await;
        let (stop, stopped) = Task::<citybrain_query::ServeError>::stop_signal();
        let handle = tokio::spawn(citybrain_query::serve(config, grpc, http, admin, stopped));
        Self {
            grpc_addr,
            http_addr,
            admin_addr,
            task: Task {
                stop: Some(stop),
                handle,
            },
        }
    }

    /// GETs `path` from the HTTP API with the API key (none: `None`).
    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        http::get_with_key(self.http_addr, path, key).await
    }

    /// GET that must answer 200 with JSON (a table, for the query API); returns it.
    pub async fn table(&self, path: &str, key: &str) -> serde_json::Value {
        let reply = self.get(path, Some(key)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", reply.body))
    }

    /// A gRPC client of the query API.
    pub async fn grpc_client(
        &self,
    ) -> citybrain_proto::query::v1::query_service_client::QueryServiceClient<
        tonic::transport::Channel,
    > {
        citybrain_proto::query::v1::query_service_client::QueryServiceClient::connect(format!(
            "http://{}",
            self.grpc_addr
        ))
        .await
        .expect("connect gRPC")
    }

    /// Stops gracefully within 10 s; panics unless `serve` ended cleanly.
    pub async fn stop(mut self) {
        tokio::time::timeout(Duration::from_secs(10), self.task.shutdown("query"))
            .await
            .expect("query stops within 10 s")
            .expect("serve ended cleanly");
    }
}

/// Sends `events` through `ingest` with API key `key`, in calls of at most
/// 500, until every one is accepted: events answered RETRYABLE (or a call
/// that failed as a whole in a retryable way) are sent again with the same
/// ids, as a vendor must. Panics on any rejection, so callers need their
/// events' ids set.
pub async fn ingest_all(ingest: &RunningIngest, key: &str, events: Vec<Event>) {
    use citybrain_ingest_client::{EventOutcome, IngestClient};
    let client =
        IngestClient::new(&ingest.endpoint(), key, Duration::from_secs(60)).expect("ingest client");
    let deadline = Instant::now() + Duration::from_secs(120);
    for chunk in events.chunks(500) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            assert!(Instant::now() < deadline, "ingest kept answering RETRYABLE");
            let retry: Vec<Event> = match client.ingest(pending.clone()).await {
                Ok(answers) => answers
                    .into_iter()
                    .zip(&pending)
                    .filter_map(|(answer, event)| match answer.outcome {
                        EventOutcome::Accepted => None,
                        EventOutcome::Retryable { .. } => Some(event.clone()),
                        other => panic!("ingest did not accept {event:?}: {other:?}"),
                    })
                    .collect(),
                Err(err) if err.is_retryable() => pending.clone(),
                Err(err) => panic!("ingest call failed: {err}"),
            };
            if !retry.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            pending = retry;
        }
    }
}

/// A gRPC client of `ingest`.
pub async fn ingest_client(
    ingest: &RunningIngest,
) -> citybrain_proto::ingest::v1::ingest_service_client::IngestServiceClient<
    tonic::transport::Channel,
> {
    citybrain_proto::ingest::v1::ingest_service_client::IngestServiceClient::connect(
        ingest.endpoint(),
    )
    .await
    .expect("connect ingest")
}

/// A gRPC request carrying the API key `key`.
pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().expect("key is ASCII"));
    request
}
