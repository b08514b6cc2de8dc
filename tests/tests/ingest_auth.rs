//! Who may send what: calls without a valid key are refused whole; an event
//! of a kind the key may not send is rejected while the rest of the batch
//! proceeds.

use citybrain_proto::ingest::v1::{
    IngestRequest, Outcome, ReasonCode, ingest_service_client::IngestServiceClient,
};
use citybrain_tests::samples;
use citybrain_tests::*;
use std::time::{Duration, SystemTime};
use tonic::{Code, Request};

#[tokio::test]
async fn keys_decide_who_may_send_which_kinds() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("ingest-auth");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let mut client = IngestServiceClient::connect(ingest.endpoint())
        .await
        .unwrap();
    let now = SystemTime::now();
    let batch = || IngestRequest {
        events: vec![
            samples::event(Kind::ParkingSiteCounts, now),
            samples::event(Kind::BinReading, now),
            samples::event(Kind::ParkingSpotStatus, now),
        ],
    };

    let status = client
        .ingest(Request::new(batch()))
        .await
        .expect_err("no key");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("x-api-key"),
        "says where the key goes: {}",
        status.message()
    );

    for wrong in ["not-a-key", FULL_KEY.to_uppercase().as_str(), ""] {
        let mut request = Request::new(batch());
        request
            .metadata_mut()
            .insert("x-api-key", wrong.parse().unwrap());
        let status = client.ingest(request).await.expect_err("wrong key");
        assert_eq!(status.code(), Code::Unauthenticated, "key {wrong:?}");
    }

    let mut request = Request::new(tokio_stream::iter(vec![batch()]));
    request
        .metadata_mut()
        .insert("x-api-key", "not-a-key".parse().unwrap());
    let status = client
        .ingest_stream(request)
        .await
        .expect_err("streams check keys too");
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut request = Request::new(batch());
    request
        .metadata_mut()
        .insert("x-api-key", PARKING_ONLY_KEY.parse().unwrap());
    let response = client
        .ingest(request)
        .await
        .expect("parking vendor's call")
        .into_inner();
    let outcomes: Vec<(Outcome, ReasonCode)> = response
        .results
        .iter()
        .map(|r| {
            (
                Outcome::try_from(r.outcome).unwrap(),
                ReasonCode::try_from(r.reason).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Outcome::Accepted, ReasonCode::Unspecified),
            (Outcome::Rejected, ReasonCode::KindNotAllowed),
            (Outcome::Accepted, ReasonCode::Unspecified),
        ]
    );
    assert_eq!(response.results[1].field, "bin_reading");
    assert!(
        response.results[1]
            .message
            .contains("may not send bin_reading")
    );

    let topics: Vec<String> = Feed::ALL
        .iter()
        .map(|f| format!("{prefix}{}", f.topic()))
        .collect();
    let messages = read_topics(
        &brokers,
        &topics,
        2,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(messages.len(), 2, "only the two parking events were stored");
    for message in &messages {
        assert_eq!(header(message, "tenant").as_deref(), Some(TENANT));
        assert_eq!(
            rdkafka::Message::topic(message),
            format!("{prefix}{}", Feed::Parking.topic())
        );
    }
    ingest.shutdown().await.unwrap();
}
