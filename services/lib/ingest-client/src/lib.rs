//! The one client of the ingest gRPC API inside citybrain.
//!
//! Gateways (OCPP, JT/T 808, MQTT) and the simulator turn what a device said
//! into contract events and hand them to ingest, so that keys, validation,
//! per-event answers and the Kafka guarantees stay in one place. What they
//! share is here:
//!
//! - [`IngestClient::ingest`]: one call with the API key, answered per event
//!   ([`EventOutcome`]) or failed as a whole ([`CallError`], which says
//!   whether sending the same batch again can help);
//! - [`event_id`]: deterministic event ids (UUIDv5), so that a device that
//!   resends after a lost answer is stored once;
//! - [`retryable_call`]: which whole-call failures are worth retrying;
//! - [`IngestClient::serving`]: ingest's gRPC health (SERVING only while
//!   Kafka is reachable), for a gateway's readiness.
//!
//! A gateway tells its device "stored" only for [`EventOutcome::Accepted`]
//! (and [`EventOutcome::Duplicate`], whose first copy in the call was
//! accepted); on [`EventOutcome::Retryable`] or a [`CallError`] it answers so
//! that the device keeps the message and sends it again.

use citybrain_proto::events::v1::Event;
use citybrain_proto::ingest::v1::{
    IngestRequest, Outcome, ReasonCode, ingest_service_client::IngestServiceClient,
};
use std::time::Duration;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

/// The metadata entry that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The gRPC health-checking service name of the ingest API.
pub const HEALTH_SERVICE: &str = "citybrain.ingest.v1.IngestService";
/// Largest answer accepted (one result per event, with messages).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid ingest URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("the API key cannot be sent as gRPC metadata (it must be printable ASCII)")]
    Key,
}

/// A call that failed as a whole: no event of it has an answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ingest call failed: {code:?}: {message}")]
pub struct CallError {
    pub code: Code,
    pub message: String,
}

impl CallError {
    /// Whether the same batch may succeed later (ingest or Kafka down or
    /// overloaded, a timeout, a dropped connection). Otherwise the call itself
    /// is wrong (a bad key, a batch over the limits) and resending it will
    /// not help.
    pub fn is_retryable(&self) -> bool {
        retryable_call(self.code, &self.message)
    }
}

/// The words ingest puts in every whole-call refusal that the same call may
/// pass later (overloaded, store unavailable; see the proto). RESOURCE_EXHAUSTED
/// is also the answer to a batch over the byte limit, which would be refused
/// forever, so the code alone cannot tell "busy" from "too large".
pub const RETRY_LATER: &str = "retry later";

/// Whole-call failures worth retrying unchanged, by code and, for
/// RESOURCE_EXHAUSTED, by whether ingest's message says [`RETRY_LATER`].
pub fn retryable_call(code: Code, message: &str) -> bool {
    if code == Code::ResourceExhausted {
        return message.contains(RETRY_LATER);
    }
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown
            | Code::Internal
    )
}

/// Ingest's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Durable in Kafka.
    Accepted,
    /// The same event id came earlier in the call; that copy's answer counts.
    Duplicate,
    /// Invalid or not allowed: sending it again will not help.
    Rejected {
        reason: ReasonCode,
        field: String,
        message: String,
    },
    /// Not stored now; send it again later with the same event id.
    Retryable { reason: ReasonCode, message: String },
}

impl EventOutcome {
    /// Whether the event is (or, for a duplicate, its first copy is) stored.
    pub fn is_stored(&self) -> bool {
        matches!(self, EventOutcome::Accepted | EventOutcome::Duplicate)
    }
}

/// One event's answer: its id (the client's, or the one ingest assigned) and
/// its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventAnswer {
    pub event_id: String,
    pub outcome: EventOutcome,
}

/// A cheap-to-clone client of one ingest endpoint with one API key.
#[derive(Clone)]
pub struct IngestClient {
    grpc: IngestServiceClient<Channel>,
    health: HealthClient<Channel>,
    api_key: AsciiMetadataValue,
}

impl IngestClient {
    /// Connects lazily (an ingest that is not up yet fails a call with a
    /// retryable [`CallError`]); a call may take at most `timeout`.
    pub fn new(url: &str, api_key: &str, timeout: Duration) -> Result<Self, ClientError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|err| ClientError::Url {
                url: url.into(),
                reason: err.to_string(),
            })?
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        let health = HealthClient::new(channel.clone());
        let grpc = IngestServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        let api_key = api_key.parse().map_err(|_| ClientError::Key)?;
        Ok(Self {
            grpc,
            health,
            api_key,
        })
    }

    /// Whether ingest reports the ingest API SERVING (gRPC health checking;
    /// ingest does so only while Kafka is reachable). False when it cannot
    /// be asked.
    pub async fn serving(&self) -> bool {
        let request = HealthCheckRequest {
            service: HEALTH_SERVICE.into(),
        };
        match self.health.clone().check(request).await {
            Ok(response) => response.into_inner().status == ServingStatus::Serving as i32,
            Err(_) => false,
        }
    }

    /// Sends one batch and returns one answer per event, in order.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<Vec<EventAnswer>, CallError> {
        let count = events.len();
        let mut request = Request::new(IngestRequest { events });
        request
            .metadata_mut()
            .insert(API_KEY_HEADER, self.api_key.clone());
        let response = self
            .grpc
            .clone()
            .ingest(request)
            .await
            .map_err(|status| CallError {
                code: status.code(),
                message: status.message().to_string(),
            })?
            .into_inner();
        if response.results.len() != count {
            // Never guess which events an incomplete answer covers.
            return Err(CallError {
                code: Code::Internal,
                message: format!(
                    "ingest answered {} results for {count} events",
                    response.results.len()
                ),
            });
        }
        Ok(response.results.into_iter().map(answer).collect())
    }
}

fn answer(result: citybrain_proto::ingest::v1::EventResult) -> EventAnswer {
    let reason = ReasonCode::try_from(result.reason).unwrap_or(ReasonCode::Unspecified);
    let outcome = match Outcome::try_from(result.outcome).unwrap_or(Outcome::Unspecified) {
        Outcome::Accepted => EventOutcome::Accepted,
        Outcome::Duplicate => EventOutcome::Duplicate,
        Outcome::Retryable => EventOutcome::Retryable {
            reason,
            message: result.message,
        },
        // An outcome this client does not know is never taken for "stored".
        Outcome::Rejected | Outcome::Unspecified => EventOutcome::Rejected {
            reason,
            field: result.field,
            message: result.message,
        },
    };
    EventAnswer {
        event_id: result.event_id,
        outcome,
    }
}

/// A deterministic event id: the UUIDv5 of `parts` (joined with a 0x1f unit
/// separator, so `["ab","c"]` and `["a","bc"]` differ) in the namespace of
/// `source` (e.g. `"ocpp"`, `"jt808"`, `"mqtt"`). The same message resent by
/// a device gets the same id, and ingest and the sink store it once.
pub fn event_id(source: &str, parts: &[&[u8]]) -> String {
    let namespace = Uuid::new_v5(&CITYBRAIN_NAMESPACE, source.as_bytes());
    let mut name = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            name.push(0x1f);
        }
        name.extend_from_slice(part);
    }
    Uuid::new_v5(&namespace, &name).hyphenated().to_string()
}

/// The root namespace of citybrain's derived ids (a fixed random UUID).
const CITYBRAIN_NAMESPACE: Uuid = Uuid::from_u128(0x6c1b_52d4_9a3e_4f0b_8e21_7d5a_c0f3_9b64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_separate_their_parts() {
        let id = event_id("ocpp", &[b"CP-1", b"MeterValues", b"42"]);
        assert_eq!(id, event_id("ocpp", &[b"CP-1", b"MeterValues", b"42"]));
        assert_eq!(Uuid::parse_str(&id).unwrap().get_version_num(), 5);
        assert_ne!(id, event_id("jt808", &[b"CP-1", b"MeterValues", b"42"]));
        assert_ne!(event_id("x", &[b"ab", b"c"]), event_id("x", &[b"a", b"bc"]));
    }

    #[test]
    fn unknown_outcomes_are_never_stored() {
        let result = citybrain_proto::ingest::v1::EventResult {
            outcome: 99,
            reason: ReasonCode::OutOfRange as i32,
            field: "x".into(),
            ..Default::default()
        };
        assert!(!answer(result).outcome.is_stored());
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for code in [Code::Unavailable, Code::DeadlineExceeded] {
            assert!(retryable_call(code, ""), "{code:?}");
        }
        for code in [
            Code::Unauthenticated,
            Code::InvalidArgument,
            Code::PermissionDenied,
        ] {
            assert!(!retryable_call(code, ""), "{code:?}");
        }
        // Ingest's own messages (services/ingest/src/error.rs).
        let busy = "overloaded: none of the 3 events could be queued; \
                    retry later with the same event ids";
        assert!(retryable_call(Code::ResourceExhausted, busy));
        let too_large = "batch is 20650 bytes; at most 16384 bytes are allowed per request";
        assert!(!retryable_call(Code::ResourceExhausted, too_large));
    }
}
