//! The Kafka consumer: group membership, rebalance notes, statistics.
//!
//! librdkafka calls the rebalance hooks from inside `recv()`, on the
//! pipeline's own task, so they can never run while that task is inserting.
//! The hooks only take notes (and pause newly assigned partitions); the
//! pipeline acts on the notes before it writes anything else. A partition
//! stays paused until the pipeline has read from ClickHouse which of its
//! offsets are already stored.

use crate::batch::PartitionId;
use crate::config::SinkConfig;
use crate::metrics;
use rdkafka::{
    ClientContext, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::KafkaResult,
};
use std::sync::Mutex;

/// A rebalance the pipeline has yet to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceNote {
    Assigned(Vec<PartitionId>),
    Revoked(Vec<PartitionId>),
}

/// Collects rebalance notes and feeds librdkafka statistics into metrics.
pub struct SinkContext {
    /// Tells this instance's log lines from another's in the same group.
    instance: String,
    notes: Mutex<Vec<RebalanceNote>>,
    /// Consumer lag per partition from the latest statistics.
    lag: Mutex<std::collections::HashMap<PartitionId, i64>>,
}

impl SinkContext {
    pub fn new(instance: String) -> Self {
        Self {
            instance,
            notes: Mutex::default(),
            lag: Mutex::default(),
        }
    }

    /// This consumer's client id, e.g. `citybrain-sink-3f9a1c2e`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The consumer lag librdkafka last reported for `partition`.
    pub fn lag(&self, partition: &PartitionId) -> Option<i64> {
        self.lag.lock().expect("lag lock").get(partition).copied()
    }

    /// The notes taken since the last call, oldest first.
    pub fn take_notes(&self) -> Vec<RebalanceNote> {
        std::mem::take(&mut *self.notes.lock().expect("rebalance notes lock"))
    }

    fn note(&self, note: RebalanceNote) {
        self.notes.lock().expect("rebalance notes lock").push(note);
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<PartitionId> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (id, partition) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of
                // -1 means not known yet.
                if *id >= 0 && partition.consumer_lag >= 0 {
                    metrics::consumer_lag(name, *id, partition.consumer_lag);
                    self.lag
                        .lock()
                        .expect("lag lock")
                        .insert((name.clone(), *id), partition.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            metrics::rebalanced("revoke");
            tracing::info!(partitions = list.count(), instance = %self.instance, "partitions revoked");
            self.note(RebalanceNote::Revoked(partitions(list)));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                metrics::rebalanced("assign");
                tracing::info!(partitions = list.count(), instance = %self.instance, "partitions assigned");
                // Not paused here: librdkafka would drop what it already
                // fetched (see `Pipeline::paused`). The pipeline holds the
                // messages until it knows what ClickHouse has of them.
                self.note(RebalanceNote::Assigned(partitions(list)));
            }
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(err) = result {
            // Harmless for correctness: the lineage in ClickHouse, not the
            // committed offset, decides what is skipped on redelivery.
            tracing::debug!(error = %err, "offset commit failed");
        }
    }
}

/// A group consumer subscribed to `topics`, nothing committed automatically.
pub fn subscribe(
    config: &SinkConfig,
    topics: &[String],
) -> KafkaResult<StreamConsumer<SinkContext>> {
    let instance = format!(
        "citybrain-sink-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut client_config =
        citybrain_kafka::group_consumer(&config.kafka, &instance, &config.group);
    // What librdkafka prefetches beyond the batch being built: by default up
    // to 64 MiB queued plus 50 MiB per fetch, most of the sink's peak memory
    // in `make bench` (235 MB). A batch is at most 16 MiB
    // (`CITYBRAIN_SINK_BATCH_MAX_BYTES`), so 16 MiB keeps one batch ready.
    // Set unless the operator set them (their options win).
    for (key, value) in [
        ("queued.max.messages.kbytes", "16384"),
        ("fetch.max.bytes", "16777216"),
    ] {
        if !config.kafka.options.iter().any(|(k, _)| k == key) {
            client_config.set(key, value);
        }
    }
    let consumer: StreamConsumer<SinkContext> =
        client_config.create_with_context(SinkContext::new(instance))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    Ok(consumer)
}
