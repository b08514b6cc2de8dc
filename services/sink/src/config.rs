//! The sink's settings, read once at start-up from the environment.

use citybrain_config::{ClickHouseConfig, ConfigError, Env, KafkaConfig, ToEnv};
use citybrain_kafka::GroupSettings;
use std::{net::SocketAddr, time::Duration};

/// Everything the sink can be told. Each field names its variable.
#[derive(Debug, Clone, PartialEq)]
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
    /// `CITYBRAIN_KAFKA_BROKERS`, `CITYBRAIN_TOPIC_PREFIX` (prepended to
    /// every feed topic and the dead-letter topic, as in ingest) and
    /// `CITYBRAIN_KAFKA_OPTIONS` (the consumer's and the dead-letter
    /// producer's extra librdkafka settings).
    pub kafka: KafkaConfig,
    /// `CITYBRAIN_SINK_GROUP_ID` (the consumer group; instances sharing it
    /// split the partitions), `CITYBRAIN_SINK_SESSION_TIMEOUT_MS` (Kafka's
    /// default is 45000, the production default here; development defaults
    /// to 6000 because the Tansu broker holds a group join for about this
    /// long) and `CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS` (Kafka's default is
    /// 300000, production; development 7000; must exceed the insert timeout).
    pub group: GroupSettings,
    pub dead_letters: DeadLetterConfig,
    /// `CITYBRAIN_CLICKHOUSE_URL`, `_DATABASE`, `_USER`, `_PASSWORD`.
    pub clickhouse: ClickHouseConfig,
    pub store: StoreConfig,
    pub batch: BatchLimits,
    pub backoff: Backoff,
}

/// Where poison messages go.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterConfig {
    /// `CITYBRAIN_SINK_DEAD_LETTER_TOPIC`: the topic, without the prefix.
    pub topic: String,
    /// `CITYBRAIN_SINK_DEAD_LETTER_TIMEOUT_MS`: how long a dead letter may
    /// wait for Kafka's acknowledgement before the flush is retried.
    pub delivery_timeout: Duration,
}

/// How rows are written.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
            kafka: KafkaConfig::new(brokers),
            group: GroupSettings {
                group_id: "citybrain-sink".into(),
                session_timeout: Duration::from_millis(6000),
                max_poll_interval: Duration::from_millis(7000),
            },
            dead_letters: DeadLetterConfig {
                topic: citybrain_proto::feed::DEAD_LETTER_TOPIC.into(),
                delivery_timeout: Duration::from_secs(5),
            },
            clickhouse: ClickHouseConfig::new(clickhouse_url, ClickHouseConfig::DEFAULT_DATABASE),
            store: StoreConfig {
                insert_timeout: Duration::from_secs(5),
                dedup_event_ids: true,
                raw_retention_days: 400,
                cluster: None,
            },
            batch: BatchLimits::default(),
            backoff: Backoff::default(),
        }
    }

    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let production = env.is_production()?;
        let d = Self::new(KafkaConfig::DEFAULT_BROKERS, ClickHouseConfig::DEFAULT_URL);
        // Production keeps Kafka's own group timeouts.
        let (session, poll, insert) = if production {
            (
                Duration::from_secs(45),
                Duration::from_secs(300),
                Duration::from_secs(30),
            )
        } else {
            (
                d.group.session_timeout,
                d.group.max_poll_interval,
                d.store.insert_timeout,
            )
        };
        let config = Self {
            admin_addr: env.var_or("CITYBRAIN_SINK_ADMIN_ADDR", d.admin_addr)?,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", production)?,
            migrate: env.bool_or("CITYBRAIN_SINK_MIGRATE", d.migrate)?,
            shutdown_timeout: env
                .millis_or("CITYBRAIN_SINK_SHUTDOWN_TIMEOUT_MS", d.shutdown_timeout)?,
            kafka: KafkaConfig::from_env(env)?,
            group: GroupSettings {
                group_id: env.string_or("CITYBRAIN_SINK_GROUP_ID", &d.group.group_id),
                session_timeout: env.millis_or("CITYBRAIN_SINK_SESSION_TIMEOUT_MS", session)?,
                max_poll_interval: env.millis_or("CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS", poll)?,
            },
            dead_letters: DeadLetterConfig {
                topic: env.string_or("CITYBRAIN_SINK_DEAD_LETTER_TOPIC", &d.dead_letters.topic),
                delivery_timeout: env.millis_or(
                    "CITYBRAIN_SINK_DEAD_LETTER_TIMEOUT_MS",
                    d.dead_letters.delivery_timeout,
                )?,
            },
            clickhouse: ClickHouseConfig::from_env(env)?,
            store: StoreConfig {
                insert_timeout: env.millis_or("CITYBRAIN_SINK_INSERT_TIMEOUT_MS", insert)?,
                dedup_event_ids: env
                    .bool_or("CITYBRAIN_SINK_DEDUP_EVENT_IDS", d.store.dedup_event_ids)?,
                raw_retention_days: env.var_or(
                    "CITYBRAIN_SINK_RAW_RETENTION_DAYS",
                    d.store.raw_retention_days,
                )?,
                cluster: env.optional("CITYBRAIN_CLICKHOUSE_CLUSTER"),
            },
            batch: BatchLimits {
                max_rows: env.var_or("CITYBRAIN_SINK_BATCH_MAX_ROWS", d.batch.max_rows)?,
                max_bytes: env.var_or("CITYBRAIN_SINK_BATCH_MAX_BYTES", d.batch.max_bytes)?,
                max_age: env.millis_or("CITYBRAIN_SINK_BATCH_MAX_AGE_MS", d.batch.max_age)?,
            },
            backoff: Backoff {
                initial: env.millis_or("CITYBRAIN_SINK_BACKOFF_INITIAL_MS", d.backoff.initial)?,
                max: env.millis_or("CITYBRAIN_SINK_BACKOFF_MAX_MS", d.backoff.max)?,
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
        if self.store.insert_timeout >= self.group.max_poll_interval {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_SINK_INSERT_TIMEOUT_MS",
                value: self.store.insert_timeout.as_millis().to_string(),
                reason: format!(
                    "must be below CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS ({} ms): a longer insert \
                     would get this instance evicted from the group mid-insert",
                    self.group.max_poll_interval.as_millis()
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
            .map(|feed| self.kafka.topic(feed.topic()))
            .collect()
    }

    /// The dead-letter topic, with the prefix.
    pub fn dead_letter_topic(&self) -> String {
        self.kafka.topic(&self.dead_letters.topic)
    }
}

impl ToEnv for SinkConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let millis = |d: Duration| d.as_millis().to_string();
        let mut vars = vec![
            ("CITYBRAIN_SINK_ADMIN_ADDR", self.admin_addr.to_string()),
            ("CITYBRAIN_LOG_JSON", self.log_json.to_string()),
            ("CITYBRAIN_SINK_MIGRATE", self.migrate.to_string()),
            (
                "CITYBRAIN_SINK_SHUTDOWN_TIMEOUT_MS",
                millis(self.shutdown_timeout),
            ),
            ("CITYBRAIN_SINK_GROUP_ID", self.group.group_id.clone()),
            (
                "CITYBRAIN_SINK_SESSION_TIMEOUT_MS",
                millis(self.group.session_timeout),
            ),
            (
                "CITYBRAIN_SINK_MAX_POLL_INTERVAL_MS",
                millis(self.group.max_poll_interval),
            ),
            (
                "CITYBRAIN_SINK_DEAD_LETTER_TOPIC",
                self.dead_letters.topic.clone(),
            ),
            (
                "CITYBRAIN_SINK_DEAD_LETTER_TIMEOUT_MS",
                millis(self.dead_letters.delivery_timeout),
            ),
            (
                "CITYBRAIN_SINK_INSERT_TIMEOUT_MS",
                millis(self.store.insert_timeout),
            ),
            (
                "CITYBRAIN_SINK_DEDUP_EVENT_IDS",
                self.store.dedup_event_ids.to_string(),
            ),
            (
                "CITYBRAIN_SINK_RAW_RETENTION_DAYS",
                self.store.raw_retention_days.to_string(),
            ),
            (
                "CITYBRAIN_CLICKHOUSE_CLUSTER",
                self.store.cluster.clone().unwrap_or_default(),
            ),
            (
                "CITYBRAIN_SINK_BATCH_MAX_ROWS",
                self.batch.max_rows.to_string(),
            ),
            (
                "CITYBRAIN_SINK_BATCH_MAX_BYTES",
                self.batch.max_bytes.to_string(),
            ),
            (
                "CITYBRAIN_SINK_BATCH_MAX_AGE_MS",
                millis(self.batch.max_age),
            ),
            (
                "CITYBRAIN_SINK_BACKOFF_INITIAL_MS",
                millis(self.backoff.initial),
            ),
            ("CITYBRAIN_SINK_BACKOFF_MAX_MS", millis(self.backoff.max)),
        ];
        vars.extend(self.kafka.to_env());
        vars.extend(self.clickhouse.to_env());
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependent_settings_are_checked_by_name() {
        let mut config = SinkConfig::new("b", "http://c");
        assert!(config.validate().is_ok());
        config.store.insert_timeout = Duration::from_secs(8);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("CITYBRAIN_SINK_INSERT_TIMEOUT_MS"), "{err}");
        config.store.insert_timeout = Duration::from_secs(1);
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
    fn reads_back_what_it_writes() {
        let mut config = SinkConfig::new("b:9092", "http://ch:8123");
        config.kafka.topic_prefix = "t1.".into();
        config.group.group_id = "t1.sink".into();
        config.store.cluster = Some("town".into());
        config.store.dedup_event_ids = false;
        config.dead_letters.delivery_timeout = Duration::from_secs(2);
        config.batch.max_age = Duration::from_millis(100);
        config.admin_addr = ([127, 0, 0, 1], 0).into();
        let read = SinkConfig::read(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
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
