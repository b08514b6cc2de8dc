//! The dead-letter topic: messages that can never become rows go here with
//! why, and where they came from, so an operator can inspect and replay them.
//!
//! A dead letter keeps the original key, payload and headers and adds the
//! headers below. Rows ClickHouse itself refused carry the row as JSON
//! instead (the original bytes are at `original_topic/partition/offset`).
//! Delivery is at least once: after a crash a message may be dead-lettered
//! again.

use crate::config::SinkConfig;
use crate::rows::{Lineage, Poison};
use rdkafka::{
    ClientConfig,
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use std::time::Duration;

/// Header names added to every dead letter.
pub mod headers {
    /// Why: one of [`crate::rows::Poison::REASONS`].
    pub const REASON: &str = "dead_letter_reason";
    /// The error in words, for people.
    pub const DETAIL: &str = "dead_letter_detail";
    /// The cluster id of the broker the record was read from.
    pub const ORIGINAL_CLUSTER: &str = "original_cluster";
    pub const ORIGINAL_TOPIC: &str = "original_topic";
    pub const ORIGINAL_PARTITION: &str = "original_partition";
    pub const ORIGINAL_OFFSET: &str = "original_offset";
    /// `original` (the record's own bytes) or `json_row` (the refused row).
    pub const PAYLOAD_FORMAT: &str = "dead_letter_payload_format";
}

/// A message on its way to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub lineage: Lineage,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub payload_format: &'static str,
    /// The original record's headers, kept as they were.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub reason: &'static str,
    pub detail: String,
}

impl DeadLetter {
    /// A record that could not be decoded into a row.
    pub fn original(
        lineage: Lineage,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: Vec<(String, Option<Vec<u8>>)>,
        poison: &Poison,
    ) -> Self {
        Self {
            lineage,
            key,
            payload,
            payload_format: "original",
            headers,
            reason: poison.reason(),
            detail: poison.to_string(),
        }
    }

    fn record_headers(&self) -> OwnedHeaders {
        let mut out = OwnedHeaders::new_with_capacity(self.headers.len() + 7);
        for (key, value) in &self.headers {
            out = out.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let partition = self.lineage.partition.to_string();
        let offset = self.lineage.offset.to_string();
        for (key, value) in [
            (headers::REASON, self.reason),
            (headers::DETAIL, self.detail.as_str()),
            (headers::ORIGINAL_CLUSTER, &*self.lineage.cluster),
            (headers::ORIGINAL_TOPIC, self.lineage.topic.as_str()),
            (headers::ORIGINAL_PARTITION, partition.as_str()),
            (headers::ORIGINAL_OFFSET, offset.as_str()),
            (headers::PAYLOAD_FORMAT, self.payload_format),
        ] {
            out = out.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        out
    }
}

/// The dead-letter producer's settings. Dead letters are at least once
/// anyway; plain acks=all keeps the producer simple for every Kafka-protocol
/// broker.
fn client_config(config: &SinkConfig) -> ClientConfig {
    citybrain_kafka::side_producer(
        &config.kafka,
        "citybrain-sink-dead-letters",
        config.dead_letters.delivery_timeout,
    )
}

/// Sends dead letters; a send resolves when Kafka acknowledged it.
#[derive(Clone)]
pub struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterProducer {
    /// A producer with the deployment's Kafka settings (its options too:
    /// on a SASL/TLS cluster a producer without them could never send the
    /// first dead letter, and the sink would stall on it).
    pub fn new(config: &SinkConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: client_config(config).create()?,
            topic: config.dead_letter_topic(),
        })
    }

    pub async fn send(&self, letter: &DeadLetter) -> Result<(), KafkaError> {
        let mut record = FutureRecord::to(&self.topic)
            .payload(&letter.payload)
            .headers(letter.record_headers());
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        self.producer
            .send(record, Timeout::After(Duration::from_secs(1)))
            .await
            .map(|_| ())
            .map_err(|(err, _)| err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_use_the_deployments_kafka_options_and_their_own_timeout() {
        let mut config = SinkConfig::new("b:9092", "http://ch:8123");
        config.kafka.options = vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
        ];
        config.dead_letters.delivery_timeout = Duration::from_millis(2500);
        config.store.insert_timeout = Duration::from_millis(4000);
        let settings = client_config(&config);
        assert_eq!(settings.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(settings.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(settings.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(settings.get("message.timeout.ms"), Some("2500"));
    }
}
