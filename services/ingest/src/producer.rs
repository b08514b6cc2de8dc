//! The Kafka side of ingest: an idempotent producer whose every send resolves
//! only when the broker acknowledged (`acks=all`) or definitely did not.
//!
//! Memory stays bounded: librdkafka's queue has a message and byte cap; when it
//! is full a send waits at most `enqueue_timeout` for room and then reports
//! [`ProduceError::Overloaded`], which the caller answers as RETRYABLE.

use crate::config::ProducerConfig;
use crate::metrics;
use citybrain_config::KafkaConfig;
use citybrain_proto::feed::Feed;
use rdkafka::{
    ClientConfig, ClientContext, Statistics,
    error::{KafkaError, RDKafkaErrorCode},
    message::OwnedHeaders,
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

/// Why Kafka did not take an event.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProduceError {
    /// The producer queue stayed full: the platform is overloaded.
    #[error("producer queue full")]
    Overloaded,
    /// Kafka did not acknowledge in time or is unreachable.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// Kafka refused this event for good (e.g. too large).
    #[error("event store refused the event: {0}")]
    Rejected(String),
}

/// Feeds librdkafka's periodic statistics into the service's gauges.
pub struct StatsContext;

impl ClientContext for StatsContext {
    fn stats(&self, statistics: Statistics) {
        metrics::producer_queue(statistics.msg_cnt, statistics.msg_size);
        let rtts: Vec<f64> = statistics
            .brokers
            .values()
            .filter_map(|broker| broker.rtt.as_ref())
            .filter(|window| window.cnt > 0)
            .map(|window| window.avg as f64 / 1e6)
            .collect();
        if !rtts.is_empty() {
            metrics::broker_rtt(rtts.iter().sum::<f64>() / rtts.len() as f64);
        }
    }
}

/// Sends encoded events to their feed's topic. Cheap to clone.
///
/// The librdkafka producer inside can be replaced ([`EventProducer::heal`]):
/// an idempotent producer that hit a fatal error never sends again, and one
/// whose broker lost its producer state (seen with Tansu after a restart)
/// keeps failing even though the broker answers. Replacing it costs one
/// InitProducerId; events in flight on the old one are answered RETRYABLE.
#[derive(Clone)]
pub struct EventProducer {
    current: Arc<RwLock<FutureProducer<StatsContext>>>,
    client_config: ClientConfig,
    topics: Arc<HashMap<Feed, String>>,
    enqueue_timeout: Duration,
    /// A producer failing for this long while Kafka answers is replaced.
    stuck_after: Duration,
    /// Since when every send has failed, if the last one failed.
    failing_since: Arc<Mutex<Option<Instant>>>,
}

impl EventProducer {
    pub fn new(kafka: &KafkaConfig, config: &ProducerConfig) -> Result<Self, KafkaError> {
        let client_config =
            citybrain_kafka::event_producer(kafka, "citybrain-ingest", &config.settings);
        let producer: FutureProducer<StatsContext> =
            client_config.create_with_context(StatsContext)?;
        let topics = Feed::ALL
            .into_iter()
            .map(|feed| (feed, kafka.topic(feed.topic())))
            .collect();
        Ok(Self {
            current: Arc::new(RwLock::new(producer)),
            client_config,
            topics: Arc::new(topics),
            enqueue_timeout: config.enqueue_timeout,
            stuck_after: config.settings.delivery_timeout * 2,
            failing_since: Arc::new(Mutex::new(None)),
        })
    }

    /// The full topic name of a feed, with this deployment's prefix.
    pub fn topic(&self, feed: Feed) -> &str {
        &self.topics[&feed]
    }

    fn producer(&self) -> FutureProducer<StatsContext> {
        self.current.read().expect("producer lock").clone()
    }

    /// Resolves once Kafka acknowledged the record, or with why it did not.
    pub async fn send(
        &self,
        feed: Feed,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), ProduceError> {
        let started = Instant::now();
        let record = FutureRecord::to(self.topic(feed))
            .key(key)
            .payload(payload)
            .headers(headers);
        let result = self
            .producer()
            .send(record, Timeout::After(self.enqueue_timeout))
            .await;
        metrics::produced(started.elapsed());
        let result = result.map(|_| ()).map_err(|(err, _)| classify(err));
        let mut failing_since = self.failing_since.lock().expect("failure lock");
        match &result {
            Ok(()) => *failing_since = None,
            Err(ProduceError::Unavailable(_)) => {
                failing_since.get_or_insert(started);
            }
            Err(_) => {}
        }
        result
    }

    /// Whether a broker answers a metadata request within `timeout`.
    pub async fn is_reachable(&self, timeout: Duration) -> bool {
        let producer = self.producer();
        // fetch_metadata blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).is_ok())
            .await
            .unwrap_or(false)
    }

    /// Replaces the producer when it cannot recover by itself: after a fatal
    /// error, or when Kafka answers (`kafka_reachable`) but every send has
    /// failed for longer than twice the delivery timeout. Returns whether it
    /// replaced it.
    pub fn heal(&self, kafka_reachable: bool) -> bool {
        let fatal = self.producer().client().fatal_error();
        let stuck = kafka_reachable
            && self
                .failing_since
                .lock()
                .expect("failure lock")
                .is_some_and(|since| since.elapsed() > self.stuck_after);
        if fatal.is_none() && !stuck {
            return false;
        }
        match self.client_config.create_with_context(StatsContext) {
            Ok(fresh) => {
                tracing::warn!(
                    fatal = ?fatal,
                    stuck,
                    "replacing the Kafka producer: it cannot recover by itself"
                );
                *self.current.write().expect("producer lock") = fresh;
                *self.failing_since.lock().expect("failure lock") = None;
                metrics::producer_replaced();
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot create a new Kafka producer");
                false
            }
        }
    }

    /// Waits up to `timeout` for every queued event to be acknowledged.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }
}

fn classify(err: KafkaError) -> ProduceError {
    match err {
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => ProduceError::Overloaded,
        KafkaError::MessageProduction(
            code @ (RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord),
        ) => ProduceError::Rejected(code.to_string()),
        other => ProduceError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_errors_are_rejections() {
        assert!(matches!(
            classify(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)),
            ProduceError::Overloaded
        ));
        assert!(matches!(
            classify(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            )),
            ProduceError::Rejected(_)
        ));
        assert!(matches!(
            classify(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            )),
            ProduceError::Unavailable(_)
        ));
        assert!(matches!(
            classify(KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopicOrPartition
            )),
            ProduceError::Unavailable(_)
        ));
    }
}
