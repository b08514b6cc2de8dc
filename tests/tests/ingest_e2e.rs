//! Ingest end to end against the stack's real broker: a vendor's mixed batch
//! is answered exactly per event, and the topics then hold exactly the
//! accepted events, decodable, with the right keys and headers.

use citybrain_proto::events::v1::{Event, IngestedEvent, event::Payload};
use citybrain_proto::feed::SCHEMA_VERSION;
use citybrain_proto::ingest::v1::{
    EventResult, IngestRequest, IngestResponse, Outcome, ReasonCode,
};
use citybrain_proto::record::header as headers;
use citybrain_tests::samples;
use citybrain_tests::*;
use prost::Message as _;
use rdkafka::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};
use tonic::{Code, transport::Channel};

fn id(n: u8) -> String {
    format!("0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d{n:02x}")
}

fn outcome(result: &EventResult) -> (Outcome, ReasonCode, &str) {
    (
        Outcome::try_from(result.outcome).unwrap(),
        ReasonCode::try_from(result.reason).unwrap(),
        result.field.as_str(),
    )
}

/// One valid event of every kind with fixed ids, then four invalid events and
/// a duplicate of the first.
fn mixed_batch(now: SystemTime) -> (Vec<Event>, usize) {
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
    // 10: fill level above 1.
    let mut overfull = samples::event(Kind::BinReading, now);
    if let Some(Payload::BinReading(bin)) = overfull.payload.as_mut() {
        bin.fill_level = 1.5;
    }
    events.push(overfull);
    // 11: counts that do not add up.
    let mut counts = samples::event(Kind::ParkingSiteCounts, now);
    if let Some(Payload::ParkingSiteCounts(site)) = counts.payload.as_mut() {
        site.available = 100;
    }
    events.push(counts);
    // 12: no payload.
    let mut empty = samples::event(Kind::BinReading, now);
    empty.payload = None;
    events.push(empty);
    // 13: an event id that is not a UUID.
    let mut bad_id = samples::event(Kind::VehiclePosition, now);
    bad_id.event_id = "bus-42-at-noon".into();
    events.push(bad_id);
    // 14: the first event again, id in upper case (the same UUID).
    let mut duplicate = events[0].clone();
    duplicate.event_id = id(0).to_uppercase();
    events.push(duplicate);
    (events, valid)
}

#[tokio::test]
async fn a_mixed_batch_is_answered_per_event_and_kafka_holds_exactly_the_accepted() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 2).await;
    let dir = scratch_dir("ingest-e2e");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let mut client = ingest_client(&ingest).await;

    let (events, valid) = mixed_batch(SystemTime::now());
    let response: IngestResponse = client
        .ingest(with_key(
            IngestRequest {
                events: events.clone(),
            },
            FULL_KEY,
        ))
        .await
        .expect("the batch call succeeds")
        .into_inner();

    assert_eq!(response.results.len(), events.len(), "one answer per event");
    for (i, result) in response.results.iter().enumerate() {
        assert_eq!(result.index as usize, i, "answers are in order");
    }
    for result in &response.results[..valid] {
        assert_eq!(
            outcome(result),
            (Outcome::Accepted, ReasonCode::Unspecified, ""),
            "{result:?}"
        );
        assert_eq!(result.event_id, id(result.index as u8));
    }
    let r = &response.results;
    assert_eq!(
        outcome(&r[10]),
        (
            Outcome::Rejected,
            ReasonCode::OutOfRange,
            "bin_reading.fill_level"
        )
    );
    assert!(r[10].message.contains("1.5"), "{}", r[10].message);
    assert_eq!(
        outcome(&r[11]),
        (
            Outcome::Rejected,
            ReasonCode::Inconsistent,
            "parking_site_counts.occupied"
        )
    );
    assert_eq!(
        outcome(&r[12]),
        (Outcome::Rejected, ReasonCode::MissingPayload, "payload")
    );
    assert_eq!(
        outcome(&r[13]),
        (Outcome::Rejected, ReasonCode::InvalidFormat, "event_id")
    );
    assert_eq!(
        r[13].event_id, "bus-42-at-noon",
        "the client's own id is echoed"
    );
    assert_eq!(
        outcome(&r[14]),
        (Outcome::Duplicate, ReasonCode::DuplicateEventId, "event_id")
    );
    assert_eq!(r[14].event_id, id(0), "the duplicate's id is normalised");
    assert!(
        !r[10].event_id.is_empty(),
        "an assigned id is returned even for rejections"
    );
    assert_eq!(
        (
            response.accepted,
            response.duplicates,
            response.rejected,
            response.retryable
        ),
        (valid as u32, 1, 4, 0)
    );

    let messages = read_topics(
        &brokers,
        &feed_topics(&prefix),
        valid,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(
        messages.len(),
        valid,
        "exactly the accepted events are in Kafka"
    );
    let mut seen = BTreeMap::new();
    for message in &messages {
        let record = IngestedEvent::decode(message.payload().expect("payload")).expect("decodes");
        let event = record.event.expect("event");
        let kind = Kind::of(event.payload.as_ref().expect("payload"));
        assert_eq!(
            message.topic(),
            format!("{prefix}{}", kind.feed().topic()),
            "{kind} on its feed's topic"
        );
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        assert_eq!(key, format!("{TENANT}/{}", event.device_id));
        assert_eq!(
            header(message, headers::KIND).as_deref(),
            Some(kind.as_str())
        );
        assert_eq!(
            header(message, headers::SCHEMA).as_deref(),
            Some(SCHEMA_VERSION)
        );
        assert_eq!(header(message, headers::TENANT).as_deref(), Some(TENANT));
        assert_eq!(record.tenant_id, TENANT);
        assert_eq!(record.source_id, "test-suite");
        assert!(record.received_at.is_some());
        let sent = &events[Kind::ALL.iter().position(|k| *k == kind).unwrap()];
        assert_eq!(event.payload, sent.payload, "the payload arrives unchanged");
        seen.insert(event.event_id.clone(), kind);
    }
    let expected: BTreeSet<String> = (0..valid as u8).map(id).collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected);

    let reply = ingest.admin_get("/metrics").await;
    let (status, metrics) = (reply.status, reply.body);
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"citybrain_ingest_events_total{kind="bin_reading",outcome="rejected",reason="out_of_range"} 1"#),
        "rejects are counted by kind and reason:\n{metrics}"
    );
    assert!(metrics.contains("citybrain_ingest_request_duration_seconds_bucket"));
    assert!(metrics.contains("citybrain_ingest_kafka_produce_duration_seconds_bucket"));
    ingest.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_stream_of_batches_is_answered_across_the_whole_stream() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("ingest-stream");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let mut client = ingest_client(&ingest).await;

    let now = SystemTime::now();
    let first: Vec<Event> = (0..3)
        .map(|i| {
            let mut event = samples::event(Kind::VehiclePosition, now);
            event.event_id = id(100 + i);
            event
        })
        .collect();
    let mut second = first[..1].to_vec(); // repeats an id of the first batch
    second.push(samples::event(Kind::BinReading, now)); // id assigned by ingest
    let stream = tokio_stream::iter(vec![
        IngestRequest { events: first },
        IngestRequest { events: second },
    ]);
    let response = client
        .ingest_stream(with_key(stream, FULL_KEY))
        .await
        .expect("stream call succeeds")
        .into_inner();
    let indexes: Vec<u32> = response.results.iter().map(|r| r.index).collect();
    assert_eq!(
        indexes,
        vec![0, 1, 2, 3, 4],
        "indexes count across the stream"
    );
    assert_eq!(outcome(&response.results[3]).0, Outcome::Duplicate);
    assert_eq!(outcome(&response.results[4]).0, Outcome::Accepted);
    let assigned = &response.results[4].event_id;
    assert_eq!(
        uuid::Uuid::parse_str(assigned).unwrap().get_version_num(),
        7,
        "ingest assigns a UUIDv7"
    );
    assert_eq!((response.accepted, response.duplicates), (4, 1));

    let messages = read_topics(
        &brokers,
        &feed_topics(&prefix),
        4,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(messages.len(), 4);
    let ids: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            IngestedEvent::decode(m.payload().unwrap())
                .unwrap()
                .event
                .unwrap()
                .event_id
        })
        .collect();
    assert!(ids.contains(assigned), "the assigned id is the one stored");
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_batches_are_refused_whole_naming_the_limit() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("ingest-limits");
    let mut config = ingest_config(&brokers, &prefix, write_key_file(&dir));
    config.limits.max_batch_events = 20;
    config.limits.max_batch_bytes = 16 * 1024;
    let ingest = RunningIngest::start(config).await;
    let mut client = ingest_client(&ingest).await;
    let now = SystemTime::now();

    let too_many: Vec<Event> = (0..21)
        .map(|_| samples::event(Kind::BinReading, now))
        .collect();
    let status = client
        .ingest(with_key(IngestRequest { events: too_many }, FULL_KEY))
        .await
        .expect_err("21 events exceed the limit of 20");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at most 20 events"),
        "{}",
        status.message()
    );

    let too_big: Vec<Event> = (0..10)
        .map(|_| {
            let mut event = samples::event(Kind::ServiceRequest, now);
            if let Some(Payload::ServiceRequest(request)) = event.payload.as_mut() {
                request.note = "n".repeat(1900);
            }
            event
        })
        .collect();
    let status = client
        .ingest(with_key(IngestRequest { events: too_big }, FULL_KEY))
        .await
        .expect_err("~19 KiB exceed the limit of 16 KiB");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("at most 16384 bytes"),
        "{}",
        status.message()
    );

    let none = read_topics(
        &brokers,
        &feed_topics(&prefix),
        0,
        Duration::from_secs(5),
        Duration::from_secs(1),
    );
    assert!(none.is_empty(), "a refused batch stores nothing");
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let dir = scratch_dir("ingest-health");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let channel = Channel::from_shared(ingest.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let service = "citybrain.ingest.v1.IngestService".to_string();
    eventually(Duration::from_secs(20), "gRPC health SERVING", || {
        let mut health = health.clone();
        let service = service.clone();
        async move {
            health
                .check(HealthCheckRequest { service })
                .await
                .map(|r| r.into_inner().status == ServingStatus::Serving as i32)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(
        health
            .check(HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok()
    );
    let reply = ingest.admin_get("/readyz").await;
    let (status, body) = (reply.status, reply.body);
    assert_eq!((status, body.as_str()), (200, "kafka: ok\n"));
    assert_eq!(ingest.admin_get("/healthz").await.status, 200);

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let Some(Ok(response)) = tokio_stream::StreamExt::next(&mut responses).await else {
        panic!("no reflection response")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&service),
        "grpcurl can discover the ingest service: {names:?}"
    );
    ingest.shutdown().await.unwrap();
}
