//! A charger that goes silent is reported OFFLINE on every registered
//! connector and its socket closed; one whose TCP connection died (no answer
//! to WebSocket pings) too. When it comes back, the gateway asks it for its
//! status (TriggerMessage) and the dashboards' live state follows.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

const CP: &str = "WT-CP-03";

fn now_text() -> String {
    citybrain_ocpp_gateway::time::format(std::time::SystemTime::now())
}

async fn live_statuses(query: &citybrain_tests::RunningQuery) -> Vec<(String, String)> {
    let mut statuses: Vec<(String, String)> = rows(query, "/v1/live/connectors")
        .await
        .into_iter()
        .map(|row| {
            (
                row["connector"].as_str().unwrap().to_string(),
                row["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    statuses.sort();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_charger_is_reported_offline_and_asked_for_its_status_when_back() {
    let pipeline = Pipeline::start_with(
        &[Spec {
            id: CP,
            site: "武疃村",
            connectors: 2,
        }],
        |config| {
            config.heartbeat_interval = Duration::from_secs(1);
            config.offline_after_intervals = 2;
            config.ping_interval = Duration::ZERO;
        },
    )
    .await;
    let gw = &pipeline.gateway;
    let mut cp = connect_raw(gw, CP, Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "V", "chargePointModel": "M"}),
        )
        .await;
    assert_eq!(boot[2]["interval"], 1, "the interval the charger is told");
    for (connector, status) in [(1, "Available"), (2, "Charging")] {
        let answer = cp
            .call(
                "StatusNotification",
                json!({"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": now_text()}),
            )
            .await;
        assert_eq!(answer[0], 3);
    }
    // Silence: after two intervals the gateway closes the socket.
    let silent_since = Instant::now();
    assert_eq!(cp.closed().await, Some(1000));
    let waited = silent_since.elapsed();
    assert!(
        // Two intervals after the last message, which came just before its answer.
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(
        gw.metric(
            "citybrain_ocpp_stations_offline_total",
            &[("cause", "heartbeat_timeout")]
        )
        .await,
        1.0
    );
    pipeline.wait_for_rows(&[("raw_connector_status", 4)]).await;
    let query = start_query(&pipeline).await;
    assert_eq!(
        live_statuses(&query).await,
        vec![
            (format!("{CP}:1"), "offline".into()),
            (format!("{CP}:2"), "offline".into())
        ]
    );

    // The live view orders a connector's statuses by whole seconds: a status
    // in the same second as the OFFLINE report may lose the tie. A charger
    // reconnects a moment later; here, once the clock is past that second.
    let offline_at: u32 = pipeline
        .client()
        .query(&format!(
            "SELECT max(toUInt32(observed_at)) FROM {}.raw_connector_status WHERE status = 'offline'",
            pipeline.database.name
        ))
        .fetch_one()
        .await
        .unwrap();
    citybrain_tests::eventually(Duration::from_secs(5), "the next second", || async {
        citybrain_proto::time::timestamp(std::time::SystemTime::now()).seconds
            > i64::from(offline_at)
    })
    .await;

    // Back: the first thing the gateway says is a TriggerMessage.
    let mut cp = connect_raw(gw, CP, Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    let trigger = cp.frame().await.expect("a TriggerMessage");
    assert_eq!(
        (&trigger[0], &trigger[2], &trigger[3]),
        (
            &json!(2),
            &json!("TriggerMessage"),
            &json!({"requestedMessage": "StatusNotification"})
        )
    );
    cp.text(&json!([3, trigger[1], {"status": "Accepted"}]).to_string())
        .await;
    for (connector, status) in [(1, "Available"), (2, "Charging")] {
        let answer = cp
            .call(
                "StatusNotification",
                json!({"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": now_text()}),
            )
            .await;
        assert_eq!(answer[0], 3);
    }
    pipeline.wait_for_rows(&[("raw_connector_status", 6)]).await;
    citybrain_tests::eventually(STORED_WITHIN, "the live state to follow", || async {
        live_statuses(&query).await
            == vec![
                (format!("{CP}:1"), "available".to_string()),
                (format!("{CP}:2"), "charging".to_string()),
            ]
    })
    .await;
    query.stop().await;
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_connection_that_answers_no_ping_is_reported_offline() {
    let pipeline = Pipeline::start_with(
        &[Spec {
            id: "WT-CP-04",
            site: "武疃村",
            connectors: 1,
        }],
        |config| config.ping_interval = Duration::from_secs(1),
    )
    .await;
    let gw = &pipeline.gateway;
    let mut cp = connect_raw(gw, "WT-CP-04", Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    let boot = cp
        .call(
            "BootNotification",
            json!({"chargePointVendor": "V", "chargePointModel": "M"}),
        )
        .await;
    assert_eq!(boot[2]["interval"], 300);
    // A socket nobody reads answers no ping (the client answers pings when
    // it reads). Heartbeats are five minutes away: only pings can tell.
    citybrain_tests::eventually(
        Duration::from_secs(15),
        "the gateway to give up on the socket",
        || async {
            gw.metric(
                "citybrain_ocpp_stations_offline_total",
                &[("cause", "no_pong")],
            )
            .await
                == 1.0
        },
    )
    .await;
    pipeline.wait_for_rows(&[("raw_connector_status", 1)]).await;
    let info: (String, String) = pipeline
        .client()
        .query(&format!(
            "SELECT status, info FROM {}.raw_connector_status",
            pipeline.database.name
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        info,
        (
            "offline".to_string(),
            "citybrain lost the charger: no_pong".to_string()
        )
    );
    drop(cp);
    pipeline.shutdown().await;
}
