//! Why a charger's message is answered with a CALLERROR, in one place: the
//! OCPP error code for each protocol version, the description the charger
//! gets, and the metric label.
//!
//! The codes follow what the charger should do next. A message that will
//! never be stored (it cannot be read, or ingest refused an event in it) gets
//! a code that says so; a message that was not stored *now* gets
//! `InternalError`, which OCPP chargers treat as "resend this transaction
//! message later" (1.6 §4.7 TransactionMessageAttempts, 2.0.1 E13).

use crate::Version;

/// A CALLERROR the gateway sends.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    /// The text message is not an OCPP-J frame.
    #[error("{0}")]
    Frame(String),
    /// An action this gateway does not implement.
    #[error("{0} is not implemented by this central system")]
    NotImplemented(String),
    /// The payload does not have the message's shape: a required field is
    /// missing, or a field has the wrong JSON type.
    #[error("{path}: {message}")]
    Payload { path: String, message: String },
    /// A field has the right type but a value that cannot be used.
    #[error("{path}: {message}")]
    Value { path: String, message: String },
    /// Ingest refused an event of the message: sending it again will not help.
    #[error("not stored: {field}: {message}")]
    Rejected { field: String, message: String },
    /// Ingest could not store the message's events now (answered RETRYABLE,
    /// overloaded, unreachable): the charger should send it again.
    #[error("not stored, send it again later: {0}")]
    Unavailable(String),
    /// Ingest refused the gateway's call (its API key, a limit): the
    /// gateway's configuration is wrong; the message was not stored.
    #[error("not stored: the central system cannot reach its store ({0})")]
    Refused(String),
    /// The station was removed from the registry while connected.
    #[error("this charge point is no longer registered")]
    Unregistered,
}

impl Fault {
    /// The errorCode of the CALLERROR.
    pub fn code(&self, version: Version) -> &'static str {
        match self {
            Fault::Frame(_) | Fault::Payload { .. } => match version {
                Version::V16 => "FormationViolation",
                Version::V201 => "FormatViolation",
            },
            Fault::NotImplemented(_) => "NotImplemented",
            Fault::Value { .. } | Fault::Rejected { .. } => "PropertyConstraintViolation",
            Fault::Unavailable(_) | Fault::Refused(_) => "InternalError",
            Fault::Unregistered => "SecurityError",
        }
    }

    /// The `reason` label of `citybrain_ocpp_call_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Fault::Frame(_) => "frame",
            Fault::NotImplemented(_) => "not_implemented",
            Fault::Payload { .. } => "payload_shape",
            Fault::Value { .. } => "payload_value",
            Fault::Rejected { .. } => "ingest_rejected",
            Fault::Unavailable(_) => "ingest_unavailable",
            Fault::Refused(_) => "ingest_refused",
            Fault::Unregistered => "unregistered",
        }
    }

    /// Whether the charger keeping the message and resending it can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Fault::Unavailable(_))
    }

    pub fn value(path: impl Into<String>, message: impl Into<String>) -> Self {
        Fault::Value {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_version() {
        let shape = Fault::Payload {
            path: "connectorId".into(),
            message: "missing field".into(),
        };
        assert_eq!(shape.code(Version::V16), "FormationViolation");
        assert_eq!(shape.code(Version::V201), "FormatViolation");
        assert_eq!(shape.to_string(), "connectorId: missing field");
        assert_eq!(
            Fault::NotImplemented("Reset".into()).code(Version::V16),
            "NotImplemented"
        );
        let later = Fault::Unavailable("kafka down".into());
        assert_eq!(later.code(Version::V201), "InternalError");
        assert!(later.is_retryable());
        assert!(!Fault::value("timestamp", "no such day").is_retryable());
    }
}
