//! The town: every actor of the model run in simulated-time order.
//!
//! [`Town`] is an endless iterator of events in non-decreasing `observed_at`
//! order, a pure function of its [`TownConfig`]: no clock, no I/O. Event ids
//! are UUIDv7 built from the event's time, a hash of the seed and the event's
//! counter, so running the same configuration again yields the same ids and
//! the platform stores a re-sent backfill only once.

use crate::clock::{self, Millis};
use crate::geo::{Point, Polyline};
use crate::model::requests::{Desk, Request};
use crate::model::sanitation::{self, Bin, Patrol};
use crate::model::vehicles::{self, Vehicle};
use crate::model::{Out, charging, parking};
use crate::rng::mix64;
use citybrain_proto::events::v1::{Event, Location};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// What the model is a function of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TownConfig {
    /// Seeds every random stream of the model.
    pub seed: u64,
    /// Simulated time at which the town starts.
    pub origin: Millis,
    /// Multiplies the number of devices (at least one of each kind remains).
    pub scale: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Connector(usize),
    Lot(usize),
    Vehicle(usize),
    Bin(usize),
    Patrol(usize),
    Desk,
    Request(usize),
}

/// The model town. Iterate it for events.
pub struct Town {
    config: TownConfig,
    /// Wake-ups: (time, order of scheduling, actor).
    queue: BinaryHeap<Reverse<(Millis, u64, Actor)>>,
    scheduled: u64,
    connectors: Vec<charging::Connector>,
    lots: Vec<parking::Lot>,
    vehicles: Vec<Vehicle>,
    bins: Vec<Bin>,
    patrols: Vec<Patrol>,
    desk: Desk,
    /// Open requests; closed ones leave a hole that is reused.
    requests: Vec<Option<Request>>,
    free_requests: Vec<usize>,
    seq_nos: HashMap<String, u64>,
    counter: u64,
    seed_tag: u16,
    pending: VecDeque<Event>,
    out: Out,
    now: Millis,
}

impl Town {
    pub fn new(config: TownConfig) -> Self {
        let TownConfig {
            seed,
            origin,
            scale,
        } = config;
        let (points, bins) = sanitation::collection_points(seed, scale, origin);
        let mut town = Self {
            config,
            queue: BinaryHeap::new(),
            scheduled: 0,
            connectors: charging::connectors(seed, scale),
            lots: parking::lots(seed, scale, origin),
            vehicles: vehicles::vehicles(seed, scale, origin, &points),
            patrols: sanitation::patrols(seed, scale, origin, &points),
            bins,
            desk: Desk::new(seed, scale),
            requests: Vec::new(),
            free_requests: Vec::new(),
            seq_nos: HashMap::new(),
            counter: 0,
            seed_tag: (mix64(seed) & 0x0fff) as u16,
            pending: VecDeque::new(),
            out: Out::default(),
            now: origin,
        };
        // Devices start at slightly different moments, as real ones would.
        let spread =
            |i: usize, period: Millis| origin + (mix64(seed ^ i as u64) % period as u64) as Millis;
        for i in 0..town.connectors.len() {
            town.schedule(origin, Actor::Connector(i));
        }
        for i in 0..town.lots.len() {
            town.schedule(spread(i, parking::REPORT_INTERVAL), Actor::Lot(i));
        }
        for i in 0..town.vehicles.len() {
            town.schedule(
                spread(i + 100, vehicles::REPORT_INTERVAL),
                Actor::Vehicle(i),
            );
        }
        for i in 0..town.bins.len() {
            town.schedule(spread(i + 200, sanitation::READING_INTERVAL), Actor::Bin(i));
        }
        for i in 0..town.patrols.len() {
            town.schedule(origin, Actor::Patrol(i));
        }
        town.schedule(origin, Actor::Desk);
        town
    }

    pub fn config(&self) -> TownConfig {
        self.config
    }

    /// Simulated time of the last step.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Each vehicle's id, route id, route path and parking place.
    pub fn routes(&self) -> Vec<(String, String, Polyline, Point)> {
        self.vehicles
            .iter()
            .map(|v| {
                (
                    v.id().to_string(),
                    v.route().id.clone(),
                    v.route().path(),
                    v.route().home(),
                )
            })
            .collect()
    }

    /// How many devices of each group the town has: connectors, parking
    /// sites, vehicles, bins, patrol teams.
    pub fn device_counts(&self) -> [usize; 5] {
        [
            self.connectors.len(),
            self.lots.len(),
            self.vehicles.len(),
            self.bins.len(),
            self.patrols.len(),
        ]
    }

    fn schedule(&mut self, at: Millis, actor: Actor) {
        self.scheduled += 1;
        self.queue.push(Reverse((at, self.scheduled, actor)));
    }

    /// Runs the earliest actor and turns what it emitted into events.
    fn step(&mut self) {
        let Some(Reverse((now, _, actor))) = self.queue.pop() else {
            return;
        };
        debug_assert!(now >= self.now, "time runs forwards");
        self.now = now;
        let out = &mut self.out;
        let next = match actor {
            Actor::Connector(i) => Some(self.connectors[i].step(now, out)),
            Actor::Lot(i) => Some(self.lots[i].step(now, out)),
            Actor::Vehicle(i) => Some(self.vehicles[i].step(now, out, &mut self.bins)),
            Actor::Bin(i) => Some(self.bins[i].step(now, out)),
            Actor::Patrol(i) => Some(self.patrols[i].step(now, out, &mut self.desk)),
            Actor::Desk => Some(self.desk.step(now)),
            Actor::Request(i) => {
                let next = self.requests[i].as_mut().and_then(|r| r.step(now, out));
                if next.is_none() {
                    self.requests[i] = None;
                    self.free_requests.push(i);
                }
                next
            }
        };
        if let Some(at) = next {
            self.schedule(at.max(now), actor);
        }
        for request in std::mem::take(&mut self.desk.opened) {
            let slot = match self.free_requests.pop() {
                Some(slot) => {
                    self.requests[slot] = Some(request);
                    slot
                }
                None => {
                    self.requests.push(Some(request));
                    self.requests.len() - 1
                }
            };
            self.schedule(now, Actor::Request(slot));
        }
        for draft in self.out.drafts.drain(..) {
            self.counter += 1;
            let seq = self.seq_nos.entry(draft.device_id.clone()).or_insert(0);
            *seq += 1;
            self.pending.push_back(Event {
                event_id: event_id(now, self.seed_tag, self.counter).to_string(),
                device_id: draft.device_id,
                observed_at: Some(clock::timestamp(now)),
                seq_no: Some(*seq),
                location: draft.location.map(|p| Location {
                    latitude: (p.lat * 1e7).round() / 1e7,
                    longitude: (p.lon * 1e7).round() / 1e7,
                    altitude_m: None,
                    accuracy_m: Some(5.0),
                }),
                observed_at_assumed: false,
                payload: Some(draft.payload),
            });
        }
    }
}

/// A UUIDv7: the event time, 12 bits of the seed, and the event counter in
/// the 62 random bits (RFC 9562's "fixed-length dedicated counter"), so ids
/// are unique within a run and the same in a re-run.
fn event_id(at: Millis, seed_tag: u16, counter: u64) -> uuid::Uuid {
    let mut bytes = [0u8; 10];
    bytes[..2].copy_from_slice(&seed_tag.to_be_bytes());
    bytes[2..].copy_from_slice(&counter.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(at.max(0) as u64, &bytes).into_uuid()
}

impl Iterator for Town {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        while self.pending.is_empty() {
            if self.queue.is_empty() {
                return None;
            }
            self.step();
        }
        self.pending.pop_front()
    }
}

#[cfg(test)]
#[path = "town_tests.rs"]
mod tests;
