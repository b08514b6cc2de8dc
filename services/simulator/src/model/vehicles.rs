//! Vehicles with JT/T 808 terminals: vaccine shuttles (疫苗直通车) looping
//! between the clinic and the villages, picking riders up and dropping them
//! off, and sanitation trucks on their morning collection rounds, emptying
//! bins on the way. Positions every few seconds along the road polylines.

use crate::clock::{self, HOUR, MINUTE, Millis, SECOND};
use crate::geo::{self, Point, Polyline};
use crate::model::sanitation::{Bin, CollectionPoint};
use crate::model::{Out, scaled};
use crate::rng::{Rng, hash_str};
use citybrain_proto::events::v1::{
    ClassWeight, GnssFix, OccupancyStatus, ServiceStatus, StopStatus, VehiclePosition, VehicleRole,
    WasteCollection, event::Payload,
};

/// How often a moving (or working) vehicle reports its position.
pub const REPORT_INTERVAL: Millis = 5 * SECOND;
/// How often a parked vehicle's terminal reports.
const PARKED_INTERVAL: Millis = 10 * MINUTE;
/// GNSS noise added to reported positions, at most this many metres.
pub const GNSS_NOISE_M: f64 = 3.0;
const SHUTTLE_SEATS: u32 = 14;

/// What happens at a stop.
#[derive(Debug, Clone)]
enum StopKind {
    Clinic,
    Village,
    /// A collection point: indices into the town's bins.
    Bins(Vec<usize>),
    Depot,
}

#[derive(Debug, Clone)]
struct Stop {
    id: String,
    at: Point,
    kind: StopKind,
}

/// A closed route: from the first stop through the others back to the first.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    stops: Vec<Stop>,
    /// `legs[i]`: the road from stop `i` to stop `i + 1`.
    legs: Vec<Polyline>,
}

impl Route {
    fn new(id: String, mut stops: Vec<Stop>) -> Self {
        stops.push(stops[0].clone());
        let legs = stops
            .windows(2)
            .map(|w| {
                Polyline::new(Polyline::road(
                    w[0].at,
                    w[1].at,
                    hash_str(&format!("{}>{}", w[0].id, w[1].id)),
                ))
            })
            .collect();
        Self { id, stops, legs }
    }

    /// The whole route as one path, for checks and maps.
    pub fn path(&self) -> Polyline {
        let mut points: Vec<Point> = Vec::new();
        for leg in &self.legs {
            points.extend_from_slice(leg.points());
        }
        Polyline::new(points)
    }

    /// Where the vehicle parks: the first stop.
    pub fn home(&self) -> Point {
        self.stops[0].at
    }

    fn length_m(&self) -> f64 {
        self.legs.iter().map(Polyline::length_m).sum()
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Parked { until: Millis },
    Dwelling { stop: usize, until: Millis },
    Driving { leg: usize, distance: f64 },
}

/// A vehicle and its terminal.
pub struct Vehicle {
    id: String,
    role: VehicleRole,
    route: Route,
    /// Local hours of the working day.
    duty: (f64, f64),
    cruise_kmh: f64,
    phase: Phase,
    odometer_km: f64,
    trip: Option<String>,
    trips_today: u32,
    /// Shuttles: riders aboard by the stop they get off at.
    riders: Vec<u32>,
    rng: Rng,
}

/// The shuttle routes: from the clinic through villages and back.
const SHUTTLE_ROUTES: &[(&str, &[&str])] = &[
    ("VS-N", &["XB", "YT", "WT"]),
    ("VS-E", &["BLF", "TZF", "XGZ"]),
    ("VS-W", &["HBY", "DLZ", "QJ"]),
];

pub fn vehicles(seed: u64, scale: f64, origin: Millis, points: &[CollectionPoint]) -> Vec<Vehicle> {
    let mut all = Vec::new();
    let clinic = geo::place_by_code("GT");
    for (route_id, villages) in SHUTTLE_ROUTES {
        let mut stops = vec![Stop {
            id: "GT".into(),
            at: clinic.at,
            kind: StopKind::Clinic,
        }];
        for code in *villages {
            let place = geo::place_by_code(code);
            stops.push(Stop {
                id: (*code).into(),
                at: place.at,
                kind: StopKind::Village,
            });
        }
        let route = Route::new((*route_id).to_string(), stops);
        for n in 1..=scaled(1, scale) {
            let id = format!("{route_id}-{n}");
            let stagger = 0.33 * f64::from(n - 1);
            all.push(Vehicle::new(
                seed,
                id,
                VehicleRole::VaccineShuttle,
                route.clone(),
                (7.5 + stagger, 17.5),
                origin,
            ));
        }
    }
    let trucks = scaled(3, scale) as usize;
    let depot = geo::place_by_code("DEPOT");
    let station = geo::place_by_code("TS");
    for t in 0..trucks {
        let mine: Vec<&CollectionPoint> = points
            .iter()
            .enumerate()
            .filter(|(i, _)| i % trucks == t)
            .map(|(_, p)| p)
            .collect();
        let mut stops = vec![Stop {
            id: "DEPOT".into(),
            at: depot.at,
            kind: StopKind::Depot,
        }];
        stops.extend(
            nearest_neighbour_tour(depot.at, &mine)
                .into_iter()
                .map(|p| Stop {
                    id: p.id.clone(),
                    at: p.at,
                    kind: StopKind::Bins(p.bins.clone()),
                }),
        );
        stops.push(Stop {
            id: "TS".into(),
            at: station.at,
            kind: StopKind::Depot,
        });
        let id = format!("ST-{:02}", t + 1);
        let route = Route::new(format!("{id}-ROUND"), stops);
        all.push(Vehicle::new(
            seed,
            id,
            VehicleRole::SanitationTruck,
            route,
            (5.5, 11.0),
            origin,
        ));
    }
    all
}

/// Orders the points by always driving to the nearest one not yet visited.
fn nearest_neighbour_tour<'a>(
    start: Point,
    points: &[&'a CollectionPoint],
) -> Vec<&'a CollectionPoint> {
    let mut left: Vec<&CollectionPoint> = points.to_vec();
    let mut tour = Vec::new();
    let mut here = start;
    while !left.is_empty() {
        let (i, _) = left
            .iter()
            .enumerate()
            .map(|(i, p)| (i, here.distance_m(p.at)))
            .fold(
                (0, f64::INFINITY),
                |best, x| if x.1 < best.1 { x } else { best },
            );
        let next = left.swap_remove(i);
        here = next.at;
        tour.push(next);
    }
    tour
}

impl Vehicle {
    fn new(
        seed: u64,
        id: String,
        role: VehicleRole,
        route: Route,
        duty: (f64, f64),
        origin: Millis,
    ) -> Self {
        let mut rng = Rng::for_actor(seed, &id);
        let riders = vec![0; route.stops.len()];
        let mut vehicle = Self {
            cruise_kmh: match role {
                VehicleRole::VaccineShuttle => rng.range(34.0, 44.0),
                _ => rng.range(24.0, 32.0),
            },
            odometer_km: (rng.range(8_000.0, 60_000.0) * 10.0).round() / 10.0,
            phase: Phase::Parked { until: origin },
            trip: None,
            trips_today: 0,
            riders,
            id,
            role,
            route,
            duty,
            rng,
        };
        vehicle.phase = Phase::Parked {
            until: vehicle.next_duty_start(origin),
        };
        vehicle
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The start of the next working day at or after `now`, or `now` when a
    /// working day is under way with time for a full trip.
    fn next_duty_start(&mut self, now: Millis) -> Millis {
        let hour = clock::local_hour(now);
        if hour >= self.duty.0 && hour + self.trip_hours() < self.duty.1 {
            return now;
        }
        let day = if hour < self.duty.0 {
            now
        } else {
            now + 24 * HOUR - (hour * HOUR as f64) as Millis + HOUR
        };
        clock::local_time_on_day(day, self.duty.0)
            + (self.rng.range(0.0, 12.0) * MINUTE as f64) as Millis
    }

    /// A rough trip time, with dwells.
    fn trip_hours(&self) -> f64 {
        self.route.length_m() / 1000.0 / (self.cruise_kmh * 0.8)
            + self.route.stops.len() as f64 * 5.0 / 60.0
    }

    pub fn step(&mut self, now: Millis, out: &mut Out, bins: &mut [Bin]) -> Millis {
        match self.phase {
            Phase::Parked { until } if now < until => {
                self.report(
                    out,
                    self.route.home(),
                    0.0,
                    None,
                    "",
                    StopStatus::Unspecified,
                );
                (now + PARKED_INTERVAL).min(until)
            }
            Phase::Parked { .. } => self.start_trip(now, out, bins),
            Phase::Dwelling { stop, until } if now < until => {
                self.at_stop(stop, out);
                now + REPORT_INTERVAL
            }
            Phase::Dwelling { stop, .. } => {
                if stop + 1 >= self.route.stops.len() {
                    return self.finish_trip(now, out, bins);
                }
                self.phase = Phase::Driving {
                    leg: stop,
                    distance: 0.0,
                };
                self.drive(now, out, bins)
            }
            Phase::Driving { .. } => self.drive(now, out, bins),
        }
    }

    fn start_trip(&mut self, now: Millis, out: &mut Out, bins: &mut [Bin]) -> Millis {
        self.trips_today += 1;
        self.trip = Some(format!(
            "{}-{}-{:02}",
            self.id,
            clock::local_date(now),
            self.trips_today
        ));
        self.arrive(now, 0, out, bins)
    }

    fn finish_trip(&mut self, now: Millis, out: &mut Out, bins: &mut [Bin]) -> Millis {
        let hour = clock::local_hour(now);
        let another =
            self.role == VehicleRole::VaccineShuttle && hour + self.trip_hours() < self.duty.1;
        if another {
            return self.start_trip(now, out, bins);
        }
        self.trip = None;
        self.trips_today = 0;
        let until = self.next_duty_start(now + HOUR);
        self.phase = Phase::Parked { until };
        self.report(
            out,
            self.route.home(),
            0.0,
            None,
            "",
            StopStatus::Unspecified,
        );
        (now + PARKED_INTERVAL).min(until)
    }

    fn drive(&mut self, now: Millis, out: &mut Out, bins: &mut [Bin]) -> Millis {
        let Phase::Driving { leg, distance } = self.phase else {
            unreachable!("drive is only called while driving");
        };
        let road = &self.route.legs[leg];
        let remaining = road.length_m() - distance;
        // Accelerate away from a stop and brake towards the next one.
        let speed = self
            .cruise_kmh
            .min(8.0 + distance * 0.12)
            .min(8.0 + remaining * 0.12)
            * self.rng.range(0.9, 1.05);
        let moved = speed / 3.6 * (REPORT_INTERVAL / SECOND) as f64;
        self.odometer_km += moved / 1000.0;
        if distance + moved >= road.length_m() {
            return self.arrive(now, leg + 1, out, bins);
        }
        let distance = distance + moved;
        self.phase = Phase::Driving { leg, distance };
        let (point, heading) = road.at(distance);
        let status = if road.length_m() - distance < 200.0 {
            StopStatus::IncomingAt
        } else {
            StopStatus::InTransitTo
        };
        let next_stop = self.route.stops[leg + 1].id.clone();
        self.report(out, point, speed, Some(heading), &next_stop, status);
        now + REPORT_INTERVAL
    }

    /// Reaches stop `stop`: riders get on and off, bins are emptied.
    fn arrive(&mut self, now: Millis, stop: usize, out: &mut Out, bins: &mut [Bin]) -> Millis {
        let dwell_min = match &self.route.stops[stop].kind {
            StopKind::Clinic => {
                self.riders[stop] = 0;
                let hour = clock::local_hour(now);
                let returning = self.rng.poisson(if hour >= 11.0 { 4.0 } else { 1.0 });
                for _ in 0..returning.min(SHUTTLE_SEATS.saturating_sub(self.aboard())) {
                    let to = 1 + self.rng.index(self.route.stops.len() - 2);
                    self.riders[to] += 1;
                }
                self.rng.range(4.0, 8.0)
            }
            StopKind::Village => {
                self.riders[stop] = 0;
                let hour = clock::local_hour(now);
                let going = self.rng.poisson(if hour < 12.0 { 3.0 } else { 1.0 });
                let last = self.route.stops.len() - 1;
                self.riders[last] += going.min(SHUTTLE_SEATS.saturating_sub(self.aboard()));
                self.rng.range(1.5, 4.0)
            }
            StopKind::Bins(here) => {
                let here = here.clone();
                self.collect(now, stop, &here, out, bins);
                self.rng.range(3.0, 7.0)
            }
            StopKind::Depot => self.rng.range(2.0, 15.0),
        };
        self.phase = Phase::Dwelling {
            stop,
            until: now + (dwell_min * MINUTE as f64) as Millis,
        };
        self.at_stop(stop, out);
        now + REPORT_INTERVAL
    }

    /// Empties the bins of a collection point that need it.
    fn collect(
        &mut self,
        now: Millis,
        stop: usize,
        here: &[usize],
        out: &mut Out,
        bins: &mut [Bin],
    ) {
        let at = self.route.stops[stop].at;
        for &i in here {
            let bin = &mut bins[i];
            if !bin.wants_collection(now) {
                continue;
            }
            let kg = bin.empty(now);
            out.emit(
                &self.id,
                Some(at),
                Payload::WasteCollection(WasteCollection {
                    truck_id: self.id.clone(),
                    bin_id: bin.id().to_string(),
                    station_id: String::new(),
                    weights: vec![ClassWeight {
                        waste_class: bin.class() as i32,
                        net_weight_kg: kg,
                    }],
                    village: bin.village().to_string(),
                }),
            );
        }
    }

    fn at_stop(&mut self, stop: usize, out: &mut Out) {
        let at = self.route.stops[stop].at;
        let id = self.route.stops[stop].id.clone();
        self.report(out, at, 0.0, None, &id, StopStatus::StoppedAt);
    }

    fn aboard(&self) -> u32 {
        self.riders.iter().sum()
    }

    fn report(
        &mut self,
        out: &mut Out,
        at: Point,
        speed_kmh: f64,
        heading: Option<f64>,
        stop_id: &str,
        stop_status: StopStatus,
    ) {
        let on_duty = self.trip.is_some();
        let noisy = at.offset(
            self.rng.range(-GNSS_NOISE_M, GNSS_NOISE_M) / std::f64::consts::SQRT_2,
            self.rng.range(-GNSS_NOISE_M, GNSS_NOISE_M) / std::f64::consts::SQRT_2,
        );
        let shuttle = self.role == VehicleRole::VaccineShuttle;
        let aboard = self.aboard();
        let occupancy = if !shuttle || !on_duty {
            OccupancyStatus::Unspecified
        } else if aboard == 0 {
            OccupancyStatus::Empty
        } else if aboard * 2 < SHUTTLE_SEATS {
            OccupancyStatus::ManySeatsAvailable
        } else if aboard < SHUTTLE_SEATS {
            OccupancyStatus::FewSeatsAvailable
        } else {
            OccupancyStatus::Full
        };
        out.emit(
            &self.id,
            Some(noisy),
            Payload::VehiclePosition(VehiclePosition {
                vehicle_id: self.id.clone(),
                role: self.role as i32,
                speed_kmh: (speed_kmh * 10.0).round() / 10.0,
                heading_deg: heading.map(|h| h.floor().rem_euclid(360.0)),
                odometer_km: Some((self.odometer_km * 10.0).round() / 10.0),
                ignition_on: on_duty,
                fix: if on_duty {
                    GnssFix::ThreeD
                } else {
                    GnssFix::TwoD
                } as i32,
                route_id: if on_duty {
                    self.route.id.clone()
                } else {
                    String::new()
                },
                trip_id: self.trip.clone().unwrap_or_default(),
                stop_id: stop_id.to_string(),
                stop_status: stop_status as i32,
                occupancy_status: occupancy as i32,
                passengers: (shuttle && on_duty).then_some(aboard),
                service_status: if on_duty {
                    ServiceStatus::OnRoute
                } else {
                    ServiceStatus::Parked
                } as i32,
                ..Default::default()
            }),
        );
    }
}
