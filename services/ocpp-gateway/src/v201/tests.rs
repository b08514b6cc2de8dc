use crate::Version;
use crate::session::Handled;
use crate::v16::tests::{Harness, NOW_S, charging, sample, status};
use citybrain_proto::events::v1::{
    ChargePointErrorCode, ConnectorStatusValue as Status, SessionPhase, StopReason,
};
use serde_json::json;

fn tx_event(event_type: &str, seq: u64, at: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut event = json!({
        "eventType": event_type, "timestamp": at, "triggerReason": "Authorized", "seqNo": seq,
        "transactionInfo": {"transactionId": "tx-2b7f"},
    });
    for (key, value) in extra.as_object().unwrap() {
        if key == "transactionInfo" {
            for (k, v) in value.as_object().unwrap() {
                event["transactionInfo"][k] = v.clone();
            }
        } else {
            event[key] = value.clone();
        }
    }
    event
}

fn energy(wh: f64, context: &str) -> serde_json::Value {
    json!({"value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
           "unitOfMeasure": {"unit": "Wh"}})
}

#[test]
fn boot_status_and_heartbeat() {
    let mut h = Harness::new(Version::V201, 2);
    let boot = h.reply(
        "BootNotification",
        json!({"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}),
    );
    assert_eq!(
        boot,
        json!({"status": "Accepted", "currentTime": "2026-05-01T08:00:00.000Z", "interval": 300})
    );
    assert_eq!(
        h.reply("Heartbeat", json!({})),
        json!({"currentTime": "2026-05-01T08:00:00.000Z"})
    );
    let events = h.events("StatusNotification", json!({"timestamp": "2026-05-01T07:59:00Z", "connectorStatus": "Available", "evseId": 2, "connectorId": 1}));
    assert_eq!(
        events[0].device_id, "HBY-CP-01:2",
        "the contract's connector is the EVSE"
    );
    let s = status(&events[0]);
    assert_eq!(
        (s.status, s.evse_id, s.connector_id),
        (Status::Available as i32, 2, 2)
    );
    assert_eq!(h.fault("StatusNotification", json!({"timestamp": "2026-05-01T07:59:00Z", "connectorStatus": "Charging", "evseId": 2, "connectorId": 1})).code(Version::V201), "PropertyConstraintViolation");
    assert_eq!(
        h.reply(
            "SecurityEventNotification",
            json!({"type": "FirmwareUpdated", "timestamp": "2026-05-01T07:59:00Z"})
        ),
        json!({})
    );
    assert_eq!(
        h.reply(
            "Authorize",
            json!({"idToken": {"idToken": "abc", "type": "ISO14443"}})
        ),
        json!({"idTokenInfo": {"status": "Accepted"}})
    );
    assert_eq!(
        h.fault("BootNotification", json!({"chargingStation": 5}))
            .code(Version::V201),
        "FormatViolation"
    );
    assert_eq!(
        h.fault("GetLog", json!({})).code(Version::V201),
        "NotImplemented"
    );
}

#[test]
fn occupied_follows_the_transactions_charging_state() {
    let mut h = Harness::new(Version::V201, 2);
    let plugged = h.events("StatusNotification", json!({"timestamp": "2026-05-01T07:00:00Z", "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}));
    assert_eq!(status(&plugged[0]).status, Status::Preparing as i32);
    assert_eq!(status(&plugged[0]).vendor_status, "Occupied");
    assert_eq!(
        status(&plugged[0]).error_code,
        ChargePointErrorCode::NoError as i32
    );

    let started = h.events("TransactionEvent", tx_event("Started", 0, "2026-05-01T07:00:05Z", json!({
        "evse": {"id": 1, "connectorId": 1}, "idToken": {"idToken": "card-7", "type": "ISO14443"},
        "transactionInfo": {"chargingState": "EVConnected"},
        "meterValue": [{"timestamp": "2026-05-01T07:00:05Z", "sampledValue": [energy(50_000.0, "Transaction.Begin")]}],
    })));
    // STARTED and its meter sample; EVConnected keeps the EVSE PREPARING,
    // so no new status.
    assert_eq!(started.len(), 2);
    let session = charging(&started[0]);
    assert_eq!(
        (session.phase, session.transaction_id.as_str()),
        (SessionPhase::Started as i32, "tx-2b7f")
    );
    assert_eq!(session.meter_start_wh, Some(50_000.0));
    assert_eq!(started[0].seq_no, Some(0));

    let charging_now = h.events("TransactionEvent", tx_event("Updated", 1, "2026-05-01T07:01:00Z", json!({
        "triggerReason": "ChargingStateChanged", "transactionInfo": {"chargingState": "Charging"}, "offline": true,
        "meterValue": [{"timestamp": "2026-05-01T07:01:00Z", "sampledValue": [
            {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 3}}]}],
    })));
    assert_eq!(charging_now.len(), 2);
    let s = sample(&charging_now[0]);
    assert_eq!(
        (
            s.power_active_import_w,
            s.energy_active_import_wh,
            s.offline
        ),
        (Some(7400.0), None, true)
    );
    assert_eq!(charging_now[0].seq_no, Some(1));
    assert_eq!(status(&charging_now[1]).status, Status::Charging as i32);
    assert_eq!(charging_now[1].device_id, "HBY-CP-01:1");

    let suspended = h.events(
        "TransactionEvent",
        tx_event(
            "Updated",
            2,
            "2026-05-01T07:30:00Z",
            json!({"transactionInfo": {"chargingState": "SuspendedEV"}}),
        ),
    );
    assert_eq!(status(&suspended[0]).status, Status::SuspendedEv as i32);

    let ended = h.events("TransactionEvent", tx_event("Ended", 3, "2026-05-01T08:00:00Z", json!({
        "triggerReason": "EVCommunicationLost", "transactionInfo": {"chargingState": "EVConnected", "stoppedReason": "EVDisconnected"},
        "meterValue": [{"timestamp": "2026-05-01T08:00:00Z", "sampledValue": [energy(62_500.0, "Transaction.End")]}],
    })));
    let end = charging(&ended[0]);
    assert_eq!(end.phase, SessionPhase::Ended as i32);
    assert_eq!(
        (end.meter_start_wh, end.meter_stop_wh, end.energy_kwh),
        (Some(50_000.0), Some(62_500.0), Some(12.5))
    );
    assert_eq!(
        (end.duration_s, end.stop_reason),
        (Some(3595), StopReason::EvDisconnected as i32)
    );
    assert_eq!(
        end.id_token_hash, session.id_token_hash,
        "the token of the start"
    );
    assert_eq!(sample(&ended[1]).energy_active_import_wh, Some(62_500.0));
    assert_eq!(
        status(&ended[2]).status,
        Status::Finishing as i32,
        "still plugged in"
    );
    assert!(h.state.transactions.is_empty());

    let left = h.events("StatusNotification", json!({"timestamp": "2026-05-01T08:02:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}));
    assert_eq!(status(&left[0]).status, Status::Available as i32);
}

#[test]
fn a_transaction_without_meter_values_or_reason_is_still_a_session() {
    let mut h = Harness::new(Version::V201, 1);
    let started = h.events(
        "TransactionEvent",
        tx_event("Started", 0, "2026-05-01T07:00:00", json!({})),
    );
    assert_eq!(charging(&started[0]).meter_start_wh, None);
    assert!(h.quirks.contains(&"time_without_zone"));
    let ended = h.events(
        "TransactionEvent",
        tx_event("Ended", 1, "2026-05-01T07:10:00Z", json!({})),
    );
    let end = charging(&ended[0]);
    assert_eq!(
        ended[0].device_id, "HBY-CP-01:1",
        "one EVSE: no evse needed"
    );
    assert_eq!(
        (end.meter_stop_wh, end.energy_kwh, end.stop_reason),
        (None, None, StopReason::Local as i32)
    );
    assert_eq!(end.duration_s, Some(600));
    let mut two = Harness::new(Version::V201, 2);
    let fault = two.fault(
        "TransactionEvent",
        tx_event("Updated", 1, "2026-05-01T07:10:00Z", json!({})),
    );
    assert!(fault.to_string().starts_with("evse"), "{fault}");
    let fault = two.fault(
        "TransactionEvent",
        tx_event(
            "Paused",
            1,
            "2026-05-01T07:10:00Z",
            json!({"evse": {"id": 1}}),
        ),
    );
    assert!(fault.to_string().starts_with("eventType"), "{fault}");
}

#[test]
fn notify_event_problems_fault_the_evse() {
    let mut h = Harness::new(Version::V201, 2);
    let data = |id: i64, variable: &str, value: &str, cleared: bool| {
        json!({
        "eventId": id, "timestamp": "2026-05-01T07:00:00Z", "trigger": "Alerting", "actualValue": value,
        "cleared": cleared, "techCode": "GroundFailure", "techInfo": "RCD tripped", "eventNotificationType": "HardWiredNotification",
        "component": {"name": "EVSE", "evse": {"id": 2}}, "variable": {"name": variable}})
    };
    let events = h.events(
        "NotifyEvent",
        json!({"generatedAt": "2026-05-01T07:00:01Z", "seqNo": 0, "eventData": [
            data(1, "Problem", "true", false),
            data(2, "Problem", "false", true),
            data(3, "Power", "7000", false),
        ]}),
    );
    assert_eq!(events.len(), 1);
    let s = status(&events[0]);
    assert_eq!(events[0].device_id, "HBY-CP-01:2");
    assert_eq!(
        (s.status, s.error_code),
        (
            Status::Faulted as i32,
            ChargePointErrorCode::GroundFailure as i32
        )
    );
    assert_eq!(
        (s.vendor_error_code.as_str(), s.info.as_str()),
        ("GroundFailure", "RCD tripped")
    );
    // Nothing raised: acknowledged, nothing stored.
    assert_eq!(
        h.call("NotifyEvent", json!({"generatedAt": "2026-05-01T07:00:01Z", "seqNo": 1, "eventData": [data(4, "Power", "1", false)]})),
        Handled::Reply(json!({}))
    );
}

#[test]
fn main_meter_values_belong_to_connector_zero() {
    let mut h = Harness::new(Version::V201, 2);
    let events = h.events(
        "MeterValues",
        json!({"evseId": 0, "meterValue": [{"timestamp": "2026-05-01T07:00:00Z",
        "sampledValue": [{"value": "1234.5", "unitOfMeasure": {"unit": "kWh"}}]}]}),
    );
    assert_eq!(events[0].device_id, "HBY-CP-01:0");
    assert_eq!(
        sample(&events[0]).energy_active_import_wh,
        Some(1_234_500.0)
    );
    let _ = NOW_S;
}
