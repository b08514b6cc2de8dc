//! The identifier rule and the related-time rules, through the real ingest
//! over gRPC and the stack's broker: Chinese names are identifiers and reach
//! Kafka unchanged (in the record key too); control characters, emoji and
//! bidirectional overrides are refused naming the field; every pair of times
//! the contract relates is checked against observed_at. Kafka then holds
//! exactly the accepted events.

use citybrain_proto::events::v1::{self as ev, Event, event::Payload};
use citybrain_proto::ingest::v1::{IngestRequest, Outcome, ReasonCode};
use citybrain_tests::samples;
use citybrain_tests::*;
use prost::Message as _;
use rdkafka::Message as _;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// `now` moved by `offset` seconds.
fn moved(now: SystemTime, offset: i64) -> SystemTime {
    if offset >= 0 {
        now + Duration::from_secs(offset as u64)
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    }
}

fn event(kind: Kind, now: SystemTime, change: impl FnOnce(&mut Event)) -> Event {
    let mut event = samples::event(kind, now);
    event.event_id = uuid::Uuid::now_v7().to_string();
    change(&mut event);
    event
}

fn session(now: SystemTime, change: impl FnOnce(&mut ev::ChargingSession)) -> Event {
    event(Kind::ChargingSession, now, |e| {
        if let Some(Payload::ChargingSession(p)) = e.payload.as_mut() {
            change(p);
        }
    })
}

fn request(now: SystemTime, expected_by: i64) -> Event {
    event(Kind::ServiceRequest, now, |e| {
        if let Some(Payload::ServiceRequest(p)) = e.payload.as_mut() {
            p.expected_by = Some(samples::timestamp(moved(now, expected_by)));
        }
    })
}

#[tokio::test]
async fn identifiers_and_related_times_are_checked_over_grpc() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let ingest = start_ingest(&brokers, &prefix, "ingest-identifiers").await;
    let mut client = ingest_client(&ingest).await;
    let now = SystemTime::now();
    let accepted = (Outcome::Accepted, ReasonCode::Unspecified, "");
    let invalid = |field| (Outcome::Rejected, ReasonCode::InvalidFormat, field);
    let inconsistent = |field| (Outcome::Rejected, ReasonCode::Inconsistent, field);
    let cases: Vec<(Event, (Outcome, ReasonCode, &str))> = vec![
        (
            event(Kind::ConnectorStatus, now, |e| {
                e.device_id = "后北营家园-3号桩:1".into();
                if let Some(Payload::ConnectorStatus(p)) = e.payload.as_mut() {
                    p.station_id = "后北营家园-3号桩".into();
                }
            }),
            accepted,
        ),
        (
            event(Kind::VehiclePosition, now, |e| {
                e.device_id = "京A·V0002".into()
            }),
            accepted,
        ),
        (
            event(Kind::BinReading, now, |e| e.device_id = "BIN\n44".into()),
            invalid("device_id"),
        ),
        (
            event(Kind::BinReading, now, |e| e.device_id = "BIN🚮44".into()),
            invalid("device_id"),
        ),
        (
            event(Kind::BinReading, now, |e| {
                e.device_id = "BIN-\u{202e}44".into()
            }),
            invalid("device_id"),
        ),
        (
            event(Kind::ConnectorStatus, now, |e| {
                if let Some(Payload::ConnectorStatus(p)) = e.payload.as_mut() {
                    p.station_id = "HBY\tCP-03".into();
                }
            }),
            invalid("connector_status.station_id"),
        ),
        (
            event(Kind::ParkingSiteCounts, now, |e| {
                if let Some(Payload::ParkingSiteCounts(p)) = e.payload.as_mut() {
                    p.village = "武疃村\u{3000}".into();
                }
            }),
            invalid("parking_site_counts.village"),
        ),
        // Related times. The sample session lasted 3 h.
        (
            session(now, |p| {
                p.started_at = Some(samples::timestamp(moved(now, -3 * 3600)))
            }),
            accepted,
        ),
        (
            session(now, |p| {
                p.started_at = Some(samples::timestamp(moved(now, 60)))
            }),
            inconsistent("charging_session.started_at"),
        ),
        (
            session(now, |p| {
                p.started_at = Some(samples::timestamp(moved(now, -3600)))
            }),
            inconsistent("charging_session.duration_s"),
        ),
        (
            event(Kind::BinReading, now, |e| {
                if let Some(Payload::BinReading(p)) = e.payload.as_mut() {
                    p.last_emptied_at = Some(samples::timestamp(moved(now, 120)));
                }
            }),
            inconsistent("bin_reading.last_emptied_at"),
        ),
        (request(now, 48 * 3600), accepted),
        (
            request(now, -60),
            inconsistent("service_request.expected_by"),
        ),
    ];
    let events: Vec<Event> = cases.iter().map(|(e, _)| e.clone()).collect();
    let response = client
        .ingest(with_key(
            IngestRequest {
                events: events.clone(),
            },
            FULL_KEY,
        ))
        .await
        .expect("the call succeeds")
        .into_inner();
    for ((event, expected), result) in cases.iter().zip(&response.results) {
        let got = (
            Outcome::try_from(result.outcome).unwrap(),
            ReasonCode::try_from(result.reason).unwrap(),
            result.field.as_str(),
        );
        assert_eq!(got, *expected, "{:?}: {}", event.device_id, result.message);
        if expected.1 != ReasonCode::Unspecified {
            let named = expected.2.rsplit('.').next().unwrap();
            assert!(result.message.contains(named), "{}", result.message);
        }
    }

    let wanted: BTreeMap<String, &Event> = cases
        .iter()
        .filter(|(_, expected)| expected.0 == Outcome::Accepted)
        .map(|(event, _)| (event.event_id.clone(), event))
        .collect();
    let messages = read_topics(
        &brokers,
        &feed_topics(&prefix),
        wanted.len(),
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(
        messages.len(),
        wanted.len(),
        "exactly the accepted are stored"
    );
    for message in &messages {
        let record = ev::IngestedEvent::decode(message.payload().unwrap()).unwrap();
        let stored = record.event.unwrap();
        let sent = wanted[&stored.event_id];
        assert_eq!(
            stored.device_id, sent.device_id,
            "identifiers arrive unchanged"
        );
        assert_eq!(stored.payload, sent.payload);
        assert_eq!(
            message.key().unwrap(),
            format!("{TENANT}/{}", sent.device_id).as_bytes(),
            "the record key carries the device id as UTF-8"
        );
    }
    ingest.shutdown().await.unwrap();
}
