//! Every metric the ingest service exports, in one place.
//!
//! Label values come from fixed sets (kinds, outcomes, reason codes, method
//! names), never from caller-supplied strings.

use citybrain_proto::ingest::v1::{Outcome, ReasonCode};
use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const EVENTS_RECEIVED: &str = "citybrain_ingest_events_received_total";
pub const EVENTS: &str = "citybrain_ingest_events_total";
pub const REQUESTS: &str = "citybrain_ingest_requests_total";
pub const REQUEST_DURATION: &str = "citybrain_ingest_request_duration_seconds";
pub const PRODUCE_DURATION: &str = "citybrain_ingest_kafka_produce_duration_seconds";
pub const PRODUCER_QUEUE: &str = "citybrain_ingest_producer_queue_messages";
pub const PRODUCER_QUEUE_BYTES: &str = "citybrain_ingest_producer_queue_bytes";
pub const BROKER_RTT: &str = "citybrain_ingest_kafka_broker_rtt_seconds";
pub const KAFKA_UP: &str = "citybrain_ingest_kafka_up";
pub const PRODUCER_REPLACED: &str = "citybrain_ingest_producer_replaced_total";

/// Histogram buckets (seconds) by metric-name suffix.
pub const BUCKETS: &[(&str, &[f64])] = &[
    (
        REQUEST_DURATION,
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    ),
    (
        PRODUCE_DURATION,
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    ),
];

/// Kind label for an event whose payload is missing.
pub const NO_KIND: &str = "none";

pub fn event_received(kind: &'static str) {
    counter!(EVENTS_RECEIVED, "kind" => kind).increment(1);
}

pub fn event_answered(kind: &'static str, outcome: Outcome, reason: ReasonCode) {
    counter!(
        EVENTS,
        "kind" => kind,
        "outcome" => outcome_label(outcome),
        "reason" => reason_label(reason),
    )
    .increment(1);
}

pub fn request_finished(method: &'static str, code: tonic::Code, took: Duration) {
    counter!(REQUESTS, "method" => method, "code" => code_label(code)).increment(1);
    histogram!(REQUEST_DURATION, "method" => method).record(took.as_secs_f64());
}

pub fn produced(took: Duration) {
    histogram!(PRODUCE_DURATION).record(took.as_secs_f64());
}

pub fn producer_queue(messages: u64, bytes: u64) {
    gauge!(PRODUCER_QUEUE).set(messages as f64);
    gauge!(PRODUCER_QUEUE_BYTES).set(bytes as f64);
}

pub fn broker_rtt(seconds: f64) {
    gauge!(BROKER_RTT).set(seconds);
}

pub fn kafka_up(up: bool) {
    gauge!(KAFKA_UP).set(if up { 1.0 } else { 0.0 });
}

pub fn producer_replaced() {
    counter!(PRODUCER_REPLACED).increment(1);
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Unspecified => "unspecified",
        Outcome::Accepted => "accepted",
        Outcome::Duplicate => "duplicate",
        Outcome::Rejected => "rejected",
        Outcome::Retryable => "retryable",
    }
}

fn reason_label(reason: ReasonCode) -> &'static str {
    match reason {
        ReasonCode::Unspecified => "none",
        ReasonCode::MissingField => "missing_field",
        ReasonCode::OutOfRange => "out_of_range",
        ReasonCode::NotFinite => "not_finite",
        ReasonCode::UnknownEnumValue => "unknown_enum_value",
        ReasonCode::Inconsistent => "inconsistent",
        ReasonCode::InvalidFormat => "invalid_format",
        ReasonCode::TimeInFuture => "time_in_future",
        ReasonCode::TimeTooOld => "time_too_old",
        ReasonCode::KindNotAllowed => "kind_not_allowed",
        ReasonCode::DuplicateEventId => "duplicate_event_id",
        ReasonCode::MissingPayload => "missing_payload",
        ReasonCode::Overloaded => "overloaded",
        ReasonCode::StoreUnavailable => "store_unavailable",
        ReasonCode::StoreRejected => "store_rejected",
    }
}

/// The ingest methods, the label values of `method`.
pub const METHODS: &[&str] = &["Ingest", "IngestBatches", "IngestStream"];

/// The method label of a gRPC request path, from [`METHODS`] ("unknown"
/// for a path that names none of them).
pub fn method_label(path: &str) -> &'static str {
    let method = path.rsplit('/').next().unwrap_or_default();
    METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("unknown")
}

fn code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "ok",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        tonic::Code::Unimplemented => "unimplemented",
        tonic::Code::Internal => "internal",
        _ => "other",
    }
}
