//! Crash: the real sink binary is killed with SIGKILL twice in the middle of
//! a steady stream and started again; at the end every event is stored
//! exactly once and the roll-ups count each once.

mod support;

use citybrain_tests::{
    Kind, RunningIngest, eventually, ingest_config, scratch_dir, write_key_file,
};
use std::time::{Duration, SystemTime};
use support::*;

const KINDS: [Kind; 4] = [
    Kind::ConnectorStatus,
    Kind::MeterSample,
    Kind::PatrolCheckIn,
    Kind::ServiceRequest,
];
const PER_KIND: usize = 4_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let _topics = TestTopics::feeds(&brokers, &prefix, 4).await;
    let dir = scratch_dir("sink-crash");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let mut config = sink_config(&brokers, &url, &prefix, &db);
    // Small batches: many INSERTs and commits to be interrupted.
    config.batch.max_rows = 500;
    config.batch.max_age = Duration::from_millis(100);

    let now = SystemTime::now();
    let mut sent = Vec::new();
    for kind in KINDS {
        sent.extend(events(kind, PER_KIND, 16, now));
    }
    // Interleave kinds so every batch spans several raw tables.
    sent.sort_by_key(|e| e.observed_at.as_ref().map(|t| t.seconds));
    let total = sent.len() as u64;

    // A steady stream in the background: small batches with pauses.
    let stream = {
        let endpoint_ingest = ingest;
        tokio::spawn(async move {
            for chunk in sent.chunks(400) {
                send(&endpoint_ingest, chunk.to_vec()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            endpoint_ingest
        })
    };

    let client = clickhouse(&url);
    let stored = || async {
        let mut sum = 0;
        for kind in KINDS {
            // The tables appear with the sink's migration: missing counts 0.
            let sql = format!("SELECT count() FROM {db}.{}", kind.raw_table());
            sum += client.query_raw(&sql).fetch_one::<u64>().await.unwrap_or(0);
        }
        sum
    };
    let mut sink = spawn_sink(&config, &dir, "sink-1");
    for (round, threshold) in [(2, total / 5), (3, total / 2)] {
        eventually(
            Duration::from_secs(90),
            &format!("{threshold} rows before kill {round}"),
            || async {
                // Tables appear with the sink's migration.
                stored().await >= threshold
            },
        )
        .await;
        sink.kill_9();
        eprintln!(
            "killed the sink with {} of {total} rows stored",
            stored().await
        );
        sink = spawn_sink(&config, &dir, &format!("sink-{round}"));
    }

    let ingest = stream.await.expect("stream task");
    let expected: Vec<(Kind, u64)> = KINDS.iter().map(|k| (*k, PER_KIND as u64)).collect();
    assert_exact_rows(&client, &db, &expected, Duration::from_secs(120)).await;
    for res in ["5m", "1h"] {
        settles_to(
            &client,
            &format!("{PER_KIND} check-ins counted in the {res} roll-up"),
            &format!("SELECT sum(check_ins) FROM {db}.patrol_compliance_{res}"),
            PER_KIND as f64,
        )
        .await;
        settles_to(
            &client,
            &format!("{PER_KIND} request transitions in the {res} roll-up"),
            &format!("SELECT sum(transitions) FROM {db}.service_requests_{res}"),
            PER_KIND as f64,
        )
        .await;
    }
    drop(sink);
    ingest.shutdown().await.expect("ingest stop");
}
