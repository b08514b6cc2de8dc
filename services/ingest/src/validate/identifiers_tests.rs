//! The identifier rule, and that the table names every identifier field of
//! the contract: the string fields are read from the compiled `.proto`
//! descriptors, and each identifier field of each kind is broken on the wire
//! (the way a vendor's encoder would send it), then validated whole.

use super::*;
use crate::validate::{Limits, validate};
use citybrain_proto::feed::Kind;
use citybrain_samples as samples;
use prost::Message;
use prost_types::{FileDescriptorSet, field_descriptor_proto::Type};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The string fields of the contract that are not identifiers, with the
/// rule that applies to them instead.
const NOT_IDENTIFIERS: &[(&str, &str)] = &[
    ("event_id", "a UUID (service.rs normalise_event_id)"),
    ("charging_session.id_token_hash", "a SHA-256 digest in hex"),
    ("connector_status.info", "free text, at most 500 bytes"),
    ("service_request.address", "free text, at most 500 bytes"),
    ("service_request.note", "free text, at most 2000 bytes"),
];

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn reason(value: &str) -> Option<ReasonCode> {
    check("x", value, Presence::Required)
        .err()
        .map(|rejection| rejection.reason)
}

#[test]
fn names_as_a_town_writes_them_are_identifiers() {
    for value in [
        "HBY-CP-03:1",
        "后北营家园",
        "武疃村",
        "民政科",
        "京A·V0002",
        "潞城镇（东区）",
        "Station 3",
        "photos/2026/11/29/ck-tzf-12-1.jpg",
        "p'3\\x \"quoted\" #7 $5",
        "ホーム・1",
        "서울-7",
        "Ⅻ-①",
        "café",
        &"字".repeat(42),
        &"x".repeat(MAX_BYTES),
    ] {
        assert_eq!(check("x", value, Presence::Required), Ok(()), "{value:?}");
    }
}

#[test]
fn invisible_look_alike_and_formula_characters_are_refused() {
    for value in [
        "bin\n1",
        "bin\r1",
        "bin\t1",
        "bin\u{0}1",
        "bin\u{7f}1",
        "bin\u{85}1",
        "bin🚌1",
        "🇨🇳",
        "bin\u{200d}1",
        "bin\u{feff}1",
        "admin\u{202e}txt",
        "bin\u{a0}1",
        "后北营\u{3000}家园",
        "bin\u{e000}1",
        "bin\u{378}1",
        "cafe\u{301}",
        "30℃",
        " bin",
        "bin ",
        "=HYPERLINK(\"x\")",
        "+1",
        "-1",
        "@SUM(A1)",
        &"x".repeat(MAX_BYTES + 1),
        &"字".repeat(43),
    ] {
        assert_eq!(
            reason(value),
            Some(ReasonCode::InvalidFormat),
            "{value:?} must be refused"
        );
    }
    assert_eq!(reason(""), Some(ReasonCode::MissingField));
    assert_eq!(check("x", "", Presence::Optional), Ok(()));
}

#[test]
fn a_refused_character_is_named_even_when_invisible() {
    let rejection = check("device_id", "bin\u{200d}1", Presence::Required).unwrap_err();
    assert_eq!(rejection.field, "device_id");
    assert!(
        rejection.message.contains("U+200D") && rejection.message.contains("at byte 3"),
        "{}",
        rejection.message
    );
    let rejection = check("device_id", "a\nb", Presence::Required).unwrap_err();
    assert!(
        rejection.message.contains("control character U+000A"),
        "{}",
        rejection.message
    );
}

/// Every string field of the vendor-facing messages, as a path from the
/// event ("device_id", "connector_status.site"), with its field numbers.
fn contract_string_fields() -> BTreeMap<String, Vec<i32>> {
    let set = FileDescriptorSet::decode(citybrain_proto::FILE_DESCRIPTOR_SET).unwrap();
    let messages: BTreeMap<String, &prost_types::DescriptorProto> = set
        .file
        .iter()
        .filter(|file| file.package() == "citybrain.events.v1")
        .flat_map(|file| &file.message_type)
        .map(|message| (format!(".citybrain.events.v1.{}", message.name()), message))
        .collect();
    let mut out = BTreeMap::new();
    walk(
        &messages,
        messages[".citybrain.events.v1.Event"],
        "",
        &[],
        &mut out,
    );
    out
}

fn walk(
    messages: &BTreeMap<String, &prost_types::DescriptorProto>,
    message: &prost_types::DescriptorProto,
    prefix: &str,
    numbers: &[i32],
    out: &mut BTreeMap<String, Vec<i32>>,
) {
    for field in &message.field {
        let path = format!("{prefix}{}", field.name());
        let numbers = [numbers, &[field.number()]].concat();
        match field.r#type() {
            Type::String => {
                out.insert(path, numbers);
            }
            Type::Message => {
                if let Some(inner) = messages.get(field.type_name()) {
                    walk(messages, inner, &format!("{path}."), &numbers, out);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_string_field_of_the_contract_is_an_identifier_or_named_otherwise() {
    let in_table: BTreeSet<String> = Kind::ALL
        .iter()
        .flat_map(|kind| {
            let event = samples::event(*kind, now());
            fields(&event)
                .into_iter()
                .map(|field| field.path.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let others: BTreeSet<String> = NOT_IDENTIFIERS.iter().map(|(p, _)| p.to_string()).collect();
    assert!(in_table.is_disjoint(&others));
    let classified: BTreeSet<String> = in_table.union(&others).cloned().collect();
    let in_contract: BTreeSet<String> = contract_string_fields().into_keys().collect();
    assert_eq!(
        classified, in_contract,
        "every string field of citybrain.events.v1 is in identifiers::fields or NOT_IDENTIFIERS"
    );
}

/// `event` as a vendor would send it with the string at field `numbers`
/// (a path of field numbers from the envelope) set to `value`: a later
/// occurrence of a field on the wire overrides a scalar, merges into a
/// message and appends to a repeated field.
fn with_string_on_the_wire(event: &Event, numbers: &[i32], value: &str) -> Event {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut field = Vec::new();
    let (last, outer) = numbers.split_last().unwrap();
    prost::encoding::string::encode(*last as u32, &value.to_string(), &mut field);
    for number in outer.iter().rev() {
        let mut wrapped = Vec::new();
        encode_key(*number as u32, WireType::LengthDelimited, &mut wrapped);
        encode_varint(field.len() as u64, &mut wrapped);
        wrapped.extend_from_slice(&field);
        field = wrapped;
    }
    let mut wire = event.encode_to_vec();
    wire.extend_from_slice(&field);
    Event::decode(wire.as_slice()).unwrap()
}

#[test]
fn every_identifier_field_of_every_kind_follows_the_rule() {
    let numbers = contract_string_fields();
    let mut checked = 0;
    for kind in Kind::ALL {
        let sample = samples::event(kind, now());
        for field in fields(&sample) {
            let at = &numbers[field.path];
            let expected_path = match field.value {
                Value::One(_) => field.path.to_string(),
                Value::Each(values) => format!("{}[{}]", field.path, values.len()),
            };
            for bad in ["a\nb", "bus🚌", "a\u{202e}b", " lead", "=1+1"] {
                let event = with_string_on_the_wire(&sample, at, bad);
                let rejection = validate(&event, now(), &Limits::default())
                    .expect_err(&format!("{kind}: {} = {bad:?}", field.path));
                assert_eq!(
                    (rejection.reason, rejection.field.as_str()),
                    (ReasonCode::InvalidFormat, expected_path.as_str()),
                    "{kind}: {} = {bad:?}: {}",
                    field.path,
                    rejection.message
                );
            }
            for good in ["潞城镇·东区（一）", "Station 3"] {
                let event = with_string_on_the_wire(&sample, at, good);
                assert_eq!(
                    validate(&event, now(), &Limits::default()),
                    Ok(kind),
                    "{kind}: {} = {good:?}",
                    field.path
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 35, "checked {checked} fields");
}
