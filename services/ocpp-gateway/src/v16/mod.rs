//! OCPP 1.6-J: what a charge point sends, what it is answered, and the
//! contract events it becomes.
//!
//! | action | answer | events |
//! |---|---|---|
//! | BootNotification | Accepted (Rejected once the registry drops the station), `currentTime`, `interval` | — |
//! | Heartbeat | `currentTime` | — (liveness) |
//! | StatusNotification | `{}` | ConnectorStatus (connectorId 0: the charge point) |
//! | Authorize | `idTagInfo` Accepted | — |
//! | StartTransaction | `transactionId` (see `txid`), `idTagInfo` | ChargingSession STARTED |
//! | MeterValues | `{}` | MeterSample per sampled value set |
//! | StopTransaction | `{}` (+ `idTagInfo`), even for an unknown transaction | ChargingSession ENDED, MeterSamples of `transactionData` |
//! | DataTransfer | `UnknownVendorId` | — |
//! | Firmware/DiagnosticsStatusNotification | `{}` | — |
//! | anything else | CALLERROR NotImplemented | — |

pub mod messages;

use crate::error::Fault;
use crate::events::{Builder, token_hash};
use crate::session::{
    self, Context, Handled, MAX_INFO_BYTES, MAX_VENDOR_TEXT_BYTES, Quirks, StationState,
    Transaction,
};
use crate::{txid, units};
use citybrain_proto::events::v1::{
    ChargePointErrorCode, ChargingSession, ConnectorStatus, ConnectorStatusValue, SessionPhase,
    StopReason, event::Payload,
};
use messages as m;
use serde_json::{Value, json};

pub fn handle(
    state: &mut StationState,
    ctx: &Context<'_>,
    action: &str,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    match action {
        "BootNotification" => {
            let boot: m::BootNotification = session::parse(payload)?;
            tracing::info!(
                station = %ctx.station.id,
                vendor = boot.charge_point_vendor.as_deref().unwrap_or("?"),
                model = boot.charge_point_model.as_deref().unwrap_or("?"),
                serial = boot.charge_point_serial_number.as_deref().unwrap_or(""),
                firmware = boot.firmware_version.as_deref().unwrap_or(""),
                registered = ctx.registered,
                "boot notification"
            );
            Ok(Handled::Reply(session::boot_answer(ctx)))
        }
        "Heartbeat" => Ok(Handled::Reply(session::current_time(ctx))),
        "Authorize" => {
            let _: m::Authorize = session::parse(payload)?;
            session::require_registered(ctx)?;
            Ok(Handled::Reply(accepted_id_tag()))
        }
        "StatusNotification" => status_notification(ctx, payload, quirks),
        "StartTransaction" => start_transaction(state, ctx, payload, quirks),
        "MeterValues" => meter_values(ctx, payload, quirks),
        "StopTransaction" => stop_transaction(state, ctx, payload, quirks),
        "DataTransfer" => {
            let transfer: m::DataTransfer = session::parse(payload)?;
            tracing::debug!(station = %ctx.station.id, vendor = %transfer.vendor_id,
                message = transfer.message_id.as_deref().unwrap_or(""), "data transfer");
            Ok(Handled::Reply(json!({ "status": "UnknownVendorId" })))
        }
        "FirmwareStatusNotification" | "DiagnosticsStatusNotification" => {
            let update: m::StatusOnly = session::parse(payload)?;
            tracing::info!(station = %ctx.station.id, action, status = %update.status, "status update");
            Ok(Handled::Reply(json!({})))
        }
        other => Err(Fault::NotImplemented(other.to_string())),
    }
}

fn accepted_id_tag() -> Value {
    json!({ "idTagInfo": { "status": "Accepted" } })
}

fn status_notification(
    ctx: &Context<'_>,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    let n: m::StatusNotification = session::parse(payload)?;
    session::require_registered(ctx)?;
    let station = ctx.station;
    let connector = session::connector("connectorId", station, n.connector_id, quirks)?;
    let status = status_value(&n.status).ok_or_else(|| {
        Fault::value(
            "status",
            format!("{:?} is not a ChargePointStatus", n.status),
        )
    })?;
    let observed_at = session::timestamp_or_now("timestamp", n.timestamp.as_deref(), ctx, quirks)?;
    // An errorCode outside the enum ("Error" is seen in the field) is kept as
    // the vendor's code, before the vendorErrorCode if there is one too.
    let (error_code, vendor_error_code) = match error_code(&n.error_code) {
        Some(code) => (code, n.vendor_error_code.clone()),
        None => {
            quirks.push("vendor_error_code");
            let raw = n.error_code.as_str();
            let vendor = match n.vendor_error_code.as_deref() {
                Some(code) if !code.is_empty() => format!("{raw}/{code}"),
                _ => raw.to_string(),
            };
            (ChargePointErrorCode::OtherError, Some(vendor))
        }
    };
    let mut builder = Builder::new(station, "StatusNotification", payload);
    builder.push(
        "status",
        connector,
        observed_at,
        None,
        Payload::ConnectorStatus(ConnectorStatus {
            station_id: station.id.clone(),
            evse_id: connector,
            connector_id: connector,
            status: status as i32,
            vendor_status: session::vendor_text(Some(&n.status), MAX_VENDOR_TEXT_BYTES, quirks),
            error_code: error_code as i32,
            vendor_error_code: session::vendor_text(
                vendor_error_code.as_deref(),
                MAX_VENDOR_TEXT_BYTES,
                quirks,
            ),
            info: session::vendor_text(n.info.as_deref(), MAX_INFO_BYTES, quirks),
            site: station.site.clone(),
        }),
    );
    if n.timestamp.is_none() {
        builder.time_assumed();
    }
    Ok(Handled::Store {
        events: builder.finish(),
        reply: json!({}),
    })
}

fn start_transaction(
    state: &mut StationState,
    ctx: &Context<'_>,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    let start: m::StartTransaction = session::parse(payload)?;
    session::require_registered(ctx)?;
    let station = ctx.station;
    let connector = session::connector("connectorId", station, start.connector_id, quirks)?;
    if connector == 0 {
        return Err(Fault::value(
            "connectorId",
            "a transaction needs a connector >= 1",
        ));
    }
    if !(start.meter_start.is_finite() && start.meter_start >= 0.0) {
        return Err(Fault::value(
            "meterStart",
            "must be a register reading >= 0 Wh",
        ));
    }
    let started_at = session::timestamp("timestamp", &start.timestamp, quirks)?;
    let transaction_id =
        txid::allocate(&started_at, connector).map_err(|why| Fault::value("timestamp", why))?;
    let id_token_hash = token_hash(Some(&start.id_tag));
    let mut builder = Builder::new(station, "StartTransaction", payload);
    builder.push(
        "session",
        connector,
        started_at,
        None,
        Payload::ChargingSession(ChargingSession {
            station_id: station.id.clone(),
            connector_id: connector,
            transaction_id: transaction_id.to_string(),
            phase: SessionPhase::Started as i32,
            id_token_hash: id_token_hash.clone(),
            meter_start_wh: Some(start.meter_start),
            started_at: Some(started_at),
            site: station.site.clone(),
            ..Default::default()
        }),
    );
    state.open(
        transaction_id.to_string(),
        Transaction {
            connector,
            meter_start_wh: Some(start.meter_start),
            started_at,
            id_token_hash,
        },
    );
    Ok(Handled::Store {
        events: builder.finish(),
        reply: json!({ "transactionId": transaction_id, "idTagInfo": { "status": "Accepted" } }),
    })
}

fn meter_values(ctx: &Context<'_>, payload: &Value, quirks: &mut Quirks) -> Result<Handled, Fault> {
    let values: m::MeterValues = session::parse(payload)?;
    session::require_registered(ctx)?;
    let connector = session::connector("connectorId", ctx.station, values.connector_id, quirks)?;
    let transaction = values
        .transaction_id
        .map(|id| id.to_string())
        .unwrap_or_default();
    let mut builder = Builder::new(ctx.station, "MeterValues", payload);
    samples(
        ctx,
        &mut builder,
        "meterValue",
        "sample",
        &values.meter_value,
        connector,
        &transaction,
        quirks,
    )?;
    Ok(Handled::Store {
        events: builder.finish(),
        reply: json!({}),
    })
}

fn stop_transaction(
    state: &mut StationState,
    ctx: &Context<'_>,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    let stop: m::StopTransaction = session::parse(payload)?;
    session::require_registered(ctx)?;
    let station = ctx.station;
    if !(stop.meter_stop.is_finite() && stop.meter_stop >= 0.0) {
        return Err(Fault::value(
            "meterStop",
            "must be a register reading >= 0 Wh",
        ));
    }
    let ended_at = session::timestamp("timestamp", &stop.timestamp, quirks)?;
    let transaction_id = stop.transaction_id.to_string();
    let known = state.transactions.remove(&transaction_id);
    let reply = match stop.id_tag {
        Some(_) => accepted_id_tag(),
        None => json!({}),
    };
    let connector = match &known {
        Some(t) => t.connector,
        None => {
            quirks.push("stop_of_unknown_transaction");
            match txid::connector(stop.transaction_id, station.connectors) {
                Some(connector) => connector,
                None => {
                    // OCPP wants every StopTransaction acknowledged; without a
                    // connector there is no device to store it on.
                    tracing::warn!(station = %station.id, transaction = %transaction_id, raw = %payload,
                        "StopTransaction of a transaction whose connector is unknown; acknowledged, not stored");
                    return Ok(Handled::Reply(reply));
                }
            }
        }
    };
    let mut session = ChargingSession {
        station_id: station.id.clone(),
        connector_id: connector,
        transaction_id: transaction_id.clone(),
        phase: SessionPhase::Ended as i32,
        id_token_hash: token_hash(stop.id_tag.as_deref()),
        meter_stop_wh: Some(stop.meter_stop),
        stop_reason: stop_reason(stop.reason.as_deref(), quirks) as i32,
        site: station.site.clone(),
        ..Default::default()
    };
    if let Some(start) = &known {
        session.started_at = Some(start.started_at);
        if !start.id_token_hash.is_empty() {
            session.id_token_hash = start.id_token_hash.clone();
        }
        let seconds = ended_at.seconds - start.started_at.seconds;
        session.duration_s = u32::try_from(seconds).ok();
        match start.meter_start_wh {
            Some(begin) if stop.meter_stop >= begin => {
                session.meter_start_wh = Some(begin);
                session.energy_kwh = Some((stop.meter_stop - begin) / 1000.0);
            }
            // A meter replaced or reset mid-session: the stop register is
            // true, an energy made of the two would not be.
            Some(_) => quirks.push("meter_went_backwards"),
            None => {}
        }
    }
    let mut builder = Builder::new(station, "StopTransaction", payload);
    builder.push(
        "session",
        connector,
        ended_at,
        None,
        Payload::ChargingSession(session),
    );
    samples(
        ctx,
        &mut builder,
        "transactionData",
        "data",
        &stop.transaction_data,
        connector,
        &transaction_id,
        quirks,
    )?;
    Ok(Handled::Store {
        events: builder.finish(),
        reply,
    })
}

/// One MeterSample per sampled value set that carries something the
/// contract keeps.
#[allow(clippy::too_many_arguments)]
fn samples(
    ctx: &Context<'_>,
    builder: &mut Builder<'_>,
    path: &str,
    part: &str,
    values: &[m::MeterValue],
    connector: u32,
    transaction_id: &str,
    quirks: &mut Quirks,
) -> Result<(), Fault> {
    for (i, value) in values.iter().enumerate() {
        let at = session::timestamp(&format!("{path}[{i}].timestamp"), &value.timestamp, quirks)?;
        let reading = reading(&format!("{path}[{i}]"), value)?;
        if let Some(sample) = session::meter_sample(
            ctx.station,
            connector,
            transaction_id,
            &reading,
            false,
            quirks,
        ) {
            builder.push(&format!("{part}:{i}"), connector, at, None, sample);
        }
    }
    Ok(())
}

fn reading(path: &str, value: &m::MeterValue) -> Result<units::Reading, Fault> {
    let mut sampled = Vec::with_capacity(value.sampled_value.len());
    for (i, sv) in value.sampled_value.iter().enumerate() {
        // Signed meter data is an opaque blob, not a number.
        if sv
            .format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("SignedData"))
        {
            continue;
        }
        let number: f64 = sv.value.trim().parse().map_err(|_| {
            Fault::value(
                format!("{path}.sampledValue[{i}].value"),
                format!("{:?} is not a number", sv.value),
            )
        })?;
        sampled.push((
            i,
            units::Sampled {
                value: number,
                measurand: sv.measurand.as_deref(),
                unit: sv.unit.as_deref(),
                multiplier: 0,
                phase: sv.phase.as_deref(),
                location: sv.location.as_deref(),
            },
        ));
    }
    let only: Vec<units::Sampled<'_>> = sampled.iter().map(|(_, s)| *s).collect();
    units::normalise(&only)
        .map_err(|(j, why)| Fault::value(format!("{path}.sampledValue[{}]", sampled[j].0), why))
}

/// 1.6 ChargePointStatus, matched without regard to case.
pub fn status_value(text: &str) -> Option<ConnectorStatusValue> {
    use ConnectorStatusValue as S;
    Some(match text.to_ascii_lowercase().as_str() {
        "available" => S::Available,
        "preparing" => S::Preparing,
        "charging" => S::Charging,
        "suspendedevse" => S::SuspendedEvse,
        "suspendedev" => S::SuspendedEv,
        "finishing" => S::Finishing,
        "reserved" => S::Reserved,
        "unavailable" => S::Unavailable,
        "faulted" => S::Faulted,
        _ => return None,
    })
}

/// 1.6 ChargePointErrorCode, matched without regard to case.
pub fn error_code(text: &str) -> Option<ChargePointErrorCode> {
    use ChargePointErrorCode as E;
    Some(match text.to_ascii_lowercase().as_str() {
        "noerror" => E::NoError,
        "connectorlockfailure" => E::ConnectorLockFailure,
        "evcommunicationerror" => E::EvCommunicationError,
        "groundfailure" => E::GroundFailure,
        "hightemperature" => E::HighTemperature,
        "internalerror" => E::InternalError,
        "locallistconflict" => E::LocalListConflict,
        "othererror" => E::OtherError,
        "overcurrentfailure" => E::OverCurrentFailure,
        "overvoltage" => E::OverVoltage,
        "powermeterfailure" => E::PowerMeterFailure,
        "powerswitchfailure" => E::PowerSwitchFailure,
        "readerfailure" => E::ReaderFailure,
        "resetfailure" => E::ResetFailure,
        "undervoltage" => E::UnderVoltage,
        "weaksignal" => E::WeakSignal,
        _ => return None,
    })
}

/// 1.6 Reason; absent means Local (the spec's default), one outside the enum
/// is Other.
fn stop_reason(reason: Option<&str>, quirks: &mut Quirks) -> StopReason {
    let Some(reason) = reason else {
        return StopReason::Local;
    };
    match reason.to_ascii_lowercase().as_str() {
        "local" => StopReason::Local,
        "remote" => StopReason::Remote,
        "evdisconnected" => StopReason::EvDisconnected,
        "emergencystop" => StopReason::EmergencyStop,
        "powerloss" => StopReason::PowerLoss,
        "reboot" | "hardreset" | "softreset" => StopReason::Reboot,
        "deauthorized" => StopReason::Deauthorized,
        "other" | "unlockcommand" => StopReason::Other,
        _ => {
            quirks.push("unknown_stop_reason");
            StopReason::Other
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
pub(crate) mod tests;
