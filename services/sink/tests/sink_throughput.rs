//! Throughput: how fast the sink drains a backlog into ClickHouse. Ignored by
//! default (it measures the machine as much as the sink); run it with
//!
//! ```text
//! cargo test --release -p citybrain-sink --test sink_throughput -- --ignored --nocapture
//! ```
//!
//! `SINK_BENCH_EVENTS` sets the backlog size (default 200000),
//! `SINK_BENCH_DEDUP=0` turns the event-id lookup off. It still
//! checks that every event landed exactly once.

mod support;

use citybrain_proto::events::v1::IngestedEvent;
use citybrain_proto::record;
use citybrain_tests::samples;
use citybrain_tests::{Kind, eventually};
use prost::Message as _;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord, Producer},
};
use std::time::{Duration, Instant, SystemTime};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored"]
async fn drains_a_backlog() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let total: usize = std::env::var("SINK_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let _topics = TestTopics::feeds(&brokers, &prefix, 4).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();

    let kinds = [
        Kind::MeterSample,
        Kind::VehiclePosition,
        Kind::BinReading,
        Kind::ParkingSiteCounts,
    ];
    let now = SystemTime::now();
    let produced = Instant::now();
    let mut pending = Vec::with_capacity(total);
    for i in 0..total {
        let kind = kinds[i % kinds.len()];
        let mut event = samples::event(kind, now - Duration::from_millis((total - i) as u64));
        event.event_id = uuid::Uuid::now_v7().to_string();
        event.device_id = format!("{}-{}", event.device_id, i % 64);
        let key = record::key("bench", &event.device_id);
        let bytes = IngestedEvent {
            event: Some(event),
            tenant_id: "bench".into(),
            source_id: "bench".into(),
            received_at: Some(samples::timestamp(now)),
        }
        .encode_to_vec();
        let topic = format!("{prefix}{}", kind.feed().topic());
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&bytes)
            .headers(citybrain_kafka::record_headers(kind, "bench"));
        pending.push(
            producer
                .send_result(record)
                .map_err(|(err, _)| err)
                .expect("enqueue"),
        );
        if pending.len() >= 10_000 {
            for delivery in pending.drain(..) {
                delivery
                    .await
                    .expect("delivery")
                    .map_err(|(err, _)| err)
                    .expect("produce");
            }
        }
    }
    for delivery in pending.drain(..) {
        delivery
            .await
            .expect("delivery")
            .map_err(|(err, _)| err)
            .expect("produce");
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    eprintln!("produced {total} events in {:?}", produced.elapsed());

    let mut config = sink_config(&brokers, &url, &prefix, &db);
    config.batch.max_rows = 50_000;
    config.batch.max_age = Duration::from_secs(1);
    config.store.dedup_event_ids = std::env::var("SINK_BENCH_DEDUP").map_or(true, |v| v != "0");
    let started = Instant::now();
    let sink = RunningSink::start(config).await;
    let client = clickhouse(&url);
    let count = || async {
        let mut sum = 0;
        for kind in kinds {
            let sql = format!("SELECT count() FROM {db}.{}", kind.raw_table());
            sum += client.query_raw(&sql).fetch_one::<u64>().await.unwrap_or(0);
        }
        sum
    };
    eventually(Duration::from_secs(600), "the backlog to land", || async {
        count().await >= total as u64
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "sink drained {total} events in {took:?} (group join included): {:.0} rows/s",
        total as f64 / took.as_secs_f64()
    );
    let per_kind = (total / kinds.len()) as u64;
    let expected: Vec<(Kind, u64)> = kinds.iter().map(|k| (*k, per_kind)).collect();
    assert_exact_rows(&client, &db, &expected, Duration::from_secs(10)).await;
    sink.shutdown().await.expect("graceful stop");
}
