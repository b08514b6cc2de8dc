//! One terminal connection's protocol state, without I/O: a message in,
//! [`Action`]s out (answers to send, events to store, a code to issue).
//!
//! - Before authentication only registration (0x0100), authentication
//!   (0x0102) and terminal answers (0x0001) are taken; anything else is
//!   answered 0x8001 "fail", so the terminal keeps it, and nothing is stored.
//! - Every terminal message that needs an answer gets one: 0x8100 for
//!   registration, 0x8004 for a time query, 0x8001 for the rest (terminal
//!   answers 0x0001 need none).
//! - A location report is answered "ok" only once ingest stored it (or when
//!   there is nothing to store: no GNSS fix), "fail" when it was not stored
//!   and resending can help, "bad message" when ingest rejected it.
//! - Split packets of 0x0200 / 0x0704 are put back together; each packet
//!   before the last is confirmed as received, the last is answered with
//!   the outcome of the whole message.

use crate::body;
use crate::location::{self, Report};
use crate::message::{Header, Message, RegisterResult, Replier, ResultCode, id};
use crate::metrics;
use crate::registry::{Vehicle, same_plate};
use crate::split::{Assembled, Limits, Reassembler};
use bytes::Bytes;
use citybrain_proto::events::v1::Event;
use std::sync::Arc;

/// What the session may look up (in memory, no I/O).
pub trait Directory {
    /// The registered vehicle of a terminal number.
    fn vehicle(&self, number: &str) -> Option<Arc<Vehicle>>;
    /// The vehicle's current authentication code.
    fn auth_code(&self, vehicle: &Vehicle) -> Option<String>;
}

/// What the connection has to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send this message.
    Send(Bytes),
    /// Issue the vehicle's code (persisted), then [`Session::registered`].
    Register(Registering),
    /// Send these events to ingest, then [`Session::stored`].
    Store(Storing),
    /// Revoke the vehicle's code, send `answer`, then close.
    Logout {
        vehicle: Arc<Vehicle>,
        answer: Bytes,
    },
}

#[derive(Debug)]
pub struct Registering {
    pub vehicle: Arc<Vehicle>,
    serial: u16,
}

#[derive(Debug)]
pub struct Storing {
    pub vehicle: Arc<Vehicle>,
    pub events: Vec<Event>,
    id: u16,
    serial: u16,
    /// Items that were not positions and not fine either (bad time, ...).
    bad_items: usize,
    /// The split message this came from, to restore when it fails.
    split: Option<(Assembled, u16)>,
}

/// Ingest's answer for one event, as the terminal is to learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted (or a duplicate of an accepted one).
    Stored,
    /// Rejected by validation: resending will not help.
    Rejected,
    /// Not stored now (retryable, ingest unreachable, the call failed).
    NotStored,
}

pub struct Session {
    replier: Option<Replier>,
    authenticated: Option<Arc<Vehicle>>,
    split: Reassembler,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            replier: None,
            authenticated: None,
            split: Reassembler::new(Limits::default()),
        }
    }

    /// The authenticated vehicle, if any.
    pub fn vehicle(&self) -> Option<&Arc<Vehicle>> {
        self.authenticated.as_ref()
    }

    /// Handles one message; `now` (Unix seconds) answers time queries.
    pub fn handle(&mut self, message: Message, dir: &impl Directory, now: i64) -> Vec<Action> {
        let Message { header, body } = message;
        match &mut self.replier {
            Some(replier) => replier.follow(&header),
            None => self.replier = Some(Replier::new(&header)),
        }
        let authenticated = self
            .authenticated
            .as_ref()
            .filter(|v| {
                dir.vehicle(header.terminal.number())
                    .is_some_and(|d| d.terminal == v.terminal)
            })
            .cloned();
        if header.encryption != 0 {
            return vec![self.answer(&header, ResultCode::Unsupported)];
        }
        match (header.id, authenticated) {
            (id::TERMINAL_ANSWER, _) => {
                metrics::message(header.id, "none");
                Vec::new()
            }
            (id::REGISTER, _) => self.register(&header, &body, dir),
            (id::AUTHENTICATE, _) => self.authenticate(&header, &body, dir),
            (_, None) => {
                tracing::warn!(
                    terminal = header.terminal.digits(),
                    id = format!("{:#06x}", header.id),
                    "message before authentication refused"
                );
                metrics::message(header.id, "refused");
                vec![Action::Send(self.replier().general(
                    header.id,
                    header.serial,
                    ResultCode::Fail,
                ))]
            }
            (_, Some(vehicle)) => self.authenticated_message(header, body, vehicle, now),
        }
    }

    fn authenticated_message(
        &mut self,
        header: Header,
        body: Bytes,
        vehicle: Arc<Vehicle>,
        now: i64,
    ) -> Vec<Action> {
        let (body, split) = match header.split {
            None => (body, None),
            Some(split) if matches!(header.id, id::LOCATION | id::LOCATION_BATCH) => {
                match self
                    .split
                    .push(header.id, split.count, split.index, header.serial, body)
                {
                    Ok(None) => {
                        metrics::message(header.id, "packet");
                        let ok = self
                            .replier()
                            .general(header.id, header.serial, ResultCode::Ok);
                        return vec![Action::Send(ok)];
                    }
                    Ok(Some(assembled)) => (assembled.body(), Some((assembled, split.index))),
                    Err(err) => {
                        tracing::warn!(terminal = %vehicle.terminal, error = %err, "split message refused");
                        return vec![self.answer(&header, ResultCode::Unsupported)];
                    }
                }
            }
            Some(_) => return vec![self.answer(&header, ResultCode::Unsupported)],
        };
        match header.id {
            id::HEARTBEAT => vec![self.answer(&header, ResultCode::Ok)],
            id::QUERY_TIME => {
                metrics::message(header.id, "ok");
                let digits = location::bcd_digits_at(now, false);
                vec![Action::Send(self.replier().time(&digits))]
            }
            id::LOGOUT => {
                tracing::info!(terminal = %vehicle.terminal, "terminal logged out");
                metrics::message(header.id, "ok");
                self.authenticated = None;
                let answer = self
                    .replier()
                    .general(header.id, header.serial, ResultCode::Ok);
                vec![Action::Logout { vehicle, answer }]
            }
            id::LOCATION => match body::location(&body) {
                Ok(loc) => {
                    let reports = vec![location::report(&loc, &vehicle, header.serial)];
                    self.store(&header, vehicle, reports, split)
                }
                Err(err) => self.bad(&header, &vehicle, &err.to_string()),
            },
            id::LOCATION_BATCH => match body::batch(&body) {
                Ok(batch) => {
                    let mut bad = 0;
                    let mut reports = Vec::with_capacity(batch.items.len());
                    for item in batch.items {
                        match item {
                            Ok(loc) => {
                                reports.push(location::report(&loc, &vehicle, header.serial))
                            }
                            Err(err) => {
                                tracing::warn!(terminal = %vehicle.terminal, error = %err, "bad item in a 0x0704 batch");
                                metrics::report("invalid");
                                bad += 1;
                            }
                        }
                    }
                    let mut actions = self.store(&header, vehicle, reports, split);
                    if let Some(Action::Store(storing)) = actions.first_mut() {
                        storing.bad_items += bad;
                    } else if bad > 0 {
                        actions = vec![self.answer(&header, ResultCode::BadMessage)];
                    }
                    actions
                }
                Err(err) => self.bad(&header, &vehicle, &err.to_string()),
            },
            other => {
                tracing::debug!(terminal = %vehicle.terminal, id = format!("{other:#06x}"), "unsupported message");
                vec![self.answer(&header, ResultCode::Unsupported)]
            }
        }
    }

    /// Positions to store, or the answer when there are none.
    fn store(
        &mut self,
        header: &Header,
        vehicle: Arc<Vehicle>,
        reports: Vec<Report>,
        split: Option<(Assembled, u16)>,
    ) -> Vec<Action> {
        let mut events = Vec::new();
        let (mut bad, mut encrypted) = (0, 0);
        for report in reports {
            match report {
                Report::Position(event) => events.push(*event),
                Report::NoFix => metrics::report("no_fix"),
                Report::Encrypted => {
                    metrics::report("encrypted");
                    encrypted += 1;
                }
                Report::BadTime(reason) => {
                    tracing::warn!(terminal = %vehicle.terminal, %reason, "location report refused");
                    metrics::report("invalid");
                    bad += 1;
                }
            }
        }
        if events.is_empty() {
            let code = match (bad, encrypted) {
                (0, 0) => ResultCode::Ok,
                (0, _) => ResultCode::Unsupported,
                _ => ResultCode::BadMessage,
            };
            return vec![self.answer(header, code)];
        }
        vec![Action::Store(Storing {
            vehicle,
            events,
            id: header.id,
            serial: header.serial,
            bad_items: bad + encrypted,
            split,
        })]
    }

    /// The answer to a stored (or not) batch of positions.
    pub fn stored(&mut self, storing: Storing, deliveries: &[Delivery]) -> Bytes {
        for delivery in deliveries {
            metrics::report(match delivery {
                Delivery::Stored => "stored",
                Delivery::Rejected => "rejected",
                Delivery::NotStored => "not_stored",
            });
        }
        let code = if deliveries.contains(&Delivery::NotStored) {
            ResultCode::Fail
        } else if deliveries.contains(&Delivery::Rejected) || storing.bad_items > 0 {
            ResultCode::BadMessage
        } else {
            ResultCode::Ok
        };
        if code == ResultCode::Fail
            && let Some((assembled, last_index)) = storing.split
        {
            self.split.restore(assembled, last_index);
        }
        metrics::message(storing.id, code.label());
        self.replier().general(storing.id, storing.serial, code)
    }

    fn register(&mut self, header: &Header, body: &[u8], dir: &impl Directory) -> Vec<Action> {
        let terminal = header.terminal.digits();
        let registration = match body::registration(body, header.version) {
            Ok(registration) => registration,
            Err(err) => {
                tracing::warn!(terminal, error = %err, "registration refused: bad body");
                return vec![self.answer(header, ResultCode::BadMessage)];
            }
        };
        let refuse = |this: &mut Self, why: &'static str| {
            metrics::registration(why);
            metrics::message(header.id, "refused");
            vec![Action::Send(this.replier().register(
                header.serial,
                RegisterResult::NoSuchVehicle,
                None,
            ))]
        };
        let Some(vehicle) = dir.vehicle(header.terminal.number()) else {
            tracing::warn!(terminal, plate = %registration.plate, "registration refused: terminal not in the registry");
            return refuse(self, "unknown_terminal");
        };
        if registration.plate_color != 0
            && !registration.plate.is_empty()
            && !same_plate(&vehicle.plate, &registration.plate)
        {
            tracing::warn!(
                terminal,
                plate = %registration.plate,
                registered_plate = %vehicle.plate,
                "registration refused: the plate is not the registry's"
            );
            return refuse(self, "plate_mismatch");
        }
        vec![Action::Register(Registering {
            vehicle,
            serial: header.serial,
        })]
    }

    /// The 0x8100 once the vehicle's code is issued and persisted.
    pub fn registered(&mut self, registering: Registering, code: &str) -> Bytes {
        tracing::info!(terminal = %registering.vehicle.terminal, vehicle = %registering.vehicle.vehicle_id, "terminal registered");
        metrics::registration("ok");
        metrics::message(id::REGISTER, "ok");
        self.replier()
            .register(registering.serial, RegisterResult::Ok, Some(code))
    }

    fn authenticate(&mut self, header: &Header, body: &[u8], dir: &impl Directory) -> Vec<Action> {
        let terminal = header.terminal.digits();
        // A 2019 header over a 2013 body happens (firmware mixing versions):
        // then the whole body is the code.
        let code = body::authentication(body, header.version)
            .or_else(|_| body::authentication(body, crate::message::Version::V2013))
            .map(|auth| auth.code)
            .unwrap_or_default();
        let vehicle = dir.vehicle(header.terminal.number());
        let result = match &vehicle {
            None => Err("unknown_terminal"),
            Some(v) if dir.auth_code(v).is_none_or(|expected| expected != code) => {
                Err("wrong_code")
            }
            Some(_) => Ok(()),
        };
        metrics::authentication(result.err().unwrap_or("ok"));
        match (result, vehicle) {
            (Ok(()), Some(vehicle)) => {
                tracing::info!(terminal, vehicle = %vehicle.vehicle_id, "terminal authenticated");
                self.authenticated = Some(vehicle);
                vec![self.answer(header, ResultCode::Ok)]
            }
            (why, _) => {
                tracing::warn!(
                    terminal,
                    reason = why.err().unwrap_or_default(),
                    "authentication refused"
                );
                self.authenticated = None;
                vec![self.answer(header, ResultCode::Fail)]
            }
        }
    }

    fn bad(&mut self, header: &Header, vehicle: &Vehicle, error: &str) -> Vec<Action> {
        tracing::warn!(terminal = %vehicle.terminal, error, "bad location message");
        metrics::report("invalid");
        vec![self.answer(header, ResultCode::BadMessage)]
    }

    fn answer(&mut self, header: &Header, code: ResultCode) -> Action {
        metrics::message(header.id, code.label());
        Action::Send(self.replier().general(header.id, header.serial, code))
    }

    fn replier(&mut self) -> &mut Replier {
        self.replier
            .as_mut()
            .expect("set by handle before any answer")
    }
}
