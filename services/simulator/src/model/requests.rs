//! Citizen service requests (干群联动, 急难愁盼): opened through different
//! channels, assigned to departments that work at different speeds, resolved
//! (some after their SLA), sometimes reopened, finally closed.
//!
//! One request is one actor; its device id is the request id, so one
//! request's transitions stay in order end to end.

use crate::clock::{self, HOUR, MINUTE, Millis};
use crate::geo::{self, Place, Point};
use crate::model::Out;
use crate::rng::Rng;
use citybrain_proto::events::v1::{
    RequestCategory, RequestChannel, RequestTransition, ServiceRequestTransition, event::Payload,
};

/// A department and how fast it works (mean hours).
struct Department {
    id: &'static str,
    assign_h: f64,
    start_h: f64,
    /// Multiplies the category's typical working time.
    pace: f64,
    /// Share of resolutions the requester does not accept.
    reopen: f64,
}

const DEPARTMENTS: &[Department] = &[
    Department {
        id: "town-construction",
        assign_h: 3.0,
        start_h: 10.0,
        pace: 1.4,
        reopen: 0.12,
    },
    Department {
        id: "gantang-clinic",
        assign_h: 0.5,
        start_h: 1.0,
        pace: 0.7,
        reopen: 0.04,
    },
    Department {
        id: "social-security",
        assign_h: 6.0,
        start_h: 20.0,
        pace: 1.2,
        reopen: 0.08,
    },
    Department {
        id: "civil-affairs",
        assign_h: 2.0,
        start_h: 5.0,
        pace: 0.9,
        reopen: 0.06,
    },
    Department {
        id: "energy-office",
        assign_h: 1.5,
        start_h: 4.0,
        pace: 1.0,
        reopen: 0.10,
    },
    Department {
        id: "traffic-team",
        assign_h: 1.0,
        start_h: 2.0,
        pace: 0.8,
        reopen: 0.07,
    },
    Department {
        id: "env-protection-team",
        assign_h: 0.8,
        start_h: 1.5,
        pace: 0.6,
        reopen: 0.05,
    },
    Department {
        id: "town-office",
        assign_h: 4.0,
        start_h: 12.0,
        pace: 1.1,
        reopen: 0.09,
    },
];

/// What a category of request is, who handles it, and its SLA.
struct Category {
    category: RequestCategory,
    service_code: &'static str,
    department: usize,
    sla_h: f64,
    work_h: f64,
    note: &'static str,
}

const CATEGORIES: &[Category] = &[
    Category {
        category: RequestCategory::Road,
        service_code: "road-repair",
        department: 0,
        sla_h: 72.0,
        work_h: 30.0,
        note: "路面破损 road surface damaged",
    },
    Category {
        category: RequestCategory::MedicineSupply,
        service_code: "medicine-supply",
        department: 1,
        sla_h: 24.0,
        work_h: 8.0,
        note: "常用药短缺 regular medicine out of stock",
    },
    Category {
        category: RequestCategory::Jobs,
        service_code: "job-referral",
        department: 2,
        sla_h: 120.0,
        work_h: 48.0,
        note: "就业推荐 job referral requested",
    },
    Category {
        category: RequestCategory::ElderlyCare,
        service_code: "elderly-care",
        department: 3,
        sla_h: 48.0,
        work_h: 16.0,
        note: "老人助餐 meal service for an elderly resident",
    },
    Category {
        category: RequestCategory::Charging,
        service_code: "charging-fault",
        department: 4,
        sla_h: 48.0,
        work_h: 14.0,
        note: "充电桩故障 charging pile not working",
    },
    Category {
        category: RequestCategory::Parking,
        service_code: "parking-order",
        department: 5,
        sla_h: 24.0,
        work_h: 6.0,
        note: "车辆乱停 car blocking access",
    },
    Category {
        category: RequestCategory::Sanitation,
        service_code: "sanitation-issue",
        department: 6,
        sla_h: 24.0,
        work_h: 5.0,
        note: "垃圾未分类 waste not sorted",
    },
    Category {
        category: RequestCategory::Other,
        service_code: "general",
        department: 7,
        sla_h: 72.0,
        work_h: 24.0,
        note: "其他诉求 other request",
    },
];

const SANITATION: usize = 6;

/// Where transitions happen in office hours (local).
const OFFICE_OPENS: f64 = 8.0;
const OFFICE_CLOSES: f64 = 18.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    New,
    Created,
    Assigned,
    InProgress,
    Resolved,
    Reopened,
}

/// One citizen request moving through its life.
pub struct Request {
    id: String,
    category: usize,
    channel: RequestChannel,
    village: &'static Place,
    location: Point,
    address: String,
    note: String,
    expected_by: Millis,
    stage: Stage,
    reopened: u32,
    rng: Rng,
}

impl Request {
    /// Emits the next transition; `None` once the request is closed.
    pub fn step(&mut self, now: Millis, out: &mut Out) -> Option<Millis> {
        let category = &CATEGORIES[self.category];
        let department = &DEPARTMENTS[category.department];
        let (transition, next) = match self.stage {
            Stage::New => {
                self.stage = Stage::Created;
                let wait = self.rng.exp(department.assign_h) * HOUR as f64;
                (
                    RequestTransition::Created,
                    Some(office_hours(now + wait as Millis, &mut self.rng)),
                )
            }
            Stage::Created => {
                self.stage = Stage::Assigned;
                let wait = self.rng.exp(department.start_h) * HOUR as f64;
                (
                    RequestTransition::Assigned,
                    Some(office_hours(now + wait as Millis, &mut self.rng)),
                )
            }
            Stage::Assigned | Stage::Reopened => {
                self.stage = Stage::InProgress;
                let work = self.rng.exp(category.work_h * department.pace) * HOUR as f64;
                (
                    RequestTransition::InProgress,
                    Some(office_hours(now + work as Millis, &mut self.rng)),
                )
            }
            Stage::InProgress => {
                self.stage = Stage::Resolved;
                // The requester answers within one to three days.
                let wait = self.rng.range(20.0, 72.0) * HOUR as f64;
                (RequestTransition::Resolved, Some(now + wait as Millis))
            }
            Stage::Resolved => {
                if self.reopened < 2 && self.rng.chance(department.reopen) {
                    self.reopened += 1;
                    self.stage = Stage::Reopened;
                    let wait = self.rng.exp(department.start_h) * HOUR as f64;
                    (
                        RequestTransition::Reopened,
                        Some(office_hours(now + wait as Millis, &mut self.rng)),
                    )
                } else {
                    (RequestTransition::Closed, None)
                }
            }
        };
        let created = transition == RequestTransition::Created;
        let note = match transition {
            RequestTransition::Created => self.note.clone(),
            RequestTransition::Reopened => "诉求人不满意 requester not satisfied".to_string(),
            RequestTransition::Resolved if now > self.expected_by => {
                "已办结(超期) resolved after SLA".to_string()
            }
            RequestTransition::Resolved => "已办结 resolved".to_string(),
            _ => String::new(),
        };
        out.emit(
            &self.id,
            Some(self.location),
            Payload::ServiceRequest(ServiceRequestTransition {
                request_id: self.id.clone(),
                transition: transition as i32,
                service_code: category.service_code.to_string(),
                category: category.category as i32,
                channel: if created { self.channel as i32 } else { 0 },
                village: self.village.name.to_string(),
                address: self.address.clone(),
                department: if created {
                    String::new()
                } else {
                    department.id.to_string()
                },
                expected_by: Some(clock::timestamp(self.expected_by)),
                note,
            }),
        );
        next
    }
}

/// Moves a time into office hours: evenings and nights wait for the morning.
fn office_hours(at: Millis, rng: &mut Rng) -> Millis {
    let hour = clock::local_hour(at);
    if (OFFICE_OPENS..OFFICE_CLOSES).contains(&hour) {
        return at;
    }
    let day = if hour >= OFFICE_CLOSES {
        at + 12 * HOUR
    } else {
        at
    };
    clock::local_time_on_day(day, OFFICE_OPENS) + (rng.range(0.0, 90.0) * MINUTE as f64) as Millis
}

/// Opens requests: citizens' at random, and follow-ups that others (patrols)
/// ask for. New requests wait in `opened` until the town schedules them.
pub struct Desk {
    rng: Rng,
    scale: f64,
    day: String,
    day_count: u32,
    /// A citizen's request is due at the next wake.
    due: bool,
    /// Requests opened since the town last collected them.
    pub opened: Vec<Request>,
}

impl Desk {
    pub fn new(seed: u64, scale: f64) -> Self {
        Self {
            rng: Rng::for_actor(seed, "service-desk"),
            scale,
            day: String::new(),
            day_count: 0,
            due: false,
            opened: Vec::new(),
        }
    }

    /// Citizens' requests per hour at local `hour`, before scaling.
    fn rate_per_hour(hour: f64) -> f64 {
        match hour {
            h if (8.0..12.0).contains(&h) => 2.6,
            h if (12.0..20.0).contains(&h) => 1.8,
            h if (20.0..23.0).contains(&h) => 0.7,
            _ => 0.12,
        }
    }

    /// Opens the request that was due now, if any, and returns when the next
    /// one is due (or the next hour, when the rate changes).
    pub fn step(&mut self, now: Millis) -> Millis {
        if self.due {
            let villages: Vec<&'static Place> = geo::villages().collect();
            let village = villages[self.rng.index(villages.len())];
            let category = self.pick_category(village);
            let channel = self.pick_channel(village);
            self.open(now, village, category, channel, None);
        }
        let rate = Self::rate_per_hour(clock::local_hour(now)) * self.scale;
        let next_hour = (now / HOUR + 1) * HOUR;
        let wait = (self.rng.exp(1.0 / rate.max(1e-6)) * HOUR as f64) as Millis;
        self.due = now + wait < next_hour;
        if self.due {
            now + wait.max(1)
        } else {
            next_hour
        }
    }

    /// Opens a sanitation follow-up at `village` and returns its id.
    pub fn open_follow_up(&mut self, now: Millis, village: &'static Place, note: String) -> String {
        self.open(
            now,
            village,
            SANITATION,
            RequestChannel::DoorVisit,
            Some(note),
        )
    }

    fn open(
        &mut self,
        at: Millis,
        village: &'static Place,
        category: usize,
        channel: RequestChannel,
        note: Option<String>,
    ) -> String {
        let date = clock::local_date(at);
        if date != self.day {
            self.day = date;
            self.day_count = 0;
        }
        self.day_count += 1;
        let id = format!("SR-{}-{:04}", self.day, self.day_count);
        let spec = &CATEGORIES[category];
        let group = self.rng.int(1, 12);
        let address = if village.code == "HBY" {
            format!("{}{}号楼", village.name, group)
        } else {
            format!("{}第{}村民小组", village.name, group)
        };
        let location = village
            .at
            .offset(self.rng.range(-300.0, 300.0), self.rng.range(-300.0, 300.0));
        // Some requests get a tight promise the department cannot keep.
        let sla = spec.sla_h * if self.rng.chance(0.2) { 0.5 } else { 1.0 };
        self.opened.push(Request {
            id: id.clone(),
            category,
            channel,
            village,
            location,
            address,
            note: note.unwrap_or_else(|| spec.note.to_string()),
            expected_by: at + (sla * HOUR as f64) as Millis,
            stage: Stage::New,
            reopened: 0,
            rng: Rng::for_actor(self.rng.next_u64(), &id),
        });
        id
    }

    fn pick_category(&mut self, village: &Place) -> usize {
        let compound = village.code == "HBY";
        let weights: Vec<(usize, f64)> = CATEGORIES
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = match c.category {
                    RequestCategory::Road => 1.2,
                    RequestCategory::MedicineSupply => 1.0,
                    RequestCategory::Jobs => 0.6,
                    RequestCategory::ElderlyCare if compound => 0.4,
                    RequestCategory::ElderlyCare => 1.3,
                    RequestCategory::Charging if compound => 1.2,
                    RequestCategory::Charging => 0.1,
                    RequestCategory::Parking if compound => 1.4,
                    RequestCategory::Parking => 0.4,
                    RequestCategory::Sanitation => 0.8,
                    _ => 0.5,
                };
                (i, w)
            })
            .collect();
        *self.rng.weighted(&weights)
    }

    fn pick_channel(&mut self, village: &Place) -> RequestChannel {
        let weights = if village.code == "HBY" {
            [
                (RequestChannel::App, 0.5),
                (RequestChannel::Hotline, 0.3),
                (RequestChannel::CouncilHall, 0.1),
                (RequestChannel::DoorVisit, 0.1),
            ]
        } else {
            [
                (RequestChannel::DoorVisit, 0.35),
                (RequestChannel::Hotline, 0.3),
                (RequestChannel::CouncilHall, 0.2),
                (RequestChannel::App, 0.15),
            ]
        };
        *self.rng.weighted(&weights)
    }
}
