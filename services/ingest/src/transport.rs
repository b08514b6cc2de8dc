//! What happens to an ingest call around the handler: the byte limit of a
//! request message, enforced on the wire, and the status every call ends
//! with, counted.
//!
//! The limit sits here, not in the handler, because tonic reads a whole
//! message before the handler sees it and answers one over its own limit
//! with OUT_OF_RANGE ("decoded message length too large"): the README
//! promises RESOURCE_EXHAUSTED naming the limit. [`Guarded`] reads the 5-byte
//! gRPC prefix of each request message as the bytes arrive and, for a
//! message over the limit, hands tonic that status as a body error instead
//! of the message; tonic passes a body error that is a `Status` through as it
//! is, for unary and streaming calls alike, and nothing of the message is
//! buffered. The messages before it in a stream are delivered (and, in
//! IngestBatches, answered) first.
//!
//! The call is counted here because calls that tonic refuses before the
//! handler runs (a message over the limit, one that does not decode, a
//! compressed one) would otherwise not be counted at all, and a streaming
//! call is only over when its last answer or its trailers are sent.

use crate::error::IngestError;
use crate::metrics;
use bytes::{Buf, Bytes};
use http_body::Frame;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::Code;
use tonic::body::Body;
use tonic::server::NamedService;

/// The gRPC length prefix: a compressed flag, then a big-endian u32 length.
const PREFIX: usize = 5;

/// The ingest gRPC service with the byte limit on its request messages and
/// the call counter around it.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, max_message_bytes: usize) -> Self {
        Self {
            inner,
            max_message_bytes,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Guarded<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let call = Call {
            method: metrics::method_label(request.uri().path()),
            started: Instant::now(),
            counted: false,
        };
        let limit = self.max_message_bytes;
        let request = request.map(|body| Body::new(MessageLimit::new(body, limit)));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            // A call refused before any answer carries its status in the
            // headers ("trailers-only"); any other carries it in trailers.
            match status_of(response.headers()) {
                Some(code) => call.finish(code),
                None => {
                    response = response.map(|body| Body::new(Counted { inner: body, call }));
                }
            }
            Ok(response)
        })
    }
}

/// One call being counted; counted once, as cancelled if its answer is
/// dropped before its status was sent (the client went away).
struct Call {
    method: &'static str,
    started: Instant,
    counted: bool,
}

impl Call {
    fn finish(mut self, code: Code) {
        self.count(code);
    }

    fn count(&mut self, code: Code) {
        if !self.counted {
            self.counted = true;
            metrics::request_finished(self.method, code, self.started.elapsed());
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.count(Code::Cancelled);
    }
}

fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// An answer body that counts the call when its trailers pass.
struct Counted {
    inner: Body,
    call: Call,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
        {
            let code = status_of(trailers).unwrap_or(Code::Unknown);
            self.call.count(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Where the reader is in the stream of length-prefixed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a prefix: `got` of its bytes so far, kept in `prefix`.
    Prefix { got: usize, prefix: [u8; PREFIX] },
    /// Inside a message: `remaining` bytes of it to pass.
    Message { remaining: usize },
}

/// A request body that refuses a message larger than `limit` bytes as soon
/// as its prefix arrives.
struct MessageLimit {
    inner: Body,
    limit: usize,
    framing: Framing,
    /// The refusal, sent after the bytes before the refused message.
    refusal: Option<tonic::Status>,
}

impl MessageLimit {
    fn new(inner: Body, limit: usize) -> Self {
        Self {
            inner,
            limit,
            framing: Framing::Prefix {
                got: 0,
                prefix: [0; PREFIX],
            },
            refusal: None,
        }
    }

    /// Follows the framing through `chunk`. Returns where in it the prefix
    /// of a message over the limit starts (0 when it started in an earlier
    /// chunk), and that message's length.
    fn scan(&mut self, chunk: &[u8]) -> Option<(usize, usize)> {
        let mut at = 0;
        while at < chunk.len() {
            match &mut self.framing {
                Framing::Message { remaining } => {
                    let step = (*remaining).min(chunk.len() - at);
                    *remaining -= step;
                    at += step;
                    if *remaining == 0 {
                        self.framing = Framing::Prefix {
                            got: 0,
                            prefix: [0; PREFIX],
                        };
                    }
                }
                Framing::Prefix { got, prefix } => {
                    let starts_at = at.saturating_sub(*got);
                    let step = (PREFIX - *got).min(chunk.len() - at);
                    prefix[*got..*got + step].copy_from_slice(&chunk[at..at + step]);
                    *got += step;
                    at += step;
                    if *got == PREFIX {
                        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]])
                            as usize;
                        if len > self.limit {
                            return Some((starts_at, len));
                        }
                        self.framing = if len == 0 {
                            Framing::Prefix {
                                got: 0,
                                prefix: [0; PREFIX],
                            }
                        } else {
                            Framing::Message { remaining: len }
                        };
                    }
                }
            }
        }
        None
    }
}

impl http_body::Body for MessageLimit {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if let Some(refusal) = self.refusal.take() {
            return Poll::Ready(Some(Err(refusal)));
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            // Trailers (a client sends none in gRPC) pass unchanged.
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        match self.scan(data.chunk()) {
            None => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some((starts_at, bytes)) => {
                let refusal = tonic::Status::from(IngestError::BatchTooLarge {
                    bytes,
                    limit: self.limit,
                });
                if starts_at == 0 {
                    return Poll::Ready(Some(Err(refusal)));
                }
                self.refusal = Some(refusal);
                let before = data.split_to(starts_at);
                Poll::Ready(Some(Ok(Frame::data(before))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.refusal.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[usize]) -> Vec<u8> {
        let mut wire = Vec::new();
        for len in messages {
            wire.push(0);
            wire.extend_from_slice(&(*len as u32).to_be_bytes());
            wire.extend(std::iter::repeat_n(7u8, *len));
        }
        wire
    }

    /// Feeds `wire` in chunks of `size` bytes; returns the offset in `wire`
    /// where the refused message's prefix starts, and its length.
    fn refused_at(wire: &[u8], size: usize, limit: usize) -> Option<(usize, usize)> {
        let mut limiter = MessageLimit::new(Body::empty(), limit);
        for (n, chunk) in wire.chunks(size).enumerate() {
            if let Some((at, len)) = limiter.scan(chunk) {
                return Some((n * size + at, len));
            }
        }
        None
    }

    #[test]
    fn messages_within_the_limit_pass_however_the_bytes_are_cut() {
        let wire = framed(&[10, 0, 100, 3]);
        for size in 1..=wire.len() {
            assert_eq!(refused_at(&wire, size, 100), None, "chunks of {size}");
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_at_its_prefix() {
        let wire = framed(&[10, 101, 3]);
        let prefix_at = PREFIX + 10;
        for size in 1..=wire.len() {
            let (at, len) = refused_at(&wire, size, 100).expect("refused");
            assert_eq!(len, 101, "chunks of {size}");
            // The refusal comes before any byte of the refused message when
            // its prefix starts in the chunk; otherwise at the chunk's start.
            let chunk_start = prefix_at + PREFIX - 1;
            let chunk_start = chunk_start - chunk_start % size;
            assert_eq!(at, prefix_at.max(chunk_start), "chunks of {size}");
        }
    }

    #[test]
    fn a_length_beyond_what_memory_could_hold_is_refused_unread() {
        let mut wire = vec![0];
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            refused_at(&wire, 5, 4 * 1024 * 1024),
            Some((0, u32::MAX as usize))
        );
    }
}
