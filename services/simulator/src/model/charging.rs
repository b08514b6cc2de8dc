//! EV charging piles (充电桩) in the compounds and at public sites: drivers
//! arrive by an hourly pattern, sessions follow a power curve that tapers
//! above 80 % state of charge, and connectors fault and go offline now and
//! then.
//!
//! Status transitions follow OCPP 1.6: Available → Preparing → Charging →
//! Finishing → Available, Preparing → Available when the start fails,
//! Charging → Faulted → Available on a fault, Available → Offline →
//! Available when the gateway loses the charger.

use crate::clock::{self, HOUR, MINUTE, Millis, SECOND};
use crate::geo::{self, Point};
use crate::model::{Out, cents, scaled};
use crate::rng::Rng;
use citybrain_proto::events::v1::{
    ChargePointErrorCode as ErrorCode, ChargingSession, ConnectorStatus,
    ConnectorStatusValue as Status, MeterSample, SessionPhase, StopReason, event::Payload,
};
use sha2::{Digest, Sha256};

/// How often a charging connector reports its meter (OCPP MeterValueSampleInterval).
pub const SAMPLE_INTERVAL: Millis = 60 * SECOND;
/// The longest session the operator allows.
const MAX_SESSION: Millis = 18 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// 7 kW AC wallbox, reports OCPP 1.6 status names.
    Ac,
    /// 60 kW DC charger, reports T/CEC 102 status codes.
    Dc,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Profile {
    /// Residents plug in after work and leave in the morning.
    Residential,
    /// Visitors in office hours, short stays.
    Public,
}

struct SiteSpec {
    place: &'static str,
    stations: u32,
    connectors: u32,
    kind: Kind,
    profile: Profile,
}

const SITES: &[SiteSpec] = &[
    SiteSpec {
        place: "HBY",
        stations: 6,
        connectors: 2,
        kind: Kind::Ac,
        profile: Profile::Residential,
    },
    SiteSpec {
        place: "WT",
        stations: 3,
        connectors: 2,
        kind: Kind::Ac,
        profile: Profile::Residential,
    },
    SiteSpec {
        place: "QJ",
        stations: 2,
        connectors: 2,
        kind: Kind::Ac,
        profile: Profile::Residential,
    },
    SiteSpec {
        place: "GT",
        stations: 2,
        connectors: 2,
        kind: Kind::Dc,
        profile: Profile::Public,
    },
    SiteSpec {
        place: "TH",
        stations: 2,
        connectors: 2,
        kind: Kind::Dc,
        profile: Profile::Public,
    },
];

const FAULTS: &[(ErrorCode, f64)] = &[
    (ErrorCode::GroundFailure, 2.0),
    (ErrorCode::HighTemperature, 2.0),
    (ErrorCode::EvCommunicationError, 3.0),
    (ErrorCode::OverCurrentFailure, 1.0),
    (ErrorCode::PowerMeterFailure, 1.0),
    (ErrorCode::ConnectorLockFailure, 2.0),
    (ErrorCode::InternalError, 1.5),
    (ErrorCode::ReaderFailure, 1.0),
    (ErrorCode::UnderVoltage, 1.0),
    (ErrorCode::OverVoltage, 0.5),
    (ErrorCode::WeakSignal, 1.0),
];

struct Session {
    transaction_id: String,
    token_hash: String,
    meter_start_wh: f64,
    started_at: Millis,
    last_sample: Millis,
    battery_kwh: f64,
    soc: f64,
    target_soc: f64,
    max_power_w: f64,
    depart_at: Millis,
}

#[derive(Debug, Clone, Copy)]
enum Next {
    /// Re-evaluate the hourly rates.
    Nothing,
    Arrival,
    Fault,
    Offline,
}

enum State {
    Available(Next),
    Preparing { fails: bool },
    Charging(Box<Session>),
    Finishing,
    Faulted,
    Offline,
}

/// One connector of one charging station.
pub struct Connector {
    station_id: String,
    connector_id: u32,
    device_id: String,
    site: &'static str,
    location: Point,
    kind: Kind,
    profile: Profile,
    register_wh: f64,
    state: State,
    rng: Rng,
}

/// Every connector of the town at `scale`.
pub fn connectors(seed: u64, scale: f64) -> Vec<Connector> {
    let mut all = Vec::new();
    for spec in SITES {
        let place = geo::place_by_code(spec.place);
        for n in 1..=scaled(spec.stations, scale) {
            let station_id = format!("{}-CP-{n:02}", spec.place);
            let location = place.at.offset(40.0 + 6.0 * f64::from(n), -30.0);
            for c in 1..=spec.connectors {
                let device_id = format!("{station_id}:{c}");
                let mut rng = Rng::for_actor(seed, &device_id);
                all.push(Connector {
                    station_id: station_id.clone(),
                    connector_id: c,
                    site: place.name,
                    location,
                    kind: spec.kind,
                    profile: spec.profile,
                    register_wh: (rng.range(200_000.0, 4_000_000.0)).round(),
                    state: State::Available(Next::Nothing),
                    rng,
                    device_id,
                });
            }
        }
    }
    all
}

/// A charging station of the town: what an OCPP registry lists for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    pub site: &'static str,
    pub connectors: u32,
    pub location: Point,
}

/// Every station of the town at `scale`, in device order.
pub fn stations(scale: f64) -> Vec<Station> {
    let mut stations: Vec<Station> = Vec::new();
    for connector in connectors(0, scale) {
        match stations.last_mut() {
            Some(last) if last.id == connector.station_id => last.connectors += 1,
            _ => stations.push(Station {
                id: connector.station_id.clone(),
                site: connector.site,
                connectors: 1,
                location: connector.location,
            }),
        }
    }
    stations
}

impl Connector {
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Arrivals per hour at local `hour`.
    fn arrival_rate(&self, hour: f64, weekend: bool) -> f64 {
        match self.profile {
            Profile::Residential => match hour {
                h if (17.5..23.0).contains(&h) => 0.30,
                h if (7.0..17.5).contains(&h) => {
                    if weekend {
                        0.12
                    } else {
                        0.06
                    }
                }
                _ => 0.03,
            },
            Profile::Public => match hour {
                h if (8.0..18.0).contains(&h) => {
                    if weekend {
                        0.15
                    } else {
                        0.45
                    }
                }
                h if (18.0..22.0).contains(&h) => 0.12,
                _ => 0.02,
            },
        }
    }

    pub fn step(&mut self, now: Millis, out: &mut Out) -> Millis {
        match std::mem::replace(&mut self.state, State::Available(Next::Nothing)) {
            State::Available(next) => self.idle(now, next, out),
            State::Preparing { fails: true } => {
                self.status(
                    out,
                    Status::Available,
                    ErrorCode::NoError,
                    "authorization rejected",
                );
                self.schedule_idle(now)
            }
            State::Preparing { fails: false } => self.start_session(now, out),
            State::Charging(session) => self.charge(now, session, out),
            State::Finishing | State::Faulted | State::Offline => {
                self.status(out, Status::Available, ErrorCode::NoError, "");
                self.schedule_idle(now)
            }
        }
    }

    fn idle(&mut self, now: Millis, next: Next, out: &mut Out) -> Millis {
        match next {
            Next::Nothing => self.schedule_idle(now),
            Next::Arrival => {
                self.status(out, Status::Preparing, ErrorCode::NoError, "");
                let fails = self.rng.chance(0.05);
                self.state = State::Preparing { fails };
                now + (self.rng.range(30.0, 150.0) * SECOND as f64) as Millis
            }
            Next::Fault => {
                let code = *self.rng.weighted(FAULTS);
                self.status(out, Status::Faulted, code, "self-test failed");
                self.state = State::Faulted;
                now + self.fault_duration()
            }
            Next::Offline => {
                self.status(
                    out,
                    Status::Offline,
                    ErrorCode::NoError,
                    "gateway lost the charger",
                );
                self.state = State::Offline;
                now + (self.rng.exp(45.0) * MINUTE as f64)
                    .clamp(5.0 * MINUTE as f64, 6.0 * HOUR as f64) as Millis
            }
        }
    }

    /// Draws the next thing to happen to an idle connector. The rates change
    /// by the hour, so a draw past the hour is redone then (exponential
    /// waits are memoryless, so this is exact).
    fn schedule_idle(&mut self, now: Millis) -> Millis {
        let arrival = self.arrival_rate(clock::local_hour(now), clock::is_weekend(now));
        let (fault, offline) = (0.002, 0.0015);
        let total = arrival + fault + offline;
        let wait = (self.rng.exp(1.0 / total) * HOUR as f64) as Millis + SECOND;
        let next_hour = (now / HOUR + 1) * HOUR;
        if now + wait >= next_hour {
            self.state = State::Available(Next::Nothing);
            return next_hour;
        }
        let pick = self.rng.unit() * total;
        let next = if pick < arrival {
            Next::Arrival
        } else if pick < arrival + fault {
            Next::Fault
        } else {
            Next::Offline
        };
        self.state = State::Available(next);
        now + wait
    }

    fn fault_duration(&mut self) -> Millis {
        (self.rng.exp(2.0) * HOUR as f64).clamp(10.0 * MINUTE as f64, 12.0 * HOUR as f64) as Millis
    }

    fn start_session(&mut self, now: Millis, out: &mut Out) -> Millis {
        let hour = clock::local_hour(now);
        let depart_at = match self.profile {
            Profile::Residential if !(5.0..17.0).contains(&hour) => {
                let morning = if hour >= 17.0 { now + 12 * HOUR } else { now };
                clock::local_time_on_day(morning, self.rng.range(6.5, 8.5))
            }
            Profile::Residential => now + (self.rng.range(1.0, 4.0) * HOUR as f64) as Millis,
            Profile::Public => now + (self.rng.range(0.4, 2.0) * HOUR as f64) as Millis,
        };
        let station_max: f64 = match self.kind {
            Kind::Ac => 7_000.0,
            Kind::Dc => 60_000.0,
        };
        let card = self.rng.int(1, 40);
        let token = format!("card-{}-{card}", self.station_id);
        let session = Session {
            transaction_id: format!(
                "TX-{}-{}-{}",
                self.station_id,
                self.connector_id,
                now / SECOND
            ),
            token_hash: hex::encode(Sha256::digest(token.as_bytes())),
            meter_start_wh: self.register_wh,
            started_at: now,
            last_sample: now,
            battery_kwh: self.rng.range(40.0, 75.0),
            soc: self.rng.range(12.0, 60.0),
            target_soc: self.rng.range(80.0, 100.0),
            max_power_w: station_max.min(self.rng.range(6_600.0, 90_000.0)),
            depart_at,
        };
        out.emit(
            &self.device_id,
            Some(self.location),
            Payload::ChargingSession(ChargingSession {
                station_id: self.station_id.clone(),
                connector_id: self.connector_id,
                transaction_id: session.transaction_id.clone(),
                phase: SessionPhase::Started as i32,
                id_token_hash: session.token_hash.clone(),
                meter_start_wh: Some(session.meter_start_wh),
                started_at: Some(clock::timestamp(now)),
                site: self.site.to_string(),
                ..Default::default()
            }),
        );
        self.status(out, Status::Charging, ErrorCode::NoError, "");
        self.sample(out, &session, 0.0);
        self.state = State::Charging(Box::new(session));
        now + SAMPLE_INTERVAL
    }

    fn power_w(session: &Session) -> f64 {
        let taper = if session.soc < 80.0 {
            1.0
        } else {
            (1.0 - (session.soc - 80.0) / 22.0).max(0.1)
        };
        session.max_power_w * taper
    }

    fn charge(&mut self, now: Millis, mut session: Box<Session>, out: &mut Out) -> Millis {
        let power = Self::power_w(&session) * self.rng.range(0.97, 1.0);
        let hours = (now - session.last_sample) as f64 / HOUR as f64;
        let wh = (power * hours * 10.0).round() / 10.0;
        self.register_wh += wh;
        session.soc = (session.soc + wh / 1000.0 / session.battery_kwh * 100.0).min(100.0);
        session.last_sample = now;
        let stop = if self.rng.chance(0.0004) {
            Some(StopReason::ChargerFault)
        } else if session.soc >= session.target_soc {
            Some(if self.rng.chance(0.7) {
                StopReason::SocLimitReached
            } else {
                StopReason::StoppedByEv
            })
        } else if now >= session.depart_at {
            Some(*self.rng.weighted(&[
                (StopReason::Local, 0.5),
                (StopReason::EvDisconnected, 0.2),
                (StopReason::Remote, 0.3),
            ]))
        } else if now - session.started_at >= MAX_SESSION {
            Some(StopReason::TimeLimitReached)
        } else {
            None
        };
        let Some(reason) = stop else {
            self.sample(out, &session, power);
            self.state = State::Charging(session);
            return now + SAMPLE_INTERVAL;
        };
        self.sample(out, &session, 0.0);
        self.end_session(now, &session, reason, out);
        if reason == StopReason::ChargerFault {
            let code = *self.rng.weighted(FAULTS);
            self.status(out, Status::Faulted, code, "session aborted by a fault");
            self.state = State::Faulted;
            now + self.fault_duration()
        } else {
            self.status(out, Status::Finishing, ErrorCode::NoError, "");
            self.state = State::Finishing;
            now + (self.rng.range(1.0, 12.0) * MINUTE as f64) as Millis
        }
    }

    fn end_session(&mut self, now: Millis, session: &Session, reason: StopReason, out: &mut Out) {
        let meter_stop_wh = self.register_wh;
        let energy_kwh = (meter_stop_wh - session.meter_start_wh) / 1000.0;
        let (price, service) = tariff(clock::local_hour(session.started_at), self.profile);
        let electricity = cents(energy_kwh * price);
        let service = cents(energy_kwh * service);
        out.emit(
            &self.device_id,
            Some(self.location),
            Payload::ChargingSession(ChargingSession {
                station_id: self.station_id.clone(),
                connector_id: self.connector_id,
                transaction_id: session.transaction_id.clone(),
                phase: SessionPhase::Ended as i32,
                id_token_hash: session.token_hash.clone(),
                meter_start_wh: Some(session.meter_start_wh),
                meter_stop_wh: Some(meter_stop_wh),
                energy_kwh: Some(energy_kwh),
                duration_s: Some(((now - session.started_at) / SECOND) as u32),
                stop_reason: reason as i32,
                fee_electricity_cny: Some(electricity),
                fee_service_cny: Some(service),
                fee_total_cny: Some(cents(electricity + service)),
                started_at: Some(clock::timestamp(session.started_at)),
                site: self.site.to_string(),
                offline: false,
            }),
        );
    }

    fn sample(&mut self, out: &mut Out, session: &Session, power_w: f64) {
        let (voltage, phases) = match self.kind {
            Kind::Ac => (self.rng.range(224.0, 236.0), 1),
            Kind::Dc => (self.rng.range(380.0, 410.0), 1),
        };
        let current = power_w / voltage / f64::from(phases);
        out.emit(
            &self.device_id,
            Some(self.location),
            Payload::MeterSample(MeterSample {
                station_id: self.station_id.clone(),
                connector_id: self.connector_id,
                transaction_id: session.transaction_id.clone(),
                energy_active_import_wh: Some(self.register_wh),
                power_active_import_w: Some(power_w.round()),
                current_import_a: vec![(current * 10.0).round() / 10.0],
                voltage_v: vec![(voltage * 10.0).round() / 10.0],
                soc_percent: Some((session.soc * 10.0).round() / 10.0),
                temperature_c: Some(
                    ((18.0 + power_w / 3000.0 + self.rng.range(-1.0, 1.0)) * 10.0).round() / 10.0,
                ),
                site: self.site.to_string(),
                offline: false,
            }),
        );
    }

    fn status(&mut self, out: &mut Out, status: Status, error: ErrorCode, info: &str) {
        let vendor_status = match self.kind {
            Kind::Ac => match status {
                Status::Available => "Available",
                Status::Preparing => "Preparing",
                Status::Charging => "Charging",
                Status::Finishing => "Finishing",
                Status::Faulted => "Faulted",
                Status::Offline => "Offline",
                _ => "Unavailable",
            }
            .to_string(),
            // T/CEC 102: 0 offline, 1 idle, 2 occupied-not-charging, 3 charging, 255 fault.
            Kind::Dc => match status {
                Status::Available => "1",
                Status::Preparing | Status::Finishing => "2",
                Status::Charging => "3",
                Status::Faulted => "255",
                _ => "0",
            }
            .to_string(),
        };
        let vendor_error_code = if error == ErrorCode::NoError {
            String::new()
        } else {
            format!("E{:03}", error as i32)
        };
        out.emit(
            &self.device_id,
            Some(self.location),
            Payload::ConnectorStatus(ConnectorStatus {
                station_id: self.station_id.clone(),
                evse_id: self.connector_id,
                connector_id: self.connector_id,
                status: status as i32,
                vendor_status,
                error_code: error as i32,
                vendor_error_code,
                info: info.to_string(),
                site: self.site.to_string(),
            }),
        );
    }
}

/// Beijing time-of-use electricity price and the operator's service fee,
/// CNY per kWh, by the local hour the session started.
fn tariff(hour: f64, profile: Profile) -> (f64, f64) {
    let price = match hour {
        h if (10.0..15.0).contains(&h) || (18.0..21.0).contains(&h) => 1.05,
        h if (23.0..24.0).contains(&h) || h < 7.0 => 0.31,
        _ => 0.66,
    };
    let service = match profile {
        Profile::Residential => 0.6,
        Profile::Public => 0.8,
    };
    (price, service)
}
