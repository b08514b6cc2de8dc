//! How every service reaches Kafka.

use crate::ToEnv;
use crate::env::{ConfigError, Env, join_key_values};

/// The broker connection all services share; each service adds the settings
/// of its own role (ingest's producer, the sink's consumer group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `CITYBRAIN_KAFKA_BROKERS`: bootstrap servers, comma-separated.
    pub brokers: String,
    /// `CITYBRAIN_TOPIC_PREFIX`: prepended to every topic (isolates
    /// environments or tests sharing one cluster). Empty by default.
    pub topic_prefix: String,
    /// `CITYBRAIN_KAFKA_OPTIONS`: extra librdkafka settings for every client
    /// of the service (producers and consumers alike), applied last, as
    /// `key=value` pairs separated by commas (e.g. TLS or SASL:
    /// `security.protocol=SASL_SSL,sasl.mechanisms=SCRAM-SHA-512`).
    pub options: Vec<(String, String)>,
}

impl KafkaConfig {
    /// The local stack's broker.
    pub const DEFAULT_BROKERS: &'static str = "127.0.0.1:19092";

    /// A broker at `brokers`, no prefix, no extra options.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: String::new(),
            options: Vec::new(),
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            brokers: env.string_or("CITYBRAIN_KAFKA_BROKERS", Self::DEFAULT_BROKERS),
            topic_prefix: env.string_or("CITYBRAIN_TOPIC_PREFIX", ""),
            options: env.key_values("CITYBRAIN_KAFKA_OPTIONS")?,
        })
    }

    /// `topic` with this deployment's prefix.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }
}

impl ToEnv for KafkaConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CITYBRAIN_KAFKA_BROKERS", self.brokers.clone()),
            ("CITYBRAIN_TOPIC_PREFIX", self.topic_prefix.clone()),
            ("CITYBRAIN_KAFKA_OPTIONS", join_key_values(&self.options)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut config = KafkaConfig::new("b1:9092,b2:9092");
        config.topic_prefix = "t1.".into();
        config.options = vec![("security.protocol".into(), "SASL_SSL".into())];
        let read = KafkaConfig::from_env(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
        assert_eq!(
            read.topic("citybrain.parking.v1"),
            "t1.citybrain.parking.v1"
        );
        assert_eq!(
            KafkaConfig::from_env(&Env::from_pairs::<&str, &str>([])).unwrap(),
            KafkaConfig::new(KafkaConfig::DEFAULT_BROKERS)
        );
    }
}
