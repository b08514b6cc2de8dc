use super::*;
use crate::events::v1::event::Payload;
use crate::ingest::v1::{EventResult, IngestResponse, Outcome, ReasonCode};

/// The README's grpcurl example, as written there.
const README_EXAMPLE: &str = r#"{
    "events": [{
      "device_id": "HBY-CP-03:1",
      "observed_at": "2026-11-29T08:15:00Z",
      "location": {"latitude": 39.9012, "longitude": 116.7498},
      "connector_status": {
        "station_id": "HBY-CP-03", "connector_id": 1,
        "status": "CONNECTOR_STATUS_VALUE_CHARGING",
        "vendor_status": "Occupied", "site": "后北营家园"
      }
    }]
  }"#;

fn err(body: &str) -> JsonError {
    decode_events(body.as_bytes()).expect_err(body)
}

/// Bodies of two kinds, for the property test to mangle.
const BIN: &str = r#"{"event_id":"0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21","device_id":"B1",
    "observed_at":"2026-11-29T08:15:00.5Z","seq_no":"7","location":{"latitude":39.9,"longitude":116.7},
    "bin_reading":{"bin_id":"B1","waste_class":"WASTE_CLASS_KITCHEN","fill_level":0.5,
    "status":"BIN_STATUS_OK","last_emptied_at":"2026-11-29T06:00:00Z","village":"武疃村"}}"#;

#[test]
fn the_readme_example_decodes_with_proto_or_json_names() {
    let (events, shape) = decode_events(README_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(shape, Shape::Request);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.device_id, "HBY-CP-03:1");
    assert_eq!(
        event.observed_at,
        Some(prost_types::Timestamp {
            seconds: 1_795_940_100,
            nanos: 0
        })
    );
    let Some(Payload::ConnectorStatus(status)) = &event.payload else {
        panic!("{event:?}")
    };
    assert_eq!(status.status, 3, "CONNECTOR_STATUS_VALUE_CHARGING");
    assert_eq!(status.site, "后北营家园");

    let camel = README_EXAMPLE
        .replace("device_id", "deviceId")
        .replace("observed_at", "observedAt")
        .replace("connector_status", "connectorStatus");
    assert_eq!(decode_events(camel.as_bytes()).unwrap().0, events);
}

#[test]
fn a_wrong_type_is_named_by_its_path_in_every_shape() {
    let bad = |occupied: &str| {
        format!(
            r#"{{"device_id":"P1","parking_site_counts":{{"site_id":"P1","occupied":{occupied}}}}}"#
        )
    };
    let good = bad("3");
    let many = format!("[{good},{good},{good},{}]", bad("\"x\""));
    let e = err(&many);
    assert_eq!(e.path, "[3].parking_site_counts.occupied");
    assert!(e.message.contains("invalid"), "{e}");
    let e = err(&format!(r#"{{"events":{many}}}"#));
    assert_eq!(e.path, "events[3].parking_site_counts.occupied");
    assert!(
        e.to_string()
            .starts_with("events[3].parking_site_counts.occupied: "),
        "{e}"
    );
    let e = err(&bad("-1"));
    assert_eq!(e.path, "parking_site_counts.occupied");
    let e = err(&bad("1.5"));
    assert_eq!(e.path, "parking_site_counts.occupied");
    assert!(e.message.contains("integer"), "{e}");
    let e = err(&bad("[1]"));
    assert_eq!(e.path, "parking_site_counts.occupied");
}

#[test]
fn unknown_fields_and_enum_names_are_refused_by_name() {
    let e = err(r#"{"device_id":"B1","bin_reading":{"bin_id":"B1","fill_levl":0.5}}"#);
    assert_eq!(e.path, "bin_reading");
    assert!(e.message.contains("fill_levl"), "{e}");
    let e = err(r#"{"device_id":"B1","bin_reading":{"bin_id":"B1","status":"BIN_STATUS_GONE"}}"#);
    assert_eq!(e.path, "bin_reading.status");
    assert!(e.message.contains("BIN_STATUS_GONE"), "{e}");
    let e = err(r#"{"events":[],"extra":1}"#);
    assert!(e.message.contains("extra"), "{e}");
    let e = err(r#"{"device_id":"B1","observed_at":"yesterday"}"#);
    assert_eq!(e.path, "observed_at");
    let e = err(r#"{"device_id":"B1","bin_reading":{},"parking_spot_status":{}}"#);
    assert!(e.message.contains("oneof"), "two payloads: {e}");
}

#[test]
fn bodies_that_are_not_the_contract_say_so() {
    for (body, says) in [
        ("", "not JSON"),
        ("{\"events\":[", "not JSON"),
        ("\u{feff}{}", "not JSON"),
        ("42", "not a number"),
        ("\"hello\"", "not a string"),
        ("null", "not null"),
    ] {
        let e = err(body);
        assert_eq!(e.path, "", "{body:?}");
        let wanted = says.trim_start_matches("not ");
        assert!(e.message.contains(wanted), "{body:?}: {e}");
    }
    // Nesting deeper than serde_json's recursion limit is an error, not a
    // stack overflow.
    let deep = "[".repeat(100_000);
    assert!(err(&deep).message.contains("not JSON"));
    let deep_object = format!("{}{}", r#"{"location":"#.repeat(200), "1");
    assert!(decode_events(deep_object.as_bytes()).is_err());
    // Empty requests decode to no events: ingest answers them (an empty batch).
    assert_eq!(decode_events(b"[]").unwrap().0, vec![]);
    assert_eq!(decode_events(br#"{"events":[]}"#).unwrap().0, vec![]);
}

#[test]
fn proto_json_spellings_are_read() {
    let body = r#"{"device_id":"B1","seq_no":"18446744073709551615",
        "observed_at":"2026-11-29T16:15:00+08:00",
        "location":{"latitude":"39.9","longitude":116},
        "bin_reading":{"bin_id":"B1","waste_class":3,"fill_level":"NaN","status":null}}"#;
    let (events, _) = decode_events(body.as_bytes()).unwrap();
    let event = &events[0];
    assert_eq!(event.seq_no, Some(u64::MAX));
    assert_eq!(event.observed_at.unwrap().seconds, 1_795_940_100);
    assert_eq!(event.location.unwrap().latitude, 39.9);
    let Some(Payload::BinReading(bin)) = &event.payload else {
        panic!()
    };
    assert!(bin.fill_level.is_nan(), "validation rejects it per event");
    assert_eq!(bin.waste_class, 3);
}

#[test]
fn responses_use_proto_names_and_enum_names() {
    let response = IngestResponse {
        results: vec![EventResult {
            index: 1,
            event_id: "e".into(),
            outcome: Outcome::Rejected as i32,
            reason: ReasonCode::OutOfRange as i32,
            field: "bin_reading.fill_level".into(),
            message: "m".into(),
        }],
        rejected: 1,
        ..Default::default()
    };
    assert_eq!(
        response_json(&response),
        serde_json::json!({"results":[{"index":1,"event_id":"e","outcome":"OUTCOME_REJECTED",
            "reason":"REASON_CODE_OUT_OF_RANGE","field":"bin_reading.fill_level","message":"m"}],
            "rejected":1})
    );
}

/// A small deterministic generator (xorshift), so the property test needs
/// no crate and fails the same way every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Hostile input: valid bodies cut, spliced and bit-flipped at random never
/// panic, and a body either decodes whole or fails whole with a reason.
#[test]
fn mangled_bodies_never_panic_and_fail_whole() {
    let valid: Vec<Vec<u8>> = [BIN, README_EXAMPLE, &format!("[{BIN},{BIN}]")]
        .iter()
        .map(|body| body.as_bytes().to_vec())
        .collect();
    let tokens: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"null",
        b"-1",
        b"1e999",
        b"\"events\"",
        b"\"\\ud800\"",
        b"18446744073709551616",
        b"\xff",
        b"true",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut body = valid[rng.below(valid.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(body.len() + 1);
            match rng.below(4) {
                0 => body.truncate(at),
                1 => {
                    let token = tokens[rng.below(tokens.len())];
                    body.splice(at..at, token.iter().copied());
                }
                2 if at < body.len() => body[at] ^= 1 << rng.below(8),
                _ => {
                    let end = (at + rng.below(8)).min(body.len());
                    body.drain(at..end);
                }
            }
        }
        match decode_events(&body) {
            Ok((events, _)) => assert!(events.len() <= 2),
            Err(e) => assert!(!e.message.is_empty()),
        }
    }
}
