//! Vehicle positions.

use super::{Envelope, enum_name, raw_row, with_envelope};
use citybrain_proto::events::v1 as ev;

raw_row! {
    /// `raw_vehicle_position`.
    VehiclePositionRow {
        vehicle_id: String,
        role: String,
        speed_kmh: f64,
        heading_deg: Option<f64>,
        odometer_km: Option<f64>,
        ignition_on: u8,
        fix: String,
        route_id: String,
        trip_id: String,
        stop_id: String,
        stop_status: String,
        occupancy_status: String,
        passengers: Option<u32>,
        service_status: String,
    }
}

pub(super) fn position(envelope: Envelope, p: ev::VehiclePosition) -> VehiclePositionRow {
    with_envelope!(VehiclePositionRow, envelope, {
        vehicle_id: p.vehicle_id,
        role: enum_name!(ev::VehicleRole, p.role, "VEHICLE_ROLE_"),
        speed_kmh: p.speed_kmh,
        heading_deg: p.heading_deg,
        odometer_km: p.odometer_km,
        ignition_on: u8::from(p.ignition_on),
        fix: enum_name!(ev::GnssFix, p.fix, "GNSS_FIX_"),
        route_id: p.route_id,
        trip_id: p.trip_id,
        stop_id: p.stop_id,
        stop_status: enum_name!(ev::StopStatus, p.stop_status, "STOP_STATUS_"),
        occupancy_status: enum_name!(ev::OccupancyStatus, p.occupancy_status, "OCCUPANCY_STATUS_"),
        passengers: p.passengers,
        service_status: enum_name!(ev::ServiceStatus, p.service_status, "SERVICE_STATUS_"),
    })
}
