use crate::Version;
use crate::error::Fault;
use crate::registry::{Registry, Station};
use crate::session::{self, Context, Handled, StationState};
use citybrain_proto::events::v1::{
    ChargePointErrorCode, ChargingSession, ConnectorStatus, ConnectorStatusValue, Event,
    MeterSample, SessionPhase, StopReason, event::Payload,
};
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

pub(crate) fn station(connectors: u32) -> Station {
    let text = format!(
        "[[stations]]\nid=\"HBY-CP-01\"\ntenant=\"lucheng\"\nsite=\"后北营家园\"\nconnectors={connectors}\npassword=\"p\""
    );
    Registry::parse(&text, "f", false)
        .unwrap()
        .get("HBY-CP-01")
        .unwrap()
        .as_ref()
        .clone()
}

/// 2026-05-01T08:00:00Z
pub(crate) const NOW_S: u64 = 1_777_622_400;

pub(crate) struct Harness {
    pub version: Version,
    pub station: Station,
    pub state: StationState,
    pub registered: bool,
    pub quirks: session::Quirks,
}

impl Harness {
    pub fn new(version: Version, connectors: u32) -> Self {
        Self {
            version,
            station: station(connectors),
            state: StationState::default(),
            registered: true,
            quirks: Vec::new(),
        }
    }

    /// Handles one CALL and keeps the state, as the connection does once
    /// the message is stored.
    pub fn call(&mut self, action: &str, payload: Value) -> Handled {
        let ctx = Context {
            station: &self.station,
            received_at: UNIX_EPOCH + Duration::from_secs(NOW_S),
            heartbeat_interval_s: 300,
            registered: self.registered,
        };
        let mut next = self.state.clone();
        let handled = session::handle(
            self.version,
            &mut next,
            &ctx,
            action,
            &payload,
            &mut self.quirks,
        );
        if !matches!(handled, Handled::Fault(_)) {
            self.state = next;
        }
        handled
    }

    pub fn events(&mut self, action: &str, payload: Value) -> Vec<Event> {
        match self.call(action, payload) {
            Handled::Store { events, .. } => events,
            other => panic!("{action}: expected events, got {other:?}"),
        }
    }

    pub fn reply(&mut self, action: &str, payload: Value) -> Value {
        match self.call(action, payload) {
            Handled::Reply(reply) | Handled::Store { reply, .. } => reply,
            Handled::Fault(fault) => panic!("{action}: {fault}"),
        }
    }

    pub fn fault(&mut self, action: &str, payload: Value) -> Fault {
        match self.call(action, payload) {
            Handled::Fault(fault) => fault,
            other => panic!("{action}: expected a fault, got {other:?}"),
        }
    }
}

pub(crate) fn status(event: &Event) -> &ConnectorStatus {
    match event.payload.as_ref() {
        Some(Payload::ConnectorStatus(p)) => p,
        other => panic!("not a status: {other:?}"),
    }
}

pub(crate) fn sample(event: &Event) -> &MeterSample {
    match event.payload.as_ref() {
        Some(Payload::MeterSample(p)) => p,
        other => panic!("not a sample: {other:?}"),
    }
}

pub(crate) fn charging(event: &Event) -> &ChargingSession {
    match event.payload.as_ref() {
        Some(Payload::ChargingSession(p)) => p,
        other => panic!("not a session: {other:?}"),
    }
}

#[test]
fn boot_and_heartbeat_answer_with_the_clock_and_interval() {
    let mut h = Harness::new(Version::V16, 2);
    let boot = h.reply(
        "BootNotification",
        json!({"chargePointVendor": "X", "chargePointModel": "Y"}),
    );
    assert_eq!(
        boot,
        json!({"status": "Accepted", "currentTime": "2026-05-01T08:00:00.000Z", "interval": 300})
    );
    assert_eq!(
        h.reply("Heartbeat", json!({})),
        json!({"currentTime": "2026-05-01T08:00:00.000Z"})
    );
    h.registered = false;
    assert_eq!(h.reply("BootNotification", json!({}))["status"], "Rejected");
    assert_eq!(
        h.fault(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Available"})
        ),
        Fault::Unregistered
    );
}

#[test]
fn status_notifications_become_connector_status() {
    let mut h = Harness::new(Version::V16, 2);
    let events = h.events(
        "StatusNotification",
        json!({"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted",
               "timestamp": "2026-05-01T07:59:30Z", "vendorErrorCode": "E17", "info": "leak"}),
    );
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.device_id, "HBY-CP-01:2");
    assert_eq!(e.observed_at.unwrap().seconds, NOW_S as i64 - 30);
    assert!(!e.observed_at_assumed);
    let s = status(e);
    assert_eq!(s.status, ConnectorStatusValue::Faulted as i32);
    assert_eq!(s.error_code, ChargePointErrorCode::GroundFailure as i32);
    assert_eq!(
        (
            s.vendor_status.as_str(),
            s.vendor_error_code.as_str(),
            s.info.as_str()
        ),
        ("Faulted", "E17", "leak")
    );
    assert_eq!(s.site, "后北营家园");
    // Connector 0 is the charge point; no timestamp means "now".
    let events = h.events(
        "StatusNotification",
        json!({"connectorId": 0, "errorCode": "NoError", "status": "Unavailable"}),
    );
    assert_eq!(events[0].device_id, "HBY-CP-01:0");
    assert_eq!(events[0].observed_at.unwrap().seconds, NOW_S as i64);
    assert!(events[0].observed_at_assumed, "the charger sent no time");
    assert_eq!(
        status(&events[0]).status,
        ConnectorStatusValue::Unavailable as i32
    );
}

#[test]
fn sloppy_status_notifications_are_kept() {
    let mut h = Harness::new(Version::V16, 2);
    let long_info = "过热".repeat(200);
    let events = h.events(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "Error", "status": "charging",
               "timestamp": "2026-05-01T07:59:00", "info": long_info, "vendorErrorCode": "0x1F", "firmwareBuild": 7}),
    );
    let s = status(&events[0]);
    assert_eq!(s.status, ConnectorStatusValue::Charging as i32);
    assert_eq!(s.error_code, ChargePointErrorCode::OtherError as i32);
    assert_eq!(s.vendor_error_code, "Error/0x1F");
    assert!(s.info.len() <= 500 && long_info.starts_with(&s.info) && !s.info.is_empty());
    assert_eq!(
        events[0].observed_at.unwrap().seconds,
        NOW_S as i64 - 60,
        "no zone: UTC"
    );
    for quirk in ["vendor_error_code", "text_truncated", "time_without_zone"] {
        assert!(h.quirks.contains(&quirk), "{quirk}: {:?}", h.quirks);
    }
}

#[test]
fn malformed_payloads_name_the_field() {
    let mut h = Harness::new(Version::V16, 2);
    let cases = [
        (
            "StatusNotification",
            json!({"errorCode": "NoError", "status": "Available"}),
            "FormationViolation",
            "connectorId",
        ),
        (
            "StatusNotification",
            json!({"connectorId": "one", "errorCode": "NoError", "status": "Available"}),
            "FormationViolation",
            "connectorId",
        ),
        (
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Exploded"}),
            "PropertyConstraintViolation",
            "status",
        ),
        (
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "2026-02-30T00:00:00Z"}),
            "PropertyConstraintViolation",
            "timestamp",
        ),
        (
            "StartTransaction",
            json!({"connectorId": 0, "idTag": "A", "meterStart": 0, "timestamp": "2026-05-01T08:00:00Z"}),
            "PropertyConstraintViolation",
            "connectorId",
        ),
        (
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2026-05-01T08:00:00Z", "sampledValue": [{"value": "12,5kWh"}]}]}),
            "PropertyConstraintViolation",
            "meterValue[0].sampledValue[0].value",
        ),
        (
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2026-05-01T08:00:00Z", "sampledValue": [{"value": "1", "measurand": "Power.Active.Import", "unit": "kWh"}]}]}),
            "PropertyConstraintViolation",
            "meterValue[0].sampledValue[0]",
        ),
        (
            "StopTransaction",
            json!({"transactionId": 5, "timestamp": "2026-05-01T08:00:00Z"}),
            "FormationViolation",
            "meterStop",
        ),
        (
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"sampledValue": []}]}),
            "FormationViolation",
            "meterValue[0].timestamp",
        ),
        ("Authorize", json!([]), "FormationViolation", "payload"),
    ];
    for (action, payload, code, path) in cases {
        let fault = h.fault(action, payload.clone());
        assert_eq!(
            fault.code(Version::V16),
            code,
            "{action} {payload}: {fault}"
        );
        assert!(
            fault.to_string().starts_with(path),
            "{action} {payload}: {fault}"
        );
    }
    assert_eq!(
        h.state,
        StationState::default(),
        "a refused message leaves no state behind"
    );
    assert_eq!(
        h.fault("Reset", json!({})),
        Fault::NotImplemented("Reset".into())
    );
}

#[test]
fn a_transaction_runs_from_start_to_stop() {
    let mut h = Harness::new(Version::V16, 2);
    assert_eq!(
        h.reply("Authorize", json!({"idTag": "RFID-1"})),
        json!({"idTagInfo": {"status": "Accepted"}})
    );
    let start = json!({"connectorId": 2, "idTag": "RFID-1", "meterStart": 1_000_000, "timestamp": "2026-05-01T07:00:00Z"});
    let (events, reply) = match h.call("StartTransaction", start.clone()) {
        Handled::Store { events, reply } => (events, reply),
        other => panic!("{other:?}"),
    };
    let tx = reply["transactionId"].as_i64().unwrap();
    assert_eq!(reply["idTagInfo"]["status"], "Accepted");
    let started = charging(&events[0]);
    assert_eq!(started.phase, SessionPhase::Started as i32);
    assert_eq!(started.transaction_id, tx.to_string());
    assert_eq!(started.meter_start_wh, Some(1_000_000.0));
    assert_eq!(started.id_token_hash.len(), 64);
    assert_ne!(started.id_token_hash, "RFID-1");
    assert_eq!(events[0].device_id, "HBY-CP-01:2");
    // A resend of the same StartTransaction: the same id and event id.
    let again = h.events("StartTransaction", start);
    assert_eq!(again[0].event_id, events[0].event_id);

    let samples = h.events(
        "MeterValues",
        json!({"connectorId": 2, "transactionId": tx, "meterValue": [
            {"timestamp": "2026-05-01T07:30:00Z", "sampledValue": [
                {"value": "1003.5", "unit": "kWh", "context": "Sample.Periodic"},
                {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import"},
                {"value": "31.3", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                {"value": "0.0", "measurand": "Current.Import", "phase": "N", "unit": "A"},
                {"value": "230", "measurand": "Voltage", "unit": "V"},
                {"value": "57", "measurand": "SoC", "unit": "Percent", "location": "EV"},
                {"value": "AB01", "format": "SignedData"}]},
            {"timestamp": "2026-05-01T07:31:00Z", "sampledValue": [
                {"value": "7100", "measurand": "Power.Active.Import", "unit": "W"}]}]}),
    );
    assert_eq!(samples.len(), 2);
    let first = sample(&samples[0]);
    assert_eq!(first.transaction_id, tx.to_string());
    assert_eq!(first.energy_active_import_wh, Some(1_003_500.0));
    assert_eq!(first.power_active_import_w, Some(7_200.0));
    assert_eq!(
        (first.current_import_a.clone(), first.voltage_v.clone()),
        (vec![31.3], vec![230.0])
    );
    assert_eq!(first.soc_percent, Some(57.0));
    let power_only = sample(&samples[1]);
    assert_eq!(
        (
            power_only.energy_active_import_wh,
            power_only.power_active_import_w
        ),
        (None, Some(7_100.0))
    );
    assert!(h.quirks.contains(&"no_energy_register"));

    let stop = h.events(
        "StopTransaction",
        json!({"transactionId": tx, "meterStop": 1_012_000, "timestamp": "2026-05-01T07:45:00Z"}),
    );
    let ended = charging(&stop[0]);
    assert_eq!(ended.phase, SessionPhase::Ended as i32);
    assert_eq!(
        ended.stop_reason,
        StopReason::Local as i32,
        "no reason: Local"
    );
    assert_eq!(
        (ended.meter_start_wh, ended.meter_stop_wh),
        (Some(1_000_000.0), Some(1_012_000.0))
    );
    assert_eq!(ended.energy_kwh, Some(12.0));
    assert_eq!(ended.duration_s, Some(45 * 60));
    assert_eq!(ended.started_at.unwrap().seconds, NOW_S as i64 - 3600);
    assert_eq!(ended.id_token_hash, started.id_token_hash);
    assert_eq!(stop[0].device_id, "HBY-CP-01:2");
    assert!(h.state.transactions.is_empty());
}

#[test]
fn a_stop_the_gateway_never_saw_started_is_acknowledged_and_stored() {
    let mut h = Harness::new(Version::V16, 2);
    let start = crate::txid::allocate(
        &prost_types::Timestamp {
            seconds: NOW_S as i64 - 600,
            nanos: 0,
        },
        2,
    )
    .unwrap();
    let stop = h.events(
        "StopTransaction",
        json!({"transactionId": start, "meterStop": 5000, "timestamp": "2026-05-01T08:00:00Z",
               "reason": "EVDisconnected", "idTag": "RFID-9", "transactionData": [
                   {"timestamp": "2026-05-01T08:00:00Z", "sampledValue": [{"value": "5000"}]}]}),
    );
    assert_eq!(stop.len(), 2);
    let ended = charging(&stop[0]);
    assert_eq!(
        stop[0].device_id, "HBY-CP-01:2",
        "the connector is read back from the id"
    );
    assert_eq!(ended.stop_reason, StopReason::EvDisconnected as i32);
    assert_eq!(
        (ended.meter_start_wh, ended.energy_kwh, ended.duration_s),
        (None, None, None)
    );
    assert_eq!(sample(&stop[1]).energy_active_import_wh, Some(5000.0));
    assert!(h.quirks.contains(&"stop_of_unknown_transaction"));
    // An id whose connector cannot be read back: acknowledged, nothing stored.
    let mut big = Harness::new(Version::V16, 6);
    assert_eq!(
        big.call("StopTransaction", json!({"transactionId": 7, "meterStop": 1, "timestamp": "2026-05-01T08:00:00Z", "idTag": "X"})),
        Handled::Reply(json!({"idTagInfo": {"status": "Accepted"}}))
    );
}

#[test]
fn a_meter_that_went_backwards_keeps_the_stop_register_only() {
    let mut h = Harness::new(Version::V16, 1);
    let reply = h.reply("StartTransaction", json!({"connectorId": 1, "idTag": "A", "meterStart": 9000, "timestamp": "2026-05-01T07:00:00Z"}));
    let stop = h.events("StopTransaction", json!({"transactionId": reply["transactionId"], "meterStop": 100, "timestamp": "2026-05-01T07:10:00Z", "reason": "PowerLoss"}));
    let ended = charging(&stop[0]);
    assert_eq!(
        (ended.meter_start_wh, ended.meter_stop_wh, ended.energy_kwh),
        (None, Some(100.0), None)
    );
    assert_eq!(ended.stop_reason, StopReason::PowerLoss as i32);
    assert!(h.quirks.contains(&"meter_went_backwards"));
}

#[test]
fn other_messages_are_answered_as_the_spec_requires() {
    let mut h = Harness::new(Version::V16, 1);
    assert_eq!(
        h.reply("DataTransfer", json!({"vendorId": "com.acme", "data": "x"})),
        json!({"status": "UnknownVendorId"})
    );
    assert_eq!(
        h.reply("FirmwareStatusNotification", json!({"status": "Installed"})),
        json!({})
    );
    assert_eq!(
        h.reply("DiagnosticsStatusNotification", json!({"status": "Idle"})),
        json!({})
    );
    // A set of values the contract does not carry makes no event.
    assert_eq!(
        h.call(
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2026-05-01T08:00:00Z",
            "sampledValue": [{"value": "50", "measurand": "Frequency"}]}]})
        ),
        Handled::Reply(json!({}))
    );
}

#[test]
fn offline_reports_cover_every_registered_connector() {
    let station = station(3);
    let events =
        session::offline_events(&station, UNIX_EPOCH + Duration::from_secs(NOW_S), "closed");
    let devices: Vec<&str> = events.iter().map(|e| e.device_id.as_str()).collect();
    assert_eq!(devices, ["HBY-CP-01:1", "HBY-CP-01:2", "HBY-CP-01:3"]);
    assert!(
        events
            .iter()
            .all(|e| status(e).status == ConnectorStatusValue::Offline as i32
                && status(e).error_code == ChargePointErrorCode::NoError as i32)
    );
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one event id per connector");
}
