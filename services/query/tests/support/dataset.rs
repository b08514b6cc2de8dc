//! The known data set: what each tenant's devices reported, as plain Rust
//! values, so tests can compute the expected answers without SQL, and the
//! same values as the events that devices send through ingest.
//!
//! Times are offsets from [`t0`], a Monday at least a week ago, so that
//! ingest accepts every event (it refuses events older than 30 days) and
//! no bucket is still open.

use super::t0;
use citybrain_proto::events::v1::{self as ev, Event, Location, event::Payload};
use citybrain_tests::Kind;
use std::collections::BTreeMap;

/// A connector's status changes: (offset from t0, status).
pub struct Connector {
    pub device: &'static str,
    pub station: &'static str,
    pub site: &'static str,
    pub changes: &'static [(i64, &'static str)],
}

pub const CONNECTORS_A: &[Connector] = &[
    Connector {
        device: "c1",
        station: "st1",
        site: "north",
        changes: &[
            (0, "available"),
            (600, "charging"),
            (4200, "available"),
            (7200, "faulted"),
        ],
    },
    Connector {
        device: "c2",
        station: "st2",
        site: "south",
        changes: &[(0, "available"), (2700, "charging"), (3600, "available")],
    },
];

/// Tenant B uses the same site name and bin and request ids as tenant A.
pub const CONNECTORS_B: &[Connector] = &[Connector {
    device: "c9",
    station: "st9",
    site: "north",
    changes: &[(0, "charging"), (7200, "available")],
}];

/// Seconds per status per `bucket` seconds, split at bucket boundaries,
/// for connectors at `site` (as `charger_utilisation` defines it: each status
/// lasts until the connector's next event; the last one is not counted).
pub fn status_seconds(
    connectors: &[Connector],
    site: Option<&str>,
    bucket: i64,
) -> BTreeMap<(i64, String), i64> {
    let mut out = BTreeMap::new();
    for c in connectors
        .iter()
        .filter(|c| site.is_none_or(|s| s == c.site))
    {
        for pair in c.changes.windows(2) {
            let (mut a, status) = (t0() + pair[0].0, pair[0].1);
            let b = t0() + pair[1].0;
            while a < b {
                let start = a - a.rem_euclid(bucket);
                let end = (start + bucket).min(b);
                *out.entry((start, status.to_string())).or_insert(0) += end - a;
                a = end;
            }
        }
    }
    out
}

/// Utilisation per bucket start: charging seconds / all seconds.
pub fn utilisation(connectors: &[Connector], site: &str, bucket: i64) -> BTreeMap<i64, f64> {
    let mut totals: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for ((start, status), secs) in status_seconds(connectors, Some(site), bucket) {
        let entry = totals.entry(start).or_default();
        entry.1 += secs;
        if status == "charging" {
            entry.0 += secs;
        }
    }
    totals
        .into_iter()
        .map(|(k, (c, t))| (k, c as f64 / t as f64))
        .collect()
}

/// Parking reports: (lot, village, total, [(offset, occupied)]).
pub type Lot = (&'static str, &'static str, u32, &'static [(i64, u32)]);
pub const LOTS_A: &[Lot] = &[
    ("p1", "v1", 100, &[(0, 20), (1800, 60), (3600, 90)]),
    ("p2", "v2", 50, &[(0, 10), (3600, 40)]),
    // Quotes, backslash and CJK in names: they must round-trip as values.
    ("p'3\\x", "北村", 10, &[(0, 5)]),
];
pub const LOTS_B: &[Lot] = &[("p1", "v1", 100, &[(0, 100), (60, 100)])];

/// Vehicle tracks: (vehicle, role, route, trip, [odometer], [passengers]),
/// one position a minute from t0.
pub struct Track {
    pub vehicle: &'static str,
    pub role: &'static str,
    pub route: &'static str,
    pub trip: &'static str,
    pub odometer: &'static [f64],
    pub passengers: &'static [u32],
}

pub const TRACKS_A: &[Track] = &[
    Track {
        vehicle: "bus1",
        role: "vaccine_shuttle",
        route: "r1",
        trip: "trip1",
        odometer: &[
            100.0, 100.5, 101.0, 101.5, 102.0, 102.5, 103.0, 103.5, 104.0, 104.5,
        ],
        passengers: &[0, 3, 3, 5, 2, 2, 6, 6, 0, 0],
    },
    Track {
        vehicle: "truck1",
        role: "sanitation_truck",
        route: "",
        trip: "",
        odometer: &[50.0, 52.0, 54.0, 56.0, 58.0],
        passengers: &[],
    },
];
pub const TRACKS_B: &[Track] = &[Track {
    vehicle: "bus9",
    role: "vaccine_shuttle",
    route: "r1",
    trip: "trip9",
    odometer: &[0.0, 1000.0],
    passengers: &[40, 80],
}];

/// Boardings: the first count plus every rise.
pub fn boardings(passengers: &[u32]) -> i64 {
    let mut total = i64::from(*passengers.first().unwrap_or(&0));
    for pair in passengers.windows(2) {
        total += (i64::from(pair[1]) - i64::from(pair[0])).max(0);
    }
    total
}

/// Patrol check-ins: (village, team, checkpoint, results, contamination),
/// one every 5 minutes from t0; the n-th result grades the n-th of
/// [`CHECKED_CLASSES`].
pub type CheckIn = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<f64>,
);
pub const CHECK_INS_A: &[CheckIn] = &[
    ("v1", "t1", "cp1", &["correct", "incorrect"], Some(10.0)),
    ("v1", "t1", "cp2", &["correct", "correct"], None),
    ("v1", "t1", "cp1", &["correct"], Some(20.0)),
    ("v2", "t2", "cp9", &["incorrect"], None),
];
pub const CHECK_INS_B: &[CheckIn] = &[
    ("v1", "t1", "cpx", &["incorrect", "incorrect"], Some(90.0)),
    ("v1", "t1", "cpy", &["incorrect"], None),
];

/// Bin readings: (bin, village, offset, fill as a fraction of capacity).
pub const BINS_A: &[(&str, &str, i64, f64)] = &[
    ("b1", "v1", 0, 0.30),
    ("b1", "v1", 600, 0.85),
    ("b2", "v1", 0, 0.50),
    ("b3", "v2", 0, 0.95),
];
pub const BINS_B: &[(&str, &str, i64, f64)] = &[("b1", "v1", 900, 0.99)];

/// Request transitions: (request, department, village, category, offset,
/// transition, expected_by offset).
pub type Transition = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static str,
    Option<i64>,
);
pub const REQUESTS_A: &[Transition] = &[
    ("r1", "roads", "v1", "road", 0, "created", Some(10_800)),
    ("r1", "roads", "v1", "road", 3_600, "assigned", Some(10_800)),
    ("r1", "roads", "v1", "road", 7_200, "resolved", Some(10_800)),
    ("r2", "roads", "v1", "road", 1_800, "created", Some(16_200)),
    ("r2", "roads", "v1", "road", 9_000, "assigned", Some(16_200)),
    (
        "r2",
        "roads",
        "v1",
        "road",
        37_800,
        "resolved",
        Some(16_200),
    ),
    (
        "r2",
        "roads",
        "v1",
        "road",
        41_800,
        "reopened",
        Some(16_200),
    ),
    ("r3", "sanitation", "v2", "sanitation", 600, "created", None),
];
pub const REQUESTS_B: &[Transition] = &[
    ("r1", "roads", "v1", "road", 0, "created", Some(60)),
    // Due an hour after it was created (ingest refuses a request created
    // after its deadline).
    ("r7", "roads", "v1", "road", 100, "created", Some(3_700)),
];

/// The waste classes a check-in grades, in the order of its results (a
/// check-in grades each class at most once).
pub const CHECKED_CLASSES: [ev::WasteClass; 4] = [
    ev::WasteClass::Kitchen,
    ev::WasteClass::Recyclable,
    ev::WasteClass::Hazardous,
    ev::WasteClass::Other,
];

/// One tenant's part of the data set.
pub struct TenantData {
    pub connectors: &'static [Connector],
    pub lots: &'static [Lot],
    pub tracks: &'static [Track],
    pub check_ins: &'static [CheckIn],
    pub bins: &'static [(&'static str, &'static str, i64, f64)],
    pub requests: &'static [Transition],
}

pub const DATA_A: TenantData = TenantData {
    connectors: CONNECTORS_A,
    lots: LOTS_A,
    tracks: TRACKS_A,
    check_ins: CHECK_INS_A,
    bins: BINS_A,
    requests: REQUESTS_A,
};

pub const DATA_B: TenantData = TenantData {
    connectors: CONNECTORS_B,
    lots: LOTS_B,
    tracks: TRACKS_B,
    check_ins: CHECK_INS_B,
    bins: BINS_B,
    requests: REQUESTS_B,
};

/// The wire value of enum `E` whose stored name is `name` (the sink stores
/// `CONNECTOR_STATUS_VALUE_CHARGING` as `charging`).
fn wire<E: Into<i32>>(parse: fn(&str) -> Option<E>, prefix: &str, name: &str) -> i32 {
    let full = format!("{prefix}{}", name.to_ascii_uppercase());
    parse(&full)
        .unwrap_or_else(|| panic!("{full} is not a known enum value"))
        .into()
}

fn at(offset: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t0() + offset,
        nanos: 0,
    }
}

fn event(device: &str, offset: i64, location: Option<Location>, payload: Payload) -> Event {
    Event {
        // Set here, so that a resend after RETRYABLE is recognised.
        event_id: uuid::Uuid::new_v4().to_string(),
        device_id: device.to_string(),
        observed_at: Some(at(offset)),
        seq_no: None,
        location,
        observed_at_assumed: false,
        payload: Some(payload),
    }
}

impl TenantData {
    /// The events the tenant's devices send, each device's in time order.
    pub fn events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        for c in self.connectors {
            for (offset, status) in c.changes {
                let error_code = if *status == "faulted" {
                    ev::ChargePointErrorCode::GroundFailure
                } else {
                    ev::ChargePointErrorCode::NoError
                };
                events.push(event(
                    c.device,
                    *offset,
                    None,
                    Payload::ConnectorStatus(ev::ConnectorStatus {
                        station_id: c.station.into(),
                        evse_id: 1,
                        connector_id: 1,
                        status: wire(
                            ev::ConnectorStatusValue::from_str_name,
                            "CONNECTOR_STATUS_VALUE_",
                            status,
                        ),
                        error_code: error_code as i32,
                        site: c.site.into(),
                        ..Default::default()
                    }),
                ));
            }
            // A session for each charging interval: started, then ended
            // with energy = charging hours × 10 kWh and 8 CNY per hour.
            for pair in c.changes.windows(2).filter(|p| p[0].1 == "charging") {
                let hours = (pair[1].0 - pair[0].0) as f64 / 3600.0;
                let session = ev::ChargingSession {
                    station_id: c.station.into(),
                    connector_id: 1,
                    transaction_id: format!("{}-{}", c.device, pair[0].0),
                    site: c.site.into(),
                    ..Default::default()
                };
                events.push(event(
                    c.device,
                    pair[0].0,
                    None,
                    Payload::ChargingSession(ev::ChargingSession {
                        phase: ev::SessionPhase::Started as i32,
                        ..session.clone()
                    }),
                ));
                events.push(event(
                    c.device,
                    pair[1].0,
                    None,
                    Payload::ChargingSession(ev::ChargingSession {
                        phase: ev::SessionPhase::Ended as i32,
                        meter_stop_wh: Some(hours * 10_000.0),
                        energy_kwh: Some(hours * 10.0),
                        stop_reason: ev::StopReason::EvDisconnected as i32,
                        fee_total_cny: Some(hours * 8.0),
                        started_at: Some(at(pair[0].0)),
                        ..session
                    }),
                ));
            }
        }
        for (lot, village, total, reports) in self.lots {
            for (offset, occupied) in *reports {
                events.push(event(
                    lot,
                    *offset,
                    None,
                    Payload::ParkingSiteCounts(ev::ParkingSiteCounts {
                        site_id: lot.to_string(),
                        total_spots: *total,
                        occupied: *occupied,
                        available: total - occupied,
                        status: ev::ParkingSiteStatus::Open as i32,
                        period_s: 60,
                        village: village.to_string(),
                        ..Default::default()
                    }),
                ));
            }
        }
        for t in self.tracks {
            for (i, odometer) in t.odometer.iter().enumerate() {
                events.push(event(
                    t.vehicle,
                    60 * i as i64,
                    Some(Location {
                        latitude: 28.0 + i as f64 * 0.001,
                        longitude: 120.6,
                        ..Default::default()
                    }),
                    Payload::VehiclePosition(ev::VehiclePosition {
                        vehicle_id: t.vehicle.into(),
                        role: wire(ev::VehicleRole::from_str_name, "VEHICLE_ROLE_", t.role),
                        speed_kmh: 30.0,
                        odometer_km: Some(*odometer),
                        route_id: t.route.into(),
                        trip_id: t.trip.into(),
                        passengers: t.passengers.get(i).copied(),
                        ..Default::default()
                    }),
                ));
            }
        }
        for (i, (village, team, checkpoint, results, contamination)) in
            self.check_ins.iter().enumerate()
        {
            events.push(event(
                &format!("handheld-{team}"),
                300 * i as i64,
                None,
                Payload::PatrolCheckIn(ev::PatrolCheckIn {
                    patrol_id: format!("patrol-{team}"),
                    team_id: team.to_string(),
                    inspector_id: "i1".into(),
                    checkpoint_id: checkpoint.to_string(),
                    compliance: results
                        .iter()
                        .zip(CHECKED_CLASSES)
                        .map(|(result, class)| ev::ClassCompliance {
                            waste_class: class as i32,
                            result: wire(
                                ev::SortingResult::from_str_name,
                                "SORTING_RESULT_",
                                result,
                            ),
                        })
                        .collect(),
                    contamination_percent: *contamination,
                    village: village.to_string(),
                    ..Default::default()
                }),
            ));
        }
        for (bin, village, offset, fill) in self.bins {
            events.push(event(
                bin,
                *offset,
                None,
                Payload::BinReading(ev::BinReading {
                    bin_id: bin.to_string(),
                    waste_class: ev::WasteClass::Kitchen as i32,
                    fill_level: *fill,
                    status: ev::BinStatus::Ok as i32,
                    village: village.to_string(),
                    ..Default::default()
                }),
            ));
        }
        for (request, department, village, category, offset, transition, expected) in self.requests
        {
            events.push(event(
                "service-desk",
                *offset,
                None,
                Payload::ServiceRequest(ev::ServiceRequestTransition {
                    request_id: request.to_string(),
                    transition: wire(
                        ev::RequestTransition::from_str_name,
                        "REQUEST_TRANSITION_",
                        transition,
                    ),
                    category: wire(
                        ev::RequestCategory::from_str_name,
                        "REQUEST_CATEGORY_",
                        category,
                    ),
                    channel: ev::RequestChannel::Hotline as i32,
                    village: village.to_string(),
                    department: department.to_string(),
                    expected_by: expected.map(at),
                    ..Default::default()
                }),
            ));
        }
        events
    }
}

/// How many events of each kind `events` holds: the rows the sink must
/// store in each raw table.
pub fn rows_per_kind(events: &[Event]) -> BTreeMap<Kind, u64> {
    let mut counts = BTreeMap::new();
    for event in events {
        let kind = Kind::of(event.payload.as_ref().expect("every event has a payload"));
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// Every text value in a tenant's part of the data set (ids, names,
/// villages, departments, statuses, roles), to tell whose rows an answer
/// shows.
pub fn names(data: &TenantData) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for c in data.connectors {
        names.extend([c.device, c.station, c.site].map(String::from));
        names.extend(c.changes.iter().map(|(_, status)| status.to_string()));
    }
    for (lot, village, _, _) in data.lots {
        names.extend([lot, village].map(|s| s.to_string()));
    }
    for t in data.tracks {
        names.extend([t.vehicle, t.role, t.route, t.trip].map(String::from));
    }
    for (village, team, checkpoint, _, _) in data.check_ins {
        names.extend([village, team, checkpoint].map(|s| s.to_string()));
        names.insert(format!("patrol-{team}"));
    }
    for (bin, village, _, _) in data.bins {
        names.extend([bin, village].map(|s| s.to_string()));
    }
    for (request, department, village, category, _, transition, _) in data.requests {
        names.extend([request, department, village, category, transition].map(|s| s.to_string()));
    }
    names.remove("");
    names
}

/// Per-request service figures, as the SLA metric defines them: a request
/// counts if it was created, under its latest department; hours from
/// creation to the first assignment and the first resolution; within SLA
/// if first resolved by its expected_by; reopened if ever reopened.
#[derive(Debug, Default)]
pub struct Sla {
    pub requests: i64,
    pub assigned: i64,
    pub resolved: i64,
    pub avg_hours_to_assign: Option<f64>,
    pub avg_hours_to_resolve: Option<f64>,
    pub within_sla: Option<f64>,
    pub reopen_rate: f64,
}

pub fn sla(requests: &[Transition], department: &str) -> Sla {
    let mut ids: Vec<&str> = requests.iter().map(|r| r.0).collect();
    ids.sort();
    ids.dedup();
    let mean = |values: &[f64]| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let (mut assign, mut resolve, mut within, mut reopened) = (vec![], vec![], vec![], 0);
    let mut counted = 0;
    for id in ids {
        let mut transitions: Vec<&Transition> = requests.iter().filter(|r| r.0 == id).collect();
        transitions.sort_by_key(|r| r.4);
        let latest = transitions.last().unwrap();
        let first = |name: &str| transitions.iter().find(|r| r.5 == name).map(|r| r.4);
        let Some(created) = first("created") else {
            continue;
        };
        if latest.1 != department {
            continue;
        }
        counted += 1;
        let hours = |at: i64| (at - created) as f64 / 3600.0;
        if let Some(assigned) = first("assigned") {
            assign.push(hours(assigned));
        }
        if let Some(resolved) = first("resolved") {
            resolve.push(hours(resolved));
            if let Some(expected) = transitions.iter().filter_map(|r| r.6).max() {
                within.push(if resolved <= expected { 1.0 } else { 0.0 });
            }
        }
        if first("reopened").is_some() {
            reopened += 1;
        }
    }
    Sla {
        requests: counted,
        assigned: assign.len() as i64,
        resolved: resolve.len() as i64,
        avg_hours_to_assign: mean(&assign),
        avg_hours_to_resolve: mean(&resolve),
        within_sla: mean(&within),
        reopen_rate: if counted == 0 {
            0.0
        } else {
            f64::from(reopened) / counted as f64
        },
    }
}

/// A connector's share of observed time spent charging.
pub fn connector_utilisation(connector: &Connector) -> f64 {
    let seconds = status_seconds(std::slice::from_ref(connector), None, 86_400);
    let charging: i64 = seconds
        .iter()
        .filter(|((_, status), _)| status == "charging")
        .map(|(_, s)| s)
        .sum();
    charging as f64 / seconds.values().sum::<i64>() as f64
}
