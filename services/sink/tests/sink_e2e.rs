//! End to end through the ingest service: N events of every kind in, exactly
//! N rows out; the roll-ups and latest-state tables agree with the raw rows
//! and with what was sent; a full replay by a new consumer group adds nothing.

mod support;

use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_tests::{
    Kind, RunningIngest, eventually, ingest_config, scratch_dir, write_key_file,
};
use clickhouse::Client;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use support::*;

const PER_KIND: usize = 300;
const DEVICES: usize = 8;

async fn assert_same(client: &Client, what: &str, rollup: &str, raw: &str) {
    let (a, b) = (number(client, rollup).await, number(client, raw).await);
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        "{what}: roll-up says {a}, raw rows say {b}\n  {rollup}\n  {raw}"
    );
}

fn seconds(event: &Event) -> u32 {
    event.observed_at.as_ref().unwrap().seconds as u32
}

/// The newest value per key, by observed time.
fn latest<T: Clone>(
    events: &[Event],
    pick: impl Fn(&Event) -> Option<(String, T)>,
) -> BTreeMap<String, T> {
    let mut newest: BTreeMap<String, (u32, T)> = BTreeMap::new();
    for event in events {
        if let Some((key, value)) = pick(event) {
            let at = seconds(event);
            if newest.get(&key).is_none_or(|(seen, _)| at >= *seen) {
                newest.insert(key, (at, value));
            }
        }
    }
    newest.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_once_and_the_rollups_agree() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let database = TestDatabase::named(&url, "test_sink");
    let db = database.name.clone();
    let _topics = TestTopics::feeds(&brokers, &prefix, 4).await;
    let _more_topics = TestTopics::create(
        &brokers,
        &[format!(
            "{prefix}{}",
            citybrain_proto::feed::DEAD_LETTER_TOPIC
        )],
        1,
    )
    .await;
    let dir = scratch_dir("sink-e2e");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &db)).await;

    // Events of the last PER_KIND seconds, so the roll-ups span buckets.
    let now = SystemTime::now();
    let mut sent = Vec::new();
    for kind in Kind::ALL {
        sent.extend(events(kind, PER_KIND, DEVICES, now));
    }
    let started = std::time::Instant::now();
    send(&ingest, sent.clone()).await;
    let client = clickhouse(&url);
    let expected: Vec<(Kind, u64)> = Kind::ALL.iter().map(|k| (*k, PER_KIND as u64)).collect();
    assert_exact_rows(&client, &db, &expected, Duration::from_secs(60)).await;
    // The roll-ups below are written by the same INSERTs, after the raw parts.
    let total = sent.len() as u64;
    eventually(
        Duration::from_secs(30),
        "the sink's INSERTs to return",
        || {
            let sink = &sink;
            async move { sink.rows_inserted().await >= total }
        },
    )
    .await;
    eprintln!(
        "{} events visible in ClickHouse {:?} after the first was sent",
        sent.len(),
        started.elapsed()
    );

    for res in ["5m", "1h"] {
        assert_same(
            &client,
            "sessions ended",
            &format!("SELECT sum(sessions_ended) FROM {db}.charging_energy_{res}"),
            &format!("SELECT countIf(phase = 'ended') FROM {db}.raw_charging_session"),
        )
        .await;
        assert_same(
            &client,
            "sessions started",
            &format!("SELECT sum(sessions_started) FROM {db}.charging_energy_{res}"),
            &format!("SELECT countIf(phase = 'started') FROM {db}.raw_charging_session"),
        )
        .await;
        assert_same(
            &client,
            "energy",
            &format!("SELECT sum(energy_kwh) FROM {db}.charging_energy_{res}"),
            &format!("SELECT sumIf(ifNull(energy_kwh, 0), phase = 'ended') FROM {db}.raw_charging_session"),
        )
        .await;
        assert_same(
            &client,
            "parking reports",
            &format!("SELECT countMerge(reports) FROM {db}.parking_occupancy_{res}"),
            &format!("SELECT count() FROM {db}.raw_parking_site_counts"),
        )
        .await;
        assert_same(
            &client,
            "parking average",
            &format!("SELECT avgMerge(occupied_avg) FROM {db}.parking_occupancy_{res}"),
            &format!("SELECT avg(occupied) FROM {db}.raw_parking_site_counts"),
        )
        .await;
        assert_same(
            &client,
            "parking peak",
            &format!("SELECT maxMerge(occupied_max) FROM {db}.parking_occupancy_{res}"),
            &format!("SELECT max(occupied) FROM {db}.raw_parking_site_counts"),
        )
        .await;
        assert_same(
            &client,
            "vehicle positions",
            &format!("SELECT countMerge(positions) FROM {db}.vehicle_movement_{res}"),
            &format!("SELECT count() FROM {db}.raw_vehicle_position"),
        )
        .await;
        assert_same(
            &client,
            "odometer",
            &format!("SELECT maxIfMerge(odometer_max) FROM {db}.vehicle_movement_{res}"),
            &format!("SELECT max(odometer_km) FROM {db}.raw_vehicle_position"),
        )
        .await;
        assert_same(
            &client,
            "check-ins",
            &format!("SELECT sum(check_ins) FROM {db}.patrol_compliance_{res}"),
            &format!("SELECT count() FROM {db}.raw_patrol_check_in"),
        )
        .await;
        assert_same(
            &client,
            "correctly sorted classes",
            &format!("SELECT sum(classes_correct) FROM {db}.patrol_compliance_{res}"),
            &format!(
                "SELECT sum(arrayCount(r -> r = 'correct', compliance_result)) FROM {db}.raw_patrol_check_in"
            ),
        )
        .await;
        assert_same(
            &client,
            "requests opened",
            &format!("SELECT sum(opened) FROM {db}.service_requests_{res}"),
            &format!("SELECT countIf(transition = 'created') FROM {db}.raw_service_request"),
        )
        .await;
        assert_same(
            &client,
            "requests resolved",
            &format!("SELECT sum(resolved) FROM {db}.service_requests_{res}"),
            &format!("SELECT countIf(transition = 'resolved') FROM {db}.raw_service_request"),
        )
        .await;
        assert_same(
            &client,
            "request transitions",
            &format!("SELECT sum(transitions) FROM {db}.service_requests_{res}"),
            &format!("SELECT count() FROM {db}.raw_service_request"),
        )
        .await;
    }

    // Latest state against the newest event of each thing.
    let connectors: BTreeMap<String, String> = client
        .query_raw(&format!(
            "SELECT device_id, status FROM {db}.connector_status_latest FINAL"
        ))
        .fetch_all::<(String, String)>()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected_connectors = latest(&sent, |e| match &e.payload {
        Some(Payload::ConnectorStatus(p)) => Some((
            e.device_id.clone(),
            citybrain_proto::events::v1::ConnectorStatusValue::try_from(p.status)
                .unwrap()
                .as_str_name()
                .trim_start_matches("CONNECTOR_STATUS_VALUE_")
                .to_ascii_lowercase(),
        )),
        _ => None,
    });
    assert_eq!(connectors, expected_connectors);
    let lots: BTreeMap<String, u32> = client
        .query_raw(&format!(
            "SELECT site_id, occupied FROM {db}.parking_site_latest FINAL"
        ))
        .fetch_all::<(String, u32)>()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected_lots = latest(&sent, |e| match &e.payload {
        Some(Payload::ParkingSiteCounts(p)) => Some((p.site_id.clone(), p.occupied)),
        _ => None,
    });
    assert_eq!(lots, expected_lots);
    let vehicles: BTreeMap<String, f64> = client
        .query_raw(&format!(
            "SELECT vehicle_id, speed_kmh FROM {db}.vehicle_latest FINAL"
        ))
        .fetch_all::<(String, f64)>()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected_vehicles = latest(&sent, |e| match &e.payload {
        Some(Payload::VehiclePosition(p)) => Some((p.vehicle_id.clone(), p.speed_kmh)),
        _ => None,
    });
    assert_eq!(vehicles, expected_vehicles);
    let bins: BTreeMap<String, f64> = client
        .query_raw(&format!(
            "SELECT bin_id, fill_level FROM {db}.bin_latest FINAL"
        ))
        .fetch_all::<(String, f64)>()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected_bins = latest(&sent, |e| match &e.payload {
        Some(Payload::BinReading(p)) => Some((p.bin_id.clone(), p.fill_level)),
        _ => None,
    });
    assert_eq!(bins, expected_bins);

    // Freshness and the admin port.
    let reply = sink.admin_get("/readyz").await;
    let (status, body) = (reply.status, reply.body);
    assert_eq!(status, 200, "{body}");
    let metrics = sink.admin_get("/metrics").await.body;
    assert!(
        metrics.contains(&format!(
            "citybrain_sink_rows_inserted_total{{table=\"raw_bin_reading\"}} {PER_KIND}"
        )),
        "{metrics}"
    );
    // Histogram or summary: in this process ingest may have installed the
    // shared recorder first, with its own buckets.
    assert!(
        metrics.contains("citybrain_sink_freshness_seconds_count{kind=\"bin_reading\"}"),
        "{metrics}"
    );
    sink.shutdown().await.expect("graceful stop");

    // A new group replays every topic from offset 0: the lineage says all of
    // it is stored, so nothing is inserted again.
    let mut replay = sink_config(&brokers, &url, &prefix, &db);
    replay.group.group_id = format!("{prefix}replay");
    let replay = RunningSink::start(replay).await;
    let total = (PER_KIND * Kind::ALL.len()) as u64;
    eventually(
        Duration::from_secs(60),
        "the replay to skip every message",
        || async {
            let metrics = replay.admin_get("/metrics").await.body;
            skipped(&metrics) >= total
        },
    )
    .await;
    for (kind, n) in &expected {
        let table = kind.raw_table();
        assert_eq!(
            rows(&client, &db, table).await,
            *n,
            "rows in {table} after the replay"
        );
    }
    assert_same(
        &client,
        "check-ins after the replay",
        &format!("SELECT sum(check_ins) FROM {db}.patrol_compliance_5m"),
        &format!("SELECT count() FROM {db}.raw_patrol_check_in"),
    )
    .await;
    replay.shutdown().await.expect("graceful stop");
    ingest.shutdown().await.expect("ingest stop");
}

fn skipped(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|line| {
            line.starts_with("citybrain_sink_messages_skipped_total{reason=\"already_stored\"}")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}
