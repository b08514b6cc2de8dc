//! Kafka plumbing every citybrain service shares.
//!
//! - Client settings per role, built in one place so that every client of a
//!   service gets the deployment's connection and the operator's
//!   `CITYBRAIN_KAFKA_OPTIONS` (TLS, SASL) — applied last, so they win:
//!   [`event_producer`] (ingest), [`group_consumer`] (the sink),
//!   [`side_producer`] (dead letters, alarm transitions: at least once).
//! - The record format in librdkafka terms ([`record_headers`]); the format
//!   itself (key `tenant/device`, headers `kind`, `schema`, `tenant`) is the
//!   contract's, in `citybrain_proto::record`.

use citybrain_config::KafkaConfig;
use citybrain_proto::feed::Kind;
use citybrain_proto::record;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use std::time::Duration;

/// How ingest's event producer batches, bounds its queue and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSettings {
    /// How long an event may wait for Kafka's acknowledgement.
    pub delivery_timeout: Duration,
    /// Producer queue bound (messages).
    pub queue_max_messages: u32,
    /// Producer queue bound (KiB).
    pub queue_max_kbytes: u32,
    /// Batching delay.
    pub linger: Duration,
    /// none, gzip, snappy, lz4 or zstd.
    pub compression: String,
    /// The idempotent producer (exactly-once, in-order writes per partition
    /// across the producer's own retries).
    pub idempotence: bool,
}

/// The compressions librdkafka and every Kafka broker understand.
pub const COMPRESSIONS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// How a member of a consumer group behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// The consumer group; members sharing it split the partitions.
    pub group_id: String,
    /// Kafka's `session.timeout.ms`.
    pub session_timeout: Duration,
    /// Kafka's `max.poll.interval.ms`.
    pub max_poll_interval: Duration,
}

/// The settings every client starts from, then `role`'s, then the operator's.
fn client_config<'a>(
    kafka: &KafkaConfig,
    client_id: &str,
    role: impl IntoIterator<Item = (&'a str, String)>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", client_id);
    for (key, value) in role {
        config.set(key, value);
    }
    // Operator-supplied librdkafka settings (TLS, SASL, tuning) win.
    for (key, value) in &kafka.options {
        config.set(key, value);
    }
    config
}

/// Ingest's producer: `acks=all`, idempotent unless turned off, bounded
/// queue, answered within the delivery timeout.
pub fn event_producer(
    kafka: &KafkaConfig,
    client_id: &str,
    settings: &ProducerSettings,
) -> ClientConfig {
    client_config(
        kafka,
        client_id,
        [
            ("enable.idempotence", settings.idempotence.to_string()),
            ("acks", "all".to_string()),
            ("compression.type", settings.compression.clone()),
            ("linger.ms", settings.linger.as_millis().to_string()),
            (
                "message.timeout.ms",
                settings.delivery_timeout.as_millis().to_string(),
            ),
            (
                "queue.buffering.max.messages",
                settings.queue_max_messages.to_string(),
            ),
            (
                "queue.buffering.max.kbytes",
                settings.queue_max_kbytes.to_string(),
            ),
            // While the broker is down, librdkafka only times messages out
            // between reconnect attempts; its default 10 s backoff cap made a
            // 3 s delivery timeout take 8–10 s (measured against Tansu).
            ("reconnect.backoff.max.ms", "1000".to_string()),
            ("statistics.interval.ms", "5000".to_string()),
        ],
    )
}

/// A producer of records that are at least once anyway (dead letters, alarm
/// transitions): plain `acks=all`, which every Kafka-protocol broker
/// handles, each send answered within `delivery_timeout`.
pub fn side_producer(
    kafka: &KafkaConfig,
    client_id: &str,
    delivery_timeout: Duration,
) -> ClientConfig {
    client_config(
        kafka,
        client_id,
        [
            ("acks", "all".to_string()),
            (
                "message.timeout.ms",
                delivery_timeout.as_millis().to_string(),
            ),
            ("reconnect.backoff.max.ms", "1000".to_string()),
        ],
    )
}

/// A consumer-group member that commits only what the application stored
/// (no automatic commits or offset stores), reading from the earliest offset
/// when the group has none.
pub fn group_consumer(kafka: &KafkaConfig, client_id: &str, group: &GroupSettings) -> ClientConfig {
    client_config(
        kafka,
        client_id,
        [
            ("group.id", group.group_id.clone()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            ("auto.offset.reset", "earliest".to_string()),
            (
                "partition.assignment.strategy",
                "range,roundrobin".to_string(),
            ),
            (
                "session.timeout.ms",
                group.session_timeout.as_millis().to_string(),
            ),
            (
                "heartbeat.interval.ms",
                (group.session_timeout.as_millis() / 3).max(100).to_string(),
            ),
            (
                "max.poll.interval.ms",
                group.max_poll_interval.as_millis().to_string(),
            ),
            ("statistics.interval.ms", "5000".to_string()),
        ],
    )
}

/// The headers of an event record ([`citybrain_proto::record::headers`]).
pub fn record_headers(kind: Kind, tenant: &str) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(3);
    for (key, value) in record::headers(kind, tenant) {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn kafka_with_options() -> KafkaConfig {
        let mut kafka = KafkaConfig::new("b:9092");
        kafka.options = vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("acks".into(), "1".into()),
        ];
        kafka
    }

    #[test]
    fn every_role_applies_the_operator_options_last() {
        let kafka = kafka_with_options();
        let producer = ProducerSettings {
            delivery_timeout: Duration::from_secs(5),
            queue_max_messages: 10,
            queue_max_kbytes: 10,
            linger: Duration::from_millis(5),
            compression: "lz4".into(),
            idempotence: false,
        };
        let group = GroupSettings {
            group_id: "g".into(),
            session_timeout: Duration::from_secs(6),
            max_poll_interval: Duration::from_secs(7),
        };
        for config in [
            event_producer(&kafka, "ingest", &producer),
            side_producer(&kafka, "dead-letters", Duration::from_secs(3)),
            group_consumer(&kafka, "sink", &group),
        ] {
            assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
            assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        }
        // The operator's value wins over the role's own.
        assert_eq!(
            event_producer(&kafka, "ingest", &producer).get("acks"),
            Some("1")
        );
        let side = side_producer(&KafkaConfig::new("b"), "dl", Duration::from_secs(3));
        assert_eq!(side.get("message.timeout.ms"), Some("3000"));
        assert_eq!(
            group_consumer(&kafka, "sink", &group).get("heartbeat.interval.ms"),
            Some("2000")
        );
    }

    #[test]
    fn records_carry_kind_schema_and_tenant() {
        let headers = record_headers(Kind::BinReading, "lucheng");
        let found: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("kind".to_string(), b"bin_reading".to_vec()),
                ("schema".to_string(), b"citybrain.events.v1".to_vec()),
                ("tenant".to_string(), b"lucheng".to_vec()),
            ]
        );
    }
}
