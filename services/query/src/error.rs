//! Every way a query can fail, and its gRPC and HTTP status, in one place.

use axum::http::StatusCode;
use std::time::Duration;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("missing API key: send it in the `x-api-key` header")]
    MissingApiKey,
    #[error("unknown API key")]
    UnknownApiKey,
    /// A parameter is malformed or names something that does not exist.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A request exceeds a configured limit; `limit` names the setting.
    #[error("{message} (limit {limit})")]
    Limit {
        limit: &'static str,
        message: String,
    },
    #[error(
        "the query did not finish within {0:?}; narrow the time range or the filters (limit CITYBRAIN_QUERY_TIMEOUT_MS)"
    )]
    Timeout(Duration),
    #[error("the data store is unavailable ({0}); retry later")]
    Unavailable(String),
    #[error("the data store could not answer ({0})")]
    Store(String),
}

impl QueryError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        QueryError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether the same request may succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueryError::Timeout(_) | QueryError::Unavailable(_))
    }

    pub fn code(&self) -> Code {
        match self {
            QueryError::MissingApiKey | QueryError::UnknownApiKey => Code::Unauthenticated,
            QueryError::Invalid { .. } | QueryError::Limit { .. } => Code::InvalidArgument,
            QueryError::Timeout(_) => Code::DeadlineExceeded,
            QueryError::Unavailable(_) => Code::Unavailable,
            QueryError::Store(_) => Code::Internal,
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self.code() {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The outcome label for metrics (a fixed set).
    pub fn outcome(&self) -> &'static str {
        match self {
            QueryError::MissingApiKey | QueryError::UnknownApiKey => "unauthenticated",
            QueryError::Invalid { .. } => "invalid_argument",
            QueryError::Limit { .. } => "limit",
            QueryError::Timeout(_) => "deadline_exceeded",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Store(_) => "internal",
        }
    }

    /// The JSON body of an HTTP error answer.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "code": grpc_name(self.code()),
                "message": self.to_string(),
                "retryable": self.is_retryable(),
            }
        })
    }

    /// Classifies a ClickHouse client error. Server errors carry
    /// `Code: NNN` in their text; the codes used are ClickHouse's stable
    /// error numbers.
    pub fn from_clickhouse(err: clickhouse::error::Error, timeout: Duration) -> Self {
        use clickhouse::error::Error as E;
        match err {
            E::Network(e) => QueryError::Unavailable(e.to_string()),
            E::TimedOut => QueryError::Timeout(timeout),
            E::BadResponse(text) => match server_code(&text) {
                // TIMEOUT_EXCEEDED, TOO_SLOW (estimated time too long)
                Some(159 | 160) => QueryError::Timeout(timeout),
                // TOO_MANY_SIMULTANEOUS_QUERIES, ALL_CONNECTION_TRIES_FAILED, NETWORK_ERROR
                Some(202 | 279 | 210) => QueryError::Unavailable(first_line(&text)),
                _ if text.contains("503") || text.contains("502") => {
                    QueryError::Unavailable(first_line(&text))
                }
                _ => QueryError::Store(first_line(&text)),
            },
            other => QueryError::Store(other.to_string()),
        }
    }
}

fn server_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

fn grpc_name(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::Unavailable => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

impl From<QueryError> for Status {
    fn from(err: QueryError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

impl axum::response::IntoResponse for QueryError {
    fn into_response(self) -> axum::response::Response {
        (self.http_status(), axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_tell_the_caller_what_happened() {
        let t = Duration::from_secs(5);
        let timeout = QueryError::from_clickhouse(
            clickhouse::error::Error::BadResponse(
                "Code: 159, e.displayText() = DB::Exception: Timeout exceeded: elapsed 1.0 seconds"
                    .into(),
            ),
            t,
        );
        assert_eq!(timeout.code(), Code::DeadlineExceeded);
        assert_eq!(timeout.http_status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(timeout.is_retryable());
        let syntax = QueryError::from_clickhouse(
            clickhouse::error::Error::BadResponse(
                "Code: 62, e.displayText() = Syntax error".into(),
            ),
            t,
        );
        assert_eq!(syntax.code(), Code::Internal);
        let limit = QueryError::Limit {
            limit: "CITYBRAIN_QUERY_MAX_ROWS",
            message: "more than 10 rows".into(),
        };
        assert_eq!(limit.http_status(), StatusCode::BAD_REQUEST);
        assert!(limit.to_string().contains("CITYBRAIN_QUERY_MAX_ROWS"));
        assert_eq!(limit.body()["error"]["code"], "INVALID_ARGUMENT");
        assert_eq!(
            Status::from(QueryError::Unavailable("connection refused".into())).code(),
            Code::Unavailable
        );
    }
}
