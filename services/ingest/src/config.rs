//! The ingest service's settings, read once at start-up from the environment.

use crate::validate::Limits;
use citybrain_telemetry::env::{self, ConfigError};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the ingest service can be told. Each field names its variable.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `CITYBRAIN_INGEST_GRPC_ADDR`: where vendors connect (gRPC).
    pub grpc_addr: SocketAddr,
    /// `CITYBRAIN_INGEST_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_INGEST_API_KEYS`: the TOML file of API keys (see `auth`).
    pub api_keys_file: PathBuf,
    /// `CITYBRAIN_ENV=production` refuses development keys and keys in clear.
    pub production: bool,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines (production) instead of text.
    pub log_json: bool,
    pub kafka: KafkaConfig,
    pub limits: BatchLimits,
    pub validation: Limits,
}

/// How ingest talks to Kafka.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `CITYBRAIN_KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub brokers: String,
    /// `CITYBRAIN_TOPIC_PREFIX`: prepended to every feed topic (isolates
    /// environments or tests sharing one cluster). Empty by default.
    pub topic_prefix: String,
    /// `CITYBRAIN_INGEST_DELIVERY_TIMEOUT_MS`: how long an event may wait for
    /// Kafka's acknowledgement before it is answered RETRYABLE.
    pub delivery_timeout: Duration,
    /// `CITYBRAIN_INGEST_ENQUEUE_TIMEOUT_MS`: how long to wait for room in a
    /// full producer queue before answering RETRYABLE (overloaded).
    pub enqueue_timeout: Duration,
    /// `CITYBRAIN_INGEST_QUEUE_MAX_MESSAGES`: producer queue bound (events).
    pub queue_max_messages: u32,
    /// `CITYBRAIN_INGEST_QUEUE_MAX_KBYTES`: producer queue bound (KiB).
    pub queue_max_kbytes: u32,
    /// `CITYBRAIN_INGEST_LINGER_MS`: batching delay for the producer.
    pub linger: Duration,
    /// `CITYBRAIN_INGEST_COMPRESSION`: none, gzip, snappy, lz4 or zstd.
    pub compression: String,
    /// `CITYBRAIN_INGEST_IDEMPOTENCE`: the idempotent producer (default on).
    /// Turn it off only for brokers that cannot bump a producer's epoch, which
    /// librdkafka does after a delivery timeout: Tansu 0.6.0 panics there and
    /// stops serving. Without it, a producer retry can write an event twice;
    /// the sink still stores it once (it deduplicates by event id).
    pub idempotence: bool,
    /// `CITYBRAIN_KAFKA_OPTIONS`: extra librdkafka settings, applied last,
    /// as `key=value` pairs separated by commas (e.g. TLS or SASL settings:
    /// `security.protocol=SASL_SSL,sasl.mechanisms=SCRAM-SHA-512`).
    pub librdkafka_options: Vec<(String, String)>,
}

/// Bounds on what one call may carry.
#[derive(Debug, Clone)]
pub struct BatchLimits {
    /// `CITYBRAIN_INGEST_MAX_BATCH_EVENTS`: events per request message.
    pub max_batch_events: usize,
    /// `CITYBRAIN_INGEST_MAX_BATCH_BYTES`: encoded bytes per request message.
    pub max_batch_bytes: usize,
    /// `CITYBRAIN_INGEST_MAX_EVENT_BYTES`: encoded bytes per event.
    pub max_event_bytes: usize,
    /// `CITYBRAIN_INGEST_MAX_STREAM_EVENTS`: events per client stream (the
    /// answer lists each, so this bounds its memory).
    pub max_stream_events: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_batch_events: 1000,
            max_batch_bytes: 4 * 1024 * 1024,
            max_event_bytes: 64 * 1024,
            max_stream_events: 200_000,
        }
    }
}

impl KafkaConfig {
    /// Settings for a broker at `brokers`, with the defaults below.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: String::new(),
            delivery_timeout: Duration::from_secs(5),
            enqueue_timeout: Duration::from_millis(200),
            queue_max_messages: 100_000,
            queue_max_kbytes: 64 * 1024,
            linger: Duration::from_millis(5),
            compression: "lz4".into(),
            librdkafka_options: Vec::new(),
            idempotence: true,
        }
    }
}

impl IngestConfig {
    /// Reads every setting, failing on the first invalid one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = BatchLimits::default();
        let validation_defaults = Limits::default();
        let kafka_defaults = KafkaConfig::new("127.0.0.1:19092");
        let production = env::is_production()?;
        let compression =
            env::string_or("CITYBRAIN_INGEST_COMPRESSION", &kafka_defaults.compression);
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&compression.as_str()) {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_INGEST_COMPRESSION",
                value: compression,
                reason: "expected none, gzip, snappy, lz4 or zstd".into(),
            });
        }
        Ok(Self {
            grpc_addr: env::var_or("CITYBRAIN_INGEST_GRPC_ADDR", ([127, 0, 0, 1], 50051).into())?,
            admin_addr: env::var_or("CITYBRAIN_INGEST_ADMIN_ADDR", ([127, 0, 0, 1], 9101).into())?,
            api_keys_file: env::string_or(
                "CITYBRAIN_INGEST_API_KEYS",
                "deploy/local/dev-api-keys.toml",
            )
            .into(),
            production,
            log_json: env::bool_or("CITYBRAIN_LOG_JSON", production)?,
            kafka: KafkaConfig {
                brokers: env::string_or("CITYBRAIN_KAFKA_BROKERS", &kafka_defaults.brokers),
                topic_prefix: env::string_or("CITYBRAIN_TOPIC_PREFIX", ""),
                delivery_timeout: env::millis_or(
                    "CITYBRAIN_INGEST_DELIVERY_TIMEOUT_MS",
                    kafka_defaults.delivery_timeout,
                )?,
                enqueue_timeout: env::millis_or(
                    "CITYBRAIN_INGEST_ENQUEUE_TIMEOUT_MS",
                    kafka_defaults.enqueue_timeout,
                )?,
                queue_max_messages: env::var_or(
                    "CITYBRAIN_INGEST_QUEUE_MAX_MESSAGES",
                    kafka_defaults.queue_max_messages,
                )?,
                queue_max_kbytes: env::var_or(
                    "CITYBRAIN_INGEST_QUEUE_MAX_KBYTES",
                    kafka_defaults.queue_max_kbytes,
                )?,
                linger: env::millis_or("CITYBRAIN_INGEST_LINGER_MS", kafka_defaults.linger)?,
                compression,
                librdkafka_options: env::key_values("CITYBRAIN_KAFKA_OPTIONS")?,
                idempotence: env::bool_or("CITYBRAIN_INGEST_IDEMPOTENCE", true)?,
            },
            limits: BatchLimits {
                max_batch_events: env::var_or(
                    "CITYBRAIN_INGEST_MAX_BATCH_EVENTS",
                    defaults.max_batch_events,
                )?,
                max_batch_bytes: env::var_or(
                    "CITYBRAIN_INGEST_MAX_BATCH_BYTES",
                    defaults.max_batch_bytes,
                )?,
                max_event_bytes: env::var_or(
                    "CITYBRAIN_INGEST_MAX_EVENT_BYTES",
                    defaults.max_event_bytes,
                )?,
                max_stream_events: env::var_or(
                    "CITYBRAIN_INGEST_MAX_STREAM_EVENTS",
                    defaults.max_stream_events,
                )?,
            },
            validation: Limits {
                max_future_skew: env::secs_or(
                    "CITYBRAIN_INGEST_MAX_FUTURE_SKEW_S",
                    validation_defaults.max_future_skew,
                )?,
                max_age: env::secs_or("CITYBRAIN_INGEST_MAX_AGE_S", validation_defaults.max_age)?,
            },
        })
    }
}
