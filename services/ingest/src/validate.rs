//! Validation of one event: every rule the contract's comments promise.
//!
//! A rejection names the field (as a path from the event, e.g.
//! `parking_site_counts.occupied`), a machine-readable reason and a sentence a
//! vendor's engineer can act on. Validation is pure: no I/O, no clock reads
//! (the caller passes `now`), so every rule has a unit test below.

use citybrain_proto::events::v1::{
    self as ev, ChargePointErrorCode, ConnectorStatusValue, Event, Location, event::Payload,
};
use citybrain_proto::feed::Kind;
use citybrain_proto::ingest::v1::ReasonCode;
use prost_types::Timestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bounds that are deployment settings rather than facts of the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// How far in the future `observed_at` may be (device clocks drift).
    pub max_future_skew: Duration,
    /// How old `observed_at` may be (late but plausible data is kept).
    pub max_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_future_skew: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: ReasonCode,
    /// Path of the offending field; empty when it concerns the whole event.
    pub field: String,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: ReasonCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

type Check = Result<(), Rejection>;

mod identifiers;
mod times;

const MAX_TEXT_BYTES: usize = 2000;

/// Validates everything but the event id (which the caller normalises first)
/// and returns the event's kind.
pub fn validate(event: &Event, now: SystemTime, limits: &Limits) -> Result<Kind, Rejection> {
    let payload = event.payload.as_ref().ok_or_else(|| {
        Rejection::new(
            ReasonCode::MissingPayload,
            "payload",
            "the event has no payload: set exactly one of connector_status, meter_sample, …",
        )
    })?;
    identifiers::check_all(event)?;
    let observed = observed_at(event.observed_at.as_ref(), now, limits)?;
    if let Some(location) = &event.location {
        self::location(location)?;
    }
    let kind = Kind::of(payload);
    match payload {
        Payload::ConnectorStatus(p) => connector_status(p)?,
        Payload::MeterSample(p) => meter_sample(p)?,
        Payload::ChargingSession(p) => charging_session(p)?,
        Payload::ParkingSiteCounts(p) => parking_site_counts(p)?,
        Payload::ParkingSpotStatus(p) => parking_spot_status(p)?,
        Payload::VehiclePosition(p) => {
            if event.location.is_none() {
                return Err(Rejection::new(
                    ReasonCode::MissingField,
                    "location",
                    "a vehicle position needs the envelope's location",
                ));
            }
            vehicle_position(p)?
        }
        Payload::PatrolCheckIn(p) => patrol_check_in(p)?,
        Payload::BinReading(p) => bin_reading(p)?,
        Payload::WasteCollection(p) => waste_collection(p)?,
        Payload::ServiceRequest(p) => service_request(p)?,
    }
    times::check(event, observed)?;
    Ok(kind)
}

fn observed_at(
    value: Option<&Timestamp>,
    now: SystemTime,
    limits: &Limits,
) -> Result<SystemTime, Rejection> {
    let ts = value.ok_or_else(|| {
        Rejection::new(
            ReasonCode::MissingField,
            "observed_at",
            "observed_at is required",
        )
    })?;
    let at = timestamp("observed_at", ts)?;
    if let Ok(ahead) = at.duration_since(now)
        && ahead > limits.max_future_skew
    {
        return Err(Rejection::new(
            ReasonCode::TimeInFuture,
            "observed_at",
            format!(
                "observed_at is {}s in the future; at most {}s of clock skew is allowed",
                ahead.as_secs(),
                limits.max_future_skew.as_secs()
            ),
        ));
    }
    if let Ok(age) = now.duration_since(at)
        && age > limits.max_age
    {
        return Err(Rejection::new(
            ReasonCode::TimeTooOld,
            "observed_at",
            format!(
                "observed_at is {} days old; at most {} days are accepted",
                age.as_secs() / 86_400,
                limits.max_age.as_secs() / 86_400
            ),
        ));
    }
    Ok(at)
}

fn timestamp(path: &str, ts: &Timestamp) -> Result<SystemTime, Rejection> {
    if !(0..1_000_000_000).contains(&ts.nanos) || ts.seconds < 0 {
        return Err(Rejection::new(
            ReasonCode::InvalidFormat,
            path,
            format!(
                "{path} is not a valid UTC timestamp after 1970 (seconds {}, nanos {})",
                ts.seconds, ts.nanos
            ),
        ));
    }
    Ok(UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32))
}

fn optional_timestamp(path: &str, ts: Option<&Timestamp>) -> Check {
    ts.map_or(Ok(()), |ts| timestamp(path, ts).map(|_| ()))
}

fn location(loc: &Location) -> Check {
    range("location.latitude", loc.latitude, -90.0, 90.0)?;
    range("location.longitude", loc.longitude, -180.0, 180.0)?;
    if let Some(altitude) = loc.altitude_m {
        range("location.altitude_m", altitude, -500.0, 10_000.0)?;
    }
    if let Some(accuracy) = loc.accuracy_m {
        non_negative("location.accuracy_m", accuracy)?;
    }
    Ok(())
}

fn connector_status(p: &ev::ConnectorStatus) -> Check {
    // connector_id 0 is the station as a whole (OCPP connectorId 0).
    required_enum::<ConnectorStatusValue>("connector_status.status", p.status)?;
    optional_enum::<ChargePointErrorCode>("connector_status.error_code", p.error_code)?;
    text("connector_status.info", &p.info, 500)
}

fn meter_sample(p: &ev::MeterSample) -> Check {
    // connector_id 0 is the station's main meter (OCPP evseId 0). Absent
    // energy: the charger reported only power or current.
    if let Some(energy) = p.energy_active_import_wh {
        non_negative("meter_sample.energy_active_import_wh", energy)?;
    }
    if let Some(power) = p.power_active_import_w {
        non_negative("meter_sample.power_active_import_w", power)?;
    }
    phases(
        "meter_sample.current_import_a",
        &p.current_import_a,
        0.0,
        1000.0,
    )?;
    phases("meter_sample.voltage_v", &p.voltage_v, 0.0, 1000.0)?;
    if let Some(soc) = p.soc_percent {
        range("meter_sample.soc_percent", soc, 0.0, 100.0)?;
    }
    if let Some(temperature) = p.temperature_c {
        range("meter_sample.temperature_c", temperature, -60.0, 150.0)?;
    }
    Ok(())
}

fn phases(path: &str, values: &[f64], lo: f64, hi: f64) -> Check {
    if values.len() > 3 {
        return Err(Rejection::new(
            ReasonCode::OutOfRange,
            path,
            format!("{path} has {} values; at most 3 phases", values.len()),
        ));
    }
    for (i, value) in values.iter().enumerate() {
        range(&format!("{path}[{i}]"), *value, lo, hi)?;
    }
    Ok(())
}

fn charging_session(p: &ev::ChargingSession) -> Check {
    use ev::SessionPhase;
    positive_u32("charging_session.connector_id", p.connector_id)?;
    let phase = required_enum::<SessionPhase>("charging_session.phase", p.phase)?;
    sha256_hex("charging_session.id_token_hash", &p.id_token_hash)?;
    optional_timestamp("charging_session.started_at", p.started_at.as_ref())?;
    let optional_amounts = [
        ("charging_session.meter_start_wh", p.meter_start_wh),
        ("charging_session.meter_stop_wh", p.meter_stop_wh),
        ("charging_session.energy_kwh", p.energy_kwh),
        (
            "charging_session.fee_electricity_cny",
            p.fee_electricity_cny,
        ),
        ("charging_session.fee_service_cny", p.fee_service_cny),
        ("charging_session.fee_total_cny", p.fee_total_cny),
    ];
    for (path, value) in optional_amounts {
        if let Some(value) = value {
            non_negative(path, value)?;
        }
    }
    if phase == SessionPhase::Ended {
        // Either register may be absent (OCPP 2.0.1 chargers need not report
        // one); when both are there they must agree.
        if let (Some(start), Some(stop)) = (p.meter_start_wh, p.meter_stop_wh)
            && stop < start
        {
            return Err(Rejection::new(
                ReasonCode::Inconsistent,
                "charging_session.meter_stop_wh",
                format!("meter_stop_wh ({stop}) is below meter_start_wh ({start})"),
            ));
        }
        // UNSPECIFIED is read as LOCAL (see `normalise`).
        optional_enum::<ev::StopReason>("charging_session.stop_reason", p.stop_reason)?;
        if let (Some(electricity), Some(service), Some(total)) =
            (p.fee_electricity_cny, p.fee_service_cny, p.fee_total_cny)
            && (electricity + service - total).abs() > 0.015
        {
            return Err(Rejection::new(
                ReasonCode::Inconsistent,
                "charging_session.fee_total_cny",
                format!(
                    "fee_total_cny ({total}) is not fee_electricity_cny ({electricity}) + fee_service_cny ({service})"
                ),
            ));
        }
    } else {
        optional_enum::<ev::StopReason>("charging_session.stop_reason", p.stop_reason)?;
    }
    Ok(())
}

fn parking_site_counts(p: &ev::ParkingSiteCounts) -> Check {
    positive_u32("parking_site_counts.total_spots", p.total_spots)?;
    required_enum::<ev::ParkingSiteStatus>("parking_site_counts.status", p.status)?;
    let in_use = u64::from(p.occupied) + u64::from(p.available);
    if in_use > u64::from(p.total_spots) {
        return Err(Rejection::new(
            ReasonCode::Inconsistent,
            "parking_site_counts.occupied",
            format!(
                "occupied ({}) + available ({}) exceeds total_spots ({})",
                p.occupied, p.available, p.total_spots
            ),
        ));
    }
    if let Some(ev_total) = p.ev_total
        && ev_total > p.total_spots
    {
        return Err(Rejection::new(
            ReasonCode::Inconsistent,
            "parking_site_counts.ev_total",
            format!(
                "ev_total ({ev_total}) exceeds total_spots ({})",
                p.total_spots
            ),
        ));
    }
    if let Some(ev_occupied) = p.ev_occupied {
        let ev_total = p.ev_total.ok_or_else(|| {
            Rejection::new(
                ReasonCode::MissingField,
                "parking_site_counts.ev_total",
                "ev_occupied is set, so ev_total is required",
            )
        })?;
        if ev_occupied > ev_total {
            return Err(Rejection::new(
                ReasonCode::Inconsistent,
                "parking_site_counts.ev_occupied",
                format!("ev_occupied ({ev_occupied}) exceeds ev_total ({ev_total})"),
            ));
        }
    }
    Ok(())
}

fn parking_spot_status(p: &ev::ParkingSpotStatus) -> Check {
    required_enum::<ev::ParkingSpotState>("parking_spot_status.state", p.state)?;
    optional_enum::<ev::DetectionMethod>("parking_spot_status.detection", p.detection)
}

fn vehicle_position(p: &ev::VehiclePosition) -> Check {
    required_enum::<ev::VehicleRole>("vehicle_position.role", p.role)?;
    range("vehicle_position.speed_kmh", p.speed_kmh, 0.0, 250.0)?;
    if let Some(heading) = p.heading_deg {
        finite("vehicle_position.heading_deg", heading)?;
        if !(0.0..360.0).contains(&heading) {
            return Err(Rejection::new(
                ReasonCode::OutOfRange,
                "vehicle_position.heading_deg",
                format!("heading_deg ({heading}) must be in 0..<360"),
            ));
        }
    }
    if let Some(odometer) = p.odometer_km {
        non_negative("vehicle_position.odometer_km", odometer)?;
    }
    optional_enum::<ev::GnssFix>("vehicle_position.fix", p.fix)?;
    optional_enum::<ev::StopStatus>("vehicle_position.stop_status", p.stop_status)?;
    optional_enum::<ev::OccupancyStatus>("vehicle_position.occupancy_status", p.occupancy_status)?;
    optional_enum::<ev::ServiceStatus>("vehicle_position.service_status", p.service_status)?;
    if let Some(passengers) = p.passengers
        && passengers > 200
    {
        return Err(Rejection::new(
            ReasonCode::OutOfRange,
            "vehicle_position.passengers",
            format!("passengers ({passengers}) must be in 0..200"),
        ));
    }
    Ok(())
}

fn patrol_check_in(p: &ev::PatrolCheckIn) -> Check {
    optional_enum::<ev::CheckInMethod>("patrol_check_in.method", p.method)?;
    let mut seen = Vec::with_capacity(p.compliance.len());
    for (i, item) in p.compliance.iter().enumerate() {
        let class = required_enum::<ev::WasteClass>(
            &format!("patrol_check_in.compliance[{i}].waste_class"),
            item.waste_class,
        )?;
        required_enum::<ev::SortingResult>(
            &format!("patrol_check_in.compliance[{i}].result"),
            item.result,
        )?;
        if seen.contains(&class) {
            return Err(Rejection::new(
                ReasonCode::Inconsistent,
                format!("patrol_check_in.compliance[{i}].waste_class"),
                format!(
                    "waste_class {} is listed twice in compliance",
                    class.as_str_name()
                ),
            ));
        }
        seen.push(class);
    }
    if let Some(contamination) = p.contamination_percent {
        range(
            "patrol_check_in.contamination_percent",
            contamination,
            0.0,
            100.0,
        )?;
    }
    if p.photo_refs.len() > 10 {
        return Err(Rejection::new(
            ReasonCode::OutOfRange,
            "patrol_check_in.photo_refs",
            format!(
                "photo_refs has {} references; at most 10",
                p.photo_refs.len()
            ),
        ));
    }
    Ok(())
}

fn bin_reading(p: &ev::BinReading) -> Check {
    required_enum::<ev::WasteClass>("bin_reading.waste_class", p.waste_class)?;
    range("bin_reading.fill_level", p.fill_level, 0.0, 1.0)?;
    optional_enum::<ev::BinStatus>("bin_reading.status", p.status)?;
    optional_timestamp("bin_reading.last_emptied_at", p.last_emptied_at.as_ref())
}

fn waste_collection(p: &ev::WasteCollection) -> Check {
    if p.bin_id.is_empty() && p.station_id.is_empty() {
        return Err(Rejection::new(
            ReasonCode::MissingField,
            "waste_collection.bin_id",
            "either bin_id or station_id is required",
        ));
    }
    if p.weights.is_empty() {
        return Err(Rejection::new(
            ReasonCode::MissingField,
            "waste_collection.weights",
            "weights: at least one weight by waste class is required",
        ));
    }
    let mut seen = Vec::with_capacity(p.weights.len());
    for (i, weight) in p.weights.iter().enumerate() {
        let class = required_enum::<ev::WasteClass>(
            &format!("waste_collection.weights[{i}].waste_class"),
            weight.waste_class,
        )?;
        non_negative(
            &format!("waste_collection.weights[{i}].net_weight_kg"),
            weight.net_weight_kg,
        )?;
        if seen.contains(&class) {
            return Err(Rejection::new(
                ReasonCode::Inconsistent,
                format!("waste_collection.weights[{i}].waste_class"),
                format!(
                    "waste_class {} is listed twice in weights",
                    class.as_str_name()
                ),
            ));
        }
        seen.push(class);
    }
    Ok(())
}

fn service_request(p: &ev::ServiceRequestTransition) -> Check {
    use ev::RequestTransition;
    let transition =
        required_enum::<RequestTransition>("service_request.transition", p.transition)?;
    required_enum::<ev::RequestCategory>("service_request.category", p.category)?;
    text("service_request.address", &p.address, 500)?;
    text("service_request.note", &p.note, MAX_TEXT_BYTES)?;
    optional_timestamp("service_request.expected_by", p.expected_by.as_ref())?;
    if transition == RequestTransition::Created {
        required_enum::<ev::RequestChannel>("service_request.channel", p.channel)?;
    } else {
        optional_enum::<ev::RequestChannel>("service_request.channel", p.channel)?;
        if p.department.is_empty() {
            return Err(Rejection::new(
                ReasonCode::MissingField,
                "service_request.department",
                "service_request.department is required from ASSIGNED on",
            ));
        }
    }
    Ok(())
}

/// Fills in what the contract says an absent field means, on an event that
/// passed [`validate`]: an ENDED session without a stop reason ended LOCAL
/// (OCPP's default when a charger gives none).
pub fn normalise(event: &mut Event) {
    if let Some(Payload::ChargingSession(p)) = event.payload.as_mut()
        && p.phase == ev::SessionPhase::Ended as i32
        && p.stop_reason == ev::StopReason::Unspecified as i32
    {
        p.stop_reason = ev::StopReason::Local as i32;
    }
}

// ---- field rules -------------------------------------------------------

/// Free text (identifiers have their own rule, in `identifiers`): bounded
/// length, no control characters but the newline.
fn text(path: &str, value: &str, max_bytes: usize) -> Check {
    if value.len() > max_bytes {
        return Err(Rejection::new(
            ReasonCode::InvalidFormat,
            path,
            format!("{path} is {} bytes long; at most {max_bytes}", value.len()),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Rejection::new(
            ReasonCode::InvalidFormat,
            path,
            format!("{path} contains control characters"),
        ));
    }
    Ok(())
}

/// Empty, or a SHA-256 digest as 64 hex digits: a raw card number or token
/// (personal data) never fits.
fn sha256_hex(path: &str, value: &str) -> Check {
    if value.is_empty() || (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Ok(());
    }
    Err(Rejection::new(
        ReasonCode::InvalidFormat,
        path,
        format!(
            "{path} must be the SHA-256 of the token as 64 hex digits, never the token itself \
             ({} characters sent)",
            value.chars().count()
        ),
    ))
}

fn finite(path: &str, value: f64) -> Check {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Rejection::new(
            ReasonCode::NotFinite,
            path,
            format!("{path} is {value}; a finite number is required"),
        ))
    }
}

fn range(path: &str, value: f64, lo: f64, hi: f64) -> Check {
    finite(path, value)?;
    if value < lo || value > hi {
        return Err(Rejection::new(
            ReasonCode::OutOfRange,
            path,
            format!("{path} ({value}) must be in {lo}..{hi}"),
        ));
    }
    Ok(())
}

fn non_negative(path: &str, value: f64) -> Check {
    finite(path, value)?;
    if value < 0.0 {
        return Err(Rejection::new(
            ReasonCode::OutOfRange,
            path,
            format!("{path} ({value}) must not be negative"),
        ));
    }
    Ok(())
}

fn positive_u32(path: &str, value: u32) -> Check {
    if value == 0 {
        return Err(Rejection::new(
            ReasonCode::MissingField,
            path,
            format!("{path} is required (>= 1)"),
        ));
    }
    Ok(())
}

/// A required enum: 0 (UNSPECIFIED) means absent; unknown numbers are refused.
fn required_enum<E>(path: &str, value: i32) -> Result<E, Rejection>
where
    E: TryFrom<i32>,
{
    if value == 0 {
        return Err(Rejection::new(
            ReasonCode::MissingField,
            path,
            format!("{path} is required"),
        ));
    }
    known_enum(path, value)
}

fn optional_enum<E>(path: &str, value: i32) -> Check
where
    E: TryFrom<i32>,
{
    known_enum::<E>(path, value).map(|_| ())
}

fn known_enum<E>(path: &str, value: i32) -> Result<E, Rejection>
where
    E: TryFrom<i32>,
{
    E::try_from(value).map_err(|_| {
        Rejection::new(
            ReasonCode::UnknownEnumValue,
            path,
            format!("{path} has the unknown value {value}"),
        )
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
