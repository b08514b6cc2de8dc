//! `POST /v1/events` end to end against the stack's broker: the gRPC suite's
//! cases (a mixed batch answered per event, duplicates, keys, limits) through
//! JSON, and what only JSON has: bodies that are not JSON or not the
//! contract (400 naming the JSON path, nothing stored), a 5 MB body (413),
//! gzip bodies, and the OpenAPI document.

use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_proto::json::event_json;
use citybrain_tests::samples;
use citybrain_tests::*;
use serde_json::{Value, json};
use std::io::Write;
use std::time::{Duration, SystemTime};

fn id(n: u8) -> String {
    format!("0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6e{n:02x}")
}

fn body(events: &[Event]) -> Vec<u8> {
    json!({ "events": events.iter().map(event_json).collect::<Vec<_>>() })
        .to_string()
        .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// (outcome, reason, field) of one JSON result; absent fields are defaults.
fn outcome(result: &Value) -> (String, String, String) {
    let text = |key: &str, default: &str| result[key].as_str().unwrap_or(default).to_string();
    (
        text("outcome", ""),
        text("reason", "REASON_CODE_UNSPECIFIED"),
        text("field", ""),
    )
}

fn answer(outcome: &str, reason: &str, field: &str) -> (String, String, String) {
    (outcome.into(), reason.into(), field.into())
}

fn error_of(reply: &http::Reply) -> (String, String, String) {
    let json = reply.json();
    let text = |key: &str| json["error"][key].as_str().unwrap_or_default().to_string();
    (text("code"), text("path"), text("message"))
}

#[tokio::test]
async fn a_mixed_json_batch_is_answered_per_event_and_kafka_holds_exactly_the_accepted() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("ingest-http");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let now = SystemTime::now();
    let mut events: Vec<Event> = Kind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut event = samples::event(*kind, now);
            event.event_id = id(i as u8);
            event
        })
        .collect();
    let valid = events.len();
    let mut overfull = samples::event(Kind::BinReading, now);
    if let Some(Payload::BinReading(bin)) = overfull.payload.as_mut() {
        bin.fill_level = 1.5;
    }
    events.push(overfull);
    let mut counts = samples::event(Kind::ParkingSiteCounts, now);
    if let Some(Payload::ParkingSiteCounts(site)) = counts.payload.as_mut() {
        site.available = 100;
    }
    events.push(counts);
    let mut empty = samples::event(Kind::BinReading, now);
    empty.payload = None;
    events.push(empty);
    let mut duplicate = events[0].clone();
    duplicate.event_id = id(0).to_uppercase();
    events.push(duplicate);

    let reply = ingest
        .post_events(&[("x-api-key", FULL_KEY)], &body(&events))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let response = reply.json();
    let results = response["results"].as_array().expect("results");
    assert_eq!(results.len(), events.len(), "one answer per event");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["index"].as_u64().unwrap_or(0), i as u64);
    }
    for result in &results[..valid] {
        assert_eq!(
            outcome(result),
            answer("OUTCOME_ACCEPTED", "REASON_CODE_UNSPECIFIED", "")
        );
    }
    assert_eq!(
        outcome(&results[valid]),
        answer(
            "OUTCOME_REJECTED",
            "REASON_CODE_OUT_OF_RANGE",
            "bin_reading.fill_level"
        )
    );
    assert_eq!(
        outcome(&results[valid + 1]),
        answer(
            "OUTCOME_REJECTED",
            "REASON_CODE_INCONSISTENT",
            "parking_site_counts.occupied"
        )
    );
    assert_eq!(
        outcome(&results[valid + 2]),
        answer("OUTCOME_REJECTED", "REASON_CODE_MISSING_PAYLOAD", "payload")
    );
    assert_eq!(
        outcome(&results[valid + 3]),
        answer(
            "OUTCOME_DUPLICATE",
            "REASON_CODE_DUPLICATE_EVENT_ID",
            "event_id"
        )
    );
    assert_eq!(results[valid + 3]["event_id"], id(0), "normalised");
    assert_eq!(
        (
            response["accepted"].as_u64(),
            response["duplicates"].as_u64(),
            response["rejected"].as_u64()
        ),
        (Some(valid as u64), Some(1), Some(3))
    );
    let stored = stored_events(&brokers, &prefix, valid, Duration::from_secs(2));
    assert_eq!(
        stored.len(),
        valid,
        "exactly the accepted events are in Kafka"
    );
    for record in &stored {
        let event = record.event.as_ref().unwrap();
        let sent = &events[Kind::ALL
            .iter()
            .position(|k| Some(*k) == event.payload.as_ref().map(Kind::of))
            .unwrap()];
        assert_eq!(event.payload, sent.payload, "the payload arrives unchanged");
        assert_eq!(record.tenant_id, TENANT);
    }
    let metrics = ingest.admin_get("/metrics").await.body;
    assert!(
        metrics.contains(r#"citybrain_ingest_requests_total{method="PostEvents",code="ok"}"#),
        "HTTP calls are counted:\n{metrics}"
    );
    ingest.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn keys_limits_and_bodies_that_are_not_the_contract_are_refused_whole() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("ingest-http-refused");
    let mut config = ingest_config(&brokers, &prefix, write_key_file(&dir));
    config.limits.max_batch_events = 20;
    let ingest = RunningIngest::start(config).await;
    let now = SystemTime::now();
    let one = body(&[samples::event(Kind::BinReading, now)]);
    let key = [("x-api-key", FULL_KEY)];

    let reply = ingest.post_events(&[], &one).await;
    assert_eq!(reply.status, 401);
    let (code, _, message) = error_of(&reply);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(message.contains("x-api-key"), "{message}");
    for wrong in ["not-a-key", FULL_KEY.to_uppercase().as_str(), ""] {
        let reply = ingest.post_events(&[("x-api-key", wrong)], &one).await;
        assert_eq!(reply.status, 401, "key {wrong:?}");
    }
    let mixed = body(&[
        samples::event(Kind::ParkingSiteCounts, now),
        samples::event(Kind::BinReading, now),
    ]);
    let reply = ingest
        .post_events(&[("x-api-key", PARKING_ONLY_KEY)], &mixed)
        .await;
    assert_eq!(reply.status, 200);
    let results = reply.json()["results"].clone();
    assert_eq!(outcome(&results[0]).0, "OUTCOME_ACCEPTED");
    assert_eq!(
        outcome(&results[1]),
        answer(
            "OUTCOME_REJECTED",
            "REASON_CODE_KIND_NOT_ALLOWED",
            "bin_reading"
        )
    );

    let too_many: Vec<Event> = (0..21)
        .map(|_| samples::event(Kind::BinReading, now))
        .collect();
    let reply = ingest.post_events(&key, &body(&too_many)).await;
    assert_eq!(reply.status, 400);
    assert!(
        error_of(&reply).2.contains("at most 20 events"),
        "{}",
        reply.body
    );

    let good = event_json(&samples::event(Kind::ParkingSiteCounts, now));
    let mut bad = good.clone();
    bad["parking_site_counts"]["occupied"] = json!("many");
    let wrong_type = json!({ "events": [good.clone(), bad] }).to_string();
    let mut unknown = good.clone();
    unknown["parking_site_counts"]["occupyed"] = json!(3);
    let unknown = json!({ "events": [unknown] }).to_string();
    for (text, code, path, says) in [
        ("{\"events\": [", "INVALID_ARGUMENT", "", "not JSON"),
        ("<xml/>", "INVALID_ARGUMENT", "", "not JSON"),
        ("42", "INVALID_ARGUMENT", "", "not a number"),
        (
            wrong_type.as_str(),
            "INVALID_ARGUMENT",
            "events[1].parking_site_counts.occupied",
            "invalid",
        ),
        (
            unknown.as_str(),
            "INVALID_ARGUMENT",
            "events[0].parking_site_counts",
            "occupyed",
        ),
    ] {
        let reply = ingest.post_events(&key, text.as_bytes()).await;
        assert_eq!(reply.status, 400, "{text}: {}", reply.body);
        let (got_code, got_path, message) = error_of(&reply);
        assert_eq!(
            (got_code.as_str(), got_path.as_str()),
            (code, path),
            "{text}"
        );
        assert!(message.contains(says), "{text}: {message}");
    }

    // 5 MB of otherwise valid JSON: over the 4 MiB limit, refused unread.
    let mut big = good.clone();
    big["parking_site_counts"]["village"] = json!("村".repeat(1_800_000));
    let big = json!({ "events": [big] }).to_string();
    assert!(big.len() > 5_000_000);
    let reply = ingest.post_events(&key, big.as_bytes()).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        error_of(&reply).2.contains("4194304 bytes"),
        "{}",
        reply.body
    );
    // The same, gzipped to a few KiB: refused as it inflates past the limit.
    let packed = gzip(big.as_bytes());
    assert!(packed.len() < 100_000);
    let reply = ingest
        .post_events(
            &[("x-api-key", FULL_KEY), ("content-encoding", "gzip")],
            &packed,
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    let reply = ingest
        .post_events(&[("x-api-key", FULL_KEY), ("content-encoding", "br")], b"x")
        .await;
    assert_eq!(reply.status, 415, "{}", reply.body);

    let stored = stored_events(&brokers, &prefix, 1, Duration::from_secs(2));
    assert_eq!(
        stored.len(),
        1,
        "only the parking vendor's accepted event: {stored:?}"
    );
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn gzip_bodies_are_read_and_the_openapi_document_is_served() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("ingest-http-gzip");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let now = SystemTime::now();
    let events: Vec<Event> = (0..3)
        .map(|_| samples::event(Kind::VehiclePosition, now))
        .collect();
    let reply = ingest
        .post_events(
            &[("x-api-key", FULL_KEY), ("content-encoding", "gzip")],
            &gzip(&body(&events)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["accepted"], 3);
    assert_eq!(
        stored_events(&brokers, &prefix, 3, Duration::from_secs(1)).len(),
        3
    );

    let reply = http::get(ingest.http_addr, "/openapi.json", &[]).await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert!(doc["paths"]["/v1/events"]["post"]["responses"]["413"].is_object());
    ingest.shutdown().await.unwrap();
}
