//! The ingest service's settings, read once at start-up from the environment.

use crate::validate::Limits;
use citybrain_config::{ConfigError, Env, KafkaConfig, ToEnv};
use citybrain_kafka::{COMPRESSIONS, ProducerSettings};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the ingest service can be told. Each field names its variable.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// `CITYBRAIN_INGEST_GRPC_ADDR`: where vendors connect (gRPC).
    pub grpc_addr: SocketAddr,
    /// `CITYBRAIN_INGEST_HTTP_ADDR`: `POST /v1/events` (JSON) and
    /// `/openapi.json`.
    pub http_addr: SocketAddr,
    /// `CITYBRAIN_INGEST_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_INGEST_API_KEYS`: the TOML file of API keys (see `auth`).
    pub api_keys_file: PathBuf,
    /// `CITYBRAIN_ENV=production` refuses development keys and keys in clear.
    pub production: bool,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines (production) instead of text.
    pub log_json: bool,
    /// `CITYBRAIN_KAFKA_BROKERS`, `CITYBRAIN_TOPIC_PREFIX`,
    /// `CITYBRAIN_KAFKA_OPTIONS`.
    pub kafka: KafkaConfig,
    pub producer: ProducerConfig,
    pub limits: BatchLimits,
    pub validation: Limits,
}

/// How ingest's producer behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    /// `CITYBRAIN_INGEST_DELIVERY_TIMEOUT_MS` (how long an event may wait for
    /// Kafka's acknowledgement before it is answered RETRYABLE),
    /// `CITYBRAIN_INGEST_QUEUE_MAX_MESSAGES` / `_QUEUE_MAX_KBYTES` (the
    /// producer queue's bounds), `CITYBRAIN_INGEST_LINGER_MS` (batching
    /// delay), `CITYBRAIN_INGEST_COMPRESSION` (none, gzip, snappy, lz4 or
    /// zstd) and `CITYBRAIN_INGEST_IDEMPOTENCE` (the idempotent producer,
    /// default on: turn it off only for brokers that cannot bump a producer's
    /// epoch, which librdkafka does after a delivery timeout — Tansu 0.6.0
    /// panics there and stops serving. Without it, a producer retry can write
    /// an event twice; the sink still stores it once.)
    pub settings: ProducerSettings,
    /// `CITYBRAIN_INGEST_ENQUEUE_TIMEOUT_MS`: how long to wait for room in a
    /// full producer queue before answering RETRYABLE (overloaded).
    pub enqueue_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            settings: ProducerSettings {
                delivery_timeout: Duration::from_secs(5),
                queue_max_messages: 100_000,
                queue_max_kbytes: 64 * 1024,
                linger: Duration::from_millis(5),
                compression: "lz4".into(),
                idempotence: true,
            },
            enqueue_timeout: Duration::from_millis(200),
        }
    }
}

/// Bounds on what one call may carry.
#[derive(Debug, Clone, PartialEq)]
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

impl IngestConfig {
    /// Development defaults for a broker at `brokers`, every address on
    /// loopback, the development key file.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 50051).into(),
            http_addr: ([127, 0, 0, 1], 8088).into(),
            admin_addr: ([127, 0, 0, 1], 9101).into(),
            api_keys_file: "deploy/local/dev-api-keys.toml".into(),
            production: false,
            log_json: false,
            kafka: KafkaConfig::new(brokers),
            producer: ProducerConfig::default(),
            limits: BatchLimits::default(),
            validation: Limits::default(),
        }
    }

    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::new(KafkaConfig::DEFAULT_BROKERS);
        let p = &d.producer.settings;
        let production = env.is_production()?;
        let compression = env.string_or("CITYBRAIN_INGEST_COMPRESSION", &p.compression);
        if !COMPRESSIONS.contains(&compression.as_str()) {
            return Err(ConfigError::invalid(
                "CITYBRAIN_INGEST_COMPRESSION",
                compression,
                "expected none, gzip, snappy, lz4 or zstd",
            ));
        }
        Ok(Self {
            grpc_addr: env.var_or("CITYBRAIN_INGEST_GRPC_ADDR", d.grpc_addr)?,
            http_addr: env.var_or("CITYBRAIN_INGEST_HTTP_ADDR", d.http_addr)?,
            admin_addr: env.var_or("CITYBRAIN_INGEST_ADMIN_ADDR", d.admin_addr)?,
            api_keys_file: env
                .string_or(
                    "CITYBRAIN_INGEST_API_KEYS",
                    &d.api_keys_file.to_string_lossy(),
                )
                .into(),
            production,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", production)?,
            kafka: KafkaConfig::from_env(env)?,
            producer: ProducerConfig {
                settings: ProducerSettings {
                    delivery_timeout: env
                        .millis_or("CITYBRAIN_INGEST_DELIVERY_TIMEOUT_MS", p.delivery_timeout)?,
                    queue_max_messages: env
                        .var_or("CITYBRAIN_INGEST_QUEUE_MAX_MESSAGES", p.queue_max_messages)?,
                    queue_max_kbytes: env
                        .var_or("CITYBRAIN_INGEST_QUEUE_MAX_KBYTES", p.queue_max_kbytes)?,
                    linger: env.millis_or("CITYBRAIN_INGEST_LINGER_MS", p.linger)?,
                    compression,
                    idempotence: env.bool_or("CITYBRAIN_INGEST_IDEMPOTENCE", p.idempotence)?,
                },
                enqueue_timeout: env.millis_or(
                    "CITYBRAIN_INGEST_ENQUEUE_TIMEOUT_MS",
                    d.producer.enqueue_timeout,
                )?,
            },
            limits: BatchLimits {
                max_batch_events: env.var_or(
                    "CITYBRAIN_INGEST_MAX_BATCH_EVENTS",
                    d.limits.max_batch_events,
                )?,
                max_batch_bytes: env
                    .var_or("CITYBRAIN_INGEST_MAX_BATCH_BYTES", d.limits.max_batch_bytes)?,
                max_event_bytes: env
                    .var_or("CITYBRAIN_INGEST_MAX_EVENT_BYTES", d.limits.max_event_bytes)?,
                max_stream_events: env.var_or(
                    "CITYBRAIN_INGEST_MAX_STREAM_EVENTS",
                    d.limits.max_stream_events,
                )?,
            },
            validation: Limits {
                max_future_skew: env.secs_or(
                    "CITYBRAIN_INGEST_MAX_FUTURE_SKEW_S",
                    d.validation.max_future_skew,
                )?,
                max_age: env.secs_or("CITYBRAIN_INGEST_MAX_AGE_S", d.validation.max_age)?,
            },
        })
    }
}

impl ToEnv for IngestConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let p = &self.producer.settings;
        let mut vars = vec![
            ("CITYBRAIN_INGEST_GRPC_ADDR", self.grpc_addr.to_string()),
            ("CITYBRAIN_INGEST_HTTP_ADDR", self.http_addr.to_string()),
            ("CITYBRAIN_INGEST_ADMIN_ADDR", self.admin_addr.to_string()),
            (
                "CITYBRAIN_INGEST_API_KEYS",
                self.api_keys_file.to_string_lossy().into_owned(),
            ),
            (
                citybrain_config::env::PRODUCTION,
                if self.production {
                    "production"
                } else {
                    "development"
                }
                .into(),
            ),
            ("CITYBRAIN_LOG_JSON", self.log_json.to_string()),
            (
                "CITYBRAIN_INGEST_DELIVERY_TIMEOUT_MS",
                p.delivery_timeout.as_millis().to_string(),
            ),
            (
                "CITYBRAIN_INGEST_QUEUE_MAX_MESSAGES",
                p.queue_max_messages.to_string(),
            ),
            (
                "CITYBRAIN_INGEST_QUEUE_MAX_KBYTES",
                p.queue_max_kbytes.to_string(),
            ),
            (
                "CITYBRAIN_INGEST_LINGER_MS",
                p.linger.as_millis().to_string(),
            ),
            ("CITYBRAIN_INGEST_COMPRESSION", p.compression.clone()),
            ("CITYBRAIN_INGEST_IDEMPOTENCE", p.idempotence.to_string()),
            (
                "CITYBRAIN_INGEST_ENQUEUE_TIMEOUT_MS",
                self.producer.enqueue_timeout.as_millis().to_string(),
            ),
            (
                "CITYBRAIN_INGEST_MAX_BATCH_EVENTS",
                self.limits.max_batch_events.to_string(),
            ),
            (
                "CITYBRAIN_INGEST_MAX_BATCH_BYTES",
                self.limits.max_batch_bytes.to_string(),
            ),
            (
                "CITYBRAIN_INGEST_MAX_EVENT_BYTES",
                self.limits.max_event_bytes.to_string(),
            ),
            (
                "CITYBRAIN_INGEST_MAX_STREAM_EVENTS",
                self.limits.max_stream_events.to_string(),
            ),
            (
                "CITYBRAIN_INGEST_MAX_FUTURE_SKEW_S",
                self.validation.max_future_skew.as_secs().to_string(),
            ),
            (
                "CITYBRAIN_INGEST_MAX_AGE_S",
                self.validation.max_age.as_secs().to_string(),
            ),
        ];
        vars.extend(self.kafka.to_env());
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut config = IngestConfig::new("b:9092");
        config.kafka.topic_prefix = "t1.".into();
        config.producer.settings.delivery_timeout = Duration::from_secs(30);
        config.producer.settings.idempotence = false;
        config.limits.max_stream_events = 7;
        config.validation.max_age = Duration::from_secs(3600);
        config.admin_addr = ([127, 0, 0, 1], 0).into();
        config.http_addr = ([127, 0, 0, 1], 1).into();
        let read = IngestConfig::read(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
    }

    #[test]
    fn unknown_compression_names_the_variable() {
        let env = Env::from_pairs([("CITYBRAIN_INGEST_COMPRESSION", "brotli")]);
        let err = IngestConfig::read(&env).unwrap_err().to_string();
        assert!(err.contains("CITYBRAIN_INGEST_COMPRESSION"), "{err}");
    }
}
