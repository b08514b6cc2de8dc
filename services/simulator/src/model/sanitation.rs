//! Waste sorting (垃圾分类): bins at each village's collection points fill
//! through the day and report their fill level; the environmental
//! protection teams (环境保护队) walk their checkpoints and record sorting
//! compliance, which differs by village and improves over the weeks of the
//! campaign; badly sorted points get a follow-up service request.

use crate::clock::{self, DAY, HOUR, MINUTE, Millis};
use crate::geo::{self, Place, Point};
use crate::model::requests::Desk;
use crate::model::{Out, scaled};
use crate::rng::{Rng, hash_str};
use citybrain_proto::events::v1::{
    BinReading, BinStatus, CheckInMethod, ClassCompliance, PatrolCheckIn, SortingResult,
    WasteClass, event::Payload,
};

/// How often a bin's fill sensor reports.
pub const READING_INTERVAL: Millis = 30 * MINUTE;

const CLASSES: [(WasteClass, &str); 4] = [
    (WasteClass::Kitchen, "K"),
    (WasteClass::Recyclable, "R"),
    (WasteClass::Hazardous, "H"),
    (WasteClass::Other, "O"),
];

/// A collection point (垃圾投放点): one bin per waste class.
#[derive(Debug, Clone)]
pub struct CollectionPoint {
    pub id: String,
    pub village: &'static Place,
    pub at: Point,
    /// Indices into the town's bins.
    pub bins: Vec<usize>,
}

/// One bin with a fill-level sensor.
pub struct Bin {
    bin_id: String,
    village: &'static str,
    location: Point,
    class: WasteClass,
    /// How much heavier than average this village's households fill it.
    busyness: f64,
    fill: f64,
    updated: Millis,
    last_emptied: Option<Millis>,
    rng: Rng,
}

/// The collection points and their bins at `scale`.
pub fn collection_points(
    seed: u64,
    scale: f64,
    origin: Millis,
) -> (Vec<CollectionPoint>, Vec<Bin>) {
    let mut points = Vec::new();
    let mut bins = Vec::new();
    for village in geo::villages() {
        for n in 1..=scaled(1, scale) {
            let id = format!("{}-GP{n}", village.code);
            let at = village.at.offset(80.0 * f64::from(n), 70.0);
            let mut indices = Vec::new();
            for (class, suffix) in CLASSES {
                let bin_id = format!("{id}-{suffix}");
                let mut rng = Rng::for_actor(seed, &bin_id);
                indices.push(bins.len());
                bins.push(Bin {
                    village: village.name,
                    location: at.offset(2.0 * indices.len() as f64, 0.0),
                    class,
                    busyness: rng.range(0.75, 1.45),
                    fill: rng.range(0.0, 0.5),
                    updated: origin,
                    last_emptied: None,
                    rng,
                    bin_id,
                });
            }
            points.push(CollectionPoint {
                id,
                village,
                at,
                bins: indices,
            });
        }
    }
    (points, bins)
}

impl Bin {
    pub fn id(&self) -> &str {
        &self.bin_id
    }

    pub fn class(&self) -> WasteClass {
        self.class
    }

    pub fn village(&self) -> &'static str {
        self.village
    }

    /// Share of the bin filled per hour at local `hour`.
    fn rate(&self, hour: f64) -> f64 {
        let meal = |centre: f64| (-((hour - centre) / 1.2).powi(2)).exp();
        let awake = if (6.0..22.0).contains(&hour) {
            1.0
        } else {
            0.15
        };
        let base = match self.class {
            WasteClass::Kitchen => 0.015 * awake + 0.1 * (meal(7.0) + meal(12.0) + meal(18.5)),
            WasteClass::Recyclable => 0.018 * awake,
            WasteClass::Hazardous => 0.003 * awake,
            _ => 0.04 * awake,
        };
        base * self.busyness
    }

    /// Brings the fill level up to `now`.
    fn advance(&mut self, now: Millis) {
        let mut t = self.updated;
        while t < now {
            let until = ((t / HOUR + 1) * HOUR).min(now);
            let hours = (until - t) as f64 / HOUR as f64;
            let mid = clock::local_hour(t + (until - t) / 2);
            self.fill += self.rate(mid) * hours * self.rng.range(0.8, 1.2);
            t = until;
        }
        self.fill = self.fill.clamp(0.0, 1.0);
        self.updated = now;
    }

    /// Whether a truck passing at `now` takes this bin.
    pub fn wants_collection(&mut self, now: Millis) -> bool {
        self.advance(now);
        self.class == WasteClass::Kitchen || self.fill >= 0.3
    }

    /// Empties the bin and returns the net weight taken, kg.
    pub fn empty(&mut self, now: Millis) -> f64 {
        self.advance(now);
        let full_kg = match self.class {
            WasteClass::Kitchen => 110.0,
            WasteClass::Recyclable => 35.0,
            WasteClass::Hazardous => 12.0,
            _ => 55.0,
        };
        let kg = (self.fill * full_kg * self.rng.range(0.85, 1.15) * 10.0).round() / 10.0;
        self.fill = self.rng.range(0.0, 0.03);
        self.last_emptied = Some(now);
        kg
    }

    pub fn step(&mut self, now: Millis, out: &mut Out) -> Millis {
        self.advance(now);
        let status = if self.fill >= 0.98 && self.rng.chance(0.3) {
            BinStatus::LidOpen
        } else if self.rng.chance(0.0003) {
            *self.rng.weighted(&[
                (BinStatus::Dropped, 1.0),
                (BinStatus::Moved, 2.0),
                (BinStatus::Vandalized, 0.5),
                (BinStatus::Burning, 0.05),
            ])
        } else {
            BinStatus::Ok
        };
        out.emit(
            &self.bin_id,
            Some(self.location),
            Payload::BinReading(BinReading {
                bin_id: self.bin_id.clone(),
                waste_class: self.class as i32,
                fill_level: (self.fill * 1000.0).round() / 1000.0,
                status: status as i32,
                last_emptied_at: self.last_emptied.map(clock::timestamp),
                village: self.village.to_string(),
            }),
        );
        now + READING_INTERVAL
    }
}

struct Checkpoint {
    id: String,
    village: &'static Place,
    at: Point,
}

/// A team's shift times, local hours.
const SHIFTS: [(f64, f64, &str); 2] = [(8.5, 11.5, "AM"), (14.0, 17.0, "PM")];

/// An inspection team walking its checkpoints with a handheld.
pub struct Patrol {
    team_id: String,
    device_id: String,
    inspector_id: String,
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    /// The end of the shift in progress, if any.
    shift_end: Option<(Millis, &'static str)>,
    origin: Millis,
    seed: u64,
    rng: Rng,
}

pub fn patrols(seed: u64, scale: f64, origin: Millis, points: &[CollectionPoint]) -> Vec<Patrol> {
    let teams = scaled(3, scale) as usize;
    let mut all: Vec<Patrol> = (0..teams)
        .map(|t| {
            let team_id = format!("ENV-T{}", t + 1);
            let mut rng = Rng::for_actor(seed, &team_id);
            Patrol {
                device_id: format!("PDA-{team_id}"),
                inspector_id: format!("insp-{:06x}", rng.next_u64() & 0xff_ffff),
                checkpoints: Vec::new(),
                next_checkpoint: 0,
                shift_end: None,
                origin,
                seed,
                rng,
                team_id,
            }
        })
        .collect();
    for (v, village) in geo::villages().enumerate() {
        let team = &mut all[v % teams];
        team.checkpoints.push(Checkpoint {
            id: format!("{}-CK1", village.code),
            village,
            at: village.at.offset(-40.0, -40.0),
        });
    }
    for (i, point) in points.iter().enumerate() {
        all[i % teams].checkpoints.push(Checkpoint {
            id: point.id.clone(),
            village: point.village,
            at: point.at,
        });
    }
    for team in &mut all {
        team.checkpoints
            .sort_by(|a, b| a.village.code.cmp(b.village.code).then(a.id.cmp(&b.id)));
    }
    all
}

impl Patrol {
    /// Sorting compliance of `village` at `now`: a village-specific start
    /// that improves towards 95 % over the weeks since the campaign began.
    pub fn compliance(seed: u64, origin: Millis, village: &Place, now: Millis) -> f64 {
        let start = 0.5 + 0.3 * ((hash_str(village.code) ^ seed) % 1000) as f64 / 1000.0;
        let weeks = (now - origin).max(0) as f64 / (7 * DAY) as f64;
        start + (0.95 - start) * (1.0 - (-weeks / 3.0).exp())
    }

    pub fn step(&mut self, now: Millis, out: &mut Out, desk: &mut Desk) -> Millis {
        match self.shift_end {
            Some((end, label)) if now < end => {
                self.check_in(now, label, out, desk);
                let next = now + (self.rng.range(8.0, 20.0) * MINUTE as f64) as Millis;
                if next < end {
                    return next;
                }
                self.shift_end = None;
                self.next_shift(now)
            }
            Some(_) => {
                self.shift_end = None;
                self.next_shift(now)
            }
            None => {
                if let Some(shift) = self.shift_at(now) {
                    self.shift_end = Some(shift);
                    now
                } else {
                    self.next_shift(now)
                }
            }
        }
    }

    /// The shift that has just begun at `now` (within a few minutes).
    fn shift_at(&self, now: Millis) -> Option<(Millis, &'static str)> {
        if clock::local_weekday_is_sunday(now) {
            return None;
        }
        let hour = clock::local_hour(now);
        SHIFTS
            .iter()
            .find(|(start, end, _)| hour >= *start && hour < *end)
            .map(|(_, end, label)| (clock::local_time_on_day(now, *end), *label))
    }

    /// When the next shift starts (with a few minutes' jitter).
    fn next_shift(&mut self, now: Millis) -> Millis {
        let jitter = (self.rng.range(0.0, 10.0) * MINUTE as f64) as Millis;
        let hour = clock::local_hour(now);
        for (start, _, _) in SHIFTS {
            if hour < start {
                return clock::local_time_on_day(now, start) + jitter;
            }
        }
        clock::local_time_on_day(now + 12 * HOUR, SHIFTS[0].0) + jitter
    }

    fn check_in(&mut self, now: Millis, label: &str, out: &mut Out, desk: &mut Desk) {
        let checkpoint = &self.checkpoints[self.next_checkpoint % self.checkpoints.len()];
        self.next_checkpoint += 1;
        let compliance = Self::compliance(self.seed, self.origin, checkpoint.village, now);
        let mut incorrect = 0;
        let mut results = Vec::new();
        for (class, _) in CLASSES {
            let result = if class == WasteClass::Hazardous && self.rng.chance(0.3) {
                SortingResult::NotChecked
            } else {
                let p = match class {
                    WasteClass::Kitchen => compliance * 0.95,
                    WasteClass::Recyclable => (compliance * 1.03).min(0.99),
                    _ => compliance,
                };
                if self.rng.chance(p) {
                    SortingResult::Correct
                } else {
                    incorrect += 1;
                    SortingResult::Incorrect
                }
            };
            results.push(ClassCompliance {
                waste_class: class as i32,
                result: result as i32,
            });
        }
        let date = clock::local_date(now);
        let contamination =
            ((1.0 - compliance) * 35.0 * self.rng.range(0.5, 1.5) * 10.0).round() / 10.0;
        let photo_refs = (0..if incorrect > 0 { self.rng.int(1, 3) } else { 0 })
            .map(|n| {
                format!(
                    "patrol-photos/{}/{date}/{}-{}-{n}.jpg",
                    self.team_id,
                    checkpoint.id,
                    now / 1000
                )
            })
            .collect();
        let follow_up_request_id = if incorrect >= 2 && self.rng.chance(0.4) {
            desk.open_follow_up(
                now,
                checkpoint.village,
                format!(
                    "巡查发现分类不合格 sorting problems found at {}",
                    checkpoint.id
                ),
            )
        } else {
            String::new()
        };
        let method = *self.rng.weighted(&[
            (CheckInMethod::Nfc, 0.6),
            (CheckInMethod::Qr, 0.25),
            (CheckInMethod::Geofence, 0.1),
            (CheckInMethod::Photo, 0.05),
        ]);
        let (id, village, at) = (
            checkpoint.id.clone(),
            checkpoint.village.name,
            checkpoint.at,
        );
        out.emit(
            &self.device_id,
            Some(at),
            Payload::PatrolCheckIn(PatrolCheckIn {
                patrol_id: format!("{}-{date}-{label}", self.team_id),
                team_id: self.team_id.clone(),
                inspector_id: self.inspector_id.clone(),
                checkpoint_id: id,
                method: method as i32,
                compliance: results,
                contamination_percent: Some(contamination.clamp(0.0, 100.0)),
                photo_refs,
                follow_up_request_id,
                village: village.to_string(),
            }),
        );
    }
}
