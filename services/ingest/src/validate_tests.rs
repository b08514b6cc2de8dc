//! One test per validation rule: each starts from a valid sample event and
//! breaks exactly one thing, then checks the reason and the field path.

use super::*;
use citybrain_proto::events::v1::event::Payload;
use citybrain_samples as samples;
use std::time::{Duration, SystemTime};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn sample(kind: Kind) -> Event {
    samples::event(kind, now())
}

fn check(event: &Event) -> Result<Kind, Rejection> {
    validate(event, now(), &Limits::default())
}

/// Breaks `kind`'s sample with `mutate` and returns (reason, field).
fn rejected(kind: Kind, mutate: impl FnOnce(&mut Event)) -> (ReasonCode, String) {
    let mut event = sample(kind);
    mutate(&mut event);
    let rejection = check(&event).expect_err("the broken event must be rejected");
    assert!(
        rejection
            .message
            .contains(rejection.field.rsplit('.').next().unwrap_or("")),
        "message {:?} should name the field {:?}",
        rejection.message,
        rejection.field
    );
    (rejection.reason, rejection.field)
}

macro_rules! payload_mut {
    ($event:expr, $variant:ident) => {
        match $event.payload.as_mut() {
            Some(Payload::$variant(p)) => p,
            _ => unreachable!("sample has the expected payload"),
        }
    };
}

#[test]
fn every_sample_is_valid_and_has_its_kind() {
    for kind in Kind::ALL {
        assert_eq!(check(&sample(kind)), Ok(kind), "sample {kind}");
    }
}

#[test]
fn payload_is_required() {
    let (reason, field) = rejected(Kind::BinReading, |e| e.payload = None);
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingPayload, "payload")
    );
}

#[test]
fn device_id_is_required_and_bounded() {
    let (reason, field) = rejected(Kind::BinReading, |e| e.device_id.clear());
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "device_id")
    );
    let (reason, _) = rejected(Kind::BinReading, |e| e.device_id = "x".repeat(129));
    assert_eq!(reason, ReasonCode::InvalidFormat);
    let (reason, _) = rejected(Kind::BinReading, |e| e.device_id = "bin\u{0}1".into());
    assert_eq!(reason, ReasonCode::InvalidFormat);
    let (reason, _) = rejected(Kind::BinReading, |e| e.device_id = " bin".into());
    assert_eq!(reason, ReasonCode::InvalidFormat);
}

#[test]
fn observed_at_is_required_and_within_the_window() {
    let (reason, field) = rejected(Kind::BinReading, |e| e.observed_at = None);
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "observed_at")
    );

    let future = now() + Duration::from_secs(6 * 60);
    let (reason, _) = rejected(Kind::BinReading, |e| {
        e.observed_at = Some(samples::timestamp(future))
    });
    assert_eq!(reason, ReasonCode::TimeInFuture);

    let within_skew = now() + Duration::from_secs(4 * 60);
    let mut event = sample(Kind::BinReading);
    event.observed_at = Some(samples::timestamp(within_skew));
    assert!(check(&event).is_ok(), "small clock skew is tolerated");

    let old = now() - Duration::from_secs(31 * 86_400);
    let (reason, _) = rejected(Kind::BinReading, |e| {
        e.observed_at = Some(samples::timestamp(old))
    });
    assert_eq!(reason, ReasonCode::TimeTooOld);

    let late_but_plausible = now() - Duration::from_secs(3600);
    let mut event = sample(Kind::BinReading);
    event.observed_at = Some(samples::timestamp(late_but_plausible));
    assert!(check(&event).is_ok(), "an hour late is kept");

    let (reason, _) = rejected(Kind::BinReading, |e| {
        e.observed_at.as_mut().unwrap().nanos = 1_000_000_000
    });
    assert_eq!(reason, ReasonCode::InvalidFormat);
}

#[test]
fn limits_are_configurable() {
    let limits = Limits {
        max_future_skew: Duration::from_secs(10),
        max_age: Duration::from_secs(60),
    };
    let mut event = sample(Kind::BinReading);
    event.observed_at = Some(samples::timestamp(now() - Duration::from_secs(120)));
    assert_eq!(
        validate(&event, now(), &limits).unwrap_err().reason,
        ReasonCode::TimeTooOld
    );
}

#[test]
fn coordinates_are_in_range_and_finite() {
    let (reason, field) = rejected(Kind::BinReading, |e| {
        e.location.as_mut().unwrap().latitude = 91.0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "location.latitude")
    );
    let (reason, field) = rejected(Kind::BinReading, |e| {
        e.location.as_mut().unwrap().longitude = -180.5
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "location.longitude")
    );
    let (reason, field) = rejected(Kind::BinReading, |e| {
        e.location.as_mut().unwrap().latitude = f64::NAN
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::NotFinite, "location.latitude")
    );
    let (reason, _) = rejected(Kind::BinReading, |e| {
        e.location.as_mut().unwrap().longitude = f64::INFINITY
    });
    assert_eq!(reason, ReasonCode::NotFinite);
    let (reason, field) = rejected(Kind::BinReading, |e| {
        e.location.as_mut().unwrap().accuracy_m = Some(-1.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "location.accuracy_m")
    );
}

#[test]
fn vehicle_positions_need_a_location() {
    let (reason, field) = rejected(Kind::VehiclePosition, |e| e.location = None);
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "location")
    );
    let mut bin = sample(Kind::BinReading);
    bin.location = None;
    assert!(check(&bin).is_ok(), "location is optional for other kinds");
}

#[test]
fn connector_status_rules() {
    let (reason, field) = rejected(Kind::ConnectorStatus, |e| {
        payload_mut!(e, ConnectorStatus).status = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "connector_status.status")
    );
    let (reason, _) = rejected(Kind::ConnectorStatus, |e| {
        payload_mut!(e, ConnectorStatus).status = 99
    });
    assert_eq!(reason, ReasonCode::UnknownEnumValue);
    let (reason, field) = rejected(Kind::ConnectorStatus, |e| {
        payload_mut!(e, ConnectorStatus).error_code = 42
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::UnknownEnumValue, "connector_status.error_code")
    );
    let (reason, field) = rejected(Kind::ConnectorStatus, |e| {
        payload_mut!(e, ConnectorStatus).connector_id = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "connector_status.connector_id")
    );
    let (reason, field) = rejected(Kind::ConnectorStatus, |e| {
        payload_mut!(e, ConnectorStatus).station_id.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "connector_status.station_id")
    );
    let (reason, _) = rejected(Kind::ConnectorStatus, |e| {
        payload_mut!(e, ConnectorStatus).info = "x".repeat(501)
    });
    assert_eq!(reason, ReasonCode::InvalidFormat);
}

#[test]
fn meter_sample_energy_and_power_are_non_negative_and_finite() {
    let (reason, field) = rejected(Kind::MeterSample, |e| {
        payload_mut!(e, MeterSample).energy_active_import_wh = -1.0
    });
    assert_eq!(
        (reason, field.as_str()),
        (
            ReasonCode::OutOfRange,
            "meter_sample.energy_active_import_wh"
        )
    );
    let (reason, field) = rejected(Kind::MeterSample, |e| {
        payload_mut!(e, MeterSample).power_active_import_w = Some(-5.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "meter_sample.power_active_import_w")
    );
    let (reason, _) = rejected(Kind::MeterSample, |e| {
        payload_mut!(e, MeterSample).energy_active_import_wh = f64::NAN
    });
    assert_eq!(reason, ReasonCode::NotFinite);
    let (reason, field) = rejected(Kind::MeterSample, |e| {
        payload_mut!(e, MeterSample).soc_percent = Some(101.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "meter_sample.soc_percent")
    );
    let (reason, field) = rejected(Kind::MeterSample, |e| {
        payload_mut!(e, MeterSample).voltage_v = vec![230.0, f64::NEG_INFINITY]
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::NotFinite, "meter_sample.voltage_v[1]")
    );
    let (reason, _) = rejected(Kind::MeterSample, |e| {
        payload_mut!(e, MeterSample).current_import_a = vec![1.0; 4]
    });
    assert_eq!(reason, ReasonCode::OutOfRange);
}

#[test]
fn charging_session_rules() {
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).transaction_id.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "charging_session.transaction_id")
    );
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).phase = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "charging_session.phase")
    );
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).meter_stop_wh = None
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "charging_session.meter_stop_wh")
    );
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).meter_stop_wh = Some(99_000.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::Inconsistent, "charging_session.meter_stop_wh")
    );
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).energy_kwh = Some(-0.1)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "charging_session.energy_kwh")
    );
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).stop_reason = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "charging_session.stop_reason")
    );
    let (reason, field) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).fee_total_cny = Some(30.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::Inconsistent, "charging_session.fee_total_cny")
    );
    let (reason, _) = rejected(Kind::ChargingSession, |e| {
        payload_mut!(e, ChargingSession).fee_service_cny = Some(-1.0)
    });
    assert_eq!(reason, ReasonCode::OutOfRange);

    let mut started = sample(Kind::ChargingSession);
    let p = payload_mut!(started, ChargingSession);
    p.phase = citybrain_proto::events::v1::SessionPhase::Started as i32;
    p.meter_stop_wh = None;
    p.energy_kwh = None;
    p.stop_reason = 0;
    p.fee_electricity_cny = None;
    p.fee_service_cny = None;
    p.fee_total_cny = None;
    assert!(
        check(&started).is_ok(),
        "a STARTED session needs no stop fields"
    );
}

#[test]
fn parking_counts_must_add_up() {
    let (reason, field) = rejected(Kind::ParkingSiteCounts, |e| {
        payload_mut!(e, ParkingSiteCounts).available = 31
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::Inconsistent, "parking_site_counts.occupied")
    );
    let mut exact = sample(Kind::ParkingSiteCounts);
    payload_mut!(exact, ParkingSiteCounts).available = 30;
    assert!(
        check(&exact).is_ok(),
        "occupied + available == total is fine"
    );

    let (reason, _) = rejected(Kind::ParkingSiteCounts, |e| {
        let p = payload_mut!(e, ParkingSiteCounts);
        p.occupied = u32::MAX;
        p.available = u32::MAX;
    });
    assert_eq!(
        reason,
        ReasonCode::Inconsistent,
        "no overflow on huge counts"
    );
    let (reason, field) = rejected(Kind::ParkingSiteCounts, |e| {
        payload_mut!(e, ParkingSiteCounts).ev_occupied = Some(11)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::Inconsistent, "parking_site_counts.ev_occupied")
    );
    let (reason, field) = rejected(Kind::ParkingSiteCounts, |e| {
        payload_mut!(e, ParkingSiteCounts).ev_total = Some(151)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::Inconsistent, "parking_site_counts.ev_total")
    );
    let (reason, field) = rejected(Kind::ParkingSiteCounts, |e| {
        payload_mut!(e, ParkingSiteCounts).total_spots = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "parking_site_counts.total_spots")
    );
    let (reason, field) = rejected(Kind::ParkingSiteCounts, |e| {
        payload_mut!(e, ParkingSiteCounts).status = 17
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::UnknownEnumValue, "parking_site_counts.status")
    );
}

#[test]
fn parking_spot_rules() {
    let (reason, field) = rejected(Kind::ParkingSpotStatus, |e| {
        payload_mut!(e, ParkingSpotStatus).state = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "parking_spot_status.state")
    );
    let (reason, field) = rejected(Kind::ParkingSpotStatus, |e| {
        payload_mut!(e, ParkingSpotStatus).spot_id.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "parking_spot_status.spot_id")
    );
    let (reason, _) = rejected(Kind::ParkingSpotStatus, |e| {
        payload_mut!(e, ParkingSpotStatus).detection = 9
    });
    assert_eq!(reason, ReasonCode::UnknownEnumValue);
}

#[test]
fn vehicle_position_rules() {
    let (reason, field) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).role = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "vehicle_position.role")
    );
    let (reason, field) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).speed_kmh = -3.0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "vehicle_position.speed_kmh")
    );
    let (reason, _) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).speed_kmh = f64::NAN
    });
    assert_eq!(reason, ReasonCode::NotFinite);
    let (reason, field) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).heading_deg = Some(360.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "vehicle_position.heading_deg")
    );
    let (reason, field) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).odometer_km = Some(-1.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "vehicle_position.odometer_km")
    );
    let (reason, field) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).passengers = Some(201)
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "vehicle_position.passengers")
    );
    let (reason, field) = rejected(Kind::VehiclePosition, |e| {
        payload_mut!(e, VehiclePosition).occupancy_status = 8
    });
    assert_eq!(
        (reason, field.as_str()),
        (
            ReasonCode::UnknownEnumValue,
            "vehicle_position.occupancy_status"
        )
    );
}

#[test]
fn patrol_check_in_rules() {
    let (reason, field) = rejected(Kind::PatrolCheckIn, |e| {
        payload_mut!(e, PatrolCheckIn).checkpoint_id.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "patrol_check_in.checkpoint_id")
    );
    let (reason, field) = rejected(Kind::PatrolCheckIn, |e| {
        payload_mut!(e, PatrolCheckIn).village.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "patrol_check_in.village")
    );
    let (reason, field) = rejected(Kind::PatrolCheckIn, |e| {
        payload_mut!(e, PatrolCheckIn).contamination_percent = Some(120.0)
    });
    assert_eq!(
        (reason, field.as_str()),
        (
            ReasonCode::OutOfRange,
            "patrol_check_in.contamination_percent"
        )
    );
    let (reason, field) = rejected(Kind::PatrolCheckIn, |e| {
        payload_mut!(e, PatrolCheckIn).compliance[1].waste_class = 3
    });
    assert_eq!(
        (reason, field.as_str()),
        (
            ReasonCode::Inconsistent,
            "patrol_check_in.compliance[1].waste_class"
        )
    );
    let (reason, field) = rejected(Kind::PatrolCheckIn, |e| {
        payload_mut!(e, PatrolCheckIn).compliance[0].result = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (
            ReasonCode::MissingField,
            "patrol_check_in.compliance[0].result"
        )
    );
    let (reason, _) = rejected(Kind::PatrolCheckIn, |e| {
        payload_mut!(e, PatrolCheckIn).photo_refs = vec!["p".into(); 11]
    });
    assert_eq!(reason, ReasonCode::OutOfRange);
}

#[test]
fn bin_fill_level_is_a_fraction() {
    let (reason, field) = rejected(Kind::BinReading, |e| {
        payload_mut!(e, BinReading).fill_level = 1.01
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::OutOfRange, "bin_reading.fill_level")
    );
    let (reason, _) = rejected(Kind::BinReading, |e| {
        payload_mut!(e, BinReading).fill_level = -0.01
    });
    assert_eq!(reason, ReasonCode::OutOfRange);
    let (reason, _) = rejected(Kind::BinReading, |e| {
        payload_mut!(e, BinReading).fill_level = f64::NAN
    });
    assert_eq!(reason, ReasonCode::NotFinite);
    let (reason, field) = rejected(Kind::BinReading, |e| {
        payload_mut!(e, BinReading).waste_class = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "bin_reading.waste_class")
    );
    let (reason, field) = rejected(Kind::BinReading, |e| payload_mut!(e, BinReading).status = 7);
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::UnknownEnumValue, "bin_reading.status")
    );
    for edge in [0.0, 1.0] {
        let mut event = sample(Kind::BinReading);
        payload_mut!(event, BinReading).fill_level = edge;
        assert!(check(&event).is_ok(), "fill level {edge} is valid");
    }
}

#[test]
fn waste_collection_rules() {
    let (reason, field) = rejected(Kind::WasteCollection, |e| {
        payload_mut!(e, WasteCollection).weights.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "waste_collection.weights")
    );
    let (reason, field) = rejected(Kind::WasteCollection, |e| {
        payload_mut!(e, WasteCollection).weights[0].net_weight_kg = -2.0
    });
    assert_eq!(
        (reason, field.as_str()),
        (
            ReasonCode::OutOfRange,
            "waste_collection.weights[0].net_weight_kg"
        )
    );
    let (reason, field) = rejected(Kind::WasteCollection, |e| {
        payload_mut!(e, WasteCollection).bin_id.clear()
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "waste_collection.bin_id")
    );
    let (reason, _) = rejected(Kind::WasteCollection, |e| {
        let weights = &mut payload_mut!(e, WasteCollection).weights;
        weights.push(weights[0]);
    });
    assert_eq!(reason, ReasonCode::Inconsistent);
}

#[test]
fn service_request_rules() {
    let (reason, field) = rejected(Kind::ServiceRequest, |e| {
        payload_mut!(e, ServiceRequest).transition = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "service_request.transition")
    );
    let (reason, field) = rejected(Kind::ServiceRequest, |e| {
        payload_mut!(e, ServiceRequest).channel = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "service_request.channel")
    );
    let (reason, field) = rejected(Kind::ServiceRequest, |e| {
        payload_mut!(e, ServiceRequest).category = 0
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "service_request.category")
    );
    let (reason, field) = rejected(Kind::ServiceRequest, |e| {
        payload_mut!(e, ServiceRequest).transition =
            citybrain_proto::events::v1::RequestTransition::Assigned as i32
    });
    assert_eq!(
        (reason, field.as_str()),
        (ReasonCode::MissingField, "service_request.department"),
        "an assigned request names its department"
    );
    let (reason, _) = rejected(Kind::ServiceRequest, |e| {
        payload_mut!(e, ServiceRequest).note = "字".repeat(700)
    });
    assert_eq!(reason, ReasonCode::InvalidFormat);
}
