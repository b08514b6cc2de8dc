//! Every metric the bridge exports, in one place. Label values come from
//! fixed sets, never from a topic or a payload.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const MESSAGES_RECEIVED: &str = "citybrain_mqtt_bridge_messages_received_total";
pub const MESSAGES_ACKED: &str = "citybrain_mqtt_bridge_messages_acked_total";
pub const EVENTS: &str = "citybrain_mqtt_bridge_events_total";
pub const INGEST_CALLS: &str = "citybrain_mqtt_bridge_ingest_calls_total";
pub const INGEST_DURATION: &str = "citybrain_mqtt_bridge_ingest_call_duration_seconds";
pub const IN_HAND: &str = "citybrain_mqtt_bridge_messages_in_hand";
pub const CONNECTED: &str = "citybrain_mqtt_bridge_connected";
pub const CONNECTION_ERRORS: &str = "citybrain_mqtt_bridge_connection_errors_total";

pub const BUCKETS: &[(&str, &[f64])] = &[(
    INGEST_DURATION,
    &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ],
)];

/// How an acknowledged message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Every event stored.
    Stored,
    /// Some or all events refused (published on `…/rejected`).
    Rejected,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Stored,
    RejectedByBridge,
    RejectedByIngest,
    /// Sent again after a RETRYABLE answer or a failed call.
    Retried,
}

/// How one ingest call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Answered,
    Retryable,
    Failed,
}

pub fn message_received() {
    counter!(MESSAGES_RECEIVED).increment(1);
}

pub fn message_acked(outcome: MessageOutcome) {
    let label = match outcome {
        MessageOutcome::Stored => "stored",
        MessageOutcome::Rejected => "rejected",
    };
    counter!(MESSAGES_ACKED, "outcome" => label).increment(1);
}

pub fn events(outcome: EventOutcome, count: usize) {
    let label = match outcome {
        EventOutcome::Stored => "stored",
        EventOutcome::RejectedByBridge => "rejected_by_bridge",
        EventOutcome::RejectedByIngest => "rejected_by_ingest",
        EventOutcome::Retried => "retried",
    };
    counter!(EVENTS, "outcome" => label).increment(count as u64);
}

pub fn ingest_call(result: CallResult, took: Duration) {
    let label = match result {
        CallResult::Answered => "answered",
        CallResult::Retryable => "retryable",
        CallResult::Failed => "failed",
    };
    counter!(INGEST_CALLS, "result" => label).increment(1);
    histogram!(INGEST_DURATION).record(took.as_secs_f64());
}

pub fn in_hand(messages: usize) {
    gauge!(IN_HAND).set(messages as f64);
}

pub fn connected(up: bool) {
    gauge!(CONNECTED).set(if up { 1.0 } else { 0.0 });
}

pub fn connection_error() {
    counter!(CONNECTION_ERRORS).increment(1);
}
