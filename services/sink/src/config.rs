//! The sink's settings, read once at start-up from the environment.

use citybrain_telemetry::env::{self, ConfigError};
use std::{net::SocketAddr, time::Duration};

/// Everything the sink can be told. Each field names its variable.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// `CITYBRAIN_SINK_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines (production) instead of text.
    pub log_json: bool,
    /// `CITYBRAIN_SINK_MIGRATE`: apply pending schema migrations at start-up.
    pub migrate: bool,
    /// `CITYBRAIN_SINK_SHUTDOWN_TIMEOUT_MS`: how long shutdown may spend
    /// flushing the last batch before giving up (nothing is committed then,
    /// so nothing is lost: the next owner re-reads it).
    pub shutdown_timeout: Duration,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub batch: BatchLimits,
    pub backoff: Backoff,
}

/// How the sink consumes.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `CITYBRAIN_KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub brokers: String,
    /// `CITYBRAIN_TOPIC_PREFIX`: prepended to every feed topic and the
    /// dead-letter topic, as in ingest.
    pub topic_prefix: String,
    /// `CITYBRAIN_SINK_GROUP_ID`: the consumer group; instances sharing it
    /// split the partitions.
    pub group_id: String,
    /// `CITYBRAIN_SINK_SESSION_TIMEOUT_MS`: Kafka's default is 45000 (the
    /// production default here); development defaults to 6000 because the
    /// Tansu broker holds a group join for about this long.
    pub session_timeout: Duration,
    /// `CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS`: Kafka's default is 300000
    /// (production); development defaults to 7000 (see above). Must exceed
    /// the insert timeout.
    pub max_poll_interval: Duration,
    /// `CITYBRAIN_SINK_DEAD_LETTER_TOPIC`: where poison messages go (without
    /// the prefix).
    pub dead_letter_topic: String,
    /// `CITYBRAIN_KAFKA_OPTIONS`: extra librdkafka settings for the consumer,
    /// applied last, as comma-separated `key=value` pairs (TLS, SASL, fetch
    /// tuning), as in ingest.
    pub librdkafka_options: Vec<(String, String)>,
}

/// Where rows go.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// `CITYBRAIN_CLICKHOUSE_URL`: the HTTP interface.
    pub url: String,
    /// `CITYBRAIN_CLICKHOUSE_DATABASE`.
    pub database: String,
    /// `CITYBRAIN_CLICKHOUSE_USER`.
    pub user: String,
    /// `CITYBRAIN_CLICKHOUSE_PASSWORD`.
    pub password: String,
    /// `CITYBRAIN_SINK_INSERT_TIMEOUT_MS`: one INSERT (or lookup) may take
    /// this long before it counts as failed and is retried.
    pub insert_timeout: Duration,
    /// `CITYBRAIN_SINK_DEDUP_EVENT_IDS`: before each INSERT, look up which
    /// event ids the table already holds and drop those rows, so an event a
    /// vendor sent twice is counted once in the roll-ups. Costs one lookup
    /// per 1000 rows; redelivered Kafka messages are skipped without it.
    pub dedup_event_ids: bool,
    /// `CITYBRAIN_SINK_RAW_RETENTION_DAYS`: raw-row TTL on servers that have
    /// TTL (19.6+); 0 keeps raw rows forever.
    pub raw_retention_days: u32,
    /// `CITYBRAIN_CLICKHOUSE_CLUSTER`: the ClickHouse cluster (a name in the
    /// servers' `<remote_servers>`) the schema is replicated on; unset or
    /// empty for one server. The URL must then be a server holding a
    /// replica: inserts into the `Distributed` tables go to its local
    /// replica, and a partition taken over from another instance is read
    /// only once this replica holds what the other one wrote (see
    /// `citybrain_schema::cluster`).
    pub cluster: Option<String>,
}

/// A batch is written when any limit is reached.
#[derive(Debug, Clone)]
pub struct BatchLimits {
    /// `CITYBRAIN_SINK_BATCH_MAX_ROWS`: rows per batch (all tables). At most
    /// 1,000,000 so that each table's INSERT stays one block (ClickHouse's
    /// `max_insert_block_size` is 1,048,576), which makes it atomic.
    pub max_rows: usize,
    /// `CITYBRAIN_SINK_BATCH_MAX_BYTES`: encoded message bytes per batch.
    pub max_bytes: usize,
    /// `CITYBRAIN_SINK_BATCH_MAX_AGE_MS`: the oldest message waits at most
    /// this long; this bounds how fresh the data in ClickHouse is.
    pub max_age: Duration,
}

/// Retries while ClickHouse (or the dead-letter topic) is unavailable.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// `CITYBRAIN_SINK_BACKOFF_INITIAL_MS`.
    pub initial: Duration,
    /// `CITYBRAIN_SINK_BACKOFF_MAX_MS`.
    pub max: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_rows: 50_000,
            max_bytes: 16 * 1024 * 1024,
            max_age: Duration::from_millis(1000),
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl SinkConfig {
    /// Settings for a broker and ClickHouse, with development defaults (short
    /// group timeouts) and everything else as documented above.
    pub fn new(brokers: impl Into<String>, clickhouse_url: impl Into<String>) -> Self {
        Self {
            admin_addr: ([127, 0, 0, 1], 9102).into(),
            log_json: false,
            migrate: true,
            shutdown_timeout: Duration::from_secs(10),
            kafka: KafkaConfig {
                brokers: brokers.into(),
                topic_prefix: String::new(),
                group_id: "citybrain-sink".into(),
                session_timeout: Duration::from_millis(6000),
                max_poll_interval: Duration::from_millis(7000),
                dead_letter_topic: crate::dead_letter::TOPIC.into(),
                librdkafka_options: Vec::new(),
            },
            clickhouse: ClickHouseConfig {
                url: clickhouse_url.into(),
                database: "citybrain".into(),
                user: "default".into(),
                password: String::new(),
                insert_timeout: Duration::from_secs(5),
                dedup_event_ids: true,
                raw_retention_days: 400,
                cluster: None,
            },
            batch: BatchLimits::default(),
            backoff: Backoff::default(),
        }
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let production = env::is_production()?;
        let defaults = Self::new("127.0.0.1:19092", "http://127.0.0.1:18123");
        // Production keeps Kafka's own group timeouts.
        let (session, poll, insert) = if production {
            (
                Duration::from_secs(45),
                Duration::from_secs(300),
                Duration::from_secs(30),
            )
        } else {
            (
                defaults.kafka.session_timeout,
                defaults.kafka.max_poll_interval,
                defaults.clickhouse.insert_timeout,
            )
        };
        let config = Self {
            admin_addr: env::var_or("CITYBRAIN_SINK_ADMIN_ADDR", defaults.admin_addr)?,
            log_json: env::bool_or("CITYBRAIN_LOG_JSON", production)?,
            migrate: env::bool_or("CITYBRAIN_SINK_MIGRATE", true)?,
            shutdown_timeout: env::millis_or(
                "CITYBRAIN_SINK_SHUTDOWN_TIMEOUT_MS",
                defaults.shutdown_timeout,
            )?,
            kafka: KafkaConfig {
                brokers: env::string_or("CITYBRAIN_KAFKA_BROKERS", &defaults.kafka.brokers),
                topic_prefix: env::string_or("CITYBRAIN_TOPIC_PREFIX", ""),
                group_id: env::string_or("CITYBRAIN_SINK_GROUP_ID", &defaults.kafka.group_id),
                session_timeout: env::millis_or("CITYBRAIN_SINK_SESSION_TIMEOUT_MS", session)?,
                max_poll_interval: env::millis_or("CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS", poll)?,
                dead_letter_topic: env::string_or(
                    "CITYBRAIN_SINK_DEAD_LETTER_TOPIC",
                    crate::dead_letter::TOPIC,
                ),
                librdkafka_options: env::key_values("CITYBRAIN_KAFKA_OPTIONS")?,
            },
            clickhouse: ClickHouseConfig {
                url: env::string_or("CITYBRAIN_CLICKHOUSE_URL", &defaults.clickhouse.url),
                database: env::string_or(
                    "CITYBRAIN_CLICKHOUSE_DATABASE",
                    &defaults.clickhouse.database,
                ),
                user: env::string_or("CITYBRAIN_CLICKHOUSE_USER", &defaults.clickhouse.user),
                password: std::env::var("CITYBRAIN_CLICKHOUSE_PASSWORD").unwrap_or_default(),
                insert_timeout: env::millis_or("CITYBRAIN_SINK_INSERT_TIMEOUT_MS", insert)?,
                dedup_event_ids: env::bool_or("CITYBRAIN_SINK_DEDUP_EVENT_IDS", true)?,
                raw_retention_days: env::var_or(
                    "CITYBRAIN_SINK_RAW_RETENTION_DAYS",
                    defaults.clickhouse.raw_retention_days,
                )?,
                cluster: Some(env::string_or("CITYBRAIN_CLICKHOUSE_CLUSTER", ""))
                    .filter(|name| !name.is_empty()),
            },
            batch: BatchLimits {
                max_rows: env::var_or("CITYBRAIN_SINK_BATCH_MAX_ROWS", defaults.batch.max_rows)?,
                max_bytes: env::var_or("CITYBRAIN_SINK_BATCH_MAX_BYTES", defaults.batch.max_bytes)?,
                max_age: env::millis_or("CITYBRAIN_SINK_BATCH_MAX_AGE_MS", defaults.batch.max_age)?,
            },
            backoff: Backoff {
                initial: env::millis_or(
                    "CITYBRAIN_SINK_BACKOFF_INITIAL_MS",
                    defaults.backoff.initial,
                )?,
                max: env::millis_or("CITYBRAIN_SINK_BACKOFF_MAX_MS", defaults.backoff.max)?,
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.batch.max_rows == 0 || self.batch.max_rows > 1_000_000 {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_SINK_BATCH_MAX_ROWS",
                value: self.batch.max_rows.to_string(),
                reason: "must be 1..=1000000 so that each INSERT is one block".into(),
            });
        }
        if self.clickhouse.insert_timeout >= self.kafka.max_poll_interval {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_SINK_INSERT_TIMEOUT_MS",
                value: self.clickhouse.insert_timeout.as_millis().to_string(),
                reason: format!(
                    "must be below CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS ({} ms): a longer insert \
                     would get this instance evicted from the group mid-insert",
                    self.kafka.max_poll_interval.as_millis()
                ),
            });
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_SINK_BACKOFF_MAX_MS",
                value: self.backoff.max.as_millis().to_string(),
                reason: "the backoff must start above 0 and its cap be at least the start".into(),
            });
        }
        Ok(())
    }

    /// The topics consumed: every feed's, with the prefix.
    pub fn feed_topics(&self) -> Vec<String> {
        citybrain_proto::feed::Feed::ALL
            .iter()
            .map(|feed| format!("{}{}", self.kafka.topic_prefix, feed.topic()))
            .collect()
    }

    /// The dead-letter topic, with the prefix.
    pub fn dead_letter_topic(&self) -> String {
        format!(
            "{}{}",
            self.kafka.topic_prefix, self.kafka.dead_letter_topic
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependent_settings_are_checked_by_name() {
        let mut config = SinkConfig::new("b", "http://c");
        assert!(config.validate().is_ok());
        config.clickhouse.insert_timeout = Duration::from_secs(8);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("CITYBRAIN_SINK_INSERT_TIMEOUT_MS"), "{err}");
        config.clickhouse.insert_timeout = Duration::from_secs(1);
        config.batch.max_rows = 2_000_000;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("BATCH_MAX_ROWS")
        );
    }

    #[test]
    fn topics_carry_the_prefix() {
        let mut config = SinkConfig::new("b", "http://c");
        config.kafka.topic_prefix = "t1.".into();
        assert!(
            config
                .feed_topics()
                .contains(&"t1.citybrain.parking.v1".to_string())
        );
        assert_eq!(config.dead_letter_topic(), "t1.citybrain.dead_letter.v1");
    }
}
