//! Citizen service requests.

use super::{Envelope, Poison, enum_name, optional_time, raw_row, with_envelope};
use citybrain_proto::events::v1 as ev;

raw_row! {
    /// `raw_service_request`.
    ServiceRequestRow {
        request_id: String,
        transition: String,
        service_code: String,
        category: String,
        channel: String,
        village: String,
        address: String,
        department: String,
        expected_by: Option<u32>,
        note: String,
    }
}

pub(super) fn transition(
    envelope: Envelope,
    p: ev::ServiceRequestTransition,
) -> Result<ServiceRequestRow, Poison> {
    let expected_by = optional_time(p.expected_by.as_ref(), "expected_by")?;
    Ok(with_envelope!(ServiceRequestRow, envelope, {
        request_id: p.request_id,
        transition: enum_name!(ev::RequestTransition, p.transition, "REQUEST_TRANSITION_"),
        service_code: p.service_code,
        category: enum_name!(ev::RequestCategory, p.category, "REQUEST_CATEGORY_"),
        channel: enum_name!(ev::RequestChannel, p.channel, "REQUEST_CHANNEL_"),
        village: p.village,
        address: p.address,
        department: p.department,
        expected_by: expected_by,
        note: p.note,
    }))
}
