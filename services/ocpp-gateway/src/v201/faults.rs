//! OCPP 2.0.1 NotifyEvent: the station's monitoring reports, of which the
//! gateway keeps the raised problems as ConnectorStatus FAULTED.

use super::messages as m;
use crate::error::Fault;
use crate::events::Builder;
use crate::session::{self, Context, Handled, MAX_INFO_BYTES, MAX_VENDOR_TEXT_BYTES, Quirks};
use crate::v16;
use citybrain_proto::events::v1::{
    ChargePointErrorCode, ConnectorStatus, ConnectorStatusValue as Status, event::Payload,
};
use serde_json::{Value, json};

pub(super) fn notify_event(
    ctx: &Context<'_>,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    let notify: m::NotifyEvent = session::parse(payload)?;
    session::require_registered(ctx)?;
    let mut builder = Builder::new(ctx.station, "NotifyEvent", payload);
    for (i, data) in notify.event_data.iter().enumerate() {
        if !is_fault(data) {
            continue;
        }
        let at = session::timestamp(
            &format!("eventData[{i}].timestamp"),
            &data.timestamp,
            quirks,
        )?;
        let evse = data.component.evse.as_ref().map_or(0, |e| e.id);
        let evse = session::connector(
            &format!("eventData[{i}].component.evse.id"),
            ctx.station,
            evse,
            quirks,
        )?;
        let what = format!("{}.{}", data.component.name, data.variable.name);
        let code = data.tech_code.as_deref().unwrap_or(&what);
        builder.push(
            &format!("event:{}", data.event_id),
            evse,
            at,
            None,
            Payload::ConnectorStatus(ConnectorStatus {
                station_id: ctx.station.id.clone(),
                evse_id: evse,
                connector_id: evse,
                status: Status::Faulted as i32,
                vendor_status: session::vendor_text(
                    Some(&format!("{what}={}", data.actual_value)),
                    MAX_VENDOR_TEXT_BYTES,
                    quirks,
                ),
                error_code: v16::error_code(code).unwrap_or(ChargePointErrorCode::OtherError)
                    as i32,
                vendor_error_code: session::vendor_text(Some(code), MAX_VENDOR_TEXT_BYTES, quirks),
                info: session::vendor_text(data.tech_info.as_deref(), MAX_INFO_BYTES, quirks),
                site: ctx.station.site.clone(),
            }),
        );
    }
    Ok(Handled::Store {
        events: builder.finish(),
        reply: json!({}),
    })
}

/// A raised problem: the standard `Problem` variable turning true, or an
/// `AvailabilityState` of `Faulted`. Cleared events and other variables are
/// not faults.
fn is_fault(data: &m::EventData) -> bool {
    let value = data.actual_value.trim();
    !data.cleared
        && ((data.variable.name.eq_ignore_ascii_case("Problem")
            && value.eq_ignore_ascii_case("true"))
            || (data.variable.name.eq_ignore_ascii_case("AvailabilityState")
                && value.eq_ignore_ascii_case("Faulted")))
}
