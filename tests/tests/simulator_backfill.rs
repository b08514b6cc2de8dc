//! The simulator end to end: a two-hour backfill of a small town goes
//! through a real in-process ingest into the stack's broker; ingest accepts
//! every event (a correct simulator produces no rejections) and the feed
//! topics then hold exactly those events, once each.

use citybrain_proto::events::v1::IngestedEvent;
use citybrain_simulator::clock::{self, HOUR, MINUTE};
use citybrain_simulator::{Mode, Plan, SimulatorConfig, Town, TownConfig};
use citybrain_tests::*;
use prost::Message as _;
use rdkafka::Message as _;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_backfill_is_accepted_in_full_and_lands_in_kafka_once() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 2).await;
    let dir = scratch_dir("simulator");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;

    let now = clock::from_system(SystemTime::now());
    let origin = now - 3 * HOUR;
    let plan = Plan {
        origin,
        send_from: origin,
        until: Some(origin + 2 * HOUR),
        paced: false,
    };
    let mut config = SimulatorConfig::new(Mode::Backfill);
    config.ingest_url = ingest.endpoint();
    config.api_key = FULL_KEY.into();
    config.scale = 0.5;
    config.seed = 11;
    config.batch_size = 300;
    config.progress = false;

    // What the model produces for that window, computed without any I/O.
    let expected: Vec<String> = Town::new(TownConfig {
        seed: config.seed,
        origin,
        scale: config.scale,
    })
    .take_while(|e| clock::from_timestamp(e.observed_at.as_ref().unwrap()) < origin + 2 * HOUR)
    .map(|e| e.event_id)
    .collect();
    assert!(
        expected.len() > 1_000,
        "{} events in two hours",
        expected.len()
    );

    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        citybrain_simulator::run_plan(&config, plan, std::future::pending()),
    )
    .await
    .expect("the backfill finishes")
    .expect("the backfill succeeds");
    assert_eq!(summary.rejected, 0, "{summary:?}");
    assert_eq!(summary.sent, expected.len() as u64, "{summary:?}");
    assert_eq!(summary.accepted, expected.len() as u64, "{summary:?}");
    assert_eq!(summary.duplicates, 0);
    assert!(summary.reached >= origin + 2 * HOUR - 10 * MINUTE);

    let topics: Vec<String> = Feed::ALL
        .iter()
        .map(|feed| format!("{prefix}{}", feed.topic()))
        .collect();
    let messages = tokio::task::spawn_blocking({
        let (brokers, topics, n) = (brokers.clone(), topics.clone(), expected.len());
        move || {
            read_topics(
                &brokers,
                &topics,
                n,
                Duration::from_secs(60),
                Duration::from_secs(2),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(
        messages.len(),
        expected.len(),
        "the topics hold each event once"
    );
    let stored: HashSet<String> = messages
        .iter()
        .map(|m| {
            let record = IngestedEvent::decode(m.payload().expect("payload")).expect("decodes");
            assert_eq!(record.tenant_id, TENANT);
            record.event.expect("event").event_id
        })
        .collect();
    let expected: HashSet<String> = expected.into_iter().collect();
    assert_eq!(stored, expected, "exactly the simulated events, by id");

    ingest.shutdown().await.expect("ingest stops cleanly");
}
