//! A broker whose logs are replaced (a memory-storage broker restarted, as
//! `make run` uses; a Kafka cluster rebuilt) numbers its messages from 0
//! again. The sink keeps lineage per log (cluster id, topic, partition), so
//! the new log's messages are stored, not skipped as "already stored" under
//! the old log's offsets.

mod support;

use citybrain_tests::{
    BrokerStorage, Kind, PrivateBroker, RunningIngest, ingest_config, scratch_dir, write_key_file,
};
use std::time::{Duration, SystemTime};
use support::*;

const FIRST: usize = 300;
const SECOND: usize = 40;

async fn start_services(
    broker: &PrivateBroker,
    url: &str,
    prefix: &str,
    db: &str,
    dir: &std::path::Path,
) -> (RunningIngest, RunningSink) {
    TestTopics::pipeline(&broker.brokers(), prefix, 2).await;
    let ingest = RunningIngest::start(ingest_config(
        &broker.brokers(),
        prefix,
        write_key_file(dir),
    ))
    .await;
    let sink = RunningSink::start(sink_config(&broker.brokers(), url, prefix, db)).await;
    (ingest, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_log_is_read_from_its_start() {
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let dir = scratch_dir("sink-log-replaced");
    let client = clickhouse(&url);
    let mut broker = PrivateBroker::start(BrokerStorage::Memory).await;
    let first_cluster = broker.cluster_id().to_string();

    let (ingest, sink) = start_services(&broker, &url, &prefix, &db, &dir).await;
    let now = SystemTime::now();
    send(&ingest, events(Kind::ParkingSiteCounts, FIRST, 4, now)).await;
    assert_exact_rows(
        &client,
        &db,
        &[(Kind::ParkingSiteCounts, FIRST as u64)],
        Duration::from_secs(60),
    )
    .await;
    sink.shutdown().await.expect("sink stops cleanly");
    ingest.shutdown().await.expect("ingest stops cleanly");

    // The broker restarts empty: the same topics, offsets from 0 again, and
    // fewer messages than the old log held, all at offsets it had stored.
    broker.kill();
    broker.resume().await;
    assert_ne!(broker.cluster_id(), first_cluster);
    let (ingest, sink) = start_services(&broker, &url, &prefix, &db, &dir).await;
    let later = SystemTime::now();
    send(&ingest, events(Kind::ParkingSiteCounts, SECOND, 4, later)).await;
    assert_exact_rows(
        &client,
        &db,
        &[(Kind::ParkingSiteCounts, (FIRST + SECOND) as u64)],
        Duration::from_secs(60),
    )
    .await;

    let per_cluster: Vec<(String, u64)> = client
        .query_raw(&format!(
            "SELECT kafka_cluster, count() FROM {db}.raw_parking_site_counts
             GROUP BY kafka_cluster ORDER BY count() DESC"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        per_cluster,
        vec![
            (first_cluster, FIRST as u64),
            (broker.cluster_id().to_string(), SECOND as u64)
        ]
    );
    // The roll-up fed by the same inserts agrees: nothing skipped, nothing twice.
    settles_to(
        &client,
        "every event once in the parking roll-up",
        &format!("SELECT countMerge(reports) FROM {db}.parking_occupancy_1h"),
        (FIRST + SECOND) as f64,
    )
    .await;

    sink.shutdown().await.expect("sink stops cleanly");
    ingest.shutdown().await.expect("ingest stops cleanly");
}
