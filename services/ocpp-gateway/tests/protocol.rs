//! Who may connect, and what a charger that does not follow the spec gets:
//! refused upgrades (401, 400), CALLERRORs for frames and payloads that
//! cannot be read or actions that are not implemented, and sloppy firmware
//! that is read leniently and stored. Frames are built by hand from the
//! spec: no correct client library sends these.

mod support;

use serde_json::{Value, json};
use support::*;

const CP: &str = "HBY-CP-07";

fn stations() -> [Spec; 2] {
    [
        Spec {
            id: CP,
            site: "后北营家园",
            connectors: 2,
        },
        Spec {
            id: "HBY-DC-08",
            site: "后北营家园",
            connectors: 1,
        },
    ]
}

fn minutes_ago(minutes: i64) -> String {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(minutes as u64 * 60);
    citybrain_ocpp_gateway::time::format(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stations_and_wrong_credentials_are_refused_and_counted() {
    let pipeline = Pipeline::start(&stations()).await;
    let gw = &pipeline.gateway;
    let ocpp16 = ["ocpp1.6"];
    let refusals = [
        (
            connect_raw(gw, "XX-CP-99", Some(PASSWORD), &ocpp16).await,
            401,
            "unknown_station",
        ),
        (
            connect_raw(gw, CP, Some("guessed"), &ocpp16).await,
            401,
            "wrong_password",
        ),
        (
            connect_raw(gw, CP, None, &ocpp16).await,
            401,
            "no_credentials",
        ),
        (
            connect_raw(gw, CP, Some(PASSWORD), &["ocpp1.5", "wamp"]).await,
            400,
            "subprotocol",
        ),
    ];
    for (result, status, reason) in refusals {
        assert_eq!(result.err(), Some(status), "{reason}");
        let counted = gw
            .metric(
                "citybrain_ocpp_connections_refused_total",
                &[("reason", reason)],
            )
            .await;
        assert_eq!(counted, 1.0, "{reason}");
    }
    // Another station's password is wrong for this one.
    let mut other = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ocpp/{CP}", gw.addr),
    )
    .unwrap();
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("HBY-DC-08:{PASSWORD}"));
    other
        .headers_mut()
        .insert("authorization", format!("Basic {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(other).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!(
            "a user that is not the charge point id: {:?}",
            other.map(|_| ())
        ),
    }
    // The subprotocol is the first of the charger's list the gateway speaks;
    // none offered is taken as 1.6.
    let raw = connect_raw(gw, CP, Some(PASSWORD), &["ocpp2.1", "ocpp2.0.1", "ocpp1.6"])
        .await
        .unwrap();
    assert_eq!(raw.subprotocol.as_deref(), Some("ocpp2.0.1"));
    drop(raw);
    let mut old_firmware = connect_raw(gw, CP, Some(PASSWORD), &[]).await.unwrap();
    assert_eq!(old_firmware.subprotocol, None);
    let boot = old_firmware
        .call(
            "BootNotification",
            json!({"chargePointVendor": "V", "chargePointModel": "M"}),
        )
        .await;
    assert_eq!(boot[2]["status"], "Accepted", "spoken to as 1.6: {boot}");
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_and_payloads_get_callerrors_and_nothing_is_stored() {
    let pipeline = Pipeline::start(&stations()).await;
    let gw = &pipeline.gateway;
    let mut cp = connect_raw(gw, CP, Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    let error = |frame: &Value| {
        assert_eq!(frame[0], 4, "a CALLERROR: {frame}");
        assert_eq!(frame[4], json!({}), "{frame}");
        (
            frame[2].as_str().unwrap().to_string(),
            frame[3].as_str().unwrap().to_string(),
        )
    };
    // Not OCPP-J at all: answered with the id "-1".
    for text in [
        "hello",
        "{\"not\": \"an array\"}",
        "[2, 17, \"Heartbeat\", {}]",
    ] {
        cp.text(text).await;
        let frame = cp.frame().await.unwrap();
        assert_eq!(frame[1], "-1");
        assert_eq!(error(&frame).0, "FormationViolation", "{text}");
    }
    cp.text("[2, \"f1\", \"Heartbeat\"]").await;
    let frame = cp.answer_to("f1").await;
    assert_eq!(error(&frame).0, "FormationViolation");
    {
        use futures::SinkExt;
        cp.socket
            .send(Message::binary(vec![0x83, 0x01]))
            .await
            .unwrap();
    }
    assert_eq!(error(&cp.frame().await.unwrap()).0, "FormationViolation");

    let cases = [
        ("Reset", json!({"type": "Hard"}), "NotImplemented", "Reset"),
        (
            "GetConfiguration",
            json!({}),
            "NotImplemented",
            "GetConfiguration",
        ),
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
            "Exploded",
        ),
        (
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "A", "meterStart": 10, "timestamp": "2026-02-30T10:00:00Z"}),
            "PropertyConstraintViolation",
            "no such day",
        ),
        (
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": minutes_ago(1), "sampledValue": [{"value": "lots"}]}]}),
            "PropertyConstraintViolation",
            "meterValue[0].sampledValue[0].value",
        ),
        // Ingest refuses what is older than its 30-day window: the charger is
        // told, with ingest's reason, and not asked to resend.
        (
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": minutes_ago(60 * 24 * 40)}),
            "PropertyConstraintViolation",
            "observed_at",
        ),
    ];
    for (action, payload, code, says) in cases {
        let frame = cp.call(action, payload.clone()).await;
        let (got, description) = error(&frame);
        assert_eq!(got, code, "{action} {payload}: {description}");
        assert!(
            description.contains(says),
            "{action} {payload}: {description}"
        );
    }
    let counted = |code: &'static str, reason: &'static str| async move {
        gw.metric(
            "citybrain_ocpp_call_errors_total",
            &[("code", code), ("reason", reason)],
        )
        .await
    };
    assert_eq!(counted("FormationViolation", "frame").await, 5.0);
    assert_eq!(counted("NotImplemented", "not_implemented").await, 2.0);
    assert_eq!(counted("FormationViolation", "payload_shape").await, 2.0);
    assert_eq!(
        counted("PropertyConstraintViolation", "payload_value").await,
        3.0
    );
    assert_eq!(
        counted("PropertyConstraintViolation", "ingest_rejected").await,
        1.0
    );
    let other = gw
        .metric("citybrain_ocpp_messages_total", &[("action", "other")])
        .await;
    assert_eq!(other, 2.0, "unknown actions share one label");

    // 2.0.1 names the shape error FormatViolation.
    let mut station = connect_raw(gw, "HBY-DC-08", Some(PASSWORD), &["ocpp2.0.1"])
        .await
        .unwrap();
    let frame = station
        .call("StatusNotification", json!({"evseId": 1}))
        .await;
    assert_eq!(error(&frame).0, "FormatViolation");
    let frame = station.call("UpdateFirmware", json!({})).await;
    assert_eq!(error(&frame).0, "NotImplemented");

    // A well-formed message on the same socket still works.
    let frame = cp.call("Heartbeat", json!({})).await;
    assert_eq!(frame[0], 3);
    drop((cp, station));
    // Nothing but the OFFLINE reports of the two closed sockets was stored.
    pipeline.wait_for_rows(&[("raw_connector_status", 3)]).await;
    let statuses: Vec<String> = pipeline
        .client()
        .query(&format!(
            "SELECT DISTINCT status FROM {}.raw_connector_status",
            pipeline.database.name
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(statuses, vec!["offline".to_string()]);
    assert_eq!(
        pipeline.count("raw_meter_sample").await + pipeline.count("raw_charging_session").await,
        0
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sloppy_firmware_is_read_leniently_and_stored() {
    let pipeline = Pipeline::start(&stations()).await;
    let gw = &pipeline.gateway;
    let mut cp = connect_raw(gw, CP, Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    // Times without a zone are UTC.
    let zoneless = |minutes: i64| minutes_ago(minutes).trim_end_matches('Z').to_string();
    let fault_at = zoneless(30);
    let long_info = "充电枪温度过高，请联系物业。".repeat(30);
    let answers = [
        cp.call("BootNotification", json!({"chargePointVendor": "V", "chargePointModel": "M", "vendorSpecificBlob": {"x": [1, 2]}})).await,
        cp.call("StatusNotification", json!({
            "connectorId": 1, "errorCode": "Error", "vendorErrorCode": "E-0x1F", "status": "Faulted",
            "info": long_info, "timestamp": fault_at, "firmwareBuild": 77})).await,
        cp.call("StatusNotification", json!({"connectorId": 2, "errorCode": "noerror", "status": "charging", "timestamp": zoneless(29)})).await,
        cp.call("StartTransaction", json!({"connectorId": 2, "idTag": "X1", "meterStart": 1000.0, "timestamp": zoneless(28)})).await,
    ];
    for frame in &answers {
        assert_eq!(frame[0], 3, "answered CALLRESULT: {frame}");
    }
    let tx = answers[3][2]["transactionId"].as_i64().unwrap();
    let meter = |minutes: i64, values: Value| {
        json!({"connectorId": 2, "transactionId": tx,
        "meterValue": [{"timestamp": zoneless(minutes), "sampledValue": values}]})
    };
    for frame in [
        // Only power; only current; the energy in lower-case kwh.
        cp.call(
            "MeterValues",
            meter(
                27,
                json!([{"value": "7.1", "unit": "kW", "measurand": "Power.Active.Import"}]),
            ),
        )
        .await,
        cp.call(
            "MeterValues",
            meter(
                26,
                json!([{"value": "31.5", "unit": "A", "measurand": "Current.Import"}]),
            ),
        )
        .await,
        cp.call(
            "MeterValues",
            meter(25, json!([{"value": " 1.25 ", "unit": "kwh"}])),
        )
        .await,
        // No reason: Local.
        cp.call(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": 1300, "timestamp": zoneless(24)}),
        )
        .await,
    ] {
        assert_eq!(frame[0], 3, "answered CALLRESULT: {frame}");
    }
    drop(cp);
    pipeline
        .wait_for_rows(&[
            ("raw_connector_status", 2 + 2),
            ("raw_meter_sample", 3),
            ("raw_charging_session", 2),
        ])
        .await;
    let db = &pipeline.database.name;
    let client = pipeline.client();
    let fault: (String, String, String, String, u32) = client
        .query(&format!(
            "SELECT status, error_code, vendor_error_code, info, toUInt32(observed_at) FROM {db}.raw_connector_status
             WHERE device_id = '{CP}:1' AND status != 'offline'"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (fault.0.as_str(), fault.1.as_str(), fault.2.as_str()),
        ("faulted", "other_error", "Error/E-0x1F")
    );
    assert!(
        fault.3.len() <= 500 && long_info.starts_with(&fault.3) && fault.3.len() > 450,
        "{}",
        fault.3.len()
    );
    let expected_at = citybrain_ocpp_gateway::time::parse(&format!("{fault_at}Z"))
        .unwrap()
        .at
        .seconds;
    assert_eq!(
        i64::from(fault.4),
        expected_at,
        "a time without a zone is UTC"
    );
    let samples: Vec<(Option<f64>, Option<f64>, String)> = client
        .query(&format!(
            "SELECT energy_active_import_wh, power_active_import_w, toString(current_import_a)
             FROM {db}.raw_meter_sample ORDER BY observed_at"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        samples,
        vec![
            (None, Some(7100.0), "[]".into()),
            (None, None, "[31.5]".into()),
            (Some(1250.0), None, "[]".into()),
        ]
    );
    let ended: (String, Option<f64>) = client
        .query(&format!(
            "SELECT stop_reason, energy_kwh FROM {db}.raw_charging_session WHERE phase = 'ended'"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(ended, ("local".to_string(), Some(0.3)));
    for quirk in [
        "time_without_zone",
        "vendor_error_code",
        "text_truncated",
        "no_energy_register",
    ] {
        assert!(
            gw.metric("citybrain_ocpp_quirks_total", &[("quirk", quirk)])
                .await
                >= 1.0,
            "{quirk}"
        );
    }
    pipeline.shutdown().await;
}
