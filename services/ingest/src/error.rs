//! Whole-call failures of the ingest API and their gRPC status, in one place.
//!
//! Per-event problems are not errors: they are answered event by event in
//! `IngestResponse`. These are the cases where a call as a whole fails, and
//! this is every way an ingest call can end with a status other than OK:
//!
//! | cause | status | made by |
//! |---|---|---|
//! | no `x-api-key`, an unknown key, one that is not printable ASCII | UNAUTHENTICATED | [`IngestError`] |
//! | more events in a request than allowed | INVALID_ARGUMENT | [`IngestError::TooManyEvents`] |
//! | a request message that does not decode | INVALID_ARGUMENT | `citybrain_proto::codec` (the generated server's codec) |
//! | a request message over the byte limit (before it is read) | RESOURCE_EXHAUSTED | [`IngestError::BatchTooLarge`], from `transport.rs` |
//! | a stream carrying more events than allowed | RESOURCE_EXHAUSTED | [`IngestError::StreamTooLong`] |
//! | nothing of an Ingest/IngestStream call queued: producer queue full | RESOURCE_EXHAUSTED | [`IngestError::Overloaded`] |
//! | nothing of an Ingest/IngestStream call stored: Kafka down | UNAVAILABLE | [`IngestError::StoreUnavailable`] |
//! | a compressed request (`grpc-encoding`: ingest accepts none) | UNIMPLEMENTED | tonic |
//! | gRPC framing broken by the client's library: a compressed flag without `grpc-encoding`, a message cut short | INTERNAL | tonic, as the gRPC spec requires |
//! | the client's deadline (`grpc-timeout`) passed before the answer | CANCELLED ("Timeout expired") | tonic |
//! | the client cancelled, or its connection broke | none reaches it; counted as CANCELLED | `transport.rs` |
//! | an HTTP/2 error in a stream | per the gRPC spec's HTTP/2 mapping | tonic, passed on by [`IngestError::Stream`] |
//!
//! `POST /v1/events` (`http.rs`) ends with the HTTP status of the same
//! errors ([`IngestError::http_status`]: 401, 400, 413, 429, 503) and a
//! JSON body naming the problem ([`IngestError::http_body`]). Its own:
//! a body that is not JSON or not the contract, the JSON path named (400,
//! [`IngestError::NotJson`]); a gzip body that does not inflate (400,
//! [`IngestError::BadEncoding`]); a body, or an inflated gzip body, over
//! the byte limit (413, [`IngestError::BodyTooLarge`]); a Content-Encoding
//! other than gzip or identity (415, [`IngestError::UnsupportedEncoding`]).
//! Overloaded is 429, Kafka down 503, as Ingest's RESOURCE_EXHAUSTED and
//! UNAVAILABLE.
//!
//! tonic's own message-size limit (OUT_OF_RANGE) is set to the same byte
//! limit as `transport.rs`, which refuses first, so it is never what a client
//! sees. Answers have no size limit on the server's side: an IngestStream
//! answer lists every event of the stream (about 10 MB at the 200,000-event
//! limit).

use axum::http::StatusCode;
use citybrain_proto::json::JsonError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing API key: send it in the `x-api-key` metadata entry")]
    MissingApiKey,
    #[error("the `x-api-key` metadata entry is not printable ASCII")]
    MalformedApiKey,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("batch has {count} events; at most {limit} events are allowed per request")]
    TooManyEvents { count: usize, limit: usize },
    #[error("batch is {bytes} bytes; at most {limit} bytes are allowed per request")]
    BatchTooLarge { bytes: usize, limit: usize },
    #[error(
        "stream carried {earlier} events before this request; at most {limit} events are \
         allowed per stream: open a new stream and send this request again"
    )]
    StreamTooLong { limit: usize, earlier: usize },
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
    /// HTTP: the body is not JSON, or not the contract's JSON.
    #[error("the body is not an IngestRequest in JSON: {0}")]
    NotJson(JsonError),
    /// HTTP: the body, or what a gzip body inflates to, is over the limit.
    #[error("the body is over {limit} bytes, the limit per request")]
    BodyTooLarge { limit: usize },
    /// HTTP: a gzip body that does not inflate.
    #[error("{0}")]
    BadEncoding(String),
    /// HTTP: a Content-Encoding ingest does not read.
    #[error("Content-Encoding {0:?} is not supported; send gzip or an uncompressed body")]
    UnsupportedEncoding(String),
    /// Reading the next request of a stream failed: the status tonic (or the
    /// codec, or the byte limit) gave, passed on as it is.
    #[error("{}", .0.message())]
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
            IngestError::MissingApiKey
            | IngestError::MalformedApiKey
            | IngestError::UnknownApiKey => Code::Unauthenticated,
            IngestError::TooManyEvents { .. }
            | IngestError::NotJson(_)
            | IngestError::BadEncoding(_) => Code::InvalidArgument,
            IngestError::UnsupportedEncoding(_) => Code::Unimplemented,
            IngestError::BodyTooLarge { .. }
            | IngestError::BatchTooLarge { .. }
            | IngestError::StreamTooLong { .. }
            | IngestError::Overloaded { .. } => Code::ResourceExhausted,
            IngestError::StoreUnavailable { .. } => Code::Unavailable,
            IngestError::Stream(status) => status.code(),
        }
    }

    /// The HTTP status of `POST /v1/events` failing with this.
    pub fn http_status(&self) -> StatusCode {
        match self {
            IngestError::BodyTooLarge { .. } | IngestError::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            err => match err.code() {
                Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                Code::InvalidArgument => StatusCode::BAD_REQUEST,
                Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
                Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The JSON body of an HTTP error answer: the gRPC code's name, the
    /// message, the JSON path that failed (for [`IngestError::NotJson`]),
    /// and whether sending the same request again may succeed.
    pub fn http_body(&self) -> serde_json::Value {
        let path = match self {
            IngestError::NotJson(err) => err.path.as_str(),
            _ => "",
        };
        serde_json::json!({
            "error": {
                "code": grpc_name(self.code()),
                "message": self.to_string(),
                "path": path,
                "retryable": self.is_retryable(),
            }
        })
    }
}

/// gRPC's own name of a code (INVALID_ARGUMENT), for HTTP error bodies.
fn grpc_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl From<IngestError> for Status {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Stream(status) => status,
            err => Status::new(err.code(), err.to_string()),
        }
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
        let status = Status::from(IngestError::BatchTooLarge {
            bytes: 9_000_000,
            limit: 4_194_304,
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("at most 4194304 bytes"));
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
        let not_json = IngestError::NotJson(JsonError {
            path: "events[3].parking_site_counts.occupied".into(),
            message: "invalid type".into(),
        });
        assert_eq!(not_json.http_status(), StatusCode::BAD_REQUEST);
        let body = not_json.http_body();
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(
            body["error"]["path"],
            "events[3].parking_site_counts.occupied"
        );
        assert_eq!(
            IngestError::BodyTooLarge { limit: 1 }.http_status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            IngestError::Overloaded { count: 1 }.http_status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            IngestError::UnknownApiKey.http_status(),
            StatusCode::UNAUTHORIZED
        );
        let passed_on = Status::from(IngestError::Stream(Status::invalid_argument("bad")));
        assert_eq!(
            (passed_on.code(), passed_on.message()),
            (Code::InvalidArgument, "bad")
        );
    }
}
