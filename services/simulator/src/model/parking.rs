//! Parking sites (生态停车场): occupancy follows a weekday or weekend curve
//! per kind of site; each minute the controller reports counts (which always
//! add up: occupied + available + closed = total) with the entries and exits
//! of that minute. Every spot is tracked, so the spots with single-space
//! sensors (the EV bays and a few more) report their own changes.

use crate::clock::{self, HOUR, MINUTE, Millis};
use crate::geo::{self, Point};
use crate::model::{Out, scaled};
use crate::rng::Rng;
use citybrain_proto::events::v1::{
    DetectionMethod, ParkingSiteCounts, ParkingSiteStatus, ParkingSpotState, ParkingSpotStatus,
    event::Payload,
};

/// How often a site reports its counts.
pub const REPORT_INTERVAL: Millis = MINUTE;
/// Spots with a single-space sensor: the first ones of each site.
const SENSED_SPOTS: usize = 10;

#[derive(Debug, Clone, Copy)]
enum Profile {
    /// Full at night, half empty in working hours.
    Residential,
    /// The clinic and the town hall: busy in office hours on weekdays.
    Office,
    /// Village lots near markets and parks: busiest at weekends.
    Leisure,
}

struct LotSpec {
    place: &'static str,
    total: u32,
    ev_bays: u32,
    profile: Profile,
}

const LOTS: &[LotSpec] = &[
    LotSpec {
        place: "HBY",
        total: 180,
        ev_bays: 8,
        profile: Profile::Residential,
    },
    LotSpec {
        place: "GT",
        total: 60,
        ev_bays: 4,
        profile: Profile::Office,
    },
    LotSpec {
        place: "TH",
        total: 80,
        ev_bays: 4,
        profile: Profile::Office,
    },
    LotSpec {
        place: "WT",
        total: 120,
        ev_bays: 6,
        profile: Profile::Leisure,
    },
    LotSpec {
        place: "QJ",
        total: 60,
        ev_bays: 4,
        profile: Profile::Residential,
    },
    LotSpec {
        place: "TZF",
        total: 90,
        ev_bays: 0,
        profile: Profile::Leisure,
    },
    LotSpec {
        place: "BLF",
        total: 50,
        ev_bays: 0,
        profile: Profile::Residential,
    },
    LotSpec {
        place: "XB",
        total: 40,
        ev_bays: 0,
        profile: Profile::Leisure,
    },
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Spot {
    Free,
    Occupied,
    Closed,
}

/// One parking site with its controller and spot sensors.
pub struct Lot {
    site_id: String,
    village: &'static str,
    location: Point,
    profile: Profile,
    ev_bays: u32,
    spots: Vec<Spot>,
    /// Slowly drifting busyness of this site, around 1.0.
    mood: f64,
    /// When the closed spots (road works, reserved) open again.
    closed_until: Option<Millis>,
    rng: Rng,
}

pub fn lots(seed: u64, scale: f64, origin: Millis) -> Vec<Lot> {
    let mut all = Vec::new();
    for spec in LOTS {
        let place = geo::place_by_code(spec.place);
        for n in 1..=scaled(1, scale) {
            let site_id = format!("P-{}-{n:02}", spec.place);
            let mut rng = Rng::for_actor(seed, &site_id);
            let mut lot = Lot {
                village: place.name,
                location: place.at.offset(-60.0 * f64::from(n), 50.0),
                profile: spec.profile,
                ev_bays: spec.ev_bays,
                spots: vec![Spot::Free; spec.total as usize],
                mood: rng.range(0.9, 1.1),
                closed_until: None,
                rng,
                site_id,
            };
            // Start near the curve so the first hour looks like any other.
            let target = lot.target(origin).round() as usize;
            for spot in lot.spots.iter_mut().take(target) {
                *spot = Spot::Occupied;
            }
            // Shuffle who parks where so sensed spots are not all taken.
            for i in (1..lot.spots.len()).rev() {
                let j = lot.rng.index(i + 1);
                lot.spots.swap(i, j);
            }
            all.push(lot);
        }
    }
    all
}

/// Share of spots taken at local `hour`.
fn curve(profile: Profile, hour: f64, weekend: bool) -> f64 {
    // Smooth bumps: a Gaussian around `centre` hours.
    let bump = |centre: f64, width: f64| (-((hour - centre) / width).powi(2)).exp();
    let share = match (profile, weekend) {
        (Profile::Residential, false) => 0.92 - 0.5 * bump(13.0, 4.0),
        (Profile::Residential, true) => 0.92 - 0.25 * bump(14.0, 4.0),
        (Profile::Office, false) => 0.08 + 0.85 * bump(10.5, 2.5) + 0.6 * bump(15.0, 2.0),
        (Profile::Office, true) => 0.05 + 0.25 * bump(11.0, 2.5),
        (Profile::Leisure, false) => 0.12 + 0.45 * bump(10.0, 2.5) + 0.35 * bump(18.5, 2.0),
        (Profile::Leisure, true) => 0.15 + 0.85 * bump(11.0, 2.5) + 0.6 * bump(16.0, 2.5),
    };
    share.clamp(0.0, 1.0)
}

impl Lot {
    fn target(&self, at: Millis) -> f64 {
        let share = curve(self.profile, clock::local_hour(at), clock::is_weekend(at));
        (share * self.mood).min(1.0) * self.spots.len() as f64
    }

    fn count(&self, state: Spot) -> u32 {
        self.spots.iter().filter(|s| **s == state).count() as u32
    }

    pub fn step(&mut self, now: Millis, out: &mut Out) -> Millis {
        self.mood = (self.mood + self.rng.normal(0.0, 0.003)).clamp(0.8, 1.15);
        self.maintain(now, out);
        let occupied = self.count(Spot::Occupied);
        let gap = self.target(now) - f64::from(occupied);
        let churn = self.spots.len() as f64 * 0.0015;
        let mut entries = self.rng.poisson(churn + gap.max(0.0) * 0.06);
        let mut exits = self.rng.poisson(churn + (-gap).max(0.0) * 0.06);
        exits = exits.min(occupied);
        for _ in 0..exits {
            self.flip(Spot::Occupied, Spot::Free, out);
        }
        entries = entries.min(self.count(Spot::Free));
        for _ in 0..entries {
            self.flip(Spot::Free, Spot::Occupied, out);
        }
        self.report(entries, exits, out);
        now + REPORT_INTERVAL
    }

    /// Now and then a few spots close for a while (works, an event).
    fn maintain(&mut self, now: Millis, out: &mut Out) {
        match self.closed_until {
            Some(until) if now >= until => {
                self.closed_until = None;
                for i in 0..self.spots.len() {
                    if self.spots[i] == Spot::Closed {
                        self.set(i, Spot::Free, out);
                    }
                }
            }
            None if self.rng.chance(1.0 / (3.0 * 24.0 * 60.0)) => {
                let wanted = self.rng.int(2, 6) as usize;
                let free: Vec<usize> = (0..self.spots.len())
                    .filter(|&i| self.spots[i] == Spot::Free)
                    .collect();
                for &i in free.iter().take(wanted) {
                    self.set(i, Spot::Closed, out);
                }
                self.closed_until = Some(now + (self.rng.range(2.0, 10.0) * HOUR as f64) as Millis);
            }
            _ => {}
        }
    }

    /// Moves one random spot from `from` to `to`.
    fn flip(&mut self, from: Spot, to: Spot, out: &mut Out) {
        let candidates: Vec<usize> = (0..self.spots.len())
            .filter(|&i| self.spots[i] == from)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[self.rng.index(candidates.len())];
        self.set(i, to, out);
    }

    fn set(&mut self, i: usize, to: Spot, out: &mut Out) {
        self.spots[i] = to;
        if i >= SENSED_SPOTS {
            return;
        }
        let state = match to {
            Spot::Free => ParkingSpotState::Free,
            Spot::Occupied => ParkingSpotState::Occupied,
            Spot::Closed => ParkingSpotState::Closed,
        };
        let spot_id = format!("{}-S{:03}", self.site_id, i + 1);
        out.emit(
            &spot_id,
            Some(self.location.offset(3.0 * i as f64, 0.0)),
            Payload::ParkingSpotStatus(ParkingSpotStatus {
                site_id: self.site_id.clone(),
                spot_id: spot_id.clone(),
                state: state as i32,
                detection: DetectionMethod::SingleSpaceSensor as i32,
                ev_bay: (i as u32) < self.ev_bays,
                village: self.village.to_string(),
            }),
        );
    }

    fn report(&mut self, entries: u32, exits: u32, out: &mut Out) {
        let total = self.spots.len() as u32;
        let occupied = self.count(Spot::Occupied);
        let available = self.count(Spot::Free);
        let status = if available == 0 {
            ParkingSiteStatus::Full
        } else if f64::from(available) < 0.1 * f64::from(total) {
            ParkingSiteStatus::AlmostFull
        } else {
            ParkingSiteStatus::SpacesAvailable
        };
        let (ev_total, ev_occupied) = if self.ev_bays > 0 {
            let taken = self.spots[..self.ev_bays as usize]
                .iter()
                .filter(|s| **s == Spot::Occupied)
                .count() as u32;
            (Some(self.ev_bays), Some(taken))
        } else {
            (None, None)
        };
        out.emit(
            &self.site_id,
            Some(self.location),
            Payload::ParkingSiteCounts(ParkingSiteCounts {
                site_id: self.site_id.clone(),
                total_spots: total,
                occupied,
                available,
                ev_total,
                ev_occupied,
                status: status as i32,
                entries,
                exits,
                period_s: (REPORT_INTERVAL / 1000) as u32,
                village: self.village.to_string(),
            }),
        );
    }
}
