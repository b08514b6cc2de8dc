//! Outage: ClickHouse stops in the middle of a stream and starts again. The
//! sink reports not ready meanwhile, keeps its memory bounded (consumption
//! paused), recovers by itself, and every event lands exactly once.

mod support;

use citybrain_tests::{
    Kind, RunningIngest, eventually, ingest_config, scratch_dir, write_key_file,
};
use std::time::{Duration, SystemTime};
use support::*;

const KINDS: [Kind; 3] = [
    Kind::ParkingSiteCounts,
    Kind::VehiclePosition,
    Kind::BinReading,
];
const PER_KIND: usize = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_pauses_and_recovers_without_loss() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let mut server = PrivateClickHouse::start().await;
    let url = server.url();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let _topics = TestTopics::feeds(&brokers, &prefix, 2).await;
    let dir = scratch_dir("sink-outage");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &db)).await;
    let client = clickhouse(&url);

    let now = SystemTime::now();
    let mut sent = Vec::new();
    for kind in KINDS {
        sent.extend(events(kind, PER_KIND, 6, now));
    }
    sent.sort_by_key(|e| e.observed_at.as_ref().map(|t| t.seconds));
    let (first, rest) = sent.split_at(sent.len() / 3);
    let (during, after) = rest.split_at(rest.len() / 2);

    send(&ingest, first.to_vec()).await;
    eventually(
        Duration::from_secs(60),
        "the first third to land",
        || async {
            let mut sum = 0;
            for kind in KINDS {
                sum += number(
                    &client,
                    &format!("SELECT count() FROM {db}.{}", kind.raw_table()),
                )
                .await as usize;
            }
            sum == first.len()
        },
    )
    .await;

    server.stop();
    send(&ingest, during.to_vec()).await;
    eventually(
        Duration::from_secs(30),
        "the sink to report not ready",
        || async {
            let reply = sink.admin_get("/readyz").await;
            let (status, body) = (reply.status, reply.body);
            status == 503 && body.contains("clickhouse: not ready")
        },
    )
    .await;
    let metrics = sink.admin_get("/metrics").await.body;
    assert!(
        metrics.contains("citybrain_sink_clickhouse_up 0"),
        "{metrics}"
    );

    server.resume().await;
    send(&ingest, after.to_vec()).await;
    let expected: Vec<(Kind, u64)> = KINDS.iter().map(|k| (*k, PER_KIND as u64)).collect();
    assert_exact_rows(&client, &db, &expected, Duration::from_secs(90)).await;
    eventually(
        Duration::from_secs(30),
        "the sink to report ready again",
        || async { sink.admin_get("/readyz").await.status == 200 },
    )
    .await;
    for res in ["5m", "1h"] {
        settles_to(
            &client,
            &format!("{PER_KIND} parking reports in the {res} roll-up"),
            &format!("SELECT countMerge(reports) FROM {db}.parking_occupancy_{res}"),
            PER_KIND as f64,
        )
        .await;
        settles_to(
            &client,
            &format!("{PER_KIND} positions in the {res} roll-up"),
            &format!("SELECT countMerge(positions) FROM {db}.vehicle_movement_{res}"),
            PER_KIND as f64,
        )
        .await;
    }

    sink.shutdown().await.expect("graceful stop");
    ingest.shutdown().await.expect("ingest stop");
}
