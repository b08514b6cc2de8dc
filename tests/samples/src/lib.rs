//! One valid example event of every kind, set in 潞城镇.
//!
//! The test kit's fixture: the unit and integration tests use it as a
//! known-good baseline that each test bends in one place, and anyone writing
//! a client can read it as a reference. It depends on the contract only, so
//! the services' own unit tests can use it without the rest of the kit.

use citybrain_proto::events::v1::{self as ev, Event, Location, event::Payload};
use citybrain_proto::feed::Kind;
use std::time::SystemTime;

pub use citybrain_proto::timestamp;

/// Near 后北营家园, Lucheng.
pub fn location() -> Location {
    Location {
        latitude: 39.9012,
        longitude: 116.7498,
        altitude_m: None,
        accuracy_m: Some(5.0),
    }
}

/// A valid event of `kind` observed at `at`, with an empty event id (ingest
/// assigns one) and a device id derived from the kind.
pub fn event(kind: Kind, at: SystemTime) -> Event {
    let (device_id, payload) = payload(kind);
    Event {
        event_id: String::new(),
        device_id: device_id.to_string(),
        observed_at: Some(timestamp(at)),
        seq_no: Some(1),
        location: Some(location()),
        observed_at_assumed: false,
        payload: Some(payload),
    }
}

fn payload(kind: Kind) -> (&'static str, Payload) {
    match kind {
        Kind::ConnectorStatus => (
            "HBY-CP-03:1",
            Payload::ConnectorStatus(ev::ConnectorStatus {
                station_id: "HBY-CP-03".into(),
                evse_id: 1,
                connector_id: 1,
                status: ev::ConnectorStatusValue::Charging as i32,
                vendor_status: "Occupied".into(),
                error_code: ev::ChargePointErrorCode::NoError as i32,
                vendor_error_code: String::new(),
                info: String::new(),
                site: "后北营家园".into(),
            }),
        ),
        Kind::MeterSample => (
            "HBY-CP-03:1",
            Payload::MeterSample(ev::MeterSample {
                station_id: "HBY-CP-03".into(),
                connector_id: 1,
                transaction_id: "tx-1001".into(),
                energy_active_import_wh: Some(120_450.0),
                power_active_import_w: Some(6_900.0),
                current_import_a: vec![30.0],
                voltage_v: vec![230.0],
                soc_percent: Some(54.0),
                temperature_c: Some(31.5),
                site: "后北营家园".into(),
                offline: false,
            }),
        ),
        Kind::ChargingSession => (
            "HBY-CP-03:1",
            Payload::ChargingSession(ev::ChargingSession {
                station_id: "HBY-CP-03".into(),
                connector_id: 1,
                transaction_id: "tx-1001".into(),
                phase: ev::SessionPhase::Ended as i32,
                id_token_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                    .into(),
                meter_start_wh: Some(100_000.0),
                meter_stop_wh: Some(121_000.0),
                energy_kwh: Some(21.0),
                duration_s: Some(3 * 3600),
                stop_reason: ev::StopReason::EvDisconnected as i32,
                fee_electricity_cny: Some(12.60),
                fee_service_cny: Some(8.40),
                fee_total_cny: Some(21.00),
                started_at: None,
                site: "后北营家园".into(),
                offline: false,
            }),
        ),
        Kind::ParkingSiteCounts => (
            "P-WUTUAN-1",
            Payload::ParkingSiteCounts(ev::ParkingSiteCounts {
                site_id: "P-WUTUAN-1".into(),
                total_spots: 150,
                occupied: 120,
                available: 28,
                ev_total: Some(10),
                ev_occupied: Some(7),
                status: ev::ParkingSiteStatus::AlmostFull as i32,
                entries: 14,
                exits: 9,
                period_s: 300,
                village: "武疃村".into(),
            }),
        ),
        Kind::ParkingSpotStatus => (
            "P-WUTUAN-1:A017",
            Payload::ParkingSpotStatus(ev::ParkingSpotStatus {
                site_id: "P-WUTUAN-1".into(),
                spot_id: "A017".into(),
                state: ev::ParkingSpotState::Occupied as i32,
                detection: ev::DetectionMethod::SingleSpaceSensor as i32,
                ev_bay: true,
                village: "武疃村".into(),
            }),
        ),
        Kind::VehiclePosition => (
            "VB-02",
            Payload::VehiclePosition(ev::VehiclePosition {
                vehicle_id: "京A·V0002".into(),
                role: ev::VehicleRole::VaccineShuttle as i32,
                speed_kmh: 32.5,
                heading_deg: Some(87.0),
                odometer_km: Some(18_230.4),
                ignition_on: true,
                fix: ev::GnssFix::ThreeD as i32,
                route_id: "shuttle-east".into(),
                trip_id: "shuttle-east-0800".into(),
                stop_id: "gantang-clinic".into(),
                stop_status: ev::StopStatus::InTransitTo as i32,
                occupancy_status: ev::OccupancyStatus::ManySeatsAvailable as i32,
                passengers: Some(6),
                service_status: ev::ServiceStatus::OnRoute as i32,
                ..Default::default()
            }),
        ),
        Kind::PatrolCheckIn => (
            "PATROL-HH-07",
            Payload::PatrolCheckIn(ev::PatrolCheckIn {
                patrol_id: "patrol-2026-11-29-07".into(),
                team_id: "env-team-3".into(),
                inspector_id: "insp-5f2c".into(),
                checkpoint_id: "CK-TZF-12".into(),
                method: ev::CheckInMethod::Nfc as i32,
                compliance: vec![
                    ev::ClassCompliance {
                        waste_class: ev::WasteClass::Kitchen as i32,
                        result: ev::SortingResult::Correct as i32,
                    },
                    ev::ClassCompliance {
                        waste_class: ev::WasteClass::Other as i32,
                        result: ev::SortingResult::Incorrect as i32,
                    },
                ],
                contamination_percent: Some(12.0),
                photo_refs: vec!["photos/2026/11/29/ck-tzf-12-1.jpg".into()],
                follow_up_request_id: String::new(),
                village: "太子府村".into(),
            }),
        ),
        Kind::BinReading => (
            "BIN-QJ-044",
            Payload::BinReading(ev::BinReading {
                bin_id: "BIN-QJ-044".into(),
                waste_class: ev::WasteClass::Recyclable as i32,
                fill_level: 0.82,
                status: ev::BinStatus::Ok as i32,
                last_emptied_at: None,
                village: "七级村".into(),
            }),
        ),
        Kind::WasteCollection => (
            "TRUCK-S-05",
            Payload::WasteCollection(ev::WasteCollection {
                truck_id: "TRUCK-S-05".into(),
                bin_id: "BIN-QJ-044".into(),
                station_id: String::new(),
                weights: vec![ev::ClassWeight {
                    waste_class: ev::WasteClass::Recyclable as i32,
                    net_weight_kg: 23.4,
                }],
                village: "七级村".into(),
            }),
        ),
        Kind::ServiceRequest => (
            "SR-2026-11-0042",
            Payload::ServiceRequest(ev::ServiceRequestTransition {
                request_id: "SR-2026-11-0042".into(),
                transition: ev::RequestTransition::Created as i32,
                service_code: "elderly-meal".into(),
                category: ev::RequestCategory::ElderlyCare as i32,
                channel: ev::RequestChannel::DoorVisit as i32,
                village: "东刘庄村".into(),
                address: "东刘庄村 3 组".into(),
                department: String::new(),
                expected_by: None,
                note: "独居老人送餐需求".into(),
            }),
        ),
    }
}
