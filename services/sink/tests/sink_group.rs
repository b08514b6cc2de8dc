//! Two sinks in one consumer group split the partitions; one is stopped in
//! the middle of a stream and the other takes over its partitions. Every
//! event lands exactly once.

mod support;

use citybrain_tests::{
    Kind, RunningIngest, eventually, ingest_config, scratch_dir, write_key_file,
};
use std::time::{Duration, SystemTime};
use support::*;

const KINDS: [Kind; 3] = [
    Kind::ConnectorStatus,
    Kind::ChargingSession,
    Kind::WasteCollection,
];
const PER_KIND: usize = 3_000;

/// Partitions held per member, from the gauge labelled by instance.
fn members_with_partitions(metrics: &str) -> Vec<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with("citybrain_sink_assigned_partitions{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .filter(|count: &f64| *count > 0.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_share_the_work_and_one_stopping_loses_nothing() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let _topics = TestTopics::feeds(&brokers, &prefix, 4).await;
    let dir = scratch_dir("sink-group");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let config = sink_config(&brokers, &url, &prefix, &db);
    let first = RunningSink::start(config.clone()).await;
    let second = RunningSink::start(config).await;
    let client = clickhouse(&url);

    let now = SystemTime::now();
    let mut sent = Vec::new();
    for kind in KINDS {
        sent.extend(events(kind, PER_KIND, 16, now));
    }
    sent.sort_by_key(|e| e.observed_at.as_ref().map(|t| t.seconds));
    let (before, after) = sent.split_at(sent.len() / 2);

    // Both members run in this process and share one metrics registry:
    // two instances each holding partitions means the group split them.
    eventually(
        Duration::from_secs(60),
        "both members to hold partitions",
        || async { members_with_partitions(&first.admin_get("/metrics").await.body).len() == 2 },
    )
    .await;
    send(&ingest, before.to_vec()).await;
    eventually(Duration::from_secs(60), "rows to flow", || async {
        number(
            &client,
            &format!("SELECT count() FROM {db}.raw_charging_session"),
        )
        .await
            > 0.0
    })
    .await;

    first
        .shutdown()
        .await
        .expect("the first sink stops gracefully");
    send(&ingest, after.to_vec()).await;
    let expected: Vec<(Kind, u64)> = KINDS.iter().map(|k| (*k, PER_KIND as u64)).collect();
    assert_exact_rows(&client, &db, &expected, Duration::from_secs(120)).await;
    for res in ["5m", "1h"] {
        let sessions = number(
            &client,
            &format!(
                "SELECT sum(sessions_started) + sum(sessions_ended) FROM {db}.charging_energy_{res}"
            ),
        )
        .await;
        assert_eq!(sessions as usize, PER_KIND, "sessions in the {res} roll-up");
    }

    second.shutdown().await.expect("graceful stop");
    ingest.shutdown().await.expect("ingest stop");
}
