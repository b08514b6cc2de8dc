//! What a charger was told is stored is in ClickHouse, once: a real 1.6
//! charge point (PyPI `ocpp`) loses its connection after sending each
//! transaction message, before the answer, and sends it again.

mod support;

use serde_json::Value;
use support::*;

fn offline_rows(rows: &[(String, String)]) -> usize {
    rows.iter()
        .filter(|(_, status)| status == "offline")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_messages_resent_after_a_dropped_connection_are_stored_once() {
    let pipeline = Pipeline::start(&[Spec {
        id: "QJ-CP-02",
        site: "七级村",
        connectors: 1,
    }])
    .await;
    let records = run_charger(&pipeline.url(), "QJ-CP-02", "1.6", "resend").await;
    let dropped: Vec<&Value> = records.iter().filter(|r| r["type"] == "dropped").collect();
    assert_eq!(dropped.len(), 3, "{records:#?}");
    let (start, started) = calls(&records, "StartTransaction")[0];
    let (stop, _) = calls(&records, "StopTransaction")[0];
    assert_eq!(
        start, &dropped[0]["request"],
        "the resend is the same message"
    );
    let statuses = calls(&records, "StatusNotification").len() as u64;

    pipeline
        .wait_for_rows(&[("raw_charging_session", 2), ("raw_meter_sample", 1)])
        .await;
    // Each message reached ingest twice (the first answer was lost) and is
    // stored once.
    let gw = &pipeline.gateway;
    for action in ["StartTransaction", "MeterValues", "StopTransaction"] {
        let stored = gw
            .metric(
                "citybrain_ocpp_messages_total",
                &[("action", action), ("outcome", "stored")],
            )
            .await;
        assert_eq!(stored, 2.0, "{action} handled twice");
    }
    let db = &pipeline.database.name;
    let sessions: Vec<(String, String, Option<f64>)> = pipeline
        .client()
        .query(&format!(
            "SELECT phase, transaction_id, energy_kwh FROM {db}.raw_charging_session ORDER BY observed_at"
        ))
        .fetch_all()
        .await
        .unwrap();
    let tx = started["transactionId"].as_i64().unwrap().to_string();
    let energy =
        (stop["meterStop"].as_f64().unwrap() - start["meterStart"].as_f64().unwrap()) / 1000.0;
    assert_eq!(
        sessions,
        vec![
            ("started".into(), tx.clone(), None),
            ("ended".into(), tx, Some(energy)),
        ]
    );
    // Statuses: those the charger reported when asked after reconnecting,
    // and OFFLINE for each disconnect the gateway saw as an outage.
    eventually_settled(&pipeline, statuses).await;
    pipeline.shutdown().await;
}

/// Waits for the status rows: the charger's own plus the gateway's OFFLINE
/// reports (one per outage it saw; a reconnect that came before the old
/// socket's end is not an outage), then checks the two add up.
async fn eventually_settled(pipeline: &Pipeline, reported: u64) {
    let db = pipeline.database.name.clone();
    citybrain_tests::eventually(STORED_WITHIN, "the charger's statuses", || async {
        pipeline.count("raw_connector_status").await >= reported
    })
    .await;
    let offline = pipeline
        .gateway
        .metric("citybrain_ocpp_stations_offline_total", &[])
        .await as usize;
    citybrain_tests::eventually(STORED_WITHIN, "the OFFLINE reports", || async {
        pipeline.count("raw_connector_status").await >= reported + offline as u64
    })
    .await;
    let rows: Vec<(String, String)> = pipeline
        .client()
        .query(&format!(
            "SELECT device_id, status FROM {db}.raw_connector_status"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(offline_rows(&rows), offline, "{rows:?}");
    assert_eq!(rows.len() - offline, reported as usize, "{rows:?}");
}
