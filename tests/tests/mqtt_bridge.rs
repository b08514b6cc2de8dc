//! Sensors over MQTT, end to end: a real mosquitto (accounts and ACLs from a
//! device registry), the real bridge binary, ingest and the sink against the
//! stack's broker and ClickHouse, and devices that publish with the Eclipse
//! paho-mqtt client (PyPI), as a sensor vendor's firmware would.
//!
//! Needs the bridge binary: `cargo build -p citybrain-mqtt-bridge` (a
//! workspace `cargo test` builds it).

use citybrain_proto::events::v1::event::Payload;
use citybrain_tests::mqtt::*;
use citybrain_tests::process::{binary, spawn_service};
use citybrain_tests::*;
use std::path::Path;
use std::time::Duration;

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

/// The tests of this file run one at a time: run in parallel, a librdkafka
/// client of the test process crashed (SIGSEGV in
/// `rd_kafka_metadata_cache_find`, rdk:main thread) twice in four runs here;
/// one at a time, never. Not understood yet; see the bridge's README.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bin_reading(extra: &str, fill: &str) -> String {
    format!(
        r#"{{{extra}"bin_reading":{{"bin_id":"{BIN_SENSOR}","waste_class":"WASTE_CLASS_KITCHEN","fill_level":{fill},"village":"武疃村"}}}}"#
    )
}

fn spot_status() -> String {
    r#"{"parking_spot_status":{"site_id":"P-T-01","spot_id":"017","state":"PARKING_SPOT_STATE_OCCUPIED","detection":"DETECTION_METHOD_SINGLE_SPACE_SENSOR"}}"#
        .to_string()
}

fn now_rfc3339(offset_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    citybrain_proto::time::format_utc(now + offset_s)
}

/// The bridge binary, started against `mosquitto` and the ingest at `url`.
fn start_bridge(config: &citybrain_mqtt_bridge::config::BridgeConfig, dir: &Path) -> ChildProcess {
    spawn_service("mqtt-bridge", &binary("citybrain-mqtt-bridge"), config, dir)
}

/// `name` summed over its series on the bridge's `/metrics`.
async fn bridge_metric(config: &citybrain_mqtt_bridge::config::BridgeConfig, name: &str) -> f64 {
    let reply = http::get(config.admin_addr, "/metrics", &[]).await;
    reply
        .body
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_ready(config: &citybrain_mqtt_bridge::config::BridgeConfig) {
    let addr = config.admin_addr;
    eventually(
        Duration::from_secs(30),
        "the bridge to be ready",
        || async move {
            citybrain_tests::process::port_open(addr.port()).await
                && http::get(addr, "/readyz", &[]).await.status == 200
        },
    )
    .await;
}

#[tokio::test]
async fn a_bin_sensor_and_a_parking_sensor_publish_and_the_rows_arrive_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::pipeline(&brokers, &prefix, 2).await;
    let db = TestDatabase::named(&stack_clickhouse_url(), "mqtt");
    let dir = scratch_dir("mqtt-e2e");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let sink = RunningSink::start(sink_config(&brokers, &db.url, &prefix, &db.name)).await;
    let registry = write_device_registry(&dir);
    let mosquitto = PrivateMosquitto::start(&registry).await;
    let config = bridge_config(mosquitto.port, &ingest.endpoint(), &registry);
    let _bridge = start_bridge(&config, &dir);
    wait_ready(&config).await;

    // A bare reading (no time, no device id, no event id), a reading with
    // its own time, and the bare reading's redelivery by a resending device.
    let bare = bin_reading("", "0.42");
    let timed = bin_reading(&format!(r#""observed_at":"{}","#, now_rfc3339(-60)), "0.40");
    let bin = Device::new(mosquitto.port, TENANT, BIN_SENSOR);
    let published = bin
        .publish(
            &topic(TENANT, "bin_reading", BIN_SENSOR),
            &[bare.clone(), timed, bare],
            0,
            PUBLISH_TIMEOUT,
        )
        .await;
    assert_eq!(published.connected, "Success");
    assert_eq!(published.pubacks, vec!["Success"; 3]);
    let spot = Device::new(mosquitto.port, TENANT, SPOT_SENSOR);
    let published = spot
        .publish(
            &topic(TENANT, "parking_spot_status", SPOT_SENSOR),
            &[spot_status()],
            0,
            PUBLISH_TIMEOUT,
        )
        .await;
    assert_eq!(published.pubacks, vec!["Success"]);

    let client = db.client();
    clickhouse::assert_exact_rows(
        &client,
        &db.name,
        &[(Kind::BinReading, 2), (Kind::ParkingSpotStatus, 1)],
        Duration::from_secs(60),
    )
    .await;
    let devices = clickhouse::number(
        &client,
        &format!(
            "SELECT uniqExact(device_id) FROM {}.raw_bin_reading WHERE device_id = '{BIN_SENSOR}' AND tenant_id = '{TENANT}'",
            db.name
        ),
    )
    .await;
    assert_eq!(devices, 1.0, "the topic's device and tenant");

    // What Kafka holds: the bare reading's time is the bridge's, flagged.
    // Its second copy is answered DUPLICATE when it shares a call with the
    // first, and stored again (and then once by the sink) when it does not.
    let stored = stored_events(&brokers, &prefix, 3, Duration::from_secs(1));
    let bins: Vec<_> = stored
        .iter()
        .filter_map(|record| record.event.as_ref())
        .filter(|event| matches!(event.payload, Some(Payload::BinReading(_))))
        .collect();
    let ids: std::collections::BTreeSet<&str> =
        bins.iter().map(|event| event.event_id.as_str()).collect();
    assert_eq!(ids.len(), 2, "two readings: {bins:?}");
    let flagged: std::collections::BTreeSet<&str> = bins
        .iter()
        .filter(|event| event.observed_at_assumed)
        .map(|event| event.event_id.as_str())
        .collect();
    assert_eq!(
        flagged.len(),
        1,
        "the bare reading has the bridge's time, flagged"
    );
    for event in &bins {
        assert_eq!(event.device_id, BIN_SENSOR);
        let id = uuid::Uuid::parse_str(&event.event_id).unwrap();
        assert_eq!(id.get_version_num(), 5, "derived from topic and payload");
    }
    assert_eq!(
        bridge_metric(&config, "citybrain_mqtt_bridge_messages_acked_total").await,
        4.0
    );
    drop(sink);
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_and_invalid_payloads_end_on_the_rejected_topic_with_their_reason() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("mqtt-rejected");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let registry = write_device_registry(&dir);
    let mosquitto = PrivateMosquitto::start(&registry).await;
    let config = bridge_config(mosquitto.port, &ingest.endpoint(), &registry);
    let _bridge = start_bridge(&config, &dir);
    wait_ready(&config).await;

    let device = Device::new(mosquitto.port, TENANT, BIN_SENSOR);
    let payloads = [
        bin_reading("", "\"full\""),
        "fill=40%".to_string(),
        bin_reading("", "1.5"),
        bin_reading(r#""device_id":"someone-else","#, "0.5"),
    ];
    let published = device
        .publish(
            &topic(TENANT, "bin_reading", BIN_SENSOR),
            &payloads,
            payloads.len(),
            PUBLISH_TIMEOUT,
        )
        .await;
    assert_eq!(published.pubacks, vec!["Success"; 4]);
    let mut answers: Vec<(String, String, String)> = published
        .rejected
        .iter()
        .map(|rejection| {
            assert_eq!(rejection["rejected"], 1, "{rejection}");
            let result = &rejection["results"][0];
            assert_eq!(result["outcome"], "OUTCOME_REJECTED", "{rejection}");
            (
                result["reason"].as_str().unwrap_or_default().to_string(),
                result["field"].as_str().unwrap_or_default().to_string(),
                result["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    answers.sort();
    let summary: Vec<(&str, &str)> = answers
        .iter()
        .map(|(reason, field, _)| (reason.as_str(), field.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("REASON_CODE_INCONSISTENT", "device_id"),
            ("REASON_CODE_INVALID_FORMAT", ""),
            ("REASON_CODE_INVALID_FORMAT", "bin_reading.fill_level"),
            ("REASON_CODE_OUT_OF_RANGE", "bin_reading.fill_level"),
        ],
        "{answers:#?}"
    );
    assert!(answers[1].2.contains("not JSON"), "{answers:#?}");
    assert!(
        answers[3].2.contains("1.5"),
        "ingest's own message: {answers:#?}"
    );
    let none = stored_events(&brokers, &prefix, 0, Duration::from_secs(2));
    assert!(none.is_empty(), "nothing refused is stored: {none:?}");
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_device_may_publish_only_under_its_own_topic() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("mqtt-acl");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let registry = write_device_registry(&dir);
    let mosquitto = PrivateMosquitto::start(&registry).await;
    let config = bridge_config(mosquitto.port, &ingest.endpoint(), &registry);
    let _bridge = start_bridge(&config, &dir);
    wait_ready(&config).await;

    let device = Device::new(mosquitto.port, TENANT, BIN_SENSOR);
    for foreign in [
        topic(TENANT, "bin_reading", SPOT_SENSOR),
        topic(TENANT, "parking_spot_status", BIN_SENSOR),
        topic(OTHER_TENANT, "bin_reading", OTHER_BIN_SENSOR),
        topic(TENANT, "bin_reading", BIN_SENSOR) + "/rejected",
    ] {
        let published = device
            .publish(&foreign, &[bin_reading("", "0.5")], 0, PUBLISH_TIMEOUT)
            .await;
        assert_eq!(published.pubacks, vec!["Not authorized"], "{foreign}");
    }
    let mut wrong = Device::new(mosquitto.port, TENANT, BIN_SENSOR);
    wrong.password = "guess".into();
    let published = wrong
        .publish(
            &topic(TENANT, "bin_reading", BIN_SENSOR),
            &[],
            0,
            PUBLISH_TIMEOUT,
        )
        .await;
    assert_ne!(
        published.connected, "Success",
        "a wrong password is refused"
    );

    // The device's own topic works, and only that reached Kafka.
    let published = device
        .publish(
            &topic(TENANT, "bin_reading", BIN_SENSOR),
            &[bin_reading("", "0.5")],
            0,
            PUBLISH_TIMEOUT,
        )
        .await;
    assert_eq!(published.pubacks, vec!["Success"]);
    let stored = stored_events(&brokers, &prefix, 1, Duration::from_secs(2));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].tenant_id, TENANT);
    ingest.shutdown().await.unwrap();
}

/// The bridge dies (SIGKILL) holding messages it received and could not
/// store (ingest is not up yet): nothing was acknowledged, so the broker
/// delivers them again to the next bridge of the same session, and each is
/// stored once.
#[tokio::test]
async fn messages_held_by_a_killed_bridge_are_delivered_again_and_stored_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::pipeline(&brokers, &prefix, 2).await;
    let db = TestDatabase::named(&stack_clickhouse_url(), "mqtt_kill");
    let dir = scratch_dir("mqtt-kill");
    let registry = write_device_registry(&dir);
    let mosquitto = PrivateMosquitto::start(&registry).await;
    let ingest_port = citybrain_tests::process::free_port();
    let ingest_url = format!("http://127.0.0.1:{ingest_port}");
    let mut config = bridge_config(mosquitto.port, &ingest_url, &registry);
    config.ingest_timeout = Duration::from_secs(2);
    let mut bridge = start_bridge(&config, &dir);
    wait_ready(&config).await;

    let device = Device::new(mosquitto.port, TENANT, BIN_SENSOR);
    let payloads: Vec<String> = (0..5)
        .map(|i| bin_reading(&format!(r#""seq_no":{i},"#), "0.3"))
        .collect();
    let published = device
        .publish(
            &topic(TENANT, "bin_reading", BIN_SENSOR),
            &payloads,
            0,
            PUBLISH_TIMEOUT,
        )
        .await;
    assert_eq!(published.pubacks, vec!["Success"; 5]);
    let received = || bridge_metric(&config, "citybrain_mqtt_bridge_messages_received_total");
    eventually(
        Duration::from_secs(20),
        "the bridge to receive all 5",
        || async { received().await >= 5.0 },
    )
    .await;
    assert_eq!(
        bridge_metric(&config, "citybrain_mqtt_bridge_messages_acked_total").await,
        0.0,
        "nothing is acknowledged while ingest is down"
    );
    bridge.kill_9();

    let mut ingest_cfg = ingest_config(&brokers, &prefix, write_key_file(&dir));
    ingest_cfg.grpc_addr = ([127, 0, 0, 1], ingest_port).into();
    let ingest = RunningIngest::start(ingest_cfg).await;
    let sink = RunningSink::start(sink_config(&brokers, &db.url, &prefix, &db.name)).await;
    config.admin_addr = ([127, 0, 0, 1], citybrain_tests::process::free_port()).into();
    let _bridge = start_bridge(&config, &dir);

    let client = db.client();
    clickhouse::assert_exact_rows(
        &client,
        &db.name,
        &[(Kind::BinReading, 5)],
        Duration::from_secs(60),
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the redelivered messages acked",
        || async {
            bridge_metric(&config, "citybrain_mqtt_bridge_messages_acked_total").await >= 5.0
        },
    )
    .await;
    drop(sink);
    ingest.shutdown().await.unwrap();
    drop(mosquitto);
}
