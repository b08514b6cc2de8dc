//! Every metric the JT/T 808 gateway exports, in one place.
//!
//! Label values come from fixed sets (message ids by name or `other`,
//! outcomes, error kinds), never from what a terminal sent.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const CONNECTIONS: &str = "citybrain_jt808_connections";
pub const AUTHENTICATED: &str = "citybrain_jt808_terminals_authenticated";
pub const CONNECTIONS_OPENED: &str = "citybrain_jt808_connections_opened_total";
pub const CONNECTIONS_CLOSED: &str = "citybrain_jt808_connections_closed_total";
pub const MESSAGES: &str = "citybrain_jt808_messages_total";
pub const FRAME_ERRORS: &str = "citybrain_jt808_frame_errors_total";
pub const REPORTS: &str = "citybrain_jt808_reports_total";
pub const REGISTRATIONS: &str = "citybrain_jt808_registrations_total";
pub const AUTHENTICATIONS: &str = "citybrain_jt808_authentications_total";
pub const INGEST_DURATION: &str = "citybrain_jt808_ingest_call_duration_seconds";
pub const INGEST_UP: &str = "citybrain_jt808_ingest_up";

/// Histogram buckets (seconds) by metric-name suffix.
pub const BUCKETS: &[(&str, &[f64])] = &[(
    INGEST_DURATION,
    &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ],
)];

/// A terminal message and how it was answered: `ok`, `fail`,
/// `bad_message`, `unsupported`, `refused` (before authentication, or an
/// unknown terminal registering), `packet` (a split packet received), or
/// `none` (terminal answers, which get none).
pub fn message(id: u16, outcome: &'static str) {
    counter!(MESSAGES, "id" => crate::message::id::label(id), "outcome" => outcome).increment(1);
}

/// A frame dropped before it was a message (the codec's and the header's
/// errors: `checksum`, `bad_escape`, `oversized`, `too_short`, `truncated`,
/// `header`).
pub fn frame_error(reason: &'static str) {
    counter!(FRAME_ERRORS, "reason" => reason).increment(1);
}

/// A location report: `stored`, `rejected`, `not_stored`, `no_fix`,
/// `encrypted` or `invalid`.
pub fn report(outcome: &'static str) {
    counter!(REPORTS, "outcome" => outcome).increment(1);
}

/// `ok`, `unknown_terminal` or `plate_mismatch`.
pub fn registration(result: &'static str) {
    counter!(REGISTRATIONS, "result" => result).increment(1);
}

/// `ok`, `unknown_terminal` or `wrong_code`.
pub fn authentication(result: &'static str) {
    counter!(AUTHENTICATIONS, "result" => result).increment(1);
}

pub fn connection_opened() {
    counter!(CONNECTIONS_OPENED).increment(1);
    gauge!(CONNECTIONS).increment(1.0);
}

/// `eof`, `idle`, `logout`, `garbage`, `replaced`, `shutdown`, `io_error`,
/// `state_error` or `limit` (refused: too many connections).
pub fn connection_closed(reason: &'static str) {
    counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    if reason != "limit" {
        gauge!(CONNECTIONS).decrement(1.0);
    }
}

pub fn authenticated(delta: f64) {
    gauge!(AUTHENTICATED).increment(delta);
}

/// One ingest call and its result: `ok` or the gRPC code's name.
pub fn ingest_call(took: Duration, result: &'static str) {
    histogram!(INGEST_DURATION, "result" => result).record(took.as_secs_f64());
}

pub fn ingest_up(up: bool) {
    gauge!(INGEST_UP).set(if up { 1.0 } else { 0.0 });
}
