//! Whole-call failures of the ingest API and their gRPC status, in one place.
//!
//! Per-event problems are not errors: they are answered event by event in
//! `IngestResponse`. These are the cases where the call as a whole fails.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing API key: send it in the `x-api-key` metadata entry")]
    MissingApiKey,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("batch has {count} events; at most {limit} events are allowed per request")]
    TooManyEvents { count: usize, limit: usize },
    #[error("batch is {bytes} bytes; at most {limit} bytes are allowed per request")]
    BatchTooLarge { bytes: usize, limit: usize },
    #[error("stream carried more than {limit} events; close it and open a new one")]
    StreamTooLong { limit: usize },
    #[error(
        "the event store could not take any of the {count} events ({detail}); \
         retry later with the same event ids"
    )]
    StoreUnavailable { count: usize, detail: String },
    #[error(
        "overloaded: none of the {count} events could be queued; \
         retry later with the same event ids"
    )]
    Overloaded { count: usize },
    #[error("reading the request stream failed: {0}")]
    Stream(Status),
}

impl IngestError {
    /// Whether the same call may succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IngestError::StoreUnavailable { .. } | IngestError::Overloaded { .. }
        )
    }

    pub fn code(&self) -> Code {
        match self {
            IngestError::MissingApiKey | IngestError::UnknownApiKey => Code::Unauthenticated,
            IngestError::TooManyEvents { .. } => Code::InvalidArgument,
            IngestError::BatchTooLarge { .. }
            | IngestError::StreamTooLong { .. }
            | IngestError::Overloaded { .. } => Code::ResourceExhausted,
            IngestError::StoreUnavailable { .. } => Code::Unavailable,
            IngestError::Stream(status) => status.code(),
        }
    }
}

impl From<IngestError> for Status {
    fn from(err: IngestError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_tell_the_client_what_to_do() {
        let status = Status::from(IngestError::TooManyEvents {
            count: 1001,
            limit: 1000,
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("at most 1000 events"));
        let err = IngestError::StoreUnavailable {
            count: 3,
            detail: "timed out".into(),
        };
        assert!(err.is_retryable());
        assert_eq!(Status::from(err).code(), Code::Unavailable);
        assert_eq!(
            Status::from(IngestError::MissingApiKey).code(),
            Code::Unauthenticated
        );
        assert!(!IngestError::UnknownApiKey.is_retryable());
    }
}
