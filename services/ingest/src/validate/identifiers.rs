//! Identifiers: one rule ([`check`]) for every field that names a thing —
//! a device, station, site, village, vehicle, route, bin, request,
//! department, team … — and one table of those fields ([`fields`]).
//!
//! The rule, and why:
//! - 1 to 128 bytes of UTF-8 (42 CJK characters): identifiers travel in the
//!   Kafka record key `<tenant>/<device_id>`, in ClickHouse `String` columns,
//!   in query filters (at most 256 characters) and in CSV exports.
//! - Printable ASCII, and the Unicode letters and digits of any script
//!   (Rust's `char::is_alphanumeric`: the Alphabetic and Numeric properties),
//!   so that a town's names — 后北营家园, 武疃村, 民政科 — are identifiers as
//!   they are written. Also the middle dots `·` `・` and full-width brackets
//!   `（` `）` that Chinese names and plate numbers use ("京A·V0002").
//! - The ASCII space, but not first or last: vendor ids such as "Station 3"
//!   exist, and a trailing space makes two ids that look the same.
//! - Refused: control characters (a newline splits a CSV row or a log line),
//!   format characters (zero-width joiners, byte-order marks, bidirectional
//!   overrides that make an id display as another), every other space
//!   (no-break, ideographic: invisible differences), private-use and
//!   unassigned code points, and emoji and other symbols: no device or
//!   department of the town is named with one, and an emoji id differs from
//!   a look-alike by invisible variation selectors. Combining marks count
//!   only where Unicode makes them Alphabetic (most vowel signs): send
//!   composed text ("é", not "e" + U+0301). Scripts written with tone marks
//!   (Thai, decomposed Vietnamese) are therefore not covered; the town's
//!   names are Chinese, and telling a tone mark from an accent or a
//!   variation selector would need Unicode's category tables, a crate this
//!   rule does not earn.
//! - Not first: `=` `+` `-` `@`, which spreadsheets read as the start of a
//!   formula when they open a CSV export.
//!
//! Identifiers are compared byte for byte: ingest does not normalise case,
//! width or composition, so "ＨＢＹ" and "HBY" are different devices.

use super::{Check, Rejection};
use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_proto::ingest::v1::ReasonCode;

/// Longest identifier, in bytes of UTF-8.
pub const MAX_BYTES: usize = 128;

/// Characters outside letters, digits and printable ASCII that names use.
const NAME_PUNCTUATION: [char; 4] = ['·', '・', '（', '）'];

/// What a spreadsheet takes for the start of a formula.
const FORMULA_STARTS: [char; 4] = ['=', '+', '-', '@'];

/// Whether an identifier field must be set. Requirements that depend on
/// other fields (a department from ASSIGNED on, a bin or a station) are
/// checked with the payload's other rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
}

/// The value(s) of one identifier field.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    One(&'a str),
    /// A repeated field: each element is an identifier, and required.
    Each(&'a [String]),
}

/// One identifier field of an event: its path from the event, its value and
/// whether it must be set.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub path: &'static str,
    pub value: Value<'a>,
    pub presence: Presence,
}

/// Every identifier field of `event`, the envelope's first, then the
/// payload's: the one table of them. A string field added to the contract
/// belongs here or in validate.rs's free-text rules (a test checks that every
/// string field of the contract is one or the other).
pub fn fields(event: &Event) -> Vec<Field<'_>> {
    use Presence::{Optional, Required};
    fn one<'a>(path: &'static str, value: &'a str, presence: Presence) -> Field<'a> {
        Field {
            path,
            value: Value::One(value),
            presence,
        }
    }
    let mut fields = vec![one("device_id", &event.device_id, Required)];
    let Some(payload) = &event.payload else {
        return fields;
    };
    match payload {
        Payload::ConnectorStatus(p) => fields.extend([
            one("connector_status.station_id", &p.station_id, Required),
            one("connector_status.vendor_status", &p.vendor_status, Optional),
            one(
                "connector_status.vendor_error_code",
                &p.vendor_error_code,
                Optional,
            ),
            one("connector_status.site", &p.site, Optional),
        ]),
        Payload::MeterSample(p) => fields.extend([
            one("meter_sample.station_id", &p.station_id, Required),
            one("meter_sample.transaction_id", &p.transaction_id, Optional),
            one("meter_sample.site", &p.site, Optional),
        ]),
        Payload::ChargingSession(p) => fields.extend([
            one("charging_session.station_id", &p.station_id, Required),
            one(
                "charging_session.transaction_id",
                &p.transaction_id,
                Required,
            ),
            one("charging_session.site", &p.site, Optional),
        ]),
        Payload::ParkingSiteCounts(p) => fields.extend([
            one("parking_site_counts.site_id", &p.site_id, Required),
            one("parking_site_counts.village", &p.village, Optional),
        ]),
        Payload::ParkingSpotStatus(p) => fields.extend([
            one("parking_spot_status.site_id", &p.site_id, Required),
            one("parking_spot_status.spot_id", &p.spot_id, Required),
            one("parking_spot_status.village", &p.village, Optional),
        ]),
        Payload::VehiclePosition(p) => fields.extend([
            one("vehicle_position.vehicle_id", &p.vehicle_id, Required),
            one("vehicle_position.route_id", &p.route_id, Optional),
            one("vehicle_position.trip_id", &p.trip_id, Optional),
            one("vehicle_position.stop_id", &p.stop_id, Optional),
        ]),
        Payload::PatrolCheckIn(p) => fields.extend([
            one("patrol_check_in.patrol_id", &p.patrol_id, Required),
            one("patrol_check_in.team_id", &p.team_id, Required),
            one("patrol_check_in.inspector_id", &p.inspector_id, Optional),
            one("patrol_check_in.checkpoint_id", &p.checkpoint_id, Required),
            Field {
                path: "patrol_check_in.photo_refs",
                value: Value::Each(&p.photo_refs),
                presence: Required,
            },
            one(
                "patrol_check_in.follow_up_request_id",
                &p.follow_up_request_id,
                Optional,
            ),
            one("patrol_check_in.village", &p.village, Required),
        ]),
        Payload::BinReading(p) => fields.extend([
            one("bin_reading.bin_id", &p.bin_id, Required),
            one("bin_reading.village", &p.village, Optional),
        ]),
        Payload::WasteCollection(p) => fields.extend([
            one("waste_collection.truck_id", &p.truck_id, Required),
            one("waste_collection.bin_id", &p.bin_id, Optional),
            one("waste_collection.station_id", &p.station_id, Optional),
            one("waste_collection.village", &p.village, Optional),
        ]),
        Payload::ServiceRequest(p) => fields.extend([
            one("service_request.request_id", &p.request_id, Required),
            one("service_request.service_code", &p.service_code, Optional),
            one("service_request.village", &p.village, Required),
            one("service_request.department", &p.department, Optional),
        ]),
    }
    fields
}

/// Checks every identifier field of `event`; the first that breaks the rule
/// decides the rejection.
pub fn check_all(event: &Event) -> Check {
    for field in fields(event) {
        match field.value {
            Value::One(value) => check(field.path, value, field.presence)?,
            Value::Each(values) => {
                for (i, value) in values.iter().enumerate() {
                    check(&format!("{}[{i}]", field.path), value, field.presence)?;
                }
            }
        }
    }
    Ok(())
}

/// The identifier rule (see the module documentation).
pub fn check(path: &str, value: &str, presence: Presence) -> Check {
    let invalid = |why: String| Err(Rejection::new(ReasonCode::InvalidFormat, path, why));
    if value.is_empty() {
        return match presence {
            Presence::Required => Err(Rejection::new(
                ReasonCode::MissingField,
                path,
                format!("{path} is required"),
            )),
            Presence::Optional => Ok(()),
        };
    }
    if value.len() > MAX_BYTES {
        return invalid(format!(
            "{path} is {} bytes long; an identifier has at most {MAX_BYTES} bytes of UTF-8",
            value.len()
        ));
    }
    if let Some((at, c)) = value.char_indices().find(|(_, c)| !allowed(*c)) {
        return invalid(format!(
            "{path} contains {} at byte {at}; identifiers are printable ASCII, \
             letters and digits of any script, · ・ （ ） and inner spaces",
            describe(c)
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return invalid(format!("{path} starts or ends with a space"));
    }
    if let Some(first) = value.chars().next().filter(|c| FORMULA_STARTS.contains(c)) {
        return invalid(format!(
            "{path} starts with {first:?}, which spreadsheets read as a formula"
        ));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    match c {
        ' '..='~' => true,
        _ if c.is_ascii() => false,
        _ => NAME_PUNCTUATION.contains(&c) || c.is_alphanumeric(),
    }
}

/// Names a refused character so that the message shows it even when it is
/// invisible (a newline, a zero-width joiner, a bidirectional override).
fn describe(c: char) -> String {
    let code = format!("U+{:04X}", u32::from(c));
    if c.is_control() {
        format!("the control character {code}")
    } else if c.is_whitespace() {
        format!("the space character {code} (only the ASCII space is allowed)")
    } else {
        format!("the character {} ({code})", c.escape_debug())
    }
}

#[cfg(test)]
#[path = "identifiers_tests.rs"]
mod tests;
