//! OCPP 2.0.1: what a charging station sends, what it is answered, and the
//! contract events it becomes.
//!
//! The town's unit of charging is the EVSE (one car at a time): the
//! contract's `connector_id` and `evse_id` are both the 2.0.1 `evseId`, and
//! the registry's `connectors` counts EVSEs.
//!
//! | action | answer | events |
//! |---|---|---|
//! | BootNotification | Accepted (Rejected once the registry drops the station), `currentTime`, `interval` | — |
//! | Heartbeat | `currentTime` | — (liveness) |
//! | StatusNotification | `{}` | ConnectorStatus; Occupied becomes CHARGING / PREPARING / SUSPENDED_* from the transaction's chargingState |
//! | TransactionEvent | `{}` (+ `idTokenInfo` for an idToken) | ChargingSession STARTED / ENDED, MeterSamples, a ConnectorStatus when chargingState changes an Occupied EVSE; `seqNo` → seq_no, `offline` kept |
//! | MeterValues | `{}` | MeterSamples (evseId 0: the main meter, connector 0) |
//! | NotifyEvent | `{}` | ConnectorStatus FAULTED for a raised problem |
//! | SecurityEventNotification | `{}` | — (logged) |
//! | Authorize | `idTokenInfo` Accepted | — |
//! | anything else | CALLERROR NotImplemented | — |

mod faults;
pub mod messages;

use crate::error::Fault;
use crate::events::{Builder, token_hash};
use crate::session::{
    self, Context, Handled, MAX_VENDOR_TEXT_BYTES, Quirks, StationState, Transaction,
};
use crate::units;
use citybrain_proto::events::v1::{
    ChargePointErrorCode, ChargingSession, ConnectorStatus, ConnectorStatusValue as Status,
    SessionPhase, StopReason, event::Payload,
};
use messages as m;
use prost_types::Timestamp;
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
            let cs = boot.charging_station.as_ref();
            let field = |f: fn(&m::ChargingStation) -> &Option<String>| {
                cs.and_then(|c| f(c).clone()).unwrap_or_default()
            };
            tracing::info!(
                station = %ctx.station.id,
                vendor = %field(|c| &c.vendor_name),
                model = %field(|c| &c.model),
                serial = %field(|c| &c.serial_number),
                firmware = %field(|c| &c.firmware_version),
                reason = boot.reason.as_deref().unwrap_or(""),
                registered = ctx.registered,
                "boot notification"
            );
            Ok(Handled::Reply(session::boot_answer(ctx)))
        }
        "Heartbeat" => Ok(Handled::Reply(session::current_time(ctx))),
        "Authorize" => {
            let _: m::Authorize = session::parse(payload)?;
            session::require_registered(ctx)?;
            Ok(Handled::Reply(accepted_token()))
        }
        "StatusNotification" => status_notification(state, ctx, payload, quirks),
        "TransactionEvent" => transaction_event(state, ctx, payload, quirks),
        "MeterValues" => {
            let values: m::MeterValues = session::parse(payload)?;
            session::require_registered(ctx)?;
            let evse = session::connector("evseId", ctx.station, values.evse_id, quirks)?;
            let mut builder = Builder::new(ctx.station, "MeterValues", payload);
            samples(
                ctx,
                &mut builder,
                &values.meter_value,
                evse,
                "",
                false,
                None,
                quirks,
            )?;
            Ok(Handled::Store {
                events: builder.finish(),
                reply: json!({}),
            })
        }
        "NotifyEvent" => faults::notify_event(ctx, payload, quirks),
        "SecurityEventNotification" => {
            let event: m::SecurityEventNotification = session::parse(payload)?;
            tracing::warn!(
                station = %ctx.station.id,
                kind = %event.kind,
                at = %event.timestamp,
                info = event.tech_info.as_deref().unwrap_or(""),
                "security event"
            );
            Ok(Handled::Reply(json!({})))
        }
        other => Err(Fault::NotImplemented(other.to_string())),
    }
}

fn accepted_token() -> Value {
    json!({ "idTokenInfo": { "status": "Accepted" } })
}

fn status_notification(
    state: &mut StationState,
    ctx: &Context<'_>,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    let n: m::StatusNotification = session::parse(payload)?;
    session::require_registered(ctx)?;
    let evse = session::connector("evseId", ctx.station, n.evse_id, quirks)?;
    let observed_at = session::timestamp("timestamp", &n.timestamp, quirks)?;
    let connector = state.connectors.entry(evse).or_default();
    let status = match n.connector_status.to_ascii_lowercase().as_str() {
        "available" => Status::Available,
        "occupied" => occupied(connector.charging_state.as_deref()),
        "reserved" => Status::Reserved,
        "unavailable" => Status::Unavailable,
        "faulted" => Status::Faulted,
        _ => {
            return Err(Fault::value(
                "connectorStatus",
                format!("{:?} is not a ConnectorStatusEnumType", n.connector_status),
            ));
        }
    };
    connector.occupied = n.connector_status.eq_ignore_ascii_case("occupied");
    if status == Status::Available {
        connector.charging_state = None;
    }
    let mut builder = Builder::new(ctx.station, "StatusNotification", payload);
    push_status(
        &mut builder,
        ctx,
        evse,
        observed_at,
        None,
        status,
        &n.connector_status,
        quirks,
    );
    Ok(Handled::Store {
        events: builder.finish(),
        reply: json!({}),
    })
}

/// What an Occupied EVSE is doing, from its transaction's chargingState.
fn occupied(charging_state: Option<&str>) -> Status {
    match charging_state.map(str::to_ascii_lowercase).as_deref() {
        Some("charging") => Status::Charging,
        Some("suspendedev") => Status::SuspendedEv,
        Some("suspendedevse") => Status::SuspendedEvse,
        // EVConnected, Idle, or no transaction yet: plugged in, not charging.
        _ => Status::Preparing,
    }
}

#[allow(clippy::too_many_arguments)]
fn push_status(
    builder: &mut Builder<'_>,
    ctx: &Context<'_>,
    evse: u32,
    observed_at: Timestamp,
    seq_no: Option<u64>,
    status: Status,
    vendor_status: &str,
    quirks: &mut Quirks,
) {
    builder.push(
        "status",
        evse,
        observed_at,
        seq_no,
        Payload::ConnectorStatus(ConnectorStatus {
            station_id: ctx.station.id.clone(),
            evse_id: evse,
            connector_id: evse,
            status: status as i32,
            // 2.0.1 reports faults apart (NotifyEvent): a status says none.
            error_code: ChargePointErrorCode::NoError as i32,
            vendor_status: session::vendor_text(Some(vendor_status), MAX_VENDOR_TEXT_BYTES, quirks),
            site: ctx.station.site.clone(),
            ..Default::default()
        }),
    );
}

fn transaction_event(
    state: &mut StationState,
    ctx: &Context<'_>,
    payload: &Value,
    quirks: &mut Quirks,
) -> Result<Handled, Fault> {
    let event: m::TransactionEvent = session::parse(payload)?;
    session::require_registered(ctx)?;
    let station = ctx.station;
    let at = session::timestamp("timestamp", &event.timestamp, quirks)?;
    let transaction_id = event.transaction_info.transaction_id.clone();
    let known = state.transactions.get(&transaction_id).cloned();
    // The evse comes with the first event of a transaction; later ones may
    // leave it out.
    let evse = match (&event.evse, &known) {
        (Some(evse), _) => evse.id,
        (None, Some(t)) => t.connector,
        (None, None) if station.connectors == 1 => 1,
        (None, None) => {
            return Err(Fault::value(
                "evse",
                format!(
                    "required: transaction {transaction_id:?} is not known to this central system"
                ),
            ));
        }
    };
    let evse = session::connector("evse.id", station, evse, quirks)?;
    if evse == 0 {
        return Err(Fault::value("evse.id", "a transaction needs an EVSE >= 1"));
    }
    let seq_no = Some(event.seq_no);
    let offline = event.offline;
    let mut builder = Builder::new(station, "TransactionEvent", payload);
    let register = |context: &str| register(&event.meter_value, context);
    let token = event
        .id_token
        .as_ref()
        .map(|t| token_hash(Some(&t.id_token)));
    match event.event_type.to_ascii_lowercase().as_str() {
        "started" => {
            let meter_start_wh = register("Transaction.Begin")?;
            let id_token_hash = token.clone().unwrap_or_default();
            builder.push(
                "session",
                evse,
                at,
                seq_no,
                Payload::ChargingSession(ChargingSession {
                    station_id: station.id.clone(),
                    connector_id: evse,
                    transaction_id: transaction_id.clone(),
                    phase: SessionPhase::Started as i32,
                    id_token_hash: id_token_hash.clone(),
                    meter_start_wh,
                    started_at: Some(at),
                    site: station.site.clone(),
                    offline,
                    ..Default::default()
                }),
            );
            state.open(
                transaction_id.clone(),
                Transaction {
                    connector: evse,
                    meter_start_wh,
                    started_at: at,
                    id_token_hash,
                },
            );
        }
        "updated" => {}
        "ended" => {
            let meter_stop_wh = register("Transaction.End")?;
            let mut ended = ChargingSession {
                station_id: station.id.clone(),
                connector_id: evse,
                transaction_id: transaction_id.clone(),
                phase: SessionPhase::Ended as i32,
                id_token_hash: token.clone().unwrap_or_default(),
                meter_stop_wh,
                stop_reason: stop_reason(event.transaction_info.stopped_reason.as_deref(), quirks)
                    as i32,
                site: station.site.clone(),
                offline,
                ..Default::default()
            };
            match &known {
                Some(start) => {
                    ended.started_at = Some(start.started_at);
                    ended.duration_s = u32::try_from(at.seconds - start.started_at.seconds).ok();
                    if ended.id_token_hash.is_empty() {
                        ended.id_token_hash = start.id_token_hash.clone();
                    }
                    match (start.meter_start_wh, meter_stop_wh) {
                        (Some(begin), Some(stop)) if stop >= begin => {
                            ended.meter_start_wh = Some(begin);
                            ended.energy_kwh = Some((stop - begin) / 1000.0);
                        }
                        (Some(_), Some(_)) => quirks.push("meter_went_backwards"),
                        (begin, None) => ended.meter_start_wh = begin,
                        (None, Some(_)) => {}
                    }
                }
                None => quirks.push("stop_of_unknown_transaction"),
            }
            builder.push("session", evse, at, seq_no, Payload::ChargingSession(ended));
            state.transactions.remove(&transaction_id);
        }
        _ => {
            return Err(Fault::value(
                "eventType",
                format!("{:?} is not Started, Updated or Ended", event.event_type),
            ));
        }
    }
    samples(
        ctx,
        &mut builder,
        &event.meter_value,
        evse,
        &transaction_id,
        offline,
        seq_no,
        quirks,
    )?;
    // A change of chargingState is a change of what an Occupied EVSE does;
    // the end of a transaction leaves a plugged-in car Finishing.
    let connector = state.connectors.entry(evse).or_default();
    let before = connector.charging_state.clone();
    if event.event_type.eq_ignore_ascii_case("ended") {
        connector.charging_state = None;
        if connector.occupied {
            push_status(
                &mut builder,
                ctx,
                evse,
                at,
                seq_no,
                Status::Finishing,
                "Occupied",
                quirks,
            );
        }
    } else if let Some(charging) = &event.transaction_info.charging_state {
        connector.charging_state = Some(charging.clone());
        let status = occupied(Some(charging));
        if connector.occupied && occupied(before.as_deref()) != status {
            push_status(
                &mut builder,
                ctx,
                evse,
                at,
                seq_no,
                status,
                "Occupied",
                quirks,
            );
        }
    }
    Ok(Handled::Store {
        events: builder.finish(),
        reply: if event.id_token.is_some() {
            accepted_token()
        } else {
            json!({})
        },
    })
}

/// The energy register of the sampled values with `context`
/// (Transaction.Begin / Transaction.End), else of the first (Begin) or last
/// (End) set that has one.
fn register(values: &[m::MeterValue], context: &str) -> Result<Option<f64>, Fault> {
    let mut with_context = None;
    let mut any = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let reading = reading(&format!("meterValue[{i}]"), value, Some(context))?;
        if reading.energy_wh.is_some() && with_context.is_none() {
            with_context = reading.energy_wh;
        }
        if let Some(wh) = reading_energy(i, value)? {
            any.push(wh);
        }
    }
    let fallback = if context == "Transaction.Begin" {
        any.first()
    } else {
        any.last()
    };
    Ok(with_context.or(fallback.copied()))
}

fn reading_energy(i: usize, value: &m::MeterValue) -> Result<Option<f64>, Fault> {
    Ok(reading(&format!("meterValue[{i}]"), value, None)?.energy_wh)
}

#[allow(clippy::too_many_arguments)]
fn samples(
    ctx: &Context<'_>,
    builder: &mut Builder<'_>,
    values: &[m::MeterValue],
    evse: u32,
    transaction_id: &str,
    offline: bool,
    seq_no: Option<u64>,
    quirks: &mut Quirks,
) -> Result<(), Fault> {
    for (i, value) in values.iter().enumerate() {
        let at = session::timestamp(
            &format!("meterValue[{i}].timestamp"),
            &value.timestamp,
            quirks,
        )?;
        let reading = reading(&format!("meterValue[{i}]"), value, None)?;
        if let Some(sample) =
            session::meter_sample(ctx.station, evse, transaction_id, &reading, offline, quirks)
        {
            builder.push(&format!("sample:{i}"), evse, at, seq_no, sample);
        }
    }
    Ok(())
}

/// The set's values (only those with `context`, when given), normalised.
fn reading(
    path: &str,
    value: &m::MeterValue,
    context: Option<&str>,
) -> Result<units::Reading, Fault> {
    let chosen: Vec<(usize, units::Sampled<'_>)> = value
        .sampled_value
        .iter()
        .enumerate()
        .filter(|(_, sv)| context.is_none_or(|c| sv.context.as_deref() == Some(c)))
        .map(|(i, sv)| {
            let unit = sv.unit_of_measure.as_ref();
            (
                i,
                units::Sampled {
                    value: sv.value,
                    measurand: sv.measurand.as_deref(),
                    unit: unit.and_then(|u| u.unit.as_deref()),
                    multiplier: unit.map_or(0, |u| u.multiplier),
                    phase: sv.phase.as_deref(),
                    location: sv.location.as_deref(),
                },
            )
        })
        .collect();
    let only: Vec<units::Sampled<'_>> = chosen.iter().map(|(_, s)| *s).collect();
    units::normalise(&only)
        .map_err(|(j, why)| Fault::value(format!("{path}.sampledValue[{}]", chosen[j].0), why))
}

/// 2.0.1 ReasonEnumType; absent means Local, one outside the enum is Other.
fn stop_reason(reason: Option<&str>, quirks: &mut Quirks) -> StopReason {
    let Some(reason) = reason else {
        return StopReason::Local;
    };
    match reason.to_ascii_lowercase().as_str() {
        "local" => StopReason::Local,
        "remote" => StopReason::Remote,
        "evdisconnected" => StopReason::EvDisconnected,
        "stoppedbyev" => StopReason::StoppedByEv,
        "energylimitreached" => StopReason::EnergyLimitReached,
        "soclimitreached" => StopReason::SocLimitReached,
        "timelimitreached" => StopReason::TimeLimitReached,
        "deauthorized" => StopReason::Deauthorized,
        "emergencystop" => StopReason::EmergencyStop,
        "powerloss" => StopReason::PowerLoss,
        "groundfault" | "overcurrentfault" | "powerquality" => StopReason::ChargerFault,
        "localoutofcredit" => StopReason::LocalOutOfCredit,
        "reboot" | "immediatereset" => StopReason::Reboot,
        "timeout" => StopReason::Timeout,
        "other" | "masterpass" => StopReason::Other,
        _ => {
            quirks.push("unknown_stop_reason");
            StopReason::Other
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
