//! Sanitation: patrol check-ins, bin fill levels, waste collections.

use super::{Envelope, Poison, enum_name, optional_time, raw_row, with_envelope};
use citybrain_proto::events::v1 as ev;

raw_row! {
    /// `raw_patrol_check_in`.
    PatrolCheckInRow {
        patrol_id: String,
        team_id: String,
        inspector_id: String,
        checkpoint_id: String,
        method: String,
        compliance_class: Vec<String>,
        compliance_result: Vec<String>,
        contamination_percent: Option<f64>,
        photo_refs: Vec<String>,
        follow_up_request_id: String,
        village: String,
    }
}

raw_row! {
    /// `raw_bin_reading`.
    BinReadingRow {
        bin_id: String,
        waste_class: String,
        fill_level: f64,
        status: String,
        last_emptied_at: Option<u32>,
        village: String,
    }
}

raw_row! {
    /// `raw_waste_collection`.
    WasteCollectionRow {
        truck_id: String,
        bin_id: String,
        station_id: String,
        weight_class: Vec<String>,
        weight_kg: Vec<f64>,
        total_weight_kg: f64,
        village: String,
    }
}

fn waste_class(value: i32) -> String {
    enum_name!(ev::WasteClass, value, "WASTE_CLASS_")
}

pub(super) fn patrol_check_in(envelope: Envelope, p: ev::PatrolCheckIn) -> PatrolCheckInRow {
    with_envelope!(PatrolCheckInRow, envelope, {
        patrol_id: p.patrol_id,
        team_id: p.team_id,
        inspector_id: p.inspector_id,
        checkpoint_id: p.checkpoint_id,
        method: enum_name!(ev::CheckInMethod, p.method, "CHECK_IN_METHOD_"),
        compliance_class: p.compliance.iter().map(|c| waste_class(c.waste_class)).collect(),
        compliance_result: p
            .compliance
            .iter()
            .map(|c| enum_name!(ev::SortingResult, c.result, "SORTING_RESULT_"))
            .collect(),
        contamination_percent: p.contamination_percent,
        photo_refs: p.photo_refs,
        follow_up_request_id: p.follow_up_request_id,
        village: p.village,
    })
}

pub(super) fn bin_reading(envelope: Envelope, p: ev::BinReading) -> Result<BinReadingRow, Poison> {
    let last_emptied_at = optional_time(p.last_emptied_at.as_ref(), "last_emptied_at")?;
    Ok(with_envelope!(BinReadingRow, envelope, {
        bin_id: p.bin_id,
        waste_class: waste_class(p.waste_class),
        fill_level: p.fill_level,
        status: enum_name!(ev::BinStatus, p.status, "BIN_STATUS_"),
        last_emptied_at: last_emptied_at,
        village: p.village,
    }))
}

pub(super) fn waste_collection(envelope: Envelope, p: ev::WasteCollection) -> WasteCollectionRow {
    with_envelope!(WasteCollectionRow, envelope, {
        truck_id: p.truck_id,
        bin_id: p.bin_id,
        station_id: p.station_id,
        weight_class: p.weights.iter().map(|w| waste_class(w.waste_class)).collect(),
        weight_kg: p.weights.iter().map(|w| w.net_weight_kg).collect(),
        total_weight_kg: p.weights.iter().map(|w| w.net_weight_kg).sum(),
        village: p.village,
    })
}
