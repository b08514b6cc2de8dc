//! Contract events built from a charger's message, with deterministic ids.
//!
//! An event id is the UUIDv5 of what the charger sent, not of the event the
//! gateway made of it: the station, the action, the payload in a canonical
//! form (keys sorted, so a resend that orders fields differently is the same
//! message), which event of the message it is, the connector it is about,
//! and when it was observed. A
//! charger that resends a message after a lost answer gets the same ids even
//! if this process restarted in between or another replica answers (and so
//! knows less, e.g. not the transaction's start), and the sink stores the
//! first copy once.
//!
//! Messages whose payload carries no time (a 1.6 StatusNotification may leave
//! `timestamp` out) are observed when they arrive; two of them are two
//! observations, so the arrival time is part of the id too.

use crate::registry::Station;
use citybrain_proto::events::v1::{Event, Location, event::Payload};
use prost_types::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The namespace of OCPP-derived event ids.
const ID_SOURCE: &str = "ocpp";

/// Builds the events of one message of one station.
pub struct Builder<'a> {
    station: &'a Station,
    action: &'a str,
    canonical: String,
    events: Vec<Event>,
}

impl<'a> Builder<'a> {
    pub fn new(station: &'a Station, action: &'a str, payload: &Value) -> Self {
        Self {
            station,
            action,
            canonical: canonical(payload),
            events: Vec::new(),
        }
    }

    /// Adds an event about `connector`; `part` tells the events of one message
    /// apart (`"session"`, `"sample:2"`, …).
    pub fn push(
        &mut self,
        part: &str,
        connector: u32,
        observed_at: Timestamp,
        seq_no: Option<u64>,
        payload: Payload,
    ) {
        let at = format!("{}.{:09}", observed_at.seconds, observed_at.nanos);
        let connector_text = connector.to_string();
        let event_id = citybrain_ingest_client::event_id(
            ID_SOURCE,
            &[
                self.station.id.as_bytes(),
                self.action.as_bytes(),
                self.canonical.as_bytes(),
                part.as_bytes(),
                connector_text.as_bytes(),
                at.as_bytes(),
            ],
        );
        self.events.push(Event {
            event_id,
            device_id: device_id(&self.station.id, connector),
            observed_at: Some(observed_at),
            seq_no,
            location: location(self.station),
            observed_at_assumed: false,
            payload: Some(payload),
        });
    }

    /// Marks the last event's time as the gateway's receive time (the
    /// charger sent none), as the envelope's `observed_at_assumed` says.
    pub fn time_assumed(&mut self) {
        if let Some(event) = self.events.last_mut() {
            event.observed_at_assumed = true;
        }
    }

    pub fn finish(self) -> Vec<Event> {
        self.events
    }
}

/// The contract's device of a connector: `<station>:<connector>` (connector
/// 0 is the charge point as a whole).
pub fn device_id(station: &str, connector: u32) -> String {
    format!("{station}:{connector}")
}

pub fn location(station: &Station) -> Option<Location> {
    station.location.map(|(latitude, longitude)| Location {
        latitude,
        longitude,
        ..Default::default()
    })
}

/// The contract's `id_token_hash`: SHA-256 (hex) of the card or app token;
/// empty when the charger sent none.
pub fn token_hash(token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() => hex::encode(Sha256::digest(token.as_bytes())),
        _ => String::new(),
    }
}

/// `text` cut to at most `max_bytes` at a character boundary (the contract's
/// limits are in bytes; chargers send longer `info` than OCPP allows).
pub fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// JSON with object keys sorted at every level, whatever order the charger
/// (or serde_json's map) used.
pub fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use citybrain_proto::events::v1::ConnectorStatus;
    use serde_json::json;

    fn station() -> Station {
        crate::registry::Registry::parse(
            "[[stations]]\nid=\"CP-1\"\ntenant=\"t\"\nsite=\"s\"\nconnectors=2\npassword=\"p\"\nlatitude=39.9\nlongitude=116.7",
            "f",
            false,
        )
        .unwrap()
        .get("CP-1")
        .unwrap()
        .as_ref()
        .clone()
    }

    fn ids(payload: &Value, part: &str, seconds: i64) -> String {
        let station = station();
        let mut builder = Builder::new(&station, "StatusNotification", payload);
        builder.push(
            part,
            1,
            Timestamp { seconds, nanos: 0 },
            None,
            Payload::ConnectorStatus(ConnectorStatus::default()),
        );
        builder.finish().remove(0).event_id
    }

    #[test]
    fn ids_follow_what_the_charger_sent() {
        let a = json!({"connectorId": 1, "status": "Charging", "errorCode": "NoError"});
        let reordered = json!({"status": "Charging", "errorCode": "NoError", "connectorId": 1});
        assert_eq!(ids(&a, "status", 100), ids(&reordered, "status", 100));
        assert_ne!(ids(&a, "status", 100), ids(&a, "status", 101));
        assert_ne!(ids(&a, "status", 100), ids(&a, "other", 100));
        let b = json!({"connectorId": 2, "status": "Charging", "errorCode": "NoError"});
        assert_ne!(ids(&a, "status", 100), ids(&b, "status", 100));
    }

    #[test]
    fn events_name_the_connector_and_the_place() {
        let station = station();
        let mut builder = Builder::new(&station, "StatusNotification", &json!({}));
        builder.push(
            "status",
            0,
            Timestamp::default(),
            Some(7),
            Payload::ConnectorStatus(ConnectorStatus::default()),
        );
        let event = builder.finish().remove(0);
        assert_eq!(event.device_id, "CP-1:0");
        assert_eq!(event.seq_no, Some(7));
        assert_eq!(event.location.unwrap().latitude, 39.9);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({"b": [{"y": 1, "x": "é"}], "a": null});
        assert_eq!(canonical(&value), r#"{"a":null,"b":[{"x":"é","y":1}]}"#);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("后北营家园", 7), "后北");
        assert_eq!(truncate("short", 50), "short");
        assert_eq!(token_hash(None), "");
        assert_eq!(token_hash(Some("")), "");
        assert_eq!(token_hash(Some("abc")).len(), 64);
    }
}
