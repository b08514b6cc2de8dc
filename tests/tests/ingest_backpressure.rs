//! When Kafka is gone, ingest answers "retry later" within its deadline and
//! stays up; when Kafka is back, the same client succeeds with the same ids.
//! Runs against a private broker that the test kills and restarts.
//!
//! The outage test uses Tansu's memory storage: with its sqlite storage, Tansu
//! 0.6.0 panics ("more or less than one row" in `idempotent_message_check`)
//! when an idempotent producer resumes after a restart, and that partition
//! then refuses every producer. A memory broker restarts empty, so the test
//! recreates the topics, as an operator would after losing a broker's disk.

use citybrain_proto::events::v1::Event;
use citybrain_proto::ingest::v1::{
    IngestRequest, IngestResponse, ingest_service_client::IngestServiceClient,
};
use citybrain_tests::samples;
use citybrain_tests::*;
use std::time::{Duration, Instant, SystemTime};
use tonic::{Code, Request, Status, transport::Channel};

async fn send(
    client: &mut IngestServiceClient<Channel>,
    events: &[Event],
) -> Result<IngestResponse, Status> {
    let mut request = Request::new(IngestRequest {
        events: events.to_vec(),
    });
    request
        .metadata_mut()
        .insert("x-api-key", FULL_KEY.parse().unwrap());
    request.set_timeout(Duration::from_secs(15));
    client.ingest(request).await.map(|r| r.into_inner())
}

fn batch(n: usize) -> Vec<Event> {
    let now = SystemTime::now();
    (0..n)
        .map(|_| {
            let mut event = samples::event(Kind::ConnectorStatus, now);
            event.event_id = uuid::Uuid::now_v7().to_string();
            event
        })
        .collect()
}

#[tokio::test]
async fn broker_outage_gives_unavailable_then_recovers() {
    let mut broker = PrivateBroker::start(BrokerStorage::Memory).await;
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&broker.brokers(), &prefix, 1).await;
    let dir = scratch_dir("ingest-outage");
    let mut config = ingest_config(&broker.brokers(), &prefix, write_key_file(&dir));
    config.producer.settings.delivery_timeout = Duration::from_secs(3);
    let delivery_timeout = config.producer.settings.delivery_timeout;
    let ingest = RunningIngest::start(config).await;
    let mut client = IngestServiceClient::connect(ingest.endpoint())
        .await
        .unwrap();

    let before = batch(5);
    let response = send(&mut client, &before)
        .await
        .expect("broker up: accepted");
    assert_eq!(response.accepted, 5);

    broker.kill();
    let during = batch(5);
    let started = Instant::now();
    let status = send(&mut client, &during)
        .await
        .expect_err("broker down: refused");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retry"), "{}", status.message());
    assert!(
        took < delivery_timeout + Duration::from_secs(5),
        "answered within the delivery deadline ({took:?})"
    );
    assert!(ingest.is_running(), "the service stays up");
    assert_eq!(ingest.admin_get("/healthz").await.status, 200, "alive");
    eventually(
        Duration::from_secs(20),
        "/readyz to report kafka down",
        || async { ingest.admin_get("/readyz").await.status == 503 },
    )
    .await;

    broker.resume().await;
    let _topics = TestTopics::feeds(&broker.brokers(), &prefix, 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        match send(&mut client, &during).await {
            Ok(response) if response.accepted == 5 => break response,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no recovery within 60 s: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(response.rejected, 0);
    eventually(
        Duration::from_secs(20),
        "/readyz to report kafka back",
        || async { ingest.admin_get("/readyz").await.status == 200 },
    )
    .await;

    let topic = format!("{prefix}{}", Feed::EvCharging.topic());
    let messages = read_topics(
        &broker.brokers(),
        &[topic],
        5,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    let stored: std::collections::BTreeSet<String> = messages
        .iter()
        .map(|m| {
            let record: citybrain_proto::events::v1::IngestedEvent =
                prost::Message::decode(rdkafka::Message::payload(m).unwrap()).unwrap();
            record.event.unwrap().event_id
        })
        .collect();
    // `before` went down with the memory broker; `during` was acknowledged by
    // the restarted one.
    for event in &during {
        assert!(
            stored.contains(&event.event_id),
            "{} was acknowledged, so it is stored",
            event.event_id
        );
    }
    ingest.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_producer_queue_answers_resource_exhausted_and_stays_up() {
    let mut broker = PrivateBroker::start(BrokerStorage::Sqlite).await;
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&broker.brokers(), &prefix, 1).await;
    let dir = scratch_dir("ingest-overload");
    let mut config = ingest_config(&broker.brokers(), &prefix, write_key_file(&dir));
    config.producer.settings.delivery_timeout = Duration::from_secs(3);
    config.producer.settings.queue_max_messages = 10;
    let ingest = RunningIngest::start(config).await;
    let mut client = IngestServiceClient::connect(ingest.endpoint())
        .await
        .unwrap();
    // Warm the producer up so that the only limit hit is the queue.
    assert_eq!(send(&mut client, &batch(1)).await.unwrap().accepted, 1);

    broker.kill();
    let status = send(&mut client, &batch(50))
        .await
        .expect_err("queue of 10 cannot take 50");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(ingest.is_running());
    let metrics = ingest.admin_get("/metrics").await.body;
    assert!(
        metrics.contains(r#"outcome="retryable",reason="overloaded""#),
        "overload is visible in metrics"
    );
    ingest.shutdown().await.unwrap();
}
