//! `--chargers-via-ocpp`: the town's chargers speak OCPP 1.6-J to the OCPP
//! gateway, one WebSocket per station, the way real charge points do,
//! instead of sending their events to ingest.
//!
//! The model still decides what happens; each charging event becomes the
//! message a charge point sends for it: ConnectorStatus → StatusNotification,
//! session STARTED → StartTransaction (the gateway assigns the transaction
//! id), MeterSample → MeterValues, ENDED → StopTransaction. What OCPP 1.6
//! cannot carry is lost on the way, as it is for a real charger: fees, stop
//! reasons 1.6 has no name for (Other), the T/CEC status codes of the DC
//! chargers. OFFLINE statuses are not sent: in OCPP the gateway reports them
//! when a socket goes quiet. Each station sends one message at a time and
//! waits for its answer; an InternalError (the platform could not store it)
//! is resent after a backoff, as OCPP chargers do.

use crate::client::Counters;
use crate::clock;
use citybrain_proto::events::v1::{
    ChargePointErrorCode as Code, ConnectorStatusValue as Status, Event, SessionPhase, StopReason,
    event::Payload,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

/// Messages queued per station before the town waits for it.
const QUEUE: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a station waits for one answer before it reconnects.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The stations, each a task with its own socket.
pub struct Chargers {
    url: String,
    password: String,
    counters: Arc<Counters>,
    stations: HashMap<String, mpsc::Sender<Event>>,
    tasks: JoinSet<()>,
}

impl Chargers {
    pub fn new(url: &str, password: &str, counters: Arc<Counters>) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            password: password.to_string(),
            counters,
            stations: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Hands the charging events to their stations, in order (waiting when
    /// a station is behind), and returns the others for ingest.
    pub async fn route(&mut self, events: Vec<Event>) -> Vec<Event> {
        let mut others = Vec::with_capacity(events.len());
        for event in events {
            let Some(station) = station_of(&event) else {
                others.push(event);
                continue;
            };
            if is_offline(&event) {
                continue;
            }
            Counters::add(&self.counters.sent, 1);
            let sender = match self.stations.get(&station) {
                Some(sender) => sender.clone(),
                None => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    let charger = Charger {
                        url: format!("{}/{station}", self.url),
                        station: station.clone(),
                        password: self.password.clone(),
                        counters: self.counters.clone(),
                        transactions: HashMap::new(),
                        next_id: 0,
                        heartbeat: Duration::from_secs(300),
                    };
                    self.tasks.spawn(charger.run(rx));
                    self.stations.insert(station, tx.clone());
                    tx
                }
            };
            let _ = sender.send(event).await;
        }
        others
    }

    /// Lets every station send what it was handed (within `timeout`).
    pub async fn drain(mut self, timeout: Duration) {
        self.stations.clear();
        let drained = tokio::time::timeout(timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                stations = self.tasks.len(),
                "OCPP stations still sending after the drain timeout"
            );
            self.tasks.abort_all();
        }
    }
}

fn station_of(event: &Event) -> Option<String> {
    match event.payload.as_ref()? {
        Payload::ConnectorStatus(p) => Some(p.station_id.clone()),
        Payload::MeterSample(p) => Some(p.station_id.clone()),
        Payload::ChargingSession(p) => Some(p.station_id.clone()),
        _ => None,
    }
}

fn is_offline(event: &Event) -> bool {
    matches!(event.payload.as_ref(), Some(Payload::ConnectorStatus(p)) if p.status == Status::Offline as i32)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a call did not get a CALLRESULT.
enum Failed {
    /// The socket failed or the answer never came: reconnect, send again.
    Connection,
    /// A CALLERROR: its code and description.
    Error(String, String),
}

struct Charger {
    url: String,
    station: String,
    password: String,
    counters: Arc<Counters>,
    /// The town's transaction id → the one the gateway assigned.
    transactions: HashMap<String, i64>,
    next_id: u64,
    /// The heartbeat interval the gateway gave at boot.
    heartbeat: Duration,
}

impl Charger {
    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut socket: Option<Socket> = None;
        loop {
            // Quiet stations heartbeat at the interval the gateway gave, or
            // it reports them offline.
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                () = tokio::time::sleep(self.heartbeat), if socket.is_some() => {
                    if let Some(open) = socket.as_mut()
                        && self.call(open, "Heartbeat", json!({})).await.is_err()
                    {
                        socket = None;
                    }
                    continue;
                }
            };
            let Some((action, payload)) = self.message(&event) else {
                Counters::add(&self.counters.rejected, 1);
                continue;
            };
            let mut backoff = FIRST_BACKOFF;
            loop {
                if socket.is_none() {
                    socket = self.connect().await;
                }
                let Some(open) = socket.as_mut() else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                };
                match self.call(open, action, payload.clone()).await {
                    Ok(answer) => {
                        self.answered(&event, &answer);
                        Counters::add(&self.counters.accepted, 1);
                        break;
                    }
                    Err(Failed::Connection) => socket = None,
                    Err(Failed::Error(code, _)) if code == "InternalError" => {
                        Counters::add(&self.counters.retried, 1);
                    }
                    Err(Failed::Error(code, description)) => {
                        Counters::add(&self.counters.rejected, 1);
                        tracing::error!(station = %self.station, action, %code, %description,
                            "the OCPP gateway refused a simulated message (a simulator bug)");
                        break;
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if let Some(mut open) = socket {
            let _ = open.close(None).await;
        }
    }

    async fn connect(&mut self) -> Option<Socket> {
        use base64::Engine as _;
        let mut request = self.url.as_str().into_client_request().ok()?;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.station, self.password));
        let headers = request.headers_mut();
        headers.insert("authorization", format!("Basic {token}").parse().ok()?);
        headers.insert("sec-websocket-protocol", "ocpp1.6".parse().ok()?);
        let mut socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(err) => {
                tracing::warn!(station = %self.station, url = %self.url, error = %err, "cannot reach the OCPP gateway");
                return None;
            }
        };
        let boot = json!({"chargePointVendor": "citybrain", "chargePointModel": "town simulator"});
        match self.call(&mut socket, "BootNotification", boot).await {
            Ok(answer) if answer["status"] == "Accepted" => {
                if let Some(interval) = answer["interval"].as_u64().filter(|s| *s > 0) {
                    self.heartbeat = Duration::from_secs(interval);
                }
                Some(socket)
            }
            _ => {
                tracing::warn!(station = %self.station, "boot not accepted");
                None
            }
        }
    }

    /// Sends one CALL and waits for its answer, answering the gateway's own
    /// calls meanwhile (the simulated chargers decline TriggerMessage).
    async fn call(
        &mut self,
        socket: &mut Socket,
        action: &str,
        payload: Value,
    ) -> Result<Value, Failed> {
        self.next_id += 1;
        let id = format!("{}-{}", self.station, self.next_id);
        let frame = json!([2, id, action, payload]).to_string();
        socket
            .send(Message::text(frame))
            .await
            .map_err(|_| Failed::Connection)?;
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| Failed::Connection)?;
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    return Err(Failed::Connection);
                }
                Some(Ok(_)) => continue,
            };
            let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            match (frame.first().and_then(Value::as_u64), frame.get(1)) {
                (Some(3), Some(got)) if got == &json!(id) => {
                    return Ok(frame.get(2).cloned().unwrap_or(Value::Null));
                }
                (Some(4), Some(got)) if got == &json!(id) => {
                    let text = |i: usize| {
                        frame
                            .get(i)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    return Err(Failed::Error(text(2), text(3)));
                }
                (Some(2), Some(their_id)) => {
                    let answer = json!([3, their_id, {"status": "Rejected"}]).to_string();
                    socket
                        .send(Message::text(answer))
                        .await
                        .map_err(|_| Failed::Connection)?;
                }
                _ => {}
            }
        }
    }

    /// What the CALLRESULT teaches the charger (a transaction's id).
    fn answered(&mut self, event: &Event, answer: &Value) {
        if let Some(Payload::ChargingSession(s)) = event.payload.as_ref()
            && s.phase == SessionPhase::Started as i32
            && let Some(id) = answer["transactionId"].as_i64()
        {
            self.transactions.insert(s.transaction_id.clone(), id);
        }
    }

    /// The OCPP 1.6 message of one charging event; None when it cannot be
    /// said (the stop of a transaction started by an earlier run).
    fn message(&mut self, event: &Event) -> Option<(&'static str, Value)> {
        let at = event
            .observed_at
            .as_ref()
            .map(|t| timestamp(clock::from_timestamp(t)))?;
        Some(match event.payload.as_ref()? {
            Payload::ConnectorStatus(s) => (
                "StatusNotification",
                json!({
                    "connectorId": s.connector_id,
                    "errorCode": error_code(s.error_code),
                    "status": status(s.status),
                    "info": cut(&s.info, 50),
                    "vendorErrorCode": cut(&s.vendor_error_code, 50),
                    "timestamp": at,
                }),
            ),
            Payload::ChargingSession(s) if s.phase == SessionPhase::Started as i32 => (
                "StartTransaction",
                json!({
                    "connectorId": s.connector_id,
                    "idTag": cut(&s.id_token_hash, 20),
                    "meterStart": s.meter_start_wh.unwrap_or(0.0).round() as i64,
                    "timestamp": at,
                }),
            ),
            Payload::ChargingSession(s) => {
                let Some(id) = self.transactions.remove(&s.transaction_id) else {
                    tracing::debug!(station = %self.station, transaction = %s.transaction_id,
                        "stop of a transaction this run did not start; not sent");
                    return None;
                };
                (
                    "StopTransaction",
                    json!({
                        "transactionId": id,
                        "meterStop": s.meter_stop_wh.unwrap_or(0.0).round() as i64,
                        "timestamp": at,
                        "idTag": cut(&s.id_token_hash, 20),
                        "reason": reason(s.stop_reason),
                    }),
                )
            }
            Payload::MeterSample(m) => {
                let mut values = Vec::new();
                let mut add = |measurand: &str, unit: &str, value: f64| {
                    values.push(
                        json!({"measurand": measurand, "unit": unit, "value": format!("{value}")}),
                    );
                };
                if let Some(wh) = m.energy_active_import_wh {
                    add("Energy.Active.Import.Register", "Wh", wh);
                }
                if let Some(w) = m.power_active_import_w {
                    add("Power.Active.Import", "W", w);
                }
                if let Some(a) = m.current_import_a.first() {
                    add("Current.Import", "A", *a);
                }
                if let Some(v) = m.voltage_v.first() {
                    add("Voltage", "V", *v);
                }
                if let Some(soc) = m.soc_percent {
                    add("SoC", "Percent", soc);
                }
                if let Some(c) = m.temperature_c {
                    add("Temperature", "Celsius", c);
                }
                let mut payload = json!({
                    "connectorId": m.connector_id,
                    "meterValue": [{"timestamp": at, "sampledValue": values}],
                });
                if let Some(id) = self.transactions.get(&m.transaction_id) {
                    payload["transactionId"] = json!(id);
                }
                ("MeterValues", payload)
            }
            _ => return None,
        })
    }
}

/// RFC 3339 with milliseconds, UTC.
fn timestamp(at: clock::Millis) -> String {
    let seconds = at.div_euclid(1000);
    let text = citybrain_proto::time::format_utc(seconds);
    format!("{}.{:03}Z", text.trim_end_matches('Z'), at.rem_euclid(1000))
}

fn cut(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

fn status(value: i32) -> &'static str {
    match Status::try_from(value).unwrap_or(Status::Unspecified) {
        Status::Available => "Available",
        Status::Preparing => "Preparing",
        Status::Charging => "Charging",
        Status::SuspendedEvse => "SuspendedEVSE",
        Status::SuspendedEv => "SuspendedEV",
        Status::Finishing => "Finishing",
        Status::Reserved => "Reserved",
        Status::Faulted => "Faulted",
        _ => "Unavailable",
    }
}

fn error_code(value: i32) -> &'static str {
    match Code::try_from(value).unwrap_or(Code::Unspecified) {
        Code::ConnectorLockFailure => "ConnectorLockFailure",
        Code::EvCommunicationError => "EVCommunicationError",
        Code::GroundFailure => "GroundFailure",
        Code::HighTemperature => "HighTemperature",
        Code::InternalError => "InternalError",
        Code::LocalListConflict => "LocalListConflict",
        Code::OtherError => "OtherError",
        Code::OverCurrentFailure => "OverCurrentFailure",
        Code::OverVoltage => "OverVoltage",
        Code::PowerMeterFailure => "PowerMeterFailure",
        Code::PowerSwitchFailure => "PowerSwitchFailure",
        Code::ReaderFailure => "ReaderFailure",
        Code::ResetFailure => "ResetFailure",
        Code::UnderVoltage => "UnderVoltage",
        Code::WeakSignal => "WeakSignal",
        Code::NoError | Code::Unspecified => "NoError",
    }
}

/// 1.6 Reason; those it has no name for are Other.
fn reason(value: i32) -> &'static str {
    match StopReason::try_from(value).unwrap_or(StopReason::Unspecified) {
        StopReason::Local | StopReason::Unspecified => "Local",
        StopReason::Remote => "Remote",
        StopReason::EvDisconnected => "EVDisconnected",
        StopReason::EmergencyStop => "EmergencyStop",
        StopReason::PowerLoss => "PowerLoss",
        StopReason::Reboot => "Reboot",
        StopReason::Deauthorized => "DeAuthorized",
        _ => "Other",
    }
}

#[cfg(test)]
#[path = "ocpp_tests.rs"]
mod tests;
