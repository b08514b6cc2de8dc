//! One charger's WebSocket: read a CALL, handle it, answer it, one at a time
//! (OCPP allows one outstanding CALL per direction, so a charger waits for
//! each answer).
//!
//! Liveness: any OCPP message counts as a sign of life; a charger silent for
//! `offline_after_intervals` heartbeat intervals is reported OFFLINE (every
//! connector of the registry's entry) and its socket closed. A socket that
//! closes or fails is reported the same way. WebSocket pings find dead TCP
//! connections that never close. A socket closed because the gateway shuts
//! down, or because the station connected again, is not an outage and is
//! not reported.
//!
//! When a station the gateway reported offline connects again, the gateway
//! asks it for its connectors' status (TriggerMessage StatusNotification),
//! so the dashboards do not keep showing it offline until its next change.

use crate::error::Fault;
use crate::frame::{self, Frame};
use crate::registry::Station;
use crate::server::{self, Claim, Shared};
use crate::session::{self, Context, Handled};
use crate::{Version, events, metrics, store};
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// Raw frames are logged up to this many bytes.
const MAX_LOGGED_FRAME: usize = 2_000;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The charger closed it, or the socket failed.
    Closed,
    /// No OCPP message for too long.
    Silent,
    /// No answer to WebSocket pings.
    NoPong,
    /// The station connected again.
    Replaced,
    /// The gateway is shutting down.
    Shutdown,
}

impl End {
    /// The `cause` an OFFLINE report gives, for the ends that are outages.
    fn offline_cause(self) -> Option<&'static str> {
        match self {
            End::Closed => Some("closed"),
            End::Silent => Some("heartbeat_timeout"),
            End::NoPong => Some("no_pong"),
            End::Replaced | End::Shutdown => None,
        }
    }
}

struct Connection {
    shared: Arc<Shared>,
    station: Arc<Station>,
    version: Version,
    socket: WebSocket,
    generation: u64,
    /// The last OCPP message.
    last_message: Instant,
    /// The last frame of any kind, pongs included.
    last_frame: Instant,
    /// The id of the CALL the gateway sent, awaiting its answer.
    pending_call: Option<String>,
}

/// Serves one charger until its socket ends; then reports the station
/// offline if that was an outage.
pub async fn run(
    shared: Arc<Shared>,
    station: Arc<Station>,
    version: Version,
    claim: Claim,
    socket: WebSocket,
) {
    metrics::connected(version.label(), 1.0);
    let mut connection = Connection {
        shared: shared.clone(),
        station: station.clone(),
        version,
        socket,
        generation: claim.generation,
        last_message: Instant::now(),
        last_frame: Instant::now(),
        pending_call: None,
    };
    let end = if claim.was_offline && !connection.ask_for_status().await {
        End::Closed
    } else {
        connection.serve(claim.replaced).await
    };
    drop(connection);
    let cause = end.offline_cause();
    let current = shared.release(&station.id, claim.generation, cause.is_some());
    tracing::info!(station = %station.id, ?end, "charger disconnected");
    let offline = match (current, cause) {
        (true, Some(cause)) => {
            metrics::offline(cause);
            Some(session::offline_events(&station, SystemTime::now(), cause))
        }
        _ => None,
    };
    // Counted as gone once the outage (if any) is decided.
    metrics::connected(version.label(), -1.0);
    if let Some(events) = offline {
        store::deliver_offline(shared, station.tenant.clone(), station.id.clone(), events).await;
    }
}

impl Connection {
    async fn serve(&mut self, replaced: CancellationToken) -> End {
        let config = &self.shared.config;
        let silence_limit = config.silence_limit();
        let ping_every = config.ping_interval;
        let mut pings = tokio::time::interval(if ping_every.is_zero() {
            silence_limit
        } else {
            ping_every
        });
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        pings.tick().await;
        let stop = self.shared.stop.clone();
        loop {
            let silent_until = tokio::time::Instant::from_std(self.last_message + silence_limit);
            tokio::select! {
                () = stop.cancelled() => {
                    self.close(close_code::AWAY, "central system shutting down").await;
                    return End::Shutdown;
                }
                () = replaced.cancelled() => {
                    self.close(close_code::POLICY, "replaced by a newer connection of this charge point").await;
                    return End::Replaced;
                }
                () = tokio::time::sleep_until(silent_until) => {
                    tracing::warn!(station = %self.station.id, silent_s = silence_limit.as_secs(), "no message from the charger; reporting it offline");
                    self.close(close_code::NORMAL, "no heartbeat").await;
                    return End::Silent;
                }
                _ = pings.tick(), if !ping_every.is_zero() => {
                    if self.last_frame.elapsed() > ping_every * 2 {
                        tracing::warn!(station = %self.station.id, "no answer to WebSocket pings; closing");
                        return End::NoPong;
                    }
                    if self.socket.send(Message::Ping(Default::default())).await.is_err() {
                        return End::Closed;
                    }
                }
                message = self.socket.recv() => {
                    self.last_frame = Instant::now();
                    let sent = match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Closed,
                        Some(Ok(Message::Text(text))) => {
                            self.last_message = Instant::now();
                            self.on_text(text.as_str()).await
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let fault = Fault::Frame("OCPP-J messages are text, not binary".into());
                            let answer = self.fault_answer(frame::UNKNOWN_ID, "", &fault, "<binary>");
                            self.send(answer).await
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => true,
                    };
                    if !sent {
                        return End::Closed;
                    }
                }
            }
        }
    }

    /// Handles one text message; false when the answer could not be sent.
    async fn on_text(&mut self, text: &str) -> bool {
        let received_at = SystemTime::now();
        match frame::parse(text) {
            Err(err) => {
                let id = err.id.as_deref().unwrap_or(frame::UNKNOWN_ID).to_string();
                let answer = self.fault_answer(&id, "", &Fault::Frame(err.description), text);
                self.send(answer).await
            }
            Ok(Frame::Call {
                id,
                action,
                payload,
            }) => {
                let answer = self
                    .on_call(&id, &action, &payload, text, received_at)
                    .await;
                self.send(answer).await
            }
            Ok(Frame::CallResult { id, payload }) => {
                self.on_answer(&id, &format!("accepted: {payload}"));
                true
            }
            Ok(Frame::CallError {
                id,
                code,
                description,
            }) => {
                self.on_answer(&id, &format!("error {code}: {description}"));
                true
            }
        }
    }

    /// The answer to one CALL (a CALLRESULT or a CALLERROR, as text).
    async fn on_call(
        &mut self,
        id: &str,
        action: &str,
        payload: &serde_json::Value,
        raw: &str,
        received_at: SystemTime,
    ) -> String {
        // The registry may have changed since the connection opened.
        let current = server::current(&self.shared, &self.station);
        let station = current.clone().unwrap_or_else(|| self.station.clone());
        let ctx = Context {
            station: &station,
            received_at,
            heartbeat_interval_s: self.shared.config.heartbeat_interval.as_secs() as u32,
            registered: current.is_some(),
        };
        let mut next = self.shared.state(&station.id);
        let mut quirks = Vec::new();
        let handled = session::handle(self.version, &mut next, &ctx, action, payload, &mut quirks);
        for quirk in &quirks {
            metrics::quirk(quirk);
        }
        if !quirks.is_empty() {
            tracing::info!(station = %station.id, action, ?quirks, raw = %logged(raw), "tolerated sloppy firmware");
        }
        let (answer, outcome) = match handled {
            Handled::Reply(reply) => {
                self.shared.commit(&station.id, self.generation, next);
                (frame::call_result(id, &reply), "replied")
            }
            Handled::Store { events, reply } => {
                match self.shared.ingest.store(&station.tenant, events).await {
                    Ok(()) => {
                        self.shared.commit(&station.id, self.generation, next);
                        (frame::call_result(id, &reply), "stored")
                    }
                    Err(fault) => {
                        let outcome = if fault.is_retryable() {
                            "retry"
                        } else {
                            "error"
                        };
                        (self.fault_answer(id, action, &fault, raw), outcome)
                    }
                }
            }
            Handled::Fault(fault) => (self.fault_answer(id, action, &fault, raw), "error"),
        };
        metrics::message(action, outcome);
        tracing::debug!(station = %station.id, action, outcome, "answered");
        answer
    }

    /// A CALLERROR, counted and logged (with the raw frame when the frame
    /// itself was the problem).
    fn fault_answer(&self, id: &str, action: &str, fault: &Fault, raw: &str) -> String {
        let code = fault.code(self.version);
        metrics::call_error(code, fault.reason());
        match fault {
            Fault::Unavailable(_) => tracing::warn!(station = %self.station.id, action, code,
                error = %fault, "not stored; the charger is told to resend"),
            _ => tracing::warn!(station = %self.station.id, action, code, reason = fault.reason(),
                error = %fault, raw = %logged(raw), "CALLERROR"),
        }
        frame::call_error(id, code, &fault.to_string())
    }

    /// The answer to the gateway's own CALL.
    fn on_answer(&mut self, id: &str, what: &str) {
        if self.pending_call.as_deref() == Some(id) {
            self.pending_call = None;
            tracing::info!(station = %self.station.id, answer = %what, "TriggerMessage answered");
        } else {
            tracing::debug!(station = %self.station.id, id, "answer to no call of ours; ignored");
        }
    }

    /// Asks a station that was reported offline for its status.
    async fn ask_for_status(&mut self) -> bool {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!("cb-trigger-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let call = serde_json::json!([2, id, "TriggerMessage", {"requestedMessage": "StatusNotification"}]);
        tracing::info!(station = %self.station.id, "reconnected after an outage; asking for its status");
        self.pending_call = Some(id);
        self.send(call.to_string()).await
    }

    async fn send(&mut self, text: String) -> bool {
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}

fn logged(raw: &str) -> String {
    events::truncate(raw, MAX_LOGGED_FRAME)
}
