use super::*;
use citybrain_proto::events::v1::{ChargingSession, ConnectorStatus, MeterSample};

fn charger() -> Charger {
    Charger {
        url: "ws://x/ocpp/HBY-CP-01".into(),
        station: "HBY-CP-01".into(),
        password: "p".into(),
        counters: Arc::default(),
        transactions: HashMap::new(),
        next_id: 0,
        heartbeat: Duration::from_secs(300),
    }
}

fn event(payload: Payload) -> Event {
    Event {
        device_id: "HBY-CP-01:1".into(),
        observed_at: Some(clock::timestamp(1_714_550_400_250)),
        payload: Some(payload),
        ..Default::default()
    }
}

#[test]
fn events_become_the_messages_a_1_6_charge_point_sends() {
    let mut c = charger();
    let (action, status) = c
        .message(&event(Payload::ConnectorStatus(ConnectorStatus {
            station_id: "HBY-CP-01".into(),
            connector_id: 1,
            status: Status::Faulted as i32,
            error_code: Code::EvCommunicationError as i32,
            info: "x".repeat(80),
            ..Default::default()
        })))
        .unwrap();
    assert_eq!(action, "StatusNotification");
    assert_eq!(status["status"], "Faulted");
    assert_eq!(status["errorCode"], "EVCommunicationError");
    assert_eq!(status["timestamp"], "2024-05-01T08:00:00.250Z");
    assert_eq!(status["info"].as_str().unwrap().len(), 50, "1.6 allows 50");

    let started = event(Payload::ChargingSession(ChargingSession {
        transaction_id: "TX-1".into(),
        phase: SessionPhase::Started as i32,
        meter_start_wh: Some(1000.4),
        connector_id: 1,
        id_token_hash: "ab".repeat(32),
        ..Default::default()
    }));
    let (action, start) = c.message(&started).unwrap();
    assert_eq!(
        (action, start["meterStart"].clone()),
        ("StartTransaction", json!(1000))
    );
    assert_eq!(start["idTag"].as_str().unwrap().len(), 20);
    c.answered(
        &started,
        &json!({"transactionId": 77, "idTagInfo": {"status": "Accepted"}}),
    );

    let (_, values) = c
        .message(&event(Payload::MeterSample(MeterSample {
            transaction_id: "TX-1".into(),
            connector_id: 1,
            energy_active_import_wh: Some(1200.5),
            power_active_import_w: Some(7000.0),
            ..Default::default()
        })))
        .unwrap();
    assert_eq!(values["transactionId"], 77);
    let sampled = &values["meterValue"][0]["sampledValue"];
    assert_eq!(
        sampled[0],
        json!({"measurand": "Energy.Active.Import.Register", "unit": "Wh", "value": "1200.5"})
    );

    let ended = event(Payload::ChargingSession(ChargingSession {
        transaction_id: "TX-1".into(),
        phase: SessionPhase::Ended as i32,
        meter_stop_wh: Some(1300.0),
        stop_reason: StopReason::SocLimitReached as i32,
        ..Default::default()
    }));
    let (action, stop) = c.message(&ended).unwrap();
    assert_eq!(
        (
            action,
            stop["transactionId"].clone(),
            stop["reason"].clone()
        ),
        ("StopTransaction", json!(77), json!("Other"))
    );
    assert!(
        c.message(&ended).is_none(),
        "a stop whose start this run never sent"
    );
}

#[test]
fn offline_statuses_are_the_gateways_to_report() {
    let offline = event(Payload::ConnectorStatus(ConnectorStatus {
        station_id: "S".into(),
        status: Status::Offline as i32,
        ..Default::default()
    }));
    assert!(is_offline(&offline));
    assert_eq!(station_of(&offline).as_deref(), Some("S"));
}

#[test]
fn the_dev_registry_lists_every_station_of_the_town_with_the_dev_password() {
    use sha2::{Digest, Sha256};
    let text = include_str!("../../../deploy/local/dev-ocpp-stations.toml");
    let file: toml::Table = toml::from_str(text).unwrap();
    let listed: Vec<(String, String, u32, String)> = file["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["site"].as_str().unwrap().to_string(),
                s["connectors"].as_integer().unwrap() as u32,
                s["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let town: Vec<(String, String, u32, String)> = crate::model::charging::stations(1.0)
        .into_iter()
        .map(|s| {
            let credential = format!("{}:{}", s.id, crate::config::DEV_OCPP_PASSWORD);
            let digest = hex::encode(Sha256::digest(credential.as_bytes()));
            (s.id, s.site.to_string(), s.connectors, digest)
        })
        .collect();
    assert_eq!(listed, town);
}
