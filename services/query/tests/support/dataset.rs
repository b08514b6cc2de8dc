//! The known data set: what each tenant's devices reported, as plain Rust
//! values, so tests can compute the expected answers without SQL.

use super::{Db, T0, TENANT_A, TENANT_B};
use serde_json::json;
use std::collections::BTreeMap;

/// A connector's status changes: (offset from T0, status).
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
/// for connectors at `site` (as the roll-up defines it: the status an
/// event ends, over the time since the previous event).
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
            let (mut a, status) = (T0 + pair[0].0, pair[0].1);
            let b = T0 + pair[1].0;
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
/// one position a minute from T0.
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

/// Patrol check-ins: (village, team, checkpoint, results, contamination).
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

/// Bin readings: (bin, village, offset, fill).
pub const BINS_A: &[(&str, &str, i64, f64)] = &[
    ("b1", "v1", 0, 30.0),
    ("b1", "v1", 600, 85.0),
    ("b2", "v1", 0, 50.0),
    ("b3", "v2", 0, 95.0),
];
pub const BINS_B: &[(&str, &str, i64, f64)] = &[("b1", "v1", 900, 99.0)];

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
    ("r1", "roads", "v1", "pothole", 0, "created", Some(10_800)),
    (
        "r1",
        "roads",
        "v1",
        "pothole",
        3_600,
        "assigned",
        Some(10_800),
    ),
    (
        "r1",
        "roads",
        "v1",
        "pothole",
        7_200,
        "resolved",
        Some(10_800),
    ),
    (
        "r2",
        "roads",
        "v1",
        "pothole",
        1_800,
        "created",
        Some(16_200),
    ),
    (
        "r2",
        "roads",
        "v1",
        "pothole",
        9_000,
        "assigned",
        Some(16_200),
    ),
    (
        "r2",
        "roads",
        "v1",
        "pothole",
        37_800,
        "resolved",
        Some(16_200),
    ),
    (
        "r2",
        "roads",
        "v1",
        "pothole",
        41_800,
        "reopened",
        Some(16_200),
    ),
    ("r3", "sanitation", "v2", "bins", 600, "created", None),
];
pub const REQUESTS_B: &[Transition] = &[
    ("r1", "roads", "v1", "pothole", 0, "created", Some(60)),
    ("r7", "roads", "v1", "pothole", 100, "created", Some(60)),
];

pub async fn load(db: &Db) {
    for (tenant, connectors, lots, tracks, check_ins, bins, requests) in [
        (
            TENANT_A,
            CONNECTORS_A,
            LOTS_A,
            TRACKS_A,
            CHECK_INS_A,
            BINS_A,
            REQUESTS_A,
        ),
        (
            TENANT_B,
            CONNECTORS_B,
            LOTS_B,
            TRACKS_B,
            CHECK_INS_B,
            BINS_B,
            REQUESTS_B,
        ),
    ] {
        let mut rows = Vec::new();
        let mut sessions = Vec::new();
        for c in connectors {
            let mut prev: Option<(i64, &str)> = None;
            for (offset, status) in c.changes {
                rows.push(json!({
                    "at": T0 + offset, "device_id": c.device, "station_id": c.station,
                    "connector_id": 1, "status": status, "site": c.site,
                    "error_code": if *status == "faulted" { "GroundFailure" } else { "" },
                    "prev_status": prev.map_or("", |p| p.1),
                    "prev_observed_at": super::ch_time(prev.map_or(0, |p| T0 + p.0)),
                }));
                prev = Some((*offset, status));
            }
            // A session for each charging interval: started, then ended
            // with energy = charging hours × 10 kWh.
            for pair in c.changes.windows(2).filter(|p| p[0].1 == "charging") {
                let hours = (pair[1].0 - pair[0].0) as f64 / 3600.0;
                let base = json!({"device_id": c.device, "station_id": c.station, "connector_id": 1,
                    "transaction_id": format!("{}-{}", c.device, pair[0].0), "site": c.site});
                let mut started = base.clone();
                started["at"] = json!(T0 + pair[0].0);
                started["phase"] = json!("started");
                let mut ended = base;
                ended["at"] = json!(T0 + pair[1].0);
                ended["phase"] = json!("ended");
                ended["energy_kwh"] = json!(hours * 10.0);
                ended["fee_total_cny"] = json!(hours * 8.0);
                sessions.push(started);
                sessions.push(ended);
            }
        }
        db.insert("raw_connector_status", tenant, &rows).await;
        db.insert("raw_charging_session", tenant, &sessions).await;

        let rows: Vec<_> = lots
            .iter()
            .flat_map(|(lot, village, total, reports)| {
                reports.iter().map(move |(offset, occupied)| {
                    json!({"at": T0 + offset, "site_id": lot, "village": village, "total_spots": total,
                        "occupied": occupied, "available": total - occupied, "status": "open", "period_s": 60})
                })
            })
            .collect();
        db.insert("raw_parking_site_counts", tenant, &rows).await;

        let mut rows = Vec::new();
        for t in tracks {
            for (i, odometer) in t.odometer.iter().enumerate() {
                let mut row = json!({"at": T0 + 60 * i as i64, "vehicle_id": t.vehicle, "role": t.role,
                    "speed_kmh": 30.0, "odometer_km": odometer, "route_id": t.route, "trip_id": t.trip,
                    "latitude": 28.0 + i as f64 * 0.001, "longitude": 120.6, "device_id": t.vehicle});
                if let Some(p) = t.passengers.get(i) {
                    row["passengers"] = json!(p);
                }
                rows.push(row);
            }
        }
        db.insert("raw_vehicle_position", tenant, &rows).await;

        let rows: Vec<_> = check_ins
            .iter()
            .enumerate()
            .map(|(i, (village, team, checkpoint, results, contamination))| {
                json!({"at": T0 + 300 * i as i64, "patrol_id": format!("patrol-{team}"), "team_id": team,
                    "inspector_id": "i1", "checkpoint_id": checkpoint, "village": village,
                    "compliance_class": results.iter().map(|_| "kitchen").collect::<Vec<_>>(),
                    "compliance_result": results, "contamination_percent": contamination})
            })
            .collect();
        db.insert("raw_patrol_check_in", tenant, &rows).await;

        let rows: Vec<_> = bins
            .iter()
            .map(|(bin, village, offset, fill)| {
                json!({"at": T0 + offset, "bin_id": bin, "village": village, "waste_class": "kitchen",
                    "fill_level": fill, "status": "ok"})
            })
            .collect();
        db.insert("raw_bin_reading", tenant, &rows).await;

        let rows: Vec<_> = requests
            .iter()
            .map(
                |(request, department, village, category, offset, transition, expected)| {
                    json!({"at": T0 + offset, "request_id": request, "department": department,
                    "village": village, "category": category, "transition": transition,
                    "expected_by": expected.map(|e| super::ch_time(T0 + e))})
                },
            )
            .collect();
        db.insert("raw_service_request", tenant, &rows).await;
    }
}
