//! One MQTT message into contract events, and the answers back: pure, no I/O.
//!
//! A message on `citybrain/v1/<tenant>/<kind>/<device_id>` carries one event,
//! an array of them, or `{"events":[…]}`, in the contract's JSON mapping
//! (`citybrain_proto::json`). The shortcuts a sensor may take, each
//! documented in `event.proto` and the README:
//! - `device_id` absent: the topic's device;
//! - `observed_at` absent: the time the bridge received the message, with
//!   `observed_at_assumed` set;
//! - `event_id` absent: a UUIDv5 of the topic, the payload's bytes and the
//!   event's position in it, so the broker's redelivery of the same message
//!   is stored once. (Two messages with byte-identical payloads on one topic
//!   are then one event: a sensor that repeats a reading without a time
//!   should send `seq_no` or `observed_at`.)
//!
//! What the bridge itself refuses (a payload that is not the contract, an
//! event of another kind than the topic's, another device's id) is answered
//! like ingest's rejections, so the device reads one format on `…/rejected`.

use crate::registry::TOPIC_ROOT;
use citybrain_ingest_client::{EventAnswer, EventOutcome};
use citybrain_proto::events::v1::Event;
use citybrain_proto::feed::Kind;
use citybrain_proto::ingest::v1::{EventResult, IngestResponse, Outcome, ReasonCode};
use prost_types::Timestamp;

/// The namespace of the bridge's derived event ids.
pub const ID_SOURCE: &str = "mqtt";

/// What a device topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub tenant: String,
    pub kind: Kind,
    pub device_id: String,
}

impl Topic {
    /// Parses `citybrain/v1/<tenant>/<kind>/<device_id>`.
    pub fn parse(topic: &str) -> Result<Topic, String> {
        let rest = topic
            .strip_prefix(TOPIC_ROOT)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| format!("topic {topic:?} is not under {TOPIC_ROOT}/"))?;
        let levels: Vec<&str> = rest.split('/').collect();
        let [tenant, kind, device_id] = levels[..] else {
            return Err(format!(
                "topic {topic:?} is not {TOPIC_ROOT}/<tenant>/<kind>/<device_id>"
            ));
        };
        let kind =
            Kind::parse(kind).ok_or_else(|| format!("{kind:?} in topic {topic:?} is no kind"))?;
        if tenant.is_empty() || device_id.is_empty() {
            return Err(format!("topic {topic:?} has an empty level"));
        }
        Ok(Topic {
            tenant: tenant.to_string(),
            kind,
            device_id: device_id.to_string(),
        })
    }

    /// Where the device reads why its messages were refused.
    pub fn rejected_topic(topic: &str) -> String {
        format!("{topic}/rejected")
    }
}

/// A message made ready for ingest: the events to send, and the answers the
/// bridge already knows (its own rejections), by position in the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Events to send, each with its position in the payload.
    pub events: Vec<(u32, Event)>,
    /// Positions the bridge refused itself.
    pub refused: Vec<EventResult>,
}

impl Prepared {
    /// A message refused as a whole (nothing of it is sent).
    fn refused(reason: ReasonCode, field: &str, message: String) -> Self {
        Self {
            events: Vec::new(),
            refused: vec![EventResult {
                index: 0,
                outcome: Outcome::Rejected as i32,
                reason: reason as i32,
                field: field.to_string(),
                message,
                ..Default::default()
            }],
        }
    }
}

/// Turns one message into events (see the module comment for the defaults).
pub fn prepare(
    topic_name: &str,
    payload: &[u8],
    received_at: Timestamp,
    max_events: usize,
) -> Prepared {
    let topic = match Topic::parse(topic_name) {
        Ok(topic) => topic,
        Err(message) => return Prepared::refused(ReasonCode::InvalidFormat, "", message),
    };
    let events = match citybrain_proto::json::decode_events(payload) {
        Ok((events, _)) => events,
        Err(err) => {
            return Prepared::refused(
                ReasonCode::InvalidFormat,
                &err.path,
                format!("the payload is not the contract's JSON: {err}"),
            );
        }
    };
    if events.is_empty() {
        return Prepared::refused(
            ReasonCode::MissingPayload,
            "",
            "the payload has no events".into(),
        );
    }
    if events.len() > max_events {
        return Prepared::refused(
            ReasonCode::InvalidFormat,
            "",
            format!(
                "the payload has {} events; at most {max_events} are allowed per message",
                events.len()
            ),
        );
    }
    let mut prepared = Prepared {
        events: Vec::with_capacity(events.len()),
        refused: Vec::new(),
    };
    for (position, mut event) in events.into_iter().enumerate() {
        let index = position as u32;
        let refuse = |reason: ReasonCode, field: &str, message: String| EventResult {
            index,
            event_id: event.event_id.clone(),
            outcome: Outcome::Rejected as i32,
            reason: reason as i32,
            field: field.to_string(),
            message,
        };
        if let Some(kind) = event.payload.as_ref().map(Kind::of)
            && kind != topic.kind
        {
            prepared.refused.push(refuse(
                ReasonCode::KindNotAllowed,
                kind.as_str(),
                format!("a {kind} event on a {} topic", topic.kind),
            ));
            continue;
        }
        if event.device_id.is_empty() {
            event.device_id = topic.device_id.clone();
        } else if event.device_id != topic.device_id {
            prepared.refused.push(refuse(
                ReasonCode::Inconsistent,
                "device_id",
                format!(
                    "device_id {:?} is not the topic's device {:?}",
                    event.device_id, topic.device_id
                ),
            ));
            continue;
        }
        if event.observed_at.is_none() {
            event.observed_at = Some(received_at);
            event.observed_at_assumed = true;
        }
        if event.event_id.is_empty() {
            let position = index.to_string();
            event.event_id = citybrain_ingest_client::event_id(
                ID_SOURCE,
                &[topic_name.as_bytes(), payload, position.as_bytes()],
            );
        }
        prepared.events.push((index, event));
    }
    prepared
}

/// What ingest's answers mean for one message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settled {
    /// Refused for good (by the bridge or by ingest): published on
    /// `…/rejected` once the message is done.
    pub rejected: Vec<EventResult>,
    /// Positions that could not be stored now: sent again with the same
    /// ids, the message unacked meanwhile. Empty: the message is done.
    pub retry: Vec<u32>,
}

/// Sorts ingest's answers for `sent` (`answers[i]` answers `sent[i]`)
/// into refusals and retries.
pub fn settle(sent: &[(u32, Event)], answers: &[EventAnswer]) -> Settled {
    let mut settled = Settled::default();
    for ((index, event), answer) in sent.iter().zip(answers) {
        match &answer.outcome {
            EventOutcome::Accepted | EventOutcome::Duplicate => {}
            EventOutcome::Retryable { .. } => settled.retry.push(*index),
            EventOutcome::Rejected {
                reason,
                field,
                message,
            } => settled.rejected.push(EventResult {
                index: *index,
                event_id: if answer.event_id.is_empty() {
                    event.event_id.clone()
                } else {
                    answer.event_id.clone()
                },
                outcome: Outcome::Rejected as i32,
                reason: *reason as i32,
                field: field.clone(),
                message: message.clone(),
            }),
        }
    }
    settled
}

/// The payload published on `…/rejected`: an `IngestResponse` in JSON
/// listing the refused events (index = position in the message's payload).
pub fn rejection_payload(rejected: &[EventResult]) -> Vec<u8> {
    let response = IngestResponse {
        results: rejected.to_vec(),
        rejected: rejected.len() as u32,
        ..Default::default()
    };
    citybrain_proto::json::response_json(&response)
        .to_string()
        .into_bytes()
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
