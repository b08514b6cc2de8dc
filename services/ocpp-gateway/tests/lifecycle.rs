//! The gateway's own life: a charger that connects again replaces its old
//! socket (no outage reported); the registry is reloaded while running (a
//! removed station is told Rejected and refused); and shutdown answers the
//! message in flight before it closes each socket with "going away" (1001).

mod support;

use citybrain_ocpp_gateway::config::GatewayConfig;
use citybrain_tests::{
    BrokerStorage, FULL_KEY, PrivateBroker, RunningIngest, TENANT, TestTopics, ingest_config,
    scratch_dir, unique_prefix, write_key_file,
};
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

fn status(connector: u32, status: &str) -> serde_json::Value {
    json!({"connectorId": connector, "errorCode": "NoError", "status": status,
           "timestamp": citybrain_ocpp_gateway::time::format(std::time::SystemTime::now())})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_of_a_station_replaces_the_old_one_without_an_outage() {
    let mut pipeline = Pipeline::start(&[Spec {
        id: "TH-CP-01",
        site: "潞城镇医院",
        connectors: 2,
    }])
    .await;
    let gw = &pipeline.gateway;
    let mut old = connect_raw(gw, "TH-CP-01", Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    assert_eq!(
        old.call("StatusNotification", status(1, "Available")).await[0],
        3
    );
    let mut new = connect_raw(gw, "TH-CP-01", Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    assert_eq!(old.closed().await, Some(1008), "policy: replaced");
    assert_eq!(
        new.call("StatusNotification", status(2, "Charging")).await[0],
        3
    );
    pipeline.wait_for_rows(&[("raw_connector_status", 2)]).await;
    // Shutdown is not an outage either; whatever the gateway owed ingest is
    // delivered before serve returns.
    pipeline.gateway.shutdown().await;
    assert_eq!(new.closed().await, Some(1001));
    pipeline.wait_for_rows(&[("raw_connector_status", 2)]).await;
    let statuses: Vec<String> = pipeline
        .client()
        .query(&format!(
            "SELECT status FROM {}.raw_connector_status ORDER BY observed_at",
            pipeline.database.name
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        statuses,
        vec!["available".to_string(), "charging".to_string()]
    );
    pipeline.stop_ingest().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_is_reloaded_while_running() {
    let stations = [
        Spec {
            id: "TH-CP-02",
            site: "潞城镇医院",
            connectors: 1,
        },
        Spec {
            id: "TH-CP-03",
            site: "潞城镇医院",
            connectors: 1,
        },
    ];
    let pipeline = Pipeline::start(&stations).await;
    let gw = &pipeline.gateway;
    let mut staying = connect_raw(gw, "TH-CP-02", Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    let mut leaving = connect_raw(gw, "TH-CP-03", Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    let boot = json!({"chargePointVendor": "V", "chargePointModel": "M"});
    assert_eq!(
        leaving.call("BootNotification", boot.clone()).await[2]["status"],
        "Accepted"
    );

    // TH-CP-03 is removed, TH-CP-04 added.
    std::fs::write(
        &pipeline.registry_file,
        registry_toml(&[
            Spec {
                id: "TH-CP-02",
                site: "潞城镇医院",
                connectors: 1,
            },
            Spec {
                id: "TH-CP-04",
                site: "潞城镇医院",
                connectors: 1,
            },
        ]),
    )
    .unwrap();
    // Reloaded once the new station may connect.
    citybrain_tests::eventually(
        Duration::from_secs(10),
        "the registry to be reloaded",
        || async {
            connect_raw(gw, "TH-CP-04", Some(PASSWORD), &["ocpp1.6"])
                .await
                .is_ok()
        },
    )
    .await;
    let answer = leaving.call("BootNotification", boot.clone()).await;
    assert_eq!(answer[0], 3);
    assert_eq!(answer[2]["status"], "Rejected", "{answer}");
    assert!(answer[2]["interval"].as_u64().unwrap() > 0 && answer[2]["currentTime"].is_string());
    let answer = leaving
        .call("StatusNotification", status(1, "Available"))
        .await;
    assert_eq!(
        (answer[0].clone(), answer[2].clone()),
        (json!(4), json!("SecurityError"))
    );
    assert_eq!(
        connect_raw(gw, "TH-CP-03", Some(PASSWORD), &["ocpp1.6"])
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        staying
            .call("StatusNotification", status(1, "Available"))
            .await[0],
        3
    );

    // A file that does not load keeps the registry as it was.
    std::fs::write(&pipeline.registry_file, "[[stations]]\nid = \"broken\"\n").unwrap();
    citybrain_tests::eventually(
        Duration::from_secs(10),
        "the broken file to be seen",
        || async {
            gw.metric(
                "citybrain_ocpp_registry_reloads_total",
                &[("outcome", "failed")],
            )
            .await
                >= 1.0
        },
    )
    .await;
    assert!(
        connect_raw(gw, "TH-CP-04", Some(PASSWORD), &["ocpp1.6"])
            .await
            .is_ok(),
        "the registry as it was"
    );
    assert_eq!(
        staying
            .call("StatusNotification", status(1, "Charging"))
            .await[0],
        3
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_message_in_flight_then_closes_with_going_away() {
    // Ingest on a private broker that the test freezes: a message then stays
    // in flight until ingest's delivery timeout.
    let broker = PrivateBroker::start(BrokerStorage::Memory).await;
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&broker.brokers(), &prefix, 1).await;
    let dir = scratch_dir("ocpp-shutdown");
    let mut ingest_config = ingest_config(&broker.brokers(), &prefix, write_key_file(&dir));
    ingest_config.producer.settings.delivery_timeout = Duration::from_secs(3);
    ingest_config.producer.settings.idempotence = false;
    let ingest = RunningIngest::start(ingest_config).await;
    let registry = dir.join("stations.toml");
    std::fs::write(
        &registry,
        registry_toml(&[Spec {
            id: "GT-CP-02",
            site: "潞城镇政府",
            connectors: 1,
        }]),
    )
    .unwrap();
    let mut config = GatewayConfig::new(&registry, &ingest.endpoint());
    config.listen_addr = ([127, 0, 0, 1], 0).into();
    config.admin_addr = ([127, 0, 0, 1], 0).into();
    config.ingest_keys = vec![(TENANT.into(), FULL_KEY.into())];
    config.shutdown_timeout = Duration::from_secs(20);
    let mut gateway = RunningGateway::start(config).await;

    let mut cp = connect_raw(&gateway, "GT-CP-02", Some(PASSWORD), &["ocpp1.6"])
        .await
        .unwrap();
    assert_eq!(
        cp.call("StatusNotification", status(1, "Available")).await[0],
        3
    );
    broker.process().expect("running").signal("STOP");
    cp.text(&json!([2, "in-flight", "StatusNotification", status(1, "Charging")]).to_string())
        .await;
    // The message is being handled (ingest received its event and waits on
    // the frozen broker) when shutdown begins. Ingest runs in this process:
    // its metrics are on the same recorder.
    citybrain_tests::eventually(
        Duration::from_secs(5),
        "ingest to receive the event",
        || async {
            gateway
                .metric(
                    "citybrain_ingest_events_received_total",
                    &[("kind", "connector_status")],
                )
                .await
                >= 2.0
        },
    )
    .await;
    let began = Instant::now();
    let stopping = tokio::spawn(async move {
        gateway.shutdown().await;
        gateway
    });
    let answer = cp.frame().await.expect("the message in flight is answered");
    assert_eq!(answer[1], "in-flight");
    assert_eq!(answer[0], 4, "not stored: {answer}");
    assert_eq!(answer[2], "InternalError", "resend later: {answer}");
    assert_eq!(cp.closed().await, Some(1001), "then going away");
    let _gateway = stopping.await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(20));
    broker.process().expect("running").signal("CONT");
    ingest.shutdown().await.expect("ingest stops");
}
