//! `POST /v1/events`: the ingest API in JSON over HTTP/1.1, for devices and
//! vendor clouds that do not speak gRPC. A thin transport over the same core
//! as the gRPC `Ingest` call (`service.rs` authenticates and checks the
//! limits, `batch.rs` answers each event): the same keys, limits, per-event
//! answers and Kafka guarantees. The OpenAPI document is `/openapi.json`.
//!
//! The body is `{"events":[…]}` (an `IngestRequest`), an array of events or
//! one event, in the protobuf JSON mapping (`citybrain_proto::json`), plain
//! or `Content-Encoding: gzip`. It is decoded whole before anything is
//! stored: a body that is not the contract stores nothing. The answer is the
//! `IngestResponse` in the same mapping; a whole-call failure is an HTTP
//! status with `{"error":{"code","message","path","retryable"}}`
//! (`error.rs` maps each).

use crate::error::IngestError;
use crate::metrics;
use crate::service::IngestHandler;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use citybrain_keys::API_KEY_HEADER;
use citybrain_proto::ingest::v1::IngestRequest;
use std::collections::HashSet;
use std::io::Read;
use std::time::Instant;

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");
/// The `method` label of HTTP calls in `citybrain_ingest_requests_total`.
pub const METHOD: &str = "PostEvents";

/// The HTTP API's routes.
pub fn router(handler: IngestHandler) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/openapi.json", get(openapi))
        .with_state(handler)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn post_events(State(handler): State<IngestHandler>, request: Request) -> Response {
    let started = Instant::now();
    let result = answer(&handler, request).await;
    let (status, body, code) = match result {
        Ok(json) => (StatusCode::OK, json, tonic::Code::Ok),
        Err(err) => {
            if err.is_retryable() {
                tracing::warn!(method = METHOD, error = %err, "call answered retryable");
            } else {
                tracing::debug!(method = METHOD, error = %err, "call refused");
            }
            (err.http_status(), err.http_body().to_string(), err.code())
        }
    };
    metrics::request_finished(METHOD, code, started.elapsed());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn answer(handler: &IngestHandler, request: Request) -> Result<String, IngestError> {
    let (parts, body) = request.into_parts();
    let key = parts
        .headers
        .get(API_KEY_HEADER)
        .map(|value| value.as_bytes());
    let who = handler.authenticate_key(key)?;
    let limit = handler.limits().max_batch_bytes;
    let body = read_body(&parts.headers, body, limit).await?;
    let (events, _) = citybrain_proto::json::decode_events(&body).map_err(IngestError::NotJson)?;
    let request = IngestRequest { events };
    handler.check_request(&request, 0)?;
    let response = handler
        .answering(&who)
        .batch(request.events, 0, &mut HashSet::new())
        .await
        .respond()?;
    Ok(citybrain_proto::json::response_json(&response).to_string())
}

/// The body, decompressed, at most `limit` bytes either way (a gzip body
/// is cut off as soon as it inflates past the limit: no bomb is inflated).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, IngestError> {
    let too_large = || IngestError::BodyTooLarge { limit };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|bytes| bytes > limit) {
        return Err(too_large());
    }
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(raw.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|err| {
                    IngestError::BadEncoding(format!("the gzip body does not inflate: {err}"))
                })?;
            if inflated.len() > limit {
                return Err(too_large());
            }
            Ok(inflated.into())
        }
        Some(other) => Err(IngestError::UnsupportedEncoding(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn headers(encoding: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        }
        headers
    }

    #[tokio::test]
    async fn bodies_are_read_plain_or_gzip_within_the_limit() {
        let text = br#"{"events":[]}"#;
        let read = read_body(&headers(None), Body::from(&text[..]), 100).await;
        assert_eq!(read.unwrap().as_ref(), text);
        let read = read_body(&headers(Some("gzip")), Body::from(gzip(text)), 100).await;
        assert_eq!(read.unwrap().as_ref(), text);

        let over = read_body(&headers(None), Body::from(vec![b' '; 101]), 100).await;
        assert!(matches!(
            over,
            Err(IngestError::BodyTooLarge { limit: 100 })
        ));
        // A small gzip body that inflates past the limit is refused.
        let bomb = gzip(&vec![b' '; 1_000_000]);
        assert!(bomb.len() < 10_000);
        let over = read_body(&headers(Some("gzip")), Body::from(bomb), 100_000).await;
        assert!(matches!(over, Err(IngestError::BodyTooLarge { .. })));
        let broken = read_body(&headers(Some("gzip")), Body::from(&b"not gzip"[..]), 100).await;
        assert!(matches!(broken, Err(IngestError::BadEncoding(_))));
        let brotli = read_body(&headers(Some("br")), Body::from(&b"x"[..]), 100).await;
        assert!(matches!(brotli, Err(IngestError::UnsupportedEncoding(_))));
    }

    #[test]
    fn the_openapi_document_describes_the_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        let post = &doc["paths"]["/v1/events"]["post"];
        for status in ["200", "400", "401", "413", "415", "429", "503"] {
            assert!(
                post["responses"][status].is_object(),
                "{status} is described"
            );
        }
    }
}
