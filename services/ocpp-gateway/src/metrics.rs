//! Every metric the gateway exports, in one place. Label values come from
//! fixed sets: actions outside the known list are `other`, never the
//! charger's string.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const STATIONS_CONNECTED: &str = "citybrain_ocpp_stations_connected";
pub const CONNECTIONS: &str = "citybrain_ocpp_connections_total";
pub const CONNECTIONS_REFUSED: &str = "citybrain_ocpp_connections_refused_total";
pub const MESSAGES: &str = "citybrain_ocpp_messages_total";
pub const CALL_ERRORS: &str = "citybrain_ocpp_call_errors_total";
pub const INGEST_DURATION: &str = "citybrain_ocpp_ingest_duration_seconds";
pub const EVENTS: &str = "citybrain_ocpp_events_total";
pub const QUIRKS: &str = "citybrain_ocpp_quirks_total";
pub const OFFLINE: &str = "citybrain_ocpp_stations_offline_total";
pub const REGISTRY_STATIONS: &str = "citybrain_ocpp_registry_stations";
pub const REGISTRY_RELOADS: &str = "citybrain_ocpp_registry_reloads_total";

/// Histogram buckets by metric-name suffix.
pub const BUCKETS: &[(&str, &[f64])] = &[(
    "_seconds",
    &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ],
)];

/// The actions counted by name; anything else is `other`.
const ACTIONS: &[&str] = &[
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "NotifyEvent",
    "SecurityEventNotification",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "TransactionEvent",
];

/// The `action` label of a charger's action.
pub fn action_label(action: &str) -> &'static str {
    ACTIONS
        .iter()
        .find(|known| **known == action)
        .copied()
        .unwrap_or("other")
}

/// How a CALL was answered: `replied` (nothing to store), `stored` (after
/// ingest accepted its events), `error` (a CALLERROR: resending will not
/// help), `retry` (a CALLERROR asking for a resend).
pub fn message(action: &str, outcome: &'static str) {
    counter!(MESSAGES, "action" => action_label(action), "outcome" => outcome).increment(1);
}

pub fn call_error(code: &'static str, reason: &'static str) {
    counter!(CALL_ERRORS, "code" => code, "reason" => reason).increment(1);
}

pub fn connected(version: &'static str, delta: f64) {
    gauge!(STATIONS_CONNECTED, "version" => version).increment(delta);
    if delta > 0.0 {
        counter!(CONNECTIONS, "version" => version).increment(1);
    }
}

pub fn refused(reason: &'static str) {
    counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

pub fn ingest_duration(elapsed: Duration) {
    histogram!(INGEST_DURATION).record(elapsed.as_secs_f64());
}

/// Events handed to ingest by outcome (`stored`, `rejected`, `retry`).
pub fn events(outcome: &'static str, n: usize) {
    counter!(EVENTS, "outcome" => outcome).increment(n as u64);
}

pub fn quirk(quirk: &'static str) {
    counter!(QUIRKS, "quirk" => quirk).increment(1);
}

/// A station declared offline, by cause (`closed`, `heartbeat_timeout`,
/// `no_pong`).
pub fn offline(cause: &'static str) {
    counter!(OFFLINE, "cause" => cause).increment(1);
}

pub fn registry(stations: usize, outcome: &'static str) {
    gauge!(REGISTRY_STATIONS).set(stations as f64);
    counter!(REGISTRY_RELOADS, "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_actions_share_one_label() {
        assert_eq!(action_label("StartTransaction"), "StartTransaction");
        assert_eq!(action_label("GetCertificateStatus"), "other");
        assert_eq!(action_label("x".repeat(1000).as_str()), "other");
    }
}
