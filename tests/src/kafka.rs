//! Topics of a test's own (removed when the test ends, however it ends) and
//! reading back what was produced.

use citybrain_proto::feed::{DEAD_LETTER_TOPIC, Feed};
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
    topic_partition_list::{Offset, TopicPartitionList},
};
use std::time::{Duration, Instant};

/// Topics created for one test, under the test's own prefix.
///
/// They are **not deleted** afterwards, on purpose: Tansu 0.6.0 answers a
/// metadata request for a deleted topic's id with UNKNOWN_TOPIC_OR_PARTITION
/// and no name (Kafka answers UNKNOWN_TOPIC_ID), and librdkafka 2.12 then
/// looks the missing name up in its cache (`rd_kafka_metadata_cache_find` →
/// `strcmp(NULL)`): every client in the process that knew the topic dies of
/// SIGSEGV. Deleting a test's topics on Drop crashed `sink_poison` in 5 of 6
/// runs on a private broker, none without the deletion. The prefix keeps
/// tests apart; `make test`'s broker keeps topics in memory and CI starts it
/// afresh.
pub struct TestTopics {
    pub names: Vec<String>,
}

impl TestTopics {
    /// Creates `topics` with `partitions` partitions each (an existing one
    /// is kept), waiting until the broker reports them.
    pub async fn create(brokers: &str, topics: &[String], partitions: i32) -> Self {
        let admin = admin(brokers);
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
        Self {
            names: topics.to_vec(),
        }
    }

    /// Every feed topic under `prefix`.
    pub async fn feeds(brokers: &str, prefix: &str, partitions: i32) -> Self {
        Self::create(brokers, &feed_topics(prefix), partitions).await
    }

    /// Every feed topic and the dead-letter topic under `prefix`: what a
    /// whole ingest → Kafka → sink pipeline needs.
    pub async fn pipeline(brokers: &str, prefix: &str, partitions: i32) -> Self {
        let mut topics = Self::feeds(brokers, prefix, partitions).await;
        let dead_letters =
            Self::create(brokers, &[format!("{prefix}{DEAD_LETTER_TOPIC}")], 1).await;
        topics.adopt(dead_letters);
        topics
    }

    /// Takes over `other`'s topics (deleted with this guard's).
    pub fn adopt(&mut self, mut other: TestTopics) {
        self.names.append(&mut other.names);
    }
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

/// Every feed topic's name under `prefix`.
pub fn feed_topics(prefix: &str) -> Vec<String> {
    Feed::ALL
        .iter()
        .map(|feed| format!("{prefix}{}", feed.topic()))
        .collect()
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

/// The events stored on the feed topics under `prefix`, as ingest wrote
/// them: reads until `expected` arrived (then `settle` more for any extra).
pub fn stored_events(
    brokers: &str,
    prefix: &str,
    expected: usize,
    settle: Duration,
) -> Vec<citybrain_proto::events::v1::IngestedEvent> {
    use prost::Message as _;
    use rdkafka::Message as _;
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
