//! The model's promises, checked on days of generated history: it is
//! deterministic, every event passes ingest's validation, and what it emits
//! is consistent (counts add up, sessions close, vehicles stay on their
//! roads, requests move in a legal order).

use super::*;
use crate::clock::{DAY, HOUR, MINUTE};
use crate::geo::Point;
use citybrain_ingest::validate::{Limits, validate};
use citybrain_proto::events::v1::{
    ConnectorStatusValue as Cs, RequestTransition as Rt, SessionPhase, SortingResult,
    event::Payload,
};
use citybrain_proto::feed::Kind;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

/// Sunday 2025-03-02 00:00 UTC: the week covers a weekend and weekdays.
const ORIGIN: Millis = 1_740_873_600_000;
const DAYS: i64 = 7;

fn config(seed: u64) -> TownConfig {
    TownConfig {
        seed,
        origin: ORIGIN,
        scale: 1.0,
    }
}

fn until(town: Town, end: Millis) -> Vec<Event> {
    town.take_while(|e| at(e) < end).collect()
}

fn at(event: &Event) -> Millis {
    clock::from_timestamp(event.observed_at.as_ref().expect("observed_at"))
}

/// A week of the town, generated once for all tests.
fn week() -> &'static [Event] {
    static WEEK: OnceLock<Vec<Event>> = OnceLock::new();
    WEEK.get_or_init(|| until(Town::new(config(7)), ORIGIN + DAYS * DAY))
}

fn payloads(events: &[Event]) -> impl Iterator<Item = (&Event, &Payload)> {
    events
        .iter()
        .map(|e| (e, e.payload.as_ref().expect("payload")))
}

#[test]
fn the_same_seed_gives_the_same_events_and_another_seed_others() {
    let end = ORIGIN + 6 * HOUR;
    let a = until(Town::new(config(1)), end);
    let b = until(Town::new(config(1)), end);
    assert!(a.len() > 1000, "{} events", a.len());
    assert_eq!(a, b);
    let c = until(Town::new(config(2)), end);
    let ids: HashSet<&str> = a.iter().map(|e| e.event_id.as_str()).collect();
    assert!(
        c.iter().all(|e| !ids.contains(e.event_id.as_str())),
        "ids differ between seeds"
    );
    let same_content = a
        .iter()
        .zip(&c)
        .filter(|(x, y)| x.payload == y.payload)
        .count();
    assert!(
        same_content < a.len() / 2,
        "{same_content} of {} payloads equal",
        a.len()
    );
    // A later origin is a different history, not a shifted copy.
    let shifted = until(
        Town::new(TownConfig {
            origin: ORIGIN + DAY,
            ..config(1)
        }),
        end + DAY,
    );
    assert_ne!(
        shifted.first().map(|e| &e.payload),
        a.first().map(|e| &e.payload)
    );
}

#[test]
fn every_event_passes_ingest_validation_and_has_a_unique_uuid_v7() {
    let events = week();
    let now = clock::to_system(ORIGIN + DAYS * DAY);
    let limits = Limits::default();
    let mut ids = HashSet::new();
    let mut kinds = BTreeMap::new();
    for event in events {
        let kind = validate(event, now, &limits).unwrap_or_else(|r| panic!("{r:?} for {event:?}"));
        *kinds.entry(kind).or_insert(0usize) += 1;
        let id = uuid::Uuid::parse_str(&event.event_id).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().expect("v7 has a time").to_unix();
        assert_eq!(secs as i64 * 1000 + i64::from(nanos / 1_000_000), at(event));
        assert!(ids.insert(id), "duplicate id {id}");
    }
    for kind in Kind::ALL {
        assert!(
            kinds.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind} in a week: {kinds:?}"
        );
    }
    let per_day = events.len() as i64 / DAYS;
    assert!(
        (20_000..300_000).contains(&per_day),
        "{per_day} events a day: {kinds:?}"
    );
}

#[test]
fn time_never_runs_backwards_and_seq_nos_count_per_device() {
    let events = week();
    assert!(events.windows(2).all(|w| at(&w[0]) <= at(&w[1])));
    let mut seq: HashMap<&str, u64> = HashMap::new();
    for event in events {
        let last = seq.entry(&event.device_id).or_insert(0);
        assert_eq!(event.seq_no, Some(*last + 1), "{}", event.device_id);
        *last += 1;
    }
}

#[test]
fn parking_counts_add_up_and_follow_entries_and_exits() {
    let mut occupied: HashMap<&str, u32> = HashMap::new();
    let mut spots: HashMap<&str, i32> = HashMap::new();
    let mut full_or_almost = 0;
    for (_, payload) in payloads(week()) {
        match payload {
            Payload::ParkingSiteCounts(p) => {
                assert!(p.occupied + p.available <= p.total_spots, "{p:?}");
                assert!(
                    p.total_spots - p.occupied - p.available <= 6,
                    "few spots closed: {p:?}"
                );
                if let Some(ev_total) = p.ev_total {
                    assert!(
                        p.ev_occupied.unwrap() <= ev_total
                            && ev_total <= p.occupied + p.available + 6
                    );
                }
                if let Some(before) = occupied.insert(&p.site_id, p.occupied) {
                    assert_eq!(before + p.entries - p.exits, p.occupied, "{p:?}");
                }
                full_or_almost += i32::from(p.status != 2);
            }
            Payload::ParkingSpotStatus(s) => {
                let before = spots.insert(&s.spot_id, s.state);
                assert_ne!(before, Some(s.state), "a spot reports changes only: {s:?}");
            }
            _ => {}
        }
    }
    assert!(occupied.len() >= 8);
    assert!(full_or_almost > 0, "some site fills up in a week");
}

#[test]
fn occupancy_follows_the_day() {
    // The clinic's lot is busier at 10:00 than at 03:00 (Beijing) on weekdays.
    let mut by_hour: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (event, payload) in payloads(week()) {
        if let Payload::ParkingSiteCounts(p) = payload
            && p.site_id == "P-GT-01"
            && !clock::is_weekend(at(event))
        {
            by_hour
                .entry(clock::local_hour(at(event)) as u32)
                .or_default()
                .push(p.occupied);
        }
    }
    let mean = |h: u32| by_hour[&h].iter().sum::<u32>() as f64 / by_hour[&h].len() as f64;
    assert!(
        mean(10) > 3.0 * mean(3).max(1.0),
        "10:00 {} vs 03:00 {}",
        mean(10),
        mean(3)
    );
}

#[test]
fn sessions_close_with_consistent_meters_and_fees() {
    let events = week();
    let end = ORIGIN + DAYS * DAY;
    let mut started: HashMap<&str, (&Event, f64)> = HashMap::new();
    let mut ended = 0;
    let mut register: HashMap<&str, f64> = HashMap::new();
    let mut status: HashMap<&str, Cs> = HashMap::new();
    let mut faults = 0;
    for (event, payload) in payloads(events) {
        match payload {
            Payload::ChargingSession(s) if s.phase == SessionPhase::Started as i32 => {
                assert_eq!(status.get(event.device_id.as_str()), Some(&Cs::Preparing));
                assert!(
                    started
                        .insert(&s.transaction_id, (event, s.meter_start_wh.unwrap()))
                        .is_none()
                );
            }
            Payload::ChargingSession(s) => {
                let (_, start) = started
                    .remove(s.transaction_id.as_str())
                    .expect("ENDED after STARTED");
                let stop = s.meter_stop_wh.unwrap();
                assert_eq!(s.meter_start_wh, Some(start));
                assert!(stop >= start);
                assert!((s.energy_kwh.unwrap() - (stop - start) / 1000.0).abs() < 1e-9);
                let total = s.fee_electricity_cny.unwrap() + s.fee_service_cny.unwrap();
                assert!((total - s.fee_total_cny.unwrap()).abs() <= 0.011);
                assert!(s.duration_s.unwrap() as i64 <= 18 * 3600 + 60);
                ended += 1;
            }
            Payload::MeterSample(m) => {
                assert!(
                    started.contains_key(m.transaction_id.as_str()),
                    "samples only in a session"
                );
                let energy = m
                    .energy_active_import_wh
                    .expect("the town's meters report energy");
                let last = register.insert(&event.device_id, energy);
                assert!(last.is_none_or(|l| l <= energy), "the register only grows");
            }
            Payload::ConnectorStatus(c) => {
                let to = Cs::try_from(c.status).unwrap();
                let from = status.insert(&event.device_id, to).unwrap_or(Cs::Available);
                let legal = matches!(
                    (from, to),
                    (Cs::Available, Cs::Preparing | Cs::Faulted | Cs::Offline)
                        | (Cs::Preparing, Cs::Charging | Cs::Available)
                        | (Cs::Charging, Cs::Finishing | Cs::Faulted)
                        | (Cs::Finishing | Cs::Faulted | Cs::Offline, Cs::Available)
                );
                assert!(legal, "{}: {from:?} -> {to:?}", event.device_id);
                if to == Cs::Faulted {
                    assert_ne!(c.error_code, 1, "a fault carries its error code");
                    faults += 1;
                }
            }
            _ => {}
        }
    }
    assert!(ended > 100, "{ended} sessions in a week");
    assert!(faults > 0, "some faults in a week");
    for (tx, (event, _)) in started {
        assert!(
            at(event) > end - 20 * HOUR,
            "{tx} started long before the end and never ended"
        );
    }
}

#[test]
fn vehicles_stay_on_their_roads() {
    let town = Town::new(config(7));
    let routes: HashMap<String, (String, crate::geo::Polyline, Point)> = town
        .routes()
        .into_iter()
        .map(|(v, r, path, home)| (v, (r, path, home)))
        .collect();
    let tolerance = crate::model::vehicles::GNSS_NOISE_M + 2.0;
    let mut moving = 0;
    let mut passengers_seen = 0;
    for (event, payload) in payloads(week()) {
        let Payload::VehiclePosition(v) = payload else {
            continue;
        };
        let (route_id, path, home) = &routes[&v.vehicle_id];
        let loc = event.location.as_ref().expect("location");
        let p = Point::new(loc.latitude, loc.longitude);
        if v.route_id.is_empty() {
            assert!(
                p.distance_m(*home) < tolerance,
                "parked away from home: {v:?}"
            );
            assert_eq!(v.speed_kmh, 0.0);
        } else {
            assert_eq!(&v.route_id, route_id);
            let off = path.distance_to(p);
            assert!(
                off < tolerance,
                "{} is {off:.1} m off its route",
                v.vehicle_id
            );
            assert!(v.speed_kmh <= 50.0);
            moving += usize::from(v.speed_kmh > 0.0);
        }
        assert_eq!(
            v.heading_deg.is_some(),
            v.speed_kmh > 0.0,
            "heading only when moving"
        );
        if let Some(n) = v.passengers {
            assert!(n <= 14);
            passengers_seen += n as usize;
        }
    }
    assert!(moving > 10_000, "{moving} moving positions");
    assert!(passengers_seen > 0, "shuttles carry riders");
}

#[test]
fn bins_fill_and_trucks_empty_them() {
    let mut emptied: HashMap<&str, Millis> = HashMap::new();
    let mut collections = 0;
    let mut overflowing = 0;
    for (event, payload) in payloads(week()) {
        match payload {
            Payload::WasteCollection(w) => {
                assert!(w.weights.iter().all(|c| c.net_weight_kg >= 0.0));
                emptied.insert(&w.bin_id, at(event));
                collections += 1;
            }
            Payload::BinReading(b) => {
                assert!((0.0..=1.0).contains(&b.fill_level));
                overflowing += usize::from(b.fill_level >= 1.0);
                if let Some(t) = emptied.get(b.bin_id.as_str()) {
                    assert_eq!(
                        b.last_emptied_at.as_ref().map(clock::from_timestamp),
                        Some(*t)
                    );
                }
            }
            _ => {}
        }
    }
    assert!(collections > 200, "{collections} collections");
    assert!(overflowing > 0, "some bins overflow before the truck comes");
}

#[test]
fn requests_move_in_a_legal_order_and_some_are_late_or_reopened() {
    let mut state: HashMap<&str, Rt> = HashMap::new();
    let (mut late, mut reopened, mut closed) = (0, 0, 0);
    let mut channels = HashSet::new();
    let mut departments = HashSet::new();
    for (event, payload) in payloads(week()) {
        let Payload::ServiceRequest(r) = payload else {
            continue;
        };
        assert_eq!(event.device_id, r.request_id);
        let to = Rt::try_from(r.transition).unwrap();
        let from = state.insert(&r.request_id, to);
        let legal = matches!(
            (from, to),
            (None, Rt::Created)
                | (Some(Rt::Created), Rt::Assigned)
                | (Some(Rt::Assigned | Rt::Reopened), Rt::InProgress)
                | (Some(Rt::InProgress), Rt::Resolved)
                | (Some(Rt::Resolved), Rt::Closed | Rt::Reopened)
        );
        assert!(legal, "{}: {from:?} -> {to:?}", r.request_id);
        match to {
            Rt::Created => {
                channels.insert(r.channel);
            }
            Rt::Resolved => {
                late +=
                    usize::from(at(event) > clock::from_timestamp(r.expected_by.as_ref().unwrap()))
            }
            Rt::Reopened => reopened += 1,
            Rt::Closed => closed += 1,
            _ => {
                departments.insert(r.department.clone());
            }
        }
    }
    assert!(state.len() > 100, "{} requests in a week", state.len());
    assert!(
        late > 0 && reopened > 0 && closed > 50,
        "late {late}, reopened {reopened}, closed {closed}"
    );
    assert_eq!(channels.len(), 4);
    assert!(departments.len() >= 6, "{departments:?}");
}

#[test]
fn patrols_cover_their_checkpoints_and_compliance_improves() {
    let mut checkpoints = HashSet::new();
    let mut follow_ups = 0;
    for (_, payload) in payloads(week()) {
        if let Payload::PatrolCheckIn(p) = payload {
            checkpoints.insert(p.checkpoint_id.clone());
            follow_ups += usize::from(!p.follow_up_request_id.is_empty());
        }
    }
    // Two checkpoints per village: its entrance and its collection point.
    assert_eq!(checkpoints.len(), 2 * crate::geo::villages().count());
    assert!(follow_ups > 0);

    // Over four weeks the share of correctly sorted classes rises.
    let end = ORIGIN + 28 * DAY;
    let town = Town::new(TownConfig {
        scale: 0.5,
        ..config(7)
    });
    let mut weeks = [(0usize, 0usize); 4];
    for event in town.take_while(|e| at(e) < end) {
        if let Some(Payload::PatrolCheckIn(p)) = &event.payload {
            let week = ((at(&event) - ORIGIN) / (7 * DAY)) as usize;
            for c in &p.compliance {
                if c.result != SortingResult::NotChecked as i32 {
                    weeks[week].0 += usize::from(c.result == SortingResult::Correct as i32);
                    weeks[week].1 += 1;
                }
            }
        }
    }
    let share = |(ok, all): (usize, usize)| ok as f64 / all as f64;
    assert!(share(weeks[3]) > share(weeks[0]) + 0.05, "{weeks:?}");
}

#[test]
fn compliance_differs_by_village() {
    use crate::model::sanitation::Patrol;
    let starts: Vec<f64> = crate::geo::villages()
        .map(|v| Patrol::compliance(7, ORIGIN, v, ORIGIN))
        .collect();
    let (lo, hi) = starts
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    assert!(hi - lo > 0.1, "{starts:?}");
    let later = Patrol::compliance(
        7,
        ORIGIN,
        crate::geo::place_by_code("WT"),
        ORIGIN + 21 * DAY,
    );
    assert!(
        later > Patrol::compliance(7, ORIGIN, crate::geo::place_by_code("WT"), ORIGIN + MINUTE)
    );
}

#[test]
fn scale_multiplies_devices() {
    let one = Town::new(config(7)).device_counts();
    let three = Town::new(TownConfig {
        scale: 3.0,
        ..config(7)
    })
    .device_counts();
    for (a, b) in one.iter().zip(three) {
        assert!(b >= 2 * a, "{one:?} vs {three:?}");
    }
    let small = Town::new(TownConfig {
        scale: 0.1,
        ..config(7)
    })
    .device_counts();
    assert!(small.iter().all(|n| *n >= 1));
}
