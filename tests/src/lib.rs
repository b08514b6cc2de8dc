//! Harness for the end-to-end tests in `tests/tests/`.
//!
//! The tests drive the real servers: the stack's broker and ClickHouse (which
//! `make test` starts through `deploy/local/stack.sh`), and, where a test must
//! stop and restart a broker, a private Tansu process of its own
//! ([`PrivateBroker`]). Services run in-process on port 0 through their
//! public `serve` functions. Every test works under its own topic prefix, so
//! tests never see each other's events.

pub mod grafana;

use citybrain_ingest::config::{BatchLimits, IngestConfig, KafkaConfig};
use citybrain_ingest::validate::Limits;
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
    topic_partition_list::{Offset, TopicPartitionList},
};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use citybrain_proto::feed::{Feed, Kind};

/// A key allowed to send every kind.
pub const FULL_KEY: &str = "test-key-full-0123456789abcdef";
/// A key allowed to send parking kinds only.
pub const PARKING_ONLY_KEY: &str = "test-key-parking-0123456789abcdef";
/// The tenant both keys belong to.
pub const TENANT: &str = "lucheng-test";
/// A key of another tenant, allowed everything.
pub const OTHER_TENANT_KEY: &str = "test-key-other-tenant-0123456789";
pub const OTHER_TENANT: &str = "other-town";

/// The stack's broker (`CITYBRAIN_KAFKA_BROKERS`, default the local stack's).
pub fn stack_brokers() -> String {
    std::env::var("CITYBRAIN_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// The stack's ClickHouse HTTP URL (`CITYBRAIN_CLICKHOUSE_URL`).
pub fn stack_clickhouse_url() -> String {
    std::env::var("CITYBRAIN_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

/// A fresh topic prefix, e.g. `t3f9a1c2e.`.
pub fn unique_prefix() -> String {
    format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "citybrain-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Creates every feed topic under `prefix` with `partitions` partitions,
/// waiting until the broker reports them.
pub async fn create_feed_topics(brokers: &str, prefix: &str, partitions: i32) {
    let topics: Vec<String> = Feed::ALL
        .iter()
        .map(|feed| format!("{prefix}{}", feed.topic()))
        .collect();
    create_topics(brokers, &topics, partitions).await;
}

pub async fn create_topics(brokers: &str, topics: &[String], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for result in results {
        if let Err((topic, code)) = result {
            assert_eq!(
                code,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "creating topic {topic}"
            );
        }
    }
}

/// A key file with the test keys above, in `dir`.
pub fn write_key_file(dir: &Path) -> PathBuf {
    let path = dir.join("api-keys.toml");
    let text = format!(
        r#"
[[keys]]
name = "test-full"
tenant = "{TENANT}"
source = "test-suite"
kinds = ["*"]
sha256 = "{full}"

[[keys]]
name = "test-parking"
tenant = "{TENANT}"
source = "parking-vendor"
kinds = ["parking_site_counts", "parking_spot_status"]
sha256 = "{parking}"

[[keys]]
name = "test-other-tenant"
tenant = "{OTHER_TENANT}"
source = "other-vendor"
kinds = ["*"]
sha256 = "{other}"
"#,
        full = hex(FULL_KEY),
        parking = hex(PARKING_ONLY_KEY),
        other = hex(OTHER_TENANT_KEY),
    );
    std::fs::write(&path, text).expect("write key file");
    path
}

fn hex(key: &str) -> String {
    citybrain_ingest::auth::digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An ingest configuration for tests: the given broker and topic prefix,
/// otherwise production defaults (idempotent producer included).
///
/// The delivery timeout is generous: on Tansu 0.6.0 a timed-out delivery of
/// an idempotent producer makes it bump the producer epoch, which the broker
/// cannot handle (it stops serving), so the shared broker must never see one
/// merely because CI is busy. Tests that want timeouts use a private broker.
pub fn ingest_config(brokers: &str, prefix: &str, key_file: PathBuf) -> IngestConfig {
    let mut kafka = KafkaConfig::new(brokers);
    kafka.topic_prefix = prefix.to_string();
    kafka.delivery_timeout = Duration::from_secs(30);
    IngestConfig {
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        admin_addr: ([127, 0, 0, 1], 0).into(),
        api_keys_file: key_file,
        production: false,
        log_json: false,
        kafka,
        limits: BatchLimits::default(),
        validation: Limits::default(),
    }
}

/// An ingest service running in this process.
pub struct RunningIngest {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), citybrain_ingest::ServeError>>,
}

impl RunningIngest {
    pub async fn start(config: IngestConfig) -> Self {
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .expect("bind grpc");
        let admin = TcpListener::bind(config.admin_addr)
            .await
            .expect("bind admin");
        let grpc_addr = grpc.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(citybrain_ingest::serve(config, grpc, admin, async {
            let _ = stopped.await;
        }));
        Self {
            grpc_addr,
            admin_addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Gets `path` from the admin port: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_addr, path).await
    }

    /// Stops the service gracefully and returns how `serve` ended.
    pub async fn shutdown(mut self) -> Result<(), citybrain_ingest::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("ingest task panicked")
    }

    /// Whether `serve` is still running.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// A minimal HTTP/1.0 GET, enough for the admin endpoints.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect admin");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every message on `topics` from the beginning until `expected`
/// messages arrived (then waits `settle` more to catch any extra), or panics
/// after `timeout`. Assigns partitions directly: no consumer group.
pub fn read_topics(
    brokers: &str,
    topics: &[String],
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.auto.commit", "false")
        .set("group.id", "citybrain-tests-reader")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("topic metadata");
        for partition in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(until) = settle_until {
            if now >= until {
                break;
            }
        } else if messages.len() >= expected {
            settle_until = Some(now + settle);
        }
        assert!(
            now < deadline || settle_until.is_some(),
            "read {} of {expected} messages from {topics:?} before the timeout",
            messages.len()
        );
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            messages.push(result.expect("consume").detach());
        }
    }
    messages
}

/// The value of header `name` on a message.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Where the Tansu binary is: `TANSU_BIN`, or the install cache.
pub fn tansu_bin() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return path.into();
    }
    let cache = std::env::var("CITYBRAIN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/citybrain")
        });
    cache.join("tansu-0.6.0/bin/tansu")
}

/// Where a [`PrivateBroker`] keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerStorage {
    /// sqlite in a scratch directory: topics and records survive a restart.
    Sqlite,
    /// In memory: a restart starts empty (topics must be created again).
    Memory,
}

/// A Tansu broker of the test's own, for tests that stop and restart it.
///
/// Like `deploy/local/broker.sh`, a memory-storage broker gets a new cluster
/// id at every start (its logs are new), a sqlite one keeps its id.
pub struct PrivateBroker {
    pub port: u16,
    storage: BrokerStorage,
    dir: PathBuf,
    child: Option<Child>,
    cluster_id: String,
}

impl PrivateBroker {
    pub async fn start(storage: BrokerStorage) -> Self {
        let port = free_port().await;
        let mut broker = Self {
            port,
            storage,
            dir: scratch_dir("broker"),
            child: None,
            cluster_id: new_cluster_id(),
        };
        broker.resume().await;
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The cluster id the broker reports to clients.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Starts (again) on the same port and storage.
    pub async fn resume(&mut self) {
        if self.storage == BrokerStorage::Memory {
            self.cluster_id = new_cluster_id();
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.join("broker.log")).unwrap();
        let child = Command::new(tansu_bin())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--cluster-id",
                &self.cluster_id,
            ])
            .args([
                "--storage-engine",
                match self.storage {
                    BrokerStorage::Sqlite => "sqlite://broker.db",
                    BrokerStorage::Memory => "memory://tansu/",
                },
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("start tansu at {}: {err}", tansu_bin().display()));
        self.child = Some(child);
        let port = self.port;
        eventually(
            Duration::from_secs(30),
            "the private broker to listen",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    /// The broker's log so far, for diagnosing a failure.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// Kills the broker (SIGKILL), keeping its storage.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_cluster_id() -> String {
    format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A sink configuration for tests: the given broker, ClickHouse, topic
/// prefix and database; short group timeouts, small batches, quick retries.
pub fn sink_config(
    brokers: &str,
    clickhouse_url: &str,
    prefix: &str,
    database: &str,
) -> citybrain_sink::config::SinkConfig {
    let mut config = citybrain_sink::config::SinkConfig::new(brokers, clickhouse_url);
    config.admin_addr = ([127, 0, 0, 1], 0).into();
    config.kafka.topic_prefix = prefix.to_string();
    config.kafka.group_id = format!("{prefix}sink");
    config.clickhouse.database = database.to_string();
    config.clickhouse.insert_timeout = Duration::from_secs(3);
    config.batch.max_age = Duration::from_millis(200);
    config.batch.max_rows = 5_000;
    config.backoff.initial = Duration::from_millis(100);
    config.backoff.max = Duration::from_secs(1);
    config
}

/// The sink running in this process.
pub struct RunningSink {
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), citybrain_sink::ServeError>>,
}

impl RunningSink {
    pub async fn start(config: citybrain_sink::config::SinkConfig) -> Self {
        let admin = TcpListener::bind(config.admin_addr)
            .await
            .expect("bind admin");
        let admin_addr = admin.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(citybrain_sink::serve(config, admin, async {
            let _ = stopped.await;
        }));
        Self {
            admin_addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_addr, path).await
    }

    /// Rows the sink's INSERTs have stored so far (its own counter). Unlike
    /// counting raw rows in ClickHouse, this is reached only once the views
    /// fed by the same INSERTs (roll-ups, latest state) have written too: a
    /// raw part is visible before them.
    pub async fn rows_inserted(&self) -> u64 {
        let (_, metrics) = self.admin_get("/metrics").await;
        metrics
            .lines()
            .filter(|line| line.starts_with(citybrain_sink::metrics::ROWS_INSERTED))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Stops gracefully (flush and commit) and returns how `serve` ended.
    pub async fn shutdown(mut self) -> Result<(), citybrain_sink::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("sink task panicked")
    }
}

/// Creates every feed topic and the sink's dead-letter topic under `prefix`:
/// what a whole ingest → Kafka → sink pipeline needs.
pub async fn create_pipeline_topics(brokers: &str, prefix: &str, partitions: i32) {
    create_feed_topics(brokers, prefix, partitions).await;
    create_topics(
        brokers,
        &[format!("{prefix}{}", citybrain_sink::dead_letter::TOPIC)],
        1,
    )
    .await;
}

/// Sends `events` through `ingest` with API key `key`, in calls of at most
/// 500, until every one is accepted: events answered RETRYABLE (or a call
/// answered UNAVAILABLE) are sent again with the same ids, as a vendor must.
/// Panics on any rejection, so callers need their events' ids set.
pub async fn ingest_all(
    ingest: &RunningIngest,
    key: &str,
    events: Vec<citybrain_proto::events::v1::Event>,
) {
    use citybrain_proto::ingest::v1::{
        IngestRequest, Outcome, ingest_service_client::IngestServiceClient,
    };
    let mut client = IngestServiceClient::connect(ingest.endpoint())
        .await
        .expect("connect ingest");
    let deadline = Instant::now() + Duration::from_secs(120);
    for chunk in events.chunks(500) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            assert!(Instant::now() < deadline, "ingest kept answering RETRYABLE");
            let mut request = tonic::Request::new(IngestRequest {
                events: pending.clone(),
            });
            request
                .metadata_mut()
                .insert("x-api-key", key.parse().expect("key is ASCII"));
            let retry: Vec<_> = match client.ingest(request).await {
                Ok(response) => response
                    .into_inner()
                    .results
                    .iter()
                    .filter_map(|result| match Outcome::try_from(result.outcome) {
                        Ok(Outcome::Accepted) => None,
                        Ok(Outcome::Retryable) => Some(pending[result.index as usize].clone()),
                        _ => panic!(
                            "ingest did not accept {:?}: {result:?}",
                            pending[result.index as usize]
                        ),
                    })
                    .collect(),
                Err(status) if status.code() == tonic::Code::Unavailable => pending.clone(),
                Err(status) => panic!("ingest call failed: {status}"),
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

/// Every feed topic under `prefix`.
pub fn feed_topics(prefix: &str) -> Vec<String> {
    Feed::ALL
        .iter()
        .map(|feed| format!("{prefix}{}", feed.topic()))
        .collect()
}

/// The events stored on the feed topics under `prefix`, as ingest wrote
/// them: reads until `expected` arrived (then `settle` more for any extra).
pub fn stored_events(
    brokers: &str,
    prefix: &str,
    expected: usize,
    settle: Duration,
) -> Vec<citybrain_proto::events::v1::IngestedEvent> {
    use prost::Message as _;
    read_topics(
        brokers,
        &feed_topics(prefix),
        expected,
        Duration::from_secs(30),
        settle,
    )
    .iter()
    .map(|message| {
        citybrain_proto::events::v1::IngestedEvent::decode(message.payload().expect("payload"))
            .expect("a stored record decodes")
    })
    .collect()
}
