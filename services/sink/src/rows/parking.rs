//! Parking: site counts and spot states.

use super::{Envelope, enum_name, raw_row, with_envelope};
use citybrain_proto::events::v1 as ev;

raw_row! {
    /// `raw_parking_site_counts`.
    ParkingSiteCountsRow {
        site_id: String,
        total_spots: u32,
        occupied: u32,
        available: u32,
        ev_total: Option<u32>,
        ev_occupied: Option<u32>,
        status: String,
        entries: u32,
        exits: u32,
        period_s: u32,
        village: String,
    }
}

raw_row! {
    /// `raw_parking_spot_status`.
    ParkingSpotStatusRow {
        site_id: String,
        spot_id: String,
        state: String,
        detection: String,
        ev_bay: u8,
        village: String,
    }
}

pub(super) fn site_counts(envelope: Envelope, p: ev::ParkingSiteCounts) -> ParkingSiteCountsRow {
    with_envelope!(ParkingSiteCountsRow, envelope, {
        site_id: p.site_id,
        total_spots: p.total_spots,
        occupied: p.occupied,
        available: p.available,
        ev_total: p.ev_total,
        ev_occupied: p.ev_occupied,
        status: enum_name!(ev::ParkingSiteStatus, p.status, "PARKING_SITE_STATUS_"),
        entries: p.entries,
        exits: p.exits,
        period_s: p.period_s,
        village: p.village,
    })
}

pub(super) fn spot_status(envelope: Envelope, p: ev::ParkingSpotStatus) -> ParkingSpotStatusRow {
    with_envelope!(ParkingSpotStatusRow, envelope, {
        site_id: p.site_id,
        spot_id: p.spot_id,
        state: enum_name!(ev::ParkingSpotState, p.state, "PARKING_SPOT_STATE_"),
        detection: enum_name!(ev::DetectionMethod, p.detection, "DETECTION_METHOD_"),
        ev_bay: u8::from(p.ev_bay),
        village: p.village,
    })
}
