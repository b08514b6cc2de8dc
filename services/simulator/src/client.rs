//! Pushes batches to the ingest API the way a well-behaved vendor does.
//!
//! - Every call carries the API key in `x-api-key`.
//! - Per-event RETRYABLE answers: those events (same ids) are sent again
//!   after a backoff; ACCEPTED and DUPLICATE are done.
//! - Whole-call UNAVAILABLE or RESOURCE_EXHAUSTED (the store is down or
//!   overloaded), and transport failures: the same batch again after a
//!   capped exponential backoff with jitter.
//! - REJECTED events are counted and logged with their reason and field; a
//!   correct simulator has none, so they are never resent.
//! - Anything else (a wrong key, a batch over the limits) is fatal.

use crate::rng::Rng;
use citybrain_ingest_client::EventOutcome;
use citybrain_proto::events::v1::Event;
use citybrain_proto::feed::Kind;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::Code;

/// Backoff before the first retry; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failure that retrying will not fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Setup(#[from] citybrain_ingest_client::ClientError),
    #[error("ingest refused the call: {code:?}: {message}")]
    Refused { code: Code, message: String },
}

/// What the client has seen, shared by all calls.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    /// Events sent again after a RETRYABLE answer or a failed call.
    pub retried: AtomicU64,
    /// Calls that failed as a whole and were retried.
    pub failed_calls: AtomicU64,
}

impl Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A cheap-to-clone ingest client that retries until every event is answered.
#[derive(Clone)]
pub struct IngestClient {
    inner: citybrain_ingest_client::IngestClient,
}

impl IngestClient {
    /// Connects lazily: an ingest that is not up yet is retried like any
    /// unavailable one.
    pub fn new(url: &str, api_key: &str) -> Result<Self, ClientError> {
        let inner = citybrain_ingest_client::IngestClient::new(url, api_key, CALL_TIMEOUT)?;
        Ok(Self { inner })
    }

    /// Sends `events` until each is accepted, a duplicate or rejected.
    pub async fn send(
        &self,
        mut events: Vec<Event>,
        counters: &Counters,
    ) -> Result<(), ClientError> {
        Counters::add(&counters.sent, events.len());
        let mut attempt = 0u32;
        while !events.is_empty() {
            if attempt > 0 {
                Counters::add(&counters.retried, events.len());
                tokio::time::sleep(backoff(attempt)).await;
            }
            attempt += 1;
            let answers = match self.inner.ingest(events.clone()).await {
                Ok(answers) => answers,
                Err(err) if err.is_retryable() => {
                    counters.failed_calls.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        code = ?err.code,
                        message = %err.message,
                        events = events.len(),
                        attempt,
                        "ingest call failed; retrying the batch"
                    );
                    continue;
                }
                Err(err) => {
                    return Err(ClientError::Refused {
                        code: err.code,
                        message: err.message,
                    });
                }
            };
            let mut again = Vec::new();
            for (answer, event) in answers.into_iter().zip(events) {
                match answer.outcome {
                    EventOutcome::Accepted => Counters::add(&counters.accepted, 1),
                    EventOutcome::Duplicate => Counters::add(&counters.duplicates, 1),
                    EventOutcome::Retryable { .. } => again.push(event),
                    EventOutcome::Rejected {
                        reason,
                        field,
                        message,
                    } => {
                        Counters::add(&counters.rejected, 1);
                        tracing::error!(
                            event_id = %answer.event_id,
                            device_id = %event.device_id,
                            kind = event.payload.as_ref().map_or("none", |p| Kind::of(p).as_str()),
                            reason = reason.as_str_name(),
                            field = %field,
                            message = %message,
                            "ingest rejected a simulated event (a simulator bug)"
                        );
                    }
                }
            }
            if !again.is_empty() {
                tracing::debug!(
                    events = again.len(),
                    attempt,
                    "retryable events; sending them again"
                );
            }
            events = again;
        }
        Ok(())
    }
}

/// Capped exponential backoff with full jitter (between half and all of it).
fn backoff(attempt: u32) -> Duration {
    static JITTER: Mutex<Option<Rng>> = Mutex::new(None);
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let fraction = {
        let mut jitter = JITTER.lock().unwrap_or_else(|e| e.into_inner());
        let rng = jitter.get_or_insert_with(|| {
            Rng::new(crate::clock::from_system(std::time::SystemTime::now()) as u64)
        });
        rng.range(0.5, 1.0)
    };
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            let d = backoff(attempt);
            assert!(d <= MAX_BACKOFF, "{attempt}: {d:?}");
            assert!(d >= FIRST_BACKOFF / 2, "{attempt}: {d:?}");
        }
        assert!(backoff(1) <= FIRST_BACKOFF);
        assert!(backoff(20) >= MAX_BACKOFF / 2);
    }
}
