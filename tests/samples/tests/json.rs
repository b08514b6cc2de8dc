//! Every sample event survives the contract's JSON mapping unchanged, in each
//! shape a body may take: what a device sends as JSON is what gRPC carries.

use citybrain_proto::feed::Kind;
use citybrain_proto::json::{Shape, decode_events, event_json};
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn every_sample_round_trips_in_each_shape() {
    let at = UNIX_EPOCH + Duration::from_millis(1_780_000_000_250);
    let events: Vec<_> = Kind::ALL
        .iter()
        .map(|kind| citybrain_samples::event(*kind, at))
        .collect();
    let array = Value::Array(events.iter().map(event_json).collect());
    let (decoded, shape) = decode_events(array.to_string().as_bytes()).unwrap();
    assert_eq!((decoded, shape), (events.clone(), Shape::Array));

    let request = serde_json::json!({ "events": array });
    let (decoded, shape) = decode_events(request.to_string().as_bytes()).unwrap();
    assert_eq!((decoded, shape), (events.clone(), Shape::Request));

    for event in &events {
        let one = event_json(event).to_string();
        assert!(one.contains("\"device_id\""), "proto field names: {one}");
        let (decoded, shape) = decode_events(one.as_bytes()).unwrap();
        assert_eq!((decoded, shape), (vec![event.clone()], Shape::Event));
    }
}
