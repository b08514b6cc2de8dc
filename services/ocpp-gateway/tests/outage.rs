//! What a charger was told is stored is in ClickHouse, once: a real 1.6
//! charge point (PyPI `ocpp`) runs a transaction while ingest is down; it is
//! told to resend (InternalError) until the platform is back.

mod support;

use serde_json::Value;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_during_an_ingest_outage_is_resent_until_stored_once() {
    let mut pipeline = Pipeline::start(&[Spec {
        id: "GT-CP-01",
        site: "潞城镇政府",
        connectors: 2,
    }])
    .await;
    let mut charger = Charger::start(&pipeline.url(), "GT-CP-01", "1.6", "outage");
    charger.until("pause").await.expect("the charger pauses");
    pipeline.stop_ingest().await;
    charger.resume().await;
    // The charger is told to resend (InternalError), more than once.
    let gw = &pipeline.gateway;
    citybrain_tests::eventually(
        STORED_WITHIN,
        "the charger to be told to resend",
        || async {
            gw.metric(
                "citybrain_ocpp_messages_total",
                &[("action", "MeterValues"), ("outcome", "retry")],
            )
            .await
                >= 2.0
        },
    )
    .await;
    citybrain_tests::eventually(STORED_WITHIN, "/readyz to say ingest is down", || async {
        gw.get("/readyz").await.0 == 503
    })
    .await;
    pipeline.restart_ingest().await;
    let records = charger.finish().await;

    let told_to_resend: Vec<&Value> = records
        .iter()
        .filter(|r| r["error"]["code"] == "InternalError")
        .collect();
    assert!(told_to_resend.len() >= 2, "{records:#?}");
    assert!(
        told_to_resend
            .iter()
            .all(|r| r["action"] == "MeterValues" || r["action"] == "StopTransaction")
    );
    assert_eq!(
        calls(&records, "MeterValues").len(),
        1,
        "answered once it was stored"
    );
    assert_eq!(calls(&records, "StopTransaction").len(), 1);
    pipeline
        .wait_for_rows(&[("raw_charging_session", 2), ("raw_meter_sample", 1)])
        .await;
    let (stop, _) = calls(&records, "StopTransaction")[0];
    let (start, _) = calls(&records, "StartTransaction")[0];
    let energy: Option<f64> = pipeline
        .client()
        .query(&format!(
            "SELECT energy_kwh FROM {}.raw_charging_session WHERE phase = 'ended'",
            pipeline.database.name
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        energy,
        Some(
            (stop["meterStop"].as_f64().unwrap() - start["meterStart"].as_f64().unwrap()) / 1000.0
        )
    );
    pipeline.shutdown().await;
}
