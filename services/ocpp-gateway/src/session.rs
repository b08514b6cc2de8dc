//! A station's conversation, without I/O: a CALL in, a decision out.
//!
//! [`handle`] reads one CALL against the station's [`StationState`] and says
//! what to do: answer now ([`Handled::Reply`]), store events and answer once
//! ingest accepted every one ([`Handled::Store`]), or answer a CALLERROR
//! ([`Handled::Fault`]). It works on a copy of the state that the connection
//! keeps only once the answer is a CALLRESULT, so a message that was not
//! stored leaves the state as it was and its resend is handled the same way.
//!
//! The state outlives a connection within this process (a charger that
//! reconnects finds its open transactions), but not a restart or a move to
//! another replica; the mapping therefore never needs it for correctness,
//! only for the fields it can add (a session's start register and time).

use crate::error::Fault;
use crate::registry::Station;
use crate::{Version, events, time, v16, v201};
use citybrain_proto::events::v1::{
    ChargePointErrorCode, ConnectorStatus, ConnectorStatusValue, Event, MeterSample, event::Payload,
};
use prost_types::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Open transactions remembered per station; the oldest is forgotten first.
const MAX_OPEN_TRANSACTIONS: usize = 64;

/// What the gateway knows about one station.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationState {
    pub connectors: BTreeMap<u32, ConnectorState>,
    /// Open transactions by the contract's transaction id.
    pub transactions: BTreeMap<String, Transaction>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectorState {
    /// 2.0.1: the last StatusNotification said Occupied.
    pub occupied: bool,
    /// 2.0.1: the chargingState of the transaction on this EVSE.
    pub charging_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub connector: u32,
    pub meter_start_wh: Option<f64>,
    pub started_at: Timestamp,
    pub id_token_hash: String,
}

impl StationState {
    pub fn open(&mut self, id: String, transaction: Transaction) {
        self.transactions.insert(id, transaction);
        while self.transactions.len() > MAX_OPEN_TRANSACTIONS {
            let oldest = self
                .transactions
                .iter()
                .min_by_key(|(_, t)| (t.started_at.seconds, t.started_at.nanos))
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                self.transactions.remove(&id);
            }
        }
    }
}

/// Everything a message is handled with besides the state.
pub struct Context<'a> {
    pub station: &'a Station,
    pub received_at: SystemTime,
    /// What BootNotification tells the charger, seconds.
    pub heartbeat_interval_s: u32,
    /// The station is (still) in the registry.
    pub registered: bool,
}

/// What to do with one CALL.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Answer this CALLRESULT payload now.
    Reply(Value),
    /// Store `events`; answer `reply` once ingest accepted every one.
    Store { events: Vec<Event>, reply: Value },
    /// Answer a CALLERROR.
    Fault(Fault),
}

/// Sloppy-firmware cases met while handling a message (the `quirk` label of
/// `citybrain_ocpp_quirks_total`).
pub type Quirks = Vec<&'static str>;

/// Handles one CALL of `action` with `payload` from a station speaking
/// `version`. `quirks` collects what was tolerated.
pub fn handle(
    version: Version,
    state: &mut StationState,
    ctx: &Context<'_>,
    action: &str,
    payload: &Value,
    quirks: &mut Quirks,
) -> Handled {
    let result = match version {
        Version::V16 => v16::handle(state, ctx, action, payload, quirks),
        Version::V201 => v201::handle(state, ctx, action, payload, quirks),
    };
    match result {
        Ok(Handled::Store { events, reply }) if events.is_empty() => Handled::Reply(reply),
        Ok(handled) => handled,
        Err(fault) => Handled::Fault(fault),
    }
}

/// ConnectorStatus OFFLINE for every connector of the station, observed at
/// `at`: the socket closed, or heartbeats stopped.
pub fn offline_events(station: &Station, at: SystemTime, cause: &str) -> Vec<Event> {
    let observed_at = time::timestamp(at);
    let payload = serde_json::json!({ "cause": cause });
    let mut builder = events::Builder::new(station, "citybrain.Offline", &payload);
    for connector in 1..=station.connectors {
        builder.push(
            "status",
            connector,
            observed_at,
            None,
            Payload::ConnectorStatus(ConnectorStatus {
                station_id: station.id.clone(),
                evse_id: connector,
                connector_id: connector,
                status: ConnectorStatusValue::Offline as i32,
                error_code: ChargePointErrorCode::NoError as i32,
                info: format!("citybrain lost the charger: {cause}"),
                site: station.site.clone(),
                ..Default::default()
            }),
        );
    }
    builder.finish()
}

// ---- helpers the version modules share ---------------------------------

/// Reads a payload leniently (unknown fields are ignored); an error names the
/// field's path.
pub fn parse<T: DeserializeOwned>(payload: &Value) -> Result<T, Fault> {
    serde_path_to_error::deserialize(payload).map_err(|err| {
        let parent = err.path().to_string();
        let message = err.into_inner().to_string();
        // serde reports a missing field at its parent: name the field.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'));
        let path = match (parent.as_str(), missing) {
            (".", Some(field)) => field.to_string(),
            (_, Some(field)) => format!("{parent}.{field}"),
            (".", None) => "payload".into(),
            (_, None) => parent,
        };
        Fault::Payload { path, message }
    })
}

/// A charger's timestamp at `path`; one without a zone is read as UTC.
pub fn timestamp(path: &str, text: &str, quirks: &mut Quirks) -> Result<Timestamp, Fault> {
    let parsed = time::parse(text).map_err(|why| Fault::value(path, why))?;
    if parsed.zoneless {
        quirks.push("time_without_zone");
    }
    Ok(parsed.at)
}

/// The optional timestamp at `path`, or the arrival time.
pub fn timestamp_or_now(
    path: &str,
    text: Option<&str>,
    ctx: &Context<'_>,
    quirks: &mut Quirks,
) -> Result<Timestamp, Fault> {
    match text {
        Some(text) => timestamp(path, text, quirks),
        None => Ok(time::timestamp(ctx.received_at)),
    }
}

/// `{"currentTime": …}` (Heartbeat) with the gateway's clock.
pub fn current_time(ctx: &Context<'_>) -> Value {
    serde_json::json!({ "currentTime": time::format(ctx.received_at) })
}

/// BootNotification's answer: Accepted, or Rejected for a station the
/// registry no longer lists.
pub fn boot_answer(ctx: &Context<'_>) -> Value {
    serde_json::json!({
        "status": if ctx.registered { "Accepted" } else { "Rejected" },
        "currentTime": time::format(ctx.received_at),
        "interval": ctx.heartbeat_interval_s,
    })
}

/// The contract's limits on vendor text (bytes).
pub const MAX_INFO_BYTES: usize = 500;
pub const MAX_VENDOR_TEXT_BYTES: usize = 128;

/// Free text from the charger cut to `max` bytes (noted when it was longer).
pub fn vendor_text(text: Option<&str>, max: usize, quirks: &mut Quirks) -> String {
    let text = text.unwrap_or_default();
    if text.len() > max {
        quirks.push("text_truncated");
    }
    events::truncate(text, max)
}

/// A MeterSample of a normalised reading; None when the set carried nothing
/// the contract keeps.
pub fn meter_sample(
    station: &Station,
    connector: u32,
    transaction_id: &str,
    reading: &crate::units::Reading,
    offline: bool,
    quirks: &mut Quirks,
) -> Option<Payload> {
    if reading.is_empty() {
        quirks.push("no_known_measurand");
        return None;
    }
    if reading.energy_wh.is_none() {
        quirks.push("no_energy_register");
    }
    Some(Payload::MeterSample(MeterSample {
        station_id: station.id.clone(),
        connector_id: connector,
        transaction_id: transaction_id.to_string(),
        energy_active_import_wh: reading.energy_wh,
        power_active_import_w: reading.power_w,
        current_import_a: reading.current_a.clone(),
        voltage_v: reading.voltage_v.clone(),
        soc_percent: reading.soc_percent,
        temperature_c: reading.temperature_c,
        site: station.site.clone(),
        offline,
    }))
}

/// Rejects a connector number the station cannot have (lenient about one
/// the registry does not list: it is stored, and noted).
pub fn connector(
    path: &str,
    station: &Station,
    connector: u32,
    quirks: &mut Quirks,
) -> Result<u32, Fault> {
    if connector > 1_000 {
        return Err(Fault::value(
            path,
            format!("connector {connector} is out of range"),
        ));
    }
    if connector > station.connectors {
        quirks.push("connector_not_in_registry");
    }
    Ok(connector)
}

/// The message is not stored for a station that left the registry.
pub fn require_registered(ctx: &Context<'_>) -> Result<(), Fault> {
    if ctx.registered {
        Ok(())
    } else {
        Err(Fault::Unregistered)
    }
}
