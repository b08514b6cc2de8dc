//! Messages in, acknowledgements out: batches of messages go to ingest in
//! one call per tenant, and each message is acknowledged only once every
//! event of it is stored or refused for good.
//!
//! A message whose events ingest answered RETRYABLE (or whose call failed in
//! a retryable way) stays unacknowledged while its events are sent again
//! with the same ids, with backoff. If the bridge stops or dies meanwhile,
//! the broker still holds the message in the bridge's persistent session and
//! delivers it again on the next connection; the derived or device-given
//! event ids make that redelivery a duplicate that is stored once.
//!
//! Acknowledgements go out in the order the messages came (MQTT 3.1.1
//! §4.6 asks for PUBACKs in order): a batch is acknowledged as a whole,
//! after its last message is settled.

use crate::message::{self, Prepared, Topic};
use crate::metrics::{self, CallResult, EventOutcome, MessageOutcome};
use citybrain_ingest_client::{EventAnswer, IngestClient};
use citybrain_proto::events::v1::Event;
use citybrain_proto::ingest::v1::{EventResult, Outcome, ReasonCode};
use rumqttc::{AsyncClient, Publish, QoS};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a batch waits for more messages once it has one.
const LINGER: Duration = Duration::from_millis(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the pipeline needs.
pub struct Pipeline {
    pub mqtt: AsyncClient,
    /// One ingest client per tenant (its API key).
    pub ingest: HashMap<String, IngestClient>,
    pub batch_messages: usize,
    pub batch_events: usize,
    pub max_events_per_message: usize,
    pub drain_timeout: Duration,
}

/// A message in hand.
struct Item {
    publish: Publish,
    tenant: Option<String>,
    /// Events not yet stored or refused.
    pending: Vec<(u32, Event)>,
    rejected: Vec<EventResult>,
}

impl Pipeline {
    /// Takes messages until `stop`, then settles the batch in hand (within
    /// the drain timeout) and returns; messages not yet taken stay with the
    /// broker.
    pub async fn run(self, mut messages: mpsc::Receiver<Publish>, stop: CancellationToken) {
        let mut carry: Option<Item> = None;
        loop {
            let first = match carry.take() {
                Some(item) => item,
                None => tokio::select! {
                    () = stop.cancelled() => break,
                    next = messages.recv() => match next {
                        Some(publish) => self.item(publish),
                        None => break,
                    },
                },
            };
            let mut events = first.pending.len();
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < self.batch_messages {
                let next = tokio::select! {
                    biased;
                    next = messages.recv() => next,
                    () = tokio::time::sleep_until(deadline) => None,
                };
                let Some(publish) = next else { break };
                let item = self.item(publish);
                if events + item.pending.len() > self.batch_events {
                    carry = Some(item);
                    break;
                }
                events += item.pending.len();
                batch.push(item);
            }
            metrics::in_hand(batch.len() + usize::from(carry.is_some()));
            self.settle(batch, &stop).await;
            metrics::in_hand(usize::from(carry.is_some()));
        }
        // Unread messages stay unacknowledged: the broker delivers them
        // again to the next session.
        messages.close();
    }

    fn item(&self, publish: Publish) -> Item {
        metrics::message_received();
        let received_at = citybrain_proto::timestamp(SystemTime::now());
        let Prepared { events, refused } = message::prepare(
            &publish.topic,
            &publish.payload,
            received_at,
            self.max_events_per_message,
        );
        metrics::events(EventOutcome::RejectedByBridge, refused.len());
        Item {
            tenant: Topic::parse(&publish.topic).ok().map(|t| t.tenant),
            publish,
            pending: events,
            rejected: refused,
        }
    }

    /// Sends the batch's events until none is left to retry (or the drain
    /// deadline after `stop` passes: then nothing is acknowledged), then
    /// publishes refusals and acknowledges every message, in order.
    async fn settle(&self, mut batch: Vec<Item>, stop: &CancellationToken) {
        let mut backoff = BACKOFF_FIRST;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            self.send_round(&mut batch).await;
            if batch.iter().all(|item| item.pending.is_empty()) {
                break;
            }
            let retrying: usize = batch.iter().map(|item| item.pending.len()).sum();
            metrics::events(EventOutcome::Retried, retrying);
            if stop.is_cancelled() {
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + self.drain_timeout);
                if Instant::now() >= deadline {
                    tracing::warn!(
                        messages = batch.len(),
                        "stopping with messages not stored; the broker will deliver them again"
                    );
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        for item in batch {
            let outcome = if item.rejected.is_empty() {
                MessageOutcome::Stored
            } else {
                let topic = Topic::rejected_topic(&item.publish.topic);
                let payload = message::rejection_payload(&item.rejected);
                if let Err(err) = self
                    .mqtt
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                {
                    tracing::warn!(error = %err, "could not queue a rejection");
                }
                MessageOutcome::Rejected
            };
            if let Err(err) = self.mqtt.ack(&item.publish).await {
                tracing::warn!(error = %err, "could not queue an acknowledgement");
            }
            metrics::message_acked(outcome);
        }
    }

    /// One call per tenant with every pending event of the batch.
    async fn send_round(&self, batch: &mut [Item]) {
        let mut by_tenant: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, item) in batch.iter().enumerate() {
            if let (Some(tenant), false) = (&item.tenant, item.pending.is_empty()) {
                by_tenant.entry(tenant.as_str()).or_default().push(i);
            }
        }
        let calls = by_tenant.into_iter().map(|(tenant, items)| {
            let events: Vec<Event> = items
                .iter()
                .flat_map(|&i| batch[i].pending.iter().map(|(_, event)| event.clone()))
                .collect();
            let client = self.ingest.get(tenant).cloned();
            let tenant = tenant.to_string();
            async move {
                let Some(client) = client else {
                    return (items, Err(Failure::NoKey(tenant)));
                };
                let started = Instant::now();
                let result = client.ingest(events).await;
                let call = match &result {
                    Ok(_) => CallResult::Answered,
                    Err(err) if err.is_retryable() => CallResult::Retryable,
                    Err(_) => CallResult::Failed,
                };
                metrics::ingest_call(call, started.elapsed());
                (items, result.map_err(Failure::Call))
            }
        });
        for (items, result) in futures::future::join_all(calls).await {
            match result {
                Ok(answers) => {
                    let mut answers = answers.as_slice();
                    for i in items {
                        let item = &mut batch[i];
                        let (mine, rest) = answers.split_at(item.pending.len());
                        answers = rest;
                        apply(item, mine);
                    }
                }
                Err(Failure::Call(err)) if err.is_retryable() => {
                    tracing::warn!(error = %err, "ingest call failed; retrying");
                }
                Err(failure) => {
                    let message = match failure {
                        Failure::NoKey(tenant) => format!(
                            "the bridge has no ingest key for tenant {tenant:?} (device registry)"
                        ),
                        Failure::Call(err) => format!("ingest refused the bridge's call: {err}"),
                    };
                    tracing::error!(%message, "events refused without reaching ingest");
                    for i in items {
                        let item = &mut batch[i];
                        let pending = std::mem::take(&mut item.pending);
                        metrics::events(EventOutcome::RejectedByBridge, pending.len());
                        item.rejected
                            .extend(pending.into_iter().map(|(index, event)| EventResult {
                                index,
                                event_id: event.event_id,
                                outcome: Outcome::Rejected as i32,
                                reason: ReasonCode::Unspecified as i32,
                                field: String::new(),
                                message: message.clone(),
                            }));
                    }
                }
            }
        }
    }
}

enum Failure {
    NoKey(String),
    Call(citybrain_ingest_client::CallError),
}

/// Applies ingest's answers to one message's pending events.
fn apply(item: &mut Item, answers: &[EventAnswer]) {
    let settled = message::settle(&item.pending, answers);
    let stored = item.pending.len() - settled.retry.len() - settled.rejected.len();
    metrics::events(EventOutcome::Stored, stored);
    metrics::events(EventOutcome::RejectedByIngest, settled.rejected.len());
    item.rejected.extend(settled.rejected);
    item.rejected.sort_by_key(|result| result.index);
    item.pending
        .retain(|(index, _)| settled.retry.contains(index));
}
