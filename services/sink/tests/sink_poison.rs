//! Poison: garbage bytes and a record of an unknown contract version sit
//! between good records on one partition. They end up on the dead-letter
//! topic with their reason and origin; every good record around them lands.

mod support;

use citybrain_proto::events::v1::IngestedEvent;
use citybrain_proto::feed::{Feed, SCHEMA_VERSION};
use citybrain_proto::record;
use citybrain_sink::dead_letter::headers as dl;
use citybrain_tests::samples;
use citybrain_tests::{Kind, eventually, header, read_topics};
use prost::Message as _;
use rdkafka::{
    ClientConfig, Message as _,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use std::time::{Duration, SystemTime};
use support::*;

/// The contract's headers of a parking record, with `schema` as the
/// contract version (a future one for the record the sink cannot read).
fn headers(schema: &str) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    for (key, value) in record::headers(Kind::ParkingSiteCounts, "lucheng-test") {
        let value = if key == record::header::SCHEMA {
            schema.as_bytes()
        } else {
            value
        };
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

async fn produce(producer: &FutureProducer, topic: &str, payload: &[u8], schema: &str) -> i64 {
    let record = FutureRecord::to(topic)
        .partition(0)
        .key("lucheng-test/P-1")
        .payload(payload)
        .headers(headers(schema));
    let delivery = producer
        .send(record, Timeout::After(Duration::from_secs(5)))
        .await
        .expect("produce");
    delivery.offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_topic_and_good_records_land() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dead_letters = format!("{prefix}{}", citybrain_proto::feed::DEAD_LETTER_TOPIC);
    let _more_topics = TestTopics::create(&brokers, std::slice::from_ref(&dead_letters), 1).await;
    let topic = format!("{prefix}{}", Feed::Parking.topic());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");

    let good = |i: usize| {
        let mut event = samples::event(
            Kind::ParkingSiteCounts,
            SystemTime::now() - Duration::from_secs(60),
        );
        event.event_id = uuid::Uuid::now_v7().to_string();
        event.device_id = format!("P-{i}");
        IngestedEvent {
            event: Some(event),
            tenant_id: "lucheng-test".into(),
            source_id: "poison-test".into(),
            received_at: Some(samples::timestamp(SystemTime::now())),
        }
        .encode_to_vec()
    };
    let mut good_count = 0;
    for i in 0..5 {
        produce(&producer, &topic, &good(i), SCHEMA_VERSION).await;
        good_count += 1;
    }
    let garbage_offset = produce(
        &producer,
        &topic,
        b"\x08\x96\x01 this is not protobuf \xff\xff",
        SCHEMA_VERSION,
    )
    .await;
    for i in 5..10 {
        produce(&producer, &topic, &good(i), SCHEMA_VERSION).await;
        good_count += 1;
    }
    let future_offset = produce(&producer, &topic, &good(99), "citybrain.events.v2").await;
    for i in 10..15 {
        produce(&producer, &topic, &good(i), SCHEMA_VERSION).await;
        good_count += 1;
    }

    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &db)).await;
    let client = clickhouse(&url);
    assert_exact_rows(
        &client,
        &db,
        &[(Kind::ParkingSiteCounts, good_count)],
        Duration::from_secs(60),
    )
    .await;

    let letters = tokio::task::spawn_blocking({
        let brokers = brokers.clone();
        move || {
            read_topics(
                &brokers,
                &[dead_letters],
                2,
                Duration::from_secs(30),
                Duration::from_millis(500),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(
        letters.len(),
        2,
        "exactly the two poison records are dead-lettered"
    );
    let by_reason = |reason: &str| {
        letters
            .iter()
            .find(|m| header(m, dl::REASON).as_deref() == Some(reason))
            .unwrap_or_else(|| panic!("no dead letter with reason {reason}"))
    };
    let garbage = by_reason("undecodable");
    assert_eq!(
        header(garbage, dl::ORIGINAL_TOPIC).as_deref(),
        Some(topic.as_str())
    );
    assert_eq!(
        header(garbage, dl::ORIGINAL_PARTITION).as_deref(),
        Some("0")
    );
    assert_eq!(
        header(garbage, dl::ORIGINAL_OFFSET),
        Some(garbage_offset.to_string())
    );
    assert_eq!(
        header(garbage, dl::PAYLOAD_FORMAT).as_deref(),
        Some("original")
    );
    assert!(
        garbage
            .payload()
            .unwrap()
            .starts_with(b"\x08\x96\x01 this is not protobuf")
    );
    let future = by_reason("unknown_schema");
    assert_eq!(
        header(future, dl::ORIGINAL_OFFSET),
        Some(future_offset.to_string())
    );
    assert_eq!(
        header(future, record::header::SCHEMA).as_deref(),
        Some("citybrain.events.v2")
    );
    assert!(
        header(future, dl::DETAIL)
            .unwrap()
            .contains("citybrain.events.v2"),
        "the detail names the version"
    );
    assert_eq!(future.key(), Some(&b"lucheng-test/P-1"[..]));

    eventually(
        Duration::from_secs(10),
        "the dead letters to be counted",
        || async {
            let metrics = sink.admin_get("/metrics").await.body;
            metrics.contains("citybrain_sink_dead_letters_total{reason=\"undecodable\"} 1")
                && metrics
                    .contains("citybrain_sink_dead_letters_total{reason=\"unknown_schema\"} 1")
        },
    )
    .await;
    sink.shutdown().await.expect("graceful stop");
}
