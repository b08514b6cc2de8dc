//! EV charging: connector status, meter samples, sessions.

use super::{Envelope, Poison, enum_name, optional_time, raw_row, with_envelope};
use citybrain_proto::events::v1 as ev;

raw_row! {
    /// `raw_connector_status`.
    ConnectorStatusRow {
        station_id: String,
        evse_id: u32,
        connector_id: u32,
        status: String,
        vendor_status: String,
        error_code: String,
        vendor_error_code: String,
        info: String,
        site: String,
        // The table's prev_status / prev_observed_at columns are no longer
        // written (their defaults, '' and 0): time in status is computed by
        // the query service from the events in event-time order.
    }
}

raw_row! {
    /// `raw_meter_sample`.
    MeterSampleRow {
        station_id: String,
        connector_id: u32,
        transaction_id: String,
        energy_active_import_wh: Option<f64>,
        power_active_import_w: Option<f64>,
        current_import_a: Vec<f64>,
        voltage_v: Vec<f64>,
        soc_percent: Option<f64>,
        temperature_c: Option<f64>,
        site: String,
        offline: u8,
    }
}

raw_row! {
    /// `raw_charging_session`.
    ChargingSessionRow {
        station_id: String,
        connector_id: u32,
        transaction_id: String,
        phase: String,
        id_token_hash: String,
        meter_start_wh: Option<f64>,
        meter_stop_wh: Option<f64>,
        energy_kwh: Option<f64>,
        duration_s: Option<u32>,
        stop_reason: String,
        fee_electricity_cny: Option<f64>,
        fee_service_cny: Option<f64>,
        fee_total_cny: Option<f64>,
        started_at: Option<u32>,
        site: String,
        offline: u8,
    }
}

pub(super) fn connector_status(envelope: Envelope, p: ev::ConnectorStatus) -> ConnectorStatusRow {
    with_envelope!(ConnectorStatusRow, envelope, {
        station_id: p.station_id,
        evse_id: p.evse_id,
        connector_id: p.connector_id,
        status: enum_name!(ev::ConnectorStatusValue, p.status, "CONNECTOR_STATUS_VALUE_"),
        vendor_status: p.vendor_status,
        error_code: enum_name!(ev::ChargePointErrorCode, p.error_code, "CHARGE_POINT_ERROR_CODE_"),
        vendor_error_code: p.vendor_error_code,
        info: p.info,
        site: p.site,
    })
}

pub(super) fn meter_sample(envelope: Envelope, p: ev::MeterSample) -> MeterSampleRow {
    with_envelope!(MeterSampleRow, envelope, {
        station_id: p.station_id,
        connector_id: p.connector_id,
        transaction_id: p.transaction_id,
        energy_active_import_wh: p.energy_active_import_wh,
        power_active_import_w: p.power_active_import_w,
        current_import_a: p.current_import_a,
        voltage_v: p.voltage_v,
        soc_percent: p.soc_percent,
        temperature_c: p.temperature_c,
        site: p.site,
        offline: u8::from(p.offline),
    })
}

pub(super) fn charging_session(
    envelope: Envelope,
    p: ev::ChargingSession,
) -> Result<ChargingSessionRow, Poison> {
    let started_at = optional_time(p.started_at.as_ref(), "started_at")?;
    Ok(with_envelope!(ChargingSessionRow, envelope, {
        station_id: p.station_id,
        connector_id: p.connector_id,
        transaction_id: p.transaction_id,
        phase: enum_name!(ev::SessionPhase, p.phase, "SESSION_PHASE_"),
        id_token_hash: p.id_token_hash,
        meter_start_wh: p.meter_start_wh,
        meter_stop_wh: p.meter_stop_wh,
        energy_kwh: p.energy_kwh,
        duration_s: p.duration_s,
        stop_reason: enum_name!(ev::StopReason, p.stop_reason, "STOP_REASON_"),
        fee_electricity_cny: p.fee_electricity_cny,
        fee_service_cny: p.fee_service_cny,
        fee_total_cny: p.fee_total_cny,
        started_at: started_at,
        site: p.site,
        offline: u8::from(p.offline),
    }))
}
