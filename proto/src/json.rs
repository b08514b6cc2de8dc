//! The contract in JSON: the protobuf JSON mapping of `Event`, for devices
//! and vendor systems that do not speak gRPC (the MQTT bridge and ingest's
//! `POST /v1/events` both decode with this, so the two read JSON alike).
//!
//! Field names are the `.proto` names (`device_id`, `observed_at`,
//! `parking_site_counts`), as in the README's grpcurl example; the
//! lowerCamelCase JSON names (`deviceId`) are accepted too, as the mapping
//! requires. Enums are their names (`"BIN_STATUS_OK"`) or numbers;
//! timestamps are RFC 3339 text (`"2026-11-29T08:15:00Z"`, any offset);
//! 64-bit integers are numbers or decimal strings; `null` is an absent field.
//! Unknown fields and unknown enum names are errors: a typo is never
//! silently dropped.
//!
//! A body is decoded whole or not at all: the first problem fails it, named
//! by its JSON path (`events[3].parking_site_counts.occupied: invalid type:
//! string "x", expected a 32-bit unsigned integer`), so no batch is ever
//! stored in part because the rest of it did not parse.
//!
//! The mapping is read off the contract's descriptors
//! ([`crate::FILE_DESCRIPTOR_SET`]) by `prost-reflect`; nothing here lists a
//! field by hand, so a field added to the `.proto` files is in the JSON too.

use crate::events::v1::Event;
use prost::Message;
use prost_reflect::SerializeOptions;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use serde::de::DeserializeSeed;
use serde_json::Value;
use std::fmt;
use std::sync::LazyLock;

/// The contract's descriptors, decoded once.
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("the contract's descriptors decode")
});

const EVENT: &str = "citybrain.events.v1.Event";
const INGEST_REQUEST: &str = "citybrain.ingest.v1.IngestRequest";

/// Why a JSON body is not the contract: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The JSON path of the value that failed (`events[3].bin_reading`);
    /// empty when the body as a whole is wrong (not JSON, not an object).
    pub path: String,
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for JsonError {}

impl JsonError {
    fn whole(message: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            message: message.into(),
        }
    }
}

/// The shape a body came in, which decides how its paths start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"events": [ … ]}`, an `IngestRequest`: paths `events[3].…`.
    Request,
    /// `[ … ]`, events: paths `[3].…`.
    Array,
    /// `{ … }`, one event: paths `bin_reading.fill_level`.
    Event,
}

/// Decodes a body that is an `IngestRequest` (`{"events":[…]}`), an array of
/// events, or one event; returns the events in order and the shape.
pub fn decode_events(body: &[u8]) -> Result<(Vec<Event>, Shape), JsonError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| JsonError::whole(format!("the body is not JSON: {err}")))?;
    match value {
        Value::Object(ref fields) if fields.contains_key("events") => {
            let request = decode_message(value, INGEST_REQUEST)?;
            let request =
                crate::ingest::v1::IngestRequest::decode(request.encode_to_vec().as_slice())
                    .map_err(|err| JsonError::whole(err.to_string()))?;
            Ok((request.events, Shape::Request))
        }
        Value::Object(_) => Ok((vec![decode_event(value, "")?], Shape::Event)),
        Value::Array(items) => {
            let events = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| decode_event(item, &format!("[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((events, Shape::Array))
        }
        other => Err(JsonError::whole(format!(
            "expected an object ({{\"events\": [...]}} or one event) or an array of events, \
             not {}",
            kind_of(&other)
        ))),
    }
}

fn decode_event(value: Value, prefix: &str) -> Result<Event, JsonError> {
    let message = decode_message(value, EVENT).map_err(|mut err| {
        err.path = join(prefix, &err.path);
        err
    })?;
    Event::decode(message.encode_to_vec().as_slice()).map_err(|err| JsonError {
        path: prefix.to_string(),
        message: err.to_string(),
    })
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn descriptor(name: &str) -> MessageDescriptor {
    POOL.get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is in the contract"))
}

/// Deserializes `value` as message `name`, tracking the path for errors.
fn decode_message(value: Value, name: &str) -> Result<DynamicMessage, JsonError> {
    let mut track = serde_path_to_error::Track::new();
    let seed = Seed(descriptor(name));
    let result = seed.deserialize(serde_path_to_error::Deserializer::new(value, &mut track));
    result.map_err(|err| {
        let path = track.path().to_string();
        JsonError {
            // serde_path_to_error writes "." for the root.
            path: if path == "." { String::new() } else { path },
            message: err.to_string(),
        }
    })
}

/// A message descriptor as a serde seed, with unknown fields denied.
struct Seed(MessageDescriptor);

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = DynamicMessage;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<DynamicMessage, D::Error> {
        DynamicMessage::deserialize_with_options(self.0, de, &DeserializeOptions::new())
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Any message of the contract in the protobuf JSON mapping, with the
/// `.proto` field names (as requests are written), enum names, and fields
/// at their default value left out (proto3's rule: an absent count is 0).
pub fn to_json<M: Message>(message: &M, full_name: &str) -> Value {
    let dynamic = DynamicMessage::decode(descriptor(full_name), message.encode_to_vec().as_slice())
        .expect("a message of the contract re-decodes under its own descriptor");
    let options = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a protobuf message serializes to JSON")
}

/// An `IngestResponse` in JSON (see [`to_json`]).
pub fn response_json(response: &crate::ingest::v1::IngestResponse) -> Value {
    to_json(response, "citybrain.ingest.v1.IngestResponse")
}

/// An `Event` in JSON (see [`to_json`]): what a device would send.
pub fn event_json(event: &Event) -> Value {
    to_json(event, EVENT)
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
