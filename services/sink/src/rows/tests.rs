use super::*;
use citybrain_proto::events::v1::{Event, IngestedEvent};
use citybrain_samples as samples;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn lineage() -> Lineage {
    Lineage {
        cluster: "lucheng-dev".into(),
        topic: "citybrain.ev_charging.v1".into(),
        partition: 3,
        offset: 42,
    }
}

fn ingested(event: Event) -> Vec<u8> {
    let at = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    IngestedEvent {
        event: Some(Event {
            event_id: "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21".into(),
            ..event
        }),
        tenant_id: "lucheng".into(),
        source_id: "vendor-a".into(),
        received_at: Some(samples::timestamp(at)),
    }
    .encode_to_vec()
}

#[test]
fn every_sample_kind_becomes_a_row_of_its_kind() {
    let at = SystemTime::now();
    for kind in Kind::ALL {
        let bytes = ingested(samples::event(kind, at));
        let row = decode(&bytes, Some(SCHEMA_VERSION), &lineage())
            .unwrap_or_else(|err| panic!("{kind}: {err}"));
        assert_eq!(row.kind(), kind);
    }
}

#[test]
fn envelope_and_payload_fields_are_mapped() {
    let at = UNIX_EPOCH + Duration::from_millis(1_779_999_000_250);
    let bytes = ingested(samples::event(Kind::ConnectorStatus, at));
    let RawRow::ConnectorStatus(row) = decode(&bytes, Some(SCHEMA_VERSION), &lineage()).unwrap()
    else {
        panic!("wrong kind");
    };
    assert_eq!(
        row.event_id.to_string(),
        "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21"
    );
    assert_eq!((row.observed_at, row.observed_ms), (1_779_999_000, 250));
    assert_eq!(row.received_at, 1_780_000_000);
    assert_eq!(row.tenant_id, "lucheng");
    assert_eq!(row.source_id, "vendor-a");
    assert_eq!(row.device_id, "HBY-CP-03:1");
    assert_eq!(row.status, "charging");
    assert_eq!(row.error_code, "no_error");
    assert_eq!(row.site, "后北营家园");
    assert_eq!(
        (
            row.kafka_cluster.as_str(),
            row.kafka_topic.as_str(),
            row.kafka_partition,
            row.kafka_offset
        ),
        ("lucheng-dev", "citybrain.ev_charging.v1", 3, 42)
    );
    assert_eq!(row.latitude, Some(39.9012));

    let bytes = ingested(samples::event(Kind::PatrolCheckIn, at));
    let RawRow::PatrolCheckIn(row) = decode(&bytes, Some(SCHEMA_VERSION), &lineage()).unwrap()
    else {
        panic!("wrong kind");
    };
    assert_eq!(row.compliance_class, vec!["kitchen", "other"]);
    assert_eq!(row.compliance_result, vec!["correct", "incorrect"]);
}

#[test]
fn poison_is_classified() {
    let good = ingested(samples::event(Kind::BinReading, SystemTime::now()));
    let err = decode(&good, Some("citybrain.events.v2"), &lineage()).unwrap_err();
    assert_eq!(err.reason(), "unknown_schema");
    assert_eq!(
        decode(&good, None, &lineage()).unwrap_err().reason(),
        "unknown_schema"
    );

    let err = decode(b"\xff\xff\xff garbage", Some(SCHEMA_VERSION), &lineage()).unwrap_err();
    assert_eq!(err.reason(), "undecodable");

    let mut event = samples::event(Kind::BinReading, SystemTime::now());
    event.payload = None;
    let err = decode(&ingested(event), Some(SCHEMA_VERSION), &lineage()).unwrap_err();
    assert_eq!(err.reason(), "invalid_event");

    let no_id = IngestedEvent {
        event: Some(samples::event(Kind::BinReading, SystemTime::now())),
        ..Default::default()
    }
    .encode_to_vec();
    let err = decode(&no_id, Some(SCHEMA_VERSION), &lineage()).unwrap_err();
    assert!(err.to_string().contains("not a UUID"), "{err}");
}

#[test]
fn unknown_enum_values_are_kept_visibly() {
    let mut event = samples::event(Kind::ParkingSpotStatus, SystemTime::now());
    if let Some(Payload::ParkingSpotStatus(spot)) = &mut event.payload {
        spot.state = 99;
    }
    let RawRow::ParkingSpotStatus(row) =
        decode(&ingested(event), Some(SCHEMA_VERSION), &lineage()).unwrap()
    else {
        panic!("wrong kind");
    };
    assert_eq!(row.state, "unknown_99");
}
