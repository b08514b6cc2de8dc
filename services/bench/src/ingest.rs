//! Phase 1: events/s acknowledged by ingest (batched unary gRPC calls from
//! several connections) against the ceiling, a bare rdkafka producer sending
//! the same records to the same broker with ingest's producer settings.

use crate::workload::{API_KEY, Record};
use anyhow::Context;
use citybrain_proto::events::v1::Event;
use citybrain_proto::ingest::v1::{
    IngestRequest, Outcome, ingest_service_client::IngestServiceClient,
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

/// What one side of a throughput comparison did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Throughput {
    pub events: u64,
    /// Events not acknowledged (ingest: not ACCEPTED; producer: failed).
    pub not_accepted: u64,
    pub seconds: f64,
    pub per_s: f64,
}

impl Throughput {
    fn new(events: u64, not_accepted: u64, took: Duration) -> Self {
        let seconds = took.as_secs_f64();
        Self {
            events,
            not_accepted,
            seconds,
            per_s: events as f64 / seconds.max(1e-6),
        }
    }
}

/// An ingest client: one HTTP/2 connection with the API key.
#[derive(Clone)]
pub struct Client {
    grpc: IngestServiceClient<Channel>,
}

/// How many events an ingest call acknowledged.
pub struct Answer {
    pub accepted: u64,
    pub other: u64,
}

impl Client {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_string())?
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .with_context(|| format!("cannot connect to ingest at {url}"))?;
        Ok(Self {
            grpc: IngestServiceClient::new(channel).max_decoding_message_size(16 << 20),
        })
    }

    /// One unary call. Events not ACCEPTED are counted, not resent: a
    /// benchmark that sees any reports them.
    pub async fn send(&self, events: Vec<Event>) -> anyhow::Result<Answer> {
        let n = events.len() as u64;
        let mut request = tonic::Request::new(IngestRequest { events });
        request
            .metadata_mut()
            .insert("x-api-key", API_KEY.parse().expect("ASCII key"));
        let response = self.grpc.clone().ingest(request).await?.into_inner();
        let accepted = response
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Accepted as i32)
            .count() as u64;
        Ok(Answer {
            accepted,
            other: n - accepted,
        })
    }
}

/// Sends every batch through `connections` connections with `per_connection`
/// calls in flight on each; the clock runs from the first call to the last
/// answer.
pub async fn through_ingest(
    url: &str,
    batches: Vec<Vec<Event>>,
    connections: usize,
    per_connection: usize,
) -> anyhow::Result<Throughput> {
    let queue = Arc::new(Mutex::new(VecDeque::from(batches)));
    let accepted = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(Client::connect(url).await?);
    }
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for client in &clients {
        for _ in 0..per_connection {
            let (client, queue) = (client.clone(), queue.clone());
            let (accepted, other) = (accepted.clone(), other.clone());
            workers.spawn(async move {
                loop {
                    let Some(batch) = queue.lock().await.pop_front() else {
                        return anyhow::Ok(());
                    };
                    let answer = client.send(batch).await?;
                    accepted.fetch_add(answer.accepted, Ordering::Relaxed);
                    other.fetch_add(answer.other, Ordering::Relaxed);
                }
            });
        }
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(Throughput::new(
        accepted.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        started.elapsed(),
    ))
}

/// A producer configured as ingest's (acks=all, lz4, linger 5 ms, the same
/// queue bounds, idempotence off as ingest runs against Tansu).
/// A producer with ingest's own settings (as the bench runs ingest: without
/// idempotence, which Tansu 0.6.0 cannot serve after a delivery timeout).
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    let mut settings = citybrain_ingest::config::ProducerConfig::default().settings;
    settings.idempotence = false;
    let kafka = citybrain_config::KafkaConfig::new(brokers);
    Ok(citybrain_kafka::event_producer(&kafka, "citybrain-bench", &settings).create()?)
}

/// Sends every record with one producer, keeping at most `window` records
/// unacknowledged; the clock runs from the first send to the last ack.
pub async fn bare_producer(
    brokers: &str,
    prefix: &str,
    records: &[Record],
    window: usize,
) -> anyhow::Result<Throughput> {
    let producer = producer(brokers)?;
    let topics: std::collections::HashMap<_, _> = citybrain_proto::feed::Feed::ALL
        .iter()
        .map(|feed| (*feed, format!("{prefix}{}", feed.topic())))
        .collect();
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(window);
    let mut failed = 0u64;
    for record in records {
        let headers = citybrain_kafka::record_headers(record.kind, crate::workload::TENANT);
        let mut future_record = FutureRecord::to(&topics[&record.feed])
            .key(&record.key)
            .payload(&record.payload)
            .headers(headers);
        // send_result enqueues at once (send() would only on first poll);
        // a full queue waits for the oldest acknowledgement.
        loop {
            if pending.len() >= window {
                failed += acknowledged(pending.pop_front()).await;
            }
            match producer.send_result(future_record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((err, back)) => {
                    if pending.is_empty() {
                        return Err(err.into());
                    }
                    future_record = back;
                    failed += acknowledged(pending.pop_front()).await;
                }
            }
        }
    }
    while !pending.is_empty() {
        failed += acknowledged(pending.pop_front()).await;
    }
    producer.flush(Duration::from_secs(30))?;
    let took = started.elapsed();
    Ok(Throughput::new(records.len() as u64 - failed, failed, took))
}

/// 1 if the delivery failed, 0 if Kafka acknowledged it.
async fn acknowledged(delivery: Option<rdkafka::producer::DeliveryFuture>) -> u64 {
    match delivery {
        Some(delivery) => match delivery.await {
            Ok(Ok(_)) => 0,
            _ => 1,
        },
        None => 0,
    }
}
