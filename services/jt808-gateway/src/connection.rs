//! One terminal's TCP connection: frames in, the session's actions carried
//! out (answers written, positions sent to ingest, codes issued), one
//! message at a time, so a terminal's reports keep their order and a slow
//! ingest slows the terminal down (TCP backpressure) instead of queueing.

use crate::Gateway;
use crate::codec::FrameCodec;
use crate::message::Message;
use crate::metrics;
use crate::session::{Action, Delivery, Session, Storing};
use citybrain_ingest_client::EventOutcome;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Frames in a row that fail before the connection is taken for something
/// that does not speak JT/T 808 (a port scanner, an HTTP client) and closed.
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 32;
/// Events per ingest call (ingest takes at most 1,000).
const EVENTS_PER_CALL: usize = 500;

type Writer = FramedWrite<OwnedWriteHalf, FrameCodec>;

/// Serves one connection until it closes, idles out, is replaced by a newer
/// connection of the same terminal, or `shutdown` (after the message in
/// hand is answered).
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("jt808", %peer, terminal = tracing::field::Empty);
    async move {
        metrics::connection_opened();
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, FrameCodec::default());
        let mut out = FramedWrite::new(write, FrameCodec::default());
        let mut connection = Connection {
            id,
            gateway,
            session: Session::new(),
            replaced: CancellationToken::new(),
            counted: None,
        };
        let mut bad_in_a_row = 0;
        let mut named = false;
        let reason = loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => break "shutdown",
                () = connection.replaced.cancelled() => break "replaced",
                next = tokio::time::timeout(connection.gateway.idle_timeout, frames.next()) => next,
            };
            let frame = match next {
                Err(_) => break "idle",
                Ok(None) => break "eof",
                Ok(Some(Err(err))) => {
                    tracing::debug!(error = %err, "read failed");
                    break "io_error";
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let parsed = frame
                .map_err(|err| (err.label(), err.to_string()))
                .and_then(|bytes| Message::parse(bytes).map_err(|err| ("header", err.to_string())));
            let message = match parsed {
                Ok(message) => message,
                Err((label, error)) => {
                    metrics::frame_error(label);
                    tracing::warn!(%error, "frame dropped");
                    bad_in_a_row += 1;
                    if bad_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                        break "garbage";
                    }
                    continue;
                }
            };
            bad_in_a_row = 0;
            if !named {
                // The first valid header names the connection's terminal in
                // every later log line.
                tracing::Span::current().record("terminal", message.header.terminal.digits());
                named = true;
            }
            let actions = connection
                .session
                .handle(message, &*connection.gateway, unix_now());
            let step = connection.execute(actions, &mut out).await;
            connection.sync_authenticated();
            match step {
                Ok(None) => {}
                Ok(Some(reason)) => break reason,
                Err(err) => {
                    tracing::debug!(error = %err, "write failed");
                    break "io_error";
                }
            }
        };
        tracing::info!(reason, "connection closed");
        let _ = out.close().await;
        connection.forget();
        metrics::connection_closed(reason);
    }
    .instrument(span)
    .await;
}

struct Connection {
    id: u64,
    gateway: Arc<Gateway>,
    session: Session,
    /// Cancelled when the same terminal authenticates on a newer connection.
    replaced: CancellationToken,
    /// The terminal this connection counts as authenticated.
    counted: Option<String>,
}

impl Connection {
    /// Carries out the session's actions; `Some(reason)` closes.
    async fn execute(
        &mut self,
        actions: Vec<Action>,
        out: &mut Writer,
    ) -> std::io::Result<Option<&'static str>> {
        for action in actions {
            match action {
                Action::Send(message) => out.feed(message).await?,
                Action::Register(registering) => {
                    let codes = self.gateway.codes.clone();
                    let terminal = registering.vehicle.terminal.clone();
                    match tokio::task::spawn_blocking(move || codes.issue(&terminal)).await {
                        Ok(Ok(code)) => {
                            let answer = self.session.registered(registering, &code);
                            out.feed(answer).await?;
                        }
                        failed => {
                            // Without a persisted code the terminal could not
                            // authenticate after a restart: no answer, it
                            // registers again.
                            tracing::error!(?failed, "cannot persist an authentication code");
                            return Ok(Some("state_error"));
                        }
                    }
                }
                Action::Store(storing) => {
                    let deliveries = self.deliver(&storing).await;
                    let answer = self.session.stored(storing, &deliveries);
                    out.feed(answer).await?;
                }
                Action::Logout { vehicle, answer } => {
                    let codes = self.gateway.codes.clone();
                    let terminal = vehicle.terminal.clone();
                    match tokio::task::spawn_blocking(move || codes.revoke(&terminal)).await {
                        Ok(Ok(())) => {
                            out.send(answer).await?;
                            return Ok(Some("logout"));
                        }
                        failed => {
                            tracing::error!(?failed, "cannot persist a logout");
                            return Ok(Some("state_error"));
                        }
                    }
                }
            }
        }
        out.flush().await?;
        Ok(None)
    }

    /// Sends the positions to ingest with the vehicle's tenant key; one
    /// [`Delivery`] per event.
    async fn deliver(&self, storing: &Storing) -> Vec<Delivery> {
        let vehicle = &storing.vehicle;
        let client = &self.gateway.clients[&vehicle.tenant];
        let mut deliveries = Vec::with_capacity(storing.events.len());
        for chunk in storing.events.chunks(EVENTS_PER_CALL) {
            let started = Instant::now();
            match client.ingest(chunk.to_vec()).await {
                Ok(answers) => {
                    metrics::ingest_call(started.elapsed(), "ok");
                    for answer in answers {
                        deliveries.push(match answer.outcome {
                            EventOutcome::Accepted | EventOutcome::Duplicate => Delivery::Stored,
                            EventOutcome::Rejected {
                                reason,
                                field,
                                message,
                            } => {
                                tracing::warn!(
                                    vehicle = %vehicle.vehicle_id,
                                    event_id = %answer.event_id,
                                    reason = reason.as_str_name(),
                                    %field,
                                    %message,
                                    "ingest rejected a location report"
                                );
                                Delivery::Rejected
                            }
                            EventOutcome::Retryable { .. } => Delivery::NotStored,
                        });
                    }
                }
                Err(err) => {
                    metrics::ingest_call(started.elapsed(), code_label(err.code));
                    tracing::warn!(
                        code = ?err.code,
                        message = %err.message,
                        events = chunk.len(),
                        "ingest call failed; the terminal is answered fail"
                    );
                    deliveries.extend(std::iter::repeat_n(Delivery::NotStored, chunk.len()));
                }
            }
        }
        deliveries
    }

    /// Keeps the authenticated gauge and the terminal's live connection in
    /// line with the session; a newer connection of a terminal replaces an
    /// older one (a terminal that reconnected through a new NAT mapping
    /// leaves the old connection open until it idles out).
    fn sync_authenticated(&mut self) {
        let now = self.session.vehicle().map(|v| v.terminal.clone());
        if now == self.counted {
            return;
        }
        self.forget();
        if let Some(terminal) = &now {
            metrics::authenticated(1.0);
            let previous = self
                .gateway
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(terminal.clone(), (self.id, self.replaced.clone()));
            if let Some((_, token)) = previous.filter(|(id, _)| *id != self.id) {
                token.cancel();
            }
        }
        self.counted = now;
    }

    fn forget(&mut self) {
        if let Some(terminal) = self.counted.take() {
            metrics::authenticated(-1.0);
            let mut live = self.gateway.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.get(&terminal).is_some_and(|(id, _)| *id == self.id) {
                live.remove(&terminal);
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::Cancelled => "cancelled",
        _ => "other",
    }
}
