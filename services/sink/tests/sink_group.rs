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

fn assigned(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with("citybrain_sink_assigned_partitions"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_share_the_work_and_one_stopping_loses_nothing() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let db = fresh_database();
    create_feed_topics(&brokers, &prefix, 4).await;
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

    send(&ingest, before.to_vec()).await;
    // Wait until both members hold partitions (the group has rebalanced)
    // and rows are flowing.
    eventually(
        Duration::from_secs(60),
        "rows from both members",
        || async {
            let rows_in = number(
                &client,
                &format!("SELECT count() FROM {db}.raw_charging_session"),
            )
            .await;
            rows_in > 0.0
        },
    )
    .await;
    let total_partitions = (citybrain_tests::Feed::ALL.len() * 4) as f64;
    eventually(
        Duration::from_secs(60),
        "the partitions to be split",
        || async {
            let a = assigned(&first.admin_get("/metrics").await.1);
            let b = assigned(&second.admin_get("/metrics").await.1);
            // Both run in this process and share one metrics registry, so the
            // gauge is whichever member wrote last: less than all means split.
            a > 0.0 && a < total_partitions && b > 0.0 && b < total_partitions
        },
    )
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
    citybrain_schema::drop_database(&client, &db).await.unwrap();
}
