//! IngestBatches, the bidirectional stream, through the real ingest and the
//! stack's broker: each batch is answered as soon as it is stored, in order;
//! a stream refused midway has answered every batch it stored (the topics
//! are read to check: nothing is stored that was not answered, ids assigned
//! by ingest included); a cancelled stream is counted as such and leaves
//! stored only what was answered or was in flight.

use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_proto::ingest::v1::{IngestRequest, IngestResponse, Outcome, ReasonCode};
use citybrain_tests::samples;
use citybrain_tests::*;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn events(n: usize, own_ids: bool) -> Vec<Event> {
    let now = SystemTime::now();
    (0..n)
        .map(|_| {
            let mut event = samples::event(Kind::BinReading, now);
            if own_ids {
                event.event_id = uuid::Uuid::now_v7().to_string();
            }
            event
        })
        .collect()
}

fn accepted_ids(response: &IngestResponse) -> Vec<String> {
    response
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Accepted as i32)
        .map(|r| r.event_id.clone())
        .collect()
}

fn stored_ids(brokers: &str, prefix: &str, expected: usize) -> BTreeSet<String> {
    stored_events(brokers, prefix, expected, Duration::from_secs(2))
        .into_iter()
        .map(|record| record.event.expect("event").event_id)
        .collect()
}

#[tokio::test]
async fn each_batch_is_answered_as_soon_as_it_is_stored_in_order() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let ingest = start_ingest(&brokers, &prefix, "ingest-batches").await;
    let mut client = ingest_client(&ingest).await;
    let (requests, outgoing) = mpsc::channel(4);
    let mut answers = client
        .ingest_batches(with_key(ReceiverStream::new(outgoing), FULL_KEY))
        .await
        .expect("the stream opens")
        .into_inner();

    // The first batch is answered while the stream stays open, and what the
    // answer says is already in Kafka.
    let first = events(3, true);
    requests
        .send(IngestRequest {
            events: first.clone(),
        })
        .await
        .unwrap();
    let answer = answers.message().await.unwrap().expect("answer 0");
    assert_eq!((answer.batch, answer.accepted), (0, 3), "{answer:?}");
    let indexes: Vec<u32> = answer.results.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
    let ids: BTreeSet<String> = first.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(stored_ids(&brokers, &prefix, 3), ids);

    // The second: an id accepted in the first (DUPLICATE), an id ingest
    // assigns, an invalid event; indexes count within the batch.
    let mut second = vec![first[0].clone()];
    second.extend(events(1, false));
    let mut invalid = samples::event(Kind::BinReading, SystemTime::now());
    if let Some(Payload::BinReading(bin)) = invalid.payload.as_mut() {
        bin.fill_level = 2.0;
    }
    second.push(invalid);
    requests
        .send(IngestRequest { events: second })
        .await
        .unwrap();
    let answer = answers.message().await.unwrap().expect("answer 1");
    assert_eq!(answer.batch, 1);
    let outcomes: Vec<(u32, i32, i32)> = answer
        .results
        .iter()
        .map(|r| (r.index, r.outcome, r.reason))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                0,
                Outcome::Duplicate as i32,
                ReasonCode::DuplicateEventId as i32
            ),
            (1, Outcome::Accepted as i32, 0),
            (2, Outcome::Rejected as i32, ReasonCode::OutOfRange as i32),
        ]
    );
    let assigned = answer.results[1].event_id.clone();
    assert_eq!(
        uuid::Uuid::parse_str(&assigned).unwrap().get_version_num(),
        7
    );

    drop(requests);
    assert!(
        answers.message().await.expect("ends cleanly").is_none(),
        "the stream ends when the client closes its side"
    );
    let mut expected = ids;
    expected.insert(assigned);
    assert_eq!(stored_ids(&brokers, &prefix, 4), expected);
    let metrics = ingest.admin_get("/metrics").await.body;
    let series = r#"citybrain_ingest_requests_total{method="IngestBatches",code="ok"} 1"#;
    assert!(metrics.contains(series), "{series} in\n{metrics}");
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_refused_midway_has_answered_every_batch_it_stored() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let mut config = ingest_config(
        &brokers,
        &prefix,
        write_key_file(&scratch_dir("ingest-refused")),
    );
    config.limits.max_batch_events = 5;
    config.limits.max_batch_bytes = 16 * 1024;
    config.limits.max_stream_events = 8;
    let ingest = RunningIngest::start(config).await;
    let mut client = ingest_client(&ingest).await;

    // More than 16 KiB in 5 events (refused on the wire, never validated).
    let mut heavy = events(5, true);
    for event in &mut heavy {
        if let Some(Payload::BinReading(bin)) = event.payload.as_mut() {
            bin.village = "v".repeat(4000);
        }
    }
    // Each case: two valid batches (ids assigned by ingest), the request
    // that breaks a limit, then a valid batch with ids of its own.
    let cases = [
        (events(6, true), Code::InvalidArgument, "at most 5 events"),
        (heavy, Code::ResourceExhausted, "at most 16384 bytes"),
        (
            events(3, true),
            Code::ResourceExhausted,
            "at most 8 events are allowed per stream",
        ),
    ];
    let mut answered = BTreeSet::new();
    let mut never_stored = BTreeSet::new();
    for (breaking, code, says) in cases {
        let after = events(2, true);
        never_stored.extend(breaking.iter().map(|e| e.event_id.clone()));
        never_stored.extend(after.iter().map(|e| e.event_id.clone()));
        let stream = tokio_stream::iter(vec![
            IngestRequest {
                events: events(3, false),
            },
            IngestRequest {
                events: events(3, false),
            },
            IngestRequest { events: breaking },
            IngestRequest { events: after },
        ]);
        let mut answers = client
            .ingest_batches(with_key(stream, FULL_KEY))
            .await
            .expect("the stream opens")
            .into_inner();
        for batch in 0..2 {
            let answer = answers.message().await.unwrap().expect("an answer");
            assert_eq!((answer.batch, answer.accepted), (batch, 3), "{answer:?}");
            answered.extend(accepted_ids(&answer));
        }
        let status = answers.message().await.expect_err("then the refusal");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(says), "{}", status.message());
    }

    let stored = stored_ids(&brokers, &prefix, answered.len());
    assert_eq!(
        stored, answered,
        "exactly the answered events are stored, ingest-assigned ids included"
    );
    assert!(stored.is_disjoint(&never_stored));
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_stream_is_counted_and_stores_only_what_was_answered_or_in_flight() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let ingest = start_ingest(&brokers, &prefix, "ingest-cancel").await;
    let mut client = ingest_client(&ingest).await;
    let (requests, outgoing) = mpsc::channel(4);
    let mut answers = client
        .ingest_batches(with_key(ReceiverStream::new(outgoing), FULL_KEY))
        .await
        .expect("the stream opens")
        .into_inner();
    let mut answered = BTreeSet::new();
    for batch in 0..2 {
        requests
            .send(IngestRequest {
                events: events(3, true),
            })
            .await
            .unwrap();
        let answer = answers.message().await.unwrap().expect("an answer");
        assert_eq!((answer.batch, answer.accepted), (batch, 3));
        answered.extend(accepted_ids(&answer));
    }
    // A third batch goes out and the client gives up at once.
    let in_flight = events(3, true);
    let in_flight_ids: BTreeSet<String> = in_flight.iter().map(|e| e.event_id.clone()).collect();
    requests
        .send(IngestRequest { events: in_flight })
        .await
        .unwrap();
    drop(answers);
    let after = events(3, true);
    let after_ids: BTreeSet<String> = after.iter().map(|e| e.event_id.clone()).collect();
    let _ = requests.send(IngestRequest { events: after }).await;
    drop(requests);

    eventually(
        Duration::from_secs(10),
        "the cancelled call counted",
        || async {
            ingest.admin_get("/metrics").await.body.contains(
                r#"citybrain_ingest_requests_total{method="IngestBatches",code="cancelled"} 1"#,
            )
        },
    )
    .await;
    let stored = stored_ids(&brokers, &prefix, answered.len());
    assert!(
        stored.is_superset(&answered),
        "every answered event is stored"
    );
    let unanswered: BTreeSet<String> = stored.difference(&answered).cloned().collect();
    assert!(
        unanswered.is_subset(&in_flight_ids),
        "only the batch in flight at the cancel may be stored unanswered: {unanswered:?}"
    );
    assert!(stored.is_disjoint(&after_ids));

    let answer = client
        .ingest(with_key(
            IngestRequest {
                events: events(1, true),
            },
            FULL_KEY,
        ))
        .await
        .expect("ingest still serves")
        .into_inner();
    assert_eq!(answer.accepted, 1);
    ingest.shutdown().await.unwrap();
}
