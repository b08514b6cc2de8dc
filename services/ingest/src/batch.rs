//! Answering one batch, event by event.
//!
//! Each event goes through the same steps, and the first that fails decides
//! its answer: a well-formed event id (assigned when empty) → not seen earlier
//! in this batch, nor accepted earlier in its stream → valid → a kind the key
//! may send → small enough → acknowledged by Kafka. All events of a batch are
//! produced concurrently and the batch is answered once Kafka answered for
//! every one of them.

use crate::error::IngestError;
use crate::metrics;
use crate::producer::{EventProducer, ProduceError};
use crate::validate::{self, Limits, Rejection};
use citybrain_keys::Principal;
use citybrain_proto::events::v1::{Event, IngestedEvent};
use citybrain_proto::feed::Kind;
use citybrain_proto::ingest::v1::{EventResult, IngestResponse, Outcome, ReasonCode};
use citybrain_proto::record;
use futures::future::join_all;
use prost::Message;
use std::collections::HashSet;
use std::time::SystemTime;
use uuid::Uuid;

/// The answers to one batch (for IngestStream, to all batches so far).
#[derive(Default)]
pub struct Answers {
    pub results: Vec<EventResult>,
    /// Some event found the producer queue full.
    pub overloaded: bool,
    /// Why an event could not reach Kafka, for the call's error message.
    pub unavailable: Option<String>,
}

impl Answers {
    /// Appends a later batch's answers (IngestStream answers once).
    pub fn extend(&mut self, later: Answers) {
        self.results.extend(later.results);
        self.overloaded |= later.overloaded;
        self.unavailable = later.unavailable.or(self.unavailable.take());
    }

    fn count(&self, outcome: Outcome) -> u32 {
        self.results
            .iter()
            .filter(|result| result.outcome == outcome as i32)
            .count() as u32
    }

    /// The answers as a response, every event answered on its own.
    pub fn into_response(self) -> IngestResponse {
        IngestResponse {
            accepted: self.count(Outcome::Accepted),
            duplicates: self.count(Outcome::Duplicate),
            rejected: self.count(Outcome::Rejected),
            retryable: self.count(Outcome::Retryable),
            results: self.results,
            batch: 0,
        }
    }

    /// The response, or a whole-call error when nothing could be stored only
    /// because the store is down or overloaded: a client that checks only
    /// the status code then still retries (Ingest, IngestStream).
    pub fn respond(self) -> Result<IngestResponse, IngestError> {
        let (overloaded, unavailable) = (self.overloaded, self.unavailable.clone());
        let response = self.into_response();
        if response.accepted == 0 && response.retryable > 0 {
            let count = response.retryable as usize;
            return Err(if overloaded {
                IngestError::Overloaded { count }
            } else {
                IngestError::StoreUnavailable {
                    count,
                    detail: unavailable.unwrap_or_default(),
                }
            });
        }
        Ok(response)
    }
}

/// What answering a batch needs besides the batch.
pub struct Answering<'a> {
    pub producer: &'a EventProducer,
    pub validation: &'a Limits,
    pub max_event_bytes: usize,
    pub who: &'a Principal,
}

impl Answering<'_> {
    /// Answers every event of one batch; `first_index` is the index of its
    /// first event. `accepted` holds the ids accepted earlier in the stream
    /// (empty for a unary call) and gains this batch's.
    pub async fn batch(
        &self,
        events: Vec<Event>,
        first_index: u32,
        accepted: &mut HashSet<String>,
    ) -> Answers {
        let who = self.who;
        let now = SystemTime::now();
        let received_at = citybrain_proto::timestamp(now);
        let mut answers = Answers::default();
        let mut in_batch = HashSet::new();
        let mut sends = Vec::new();
        for (position, mut event) in events.into_iter().enumerate() {
            let index = first_index + position as u32;
            let kind = event.payload.as_ref().map(Kind::of);
            let kind_label = kind.map_or(metrics::NO_KIND, Kind::as_str);
            metrics::event_received(kind_label);
            let event_id = match normalise_event_id(&event.event_id) {
                Ok(id) => id,
                Err(rejection) => {
                    answers.results.push(rejected(
                        index,
                        event.event_id.clone(),
                        kind_label,
                        rejection,
                    ));
                    continue;
                }
            };
            if accepted.contains(&event_id) || !in_batch.insert(event_id.clone()) {
                answers.results.push(answer(
                    index,
                    event_id,
                    kind_label,
                    Outcome::Duplicate,
                    Rejection::new(
                        ReasonCode::DuplicateEventId,
                        "event_id",
                        "this event id came earlier in the same request, or was accepted \
                         earlier in the same stream; it is stored once",
                    ),
                ));
                continue;
            }
            let kind = match validate::validate(&event, now, self.validation) {
                Ok(kind) => kind,
                Err(rejection) => {
                    answers
                        .results
                        .push(rejected(index, event_id, kind_label, rejection));
                    continue;
                }
            };
            if !who.may_send(kind) {
                let rejection = Rejection::new(
                    ReasonCode::KindNotAllowed,
                    kind.as_str(),
                    format!("this API key may not send {kind} events"),
                );
                answers
                    .results
                    .push(rejected(index, event_id, kind_label, rejection));
                continue;
            }
            let event_bytes = event.encoded_len();
            if event_bytes > self.max_event_bytes {
                let rejection = Rejection::new(
                    ReasonCode::InvalidFormat,
                    "",
                    format!(
                        "the event is {event_bytes} bytes; at most {} bytes are allowed",
                        self.max_event_bytes
                    ),
                );
                answers
                    .results
                    .push(rejected(index, event_id, kind_label, rejection));
                continue;
            }
            event.event_id = event_id.clone();
            validate::normalise(&mut event);
            let key = record::key(&who.tenant, &event.device_id);
            let record = IngestedEvent {
                event: Some(event),
                tenant_id: who.tenant.clone(),
                source_id: who.source.clone(),
                received_at: Some(received_at),
            }
            .encode_to_vec();
            let headers = citybrain_kafka::record_headers(kind, &who.tenant);
            // Placeholder, replaced once Kafka has answered.
            answers.results.push(EventResult {
                index,
                event_id,
                ..Default::default()
            });
            let producer = self.producer;
            sends.push(async move {
                let outcome = producer.send(kind.feed(), &key, &record, headers).await;
                (position, kind, outcome)
            });
        }
        for (position, kind, outcome) in join_all(sends).await {
            let slot = &mut answers.results[position];
            let (index, event_id) = (slot.index, std::mem::take(&mut slot.event_id));
            *slot = match outcome {
                Ok(()) => {
                    metrics::event_answered(
                        kind.as_str(),
                        Outcome::Accepted,
                        ReasonCode::Unspecified,
                    );
                    accepted.insert(event_id.clone());
                    EventResult {
                        index,
                        event_id,
                        outcome: Outcome::Accepted as i32,
                        ..Default::default()
                    }
                }
                Err(err) => {
                    let (outcome, reason) = match &err {
                        ProduceError::Overloaded => (Outcome::Retryable, ReasonCode::Overloaded),
                        ProduceError::Unavailable(_) => {
                            (Outcome::Retryable, ReasonCode::StoreUnavailable)
                        }
                        ProduceError::Rejected(_) => (Outcome::Rejected, ReasonCode::StoreRejected),
                    };
                    let result = answer(
                        index,
                        event_id,
                        kind.as_str(),
                        outcome,
                        Rejection::new(reason, "", err.to_string()),
                    );
                    match err {
                        ProduceError::Overloaded => answers.overloaded = true,
                        ProduceError::Unavailable(detail) => answers.unavailable = Some(detail),
                        ProduceError::Rejected(_) => {}
                    }
                    result
                }
            };
        }
        answers
    }
}

/// Accepts a client's UUID in any standard text form and returns it in the
/// canonical lower-case hyphenated form, so that the same id always compares
/// equal downstream. An empty id gets a fresh UUIDv7.
fn normalise_event_id(raw: &str) -> Result<String, Rejection> {
    if raw.is_empty() {
        return Ok(Uuid::now_v7().to_string());
    }
    match Uuid::try_parse(raw.trim()) {
        Ok(id) if !id.is_nil() => Ok(id.hyphenated().to_string()),
        Ok(_) => Err(Rejection::new(
            ReasonCode::InvalidFormat,
            "event_id",
            "event_id is the nil UUID; leave it empty to have one assigned",
        )),
        Err(_) => Err(Rejection::new(
            ReasonCode::InvalidFormat,
            "event_id",
            format!(
                "event_id {:?} is not a UUID; leave it empty to have one assigned",
                truncate(raw, 64)
            ),
        )),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn rejected(index: u32, event_id: String, kind: &'static str, rejection: Rejection) -> EventResult {
    answer(index, event_id, kind, Outcome::Rejected, rejection)
}

fn answer(
    index: u32,
    event_id: String,
    kind: &'static str,
    outcome: Outcome,
    rejection: Rejection,
) -> EventResult {
    metrics::event_answered(kind, outcome, rejection.reason);
    EventResult {
        index,
        event_id,
        outcome: outcome as i32,
        reason: rejection.reason as i32,
        field: rejection.field,
        message: rejection.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_normalised_or_assigned() {
        let upper = "0190F4C4-8C2E-7A51-9A5E-0C4B2F7E6D21";
        assert_eq!(
            normalise_event_id(upper).unwrap(),
            "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21"
        );
        let simple = "0190f4c48c2e7a519a5e0c4b2f7e6d21";
        assert_eq!(
            normalise_event_id(simple).unwrap(),
            "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21"
        );
        let assigned = normalise_event_id("").unwrap();
        assert_eq!(Uuid::parse_str(&assigned).unwrap().get_version_num(), 7);
        let err = normalise_event_id("not-a-uuid").unwrap_err();
        assert_eq!(
            (err.reason, err.field.as_str()),
            (ReasonCode::InvalidFormat, "event_id")
        );
        assert!(normalise_event_id("00000000-0000-0000-0000-000000000000").is_err());
    }

    #[test]
    fn nothing_stored_because_the_store_is_down_fails_the_whole_call() {
        let mut answers = Answers::default();
        answers.results.push(EventResult {
            outcome: Outcome::Retryable as i32,
            ..Default::default()
        });
        answers.results.push(EventResult {
            outcome: Outcome::Rejected as i32,
            ..Default::default()
        });
        answers.unavailable = Some("timed out".into());
        let err = answers.respond().unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);

        let mut partial = Answers::default();
        for outcome in [Outcome::Accepted, Outcome::Retryable] {
            partial.results.push(EventResult {
                outcome: outcome as i32,
                ..Default::default()
            });
        }
        let response = partial
            .respond()
            .expect("partial success answers per event");
        assert_eq!((response.accepted, response.retryable), (1, 1));
    }
}
