//! The town's actors. Each actor owns its random stream and its state, and a
//! `step` at simulated time `now` emits zero or more events (all observed at
//! `now`) and says when it next wants to wake. The town (`crate::town`) runs
//! them in time order.

pub mod charging;
pub mod parking;
pub mod requests;
pub mod sanitation;
pub mod vehicles;

use crate::geo::Point;
use citybrain_proto::events::v1::event::Payload;

/// An event before the town gives it an id, a time and a sequence number.
#[derive(Debug, Clone)]
pub struct Draft {
    pub device_id: String,
    pub location: Option<Point>,
    pub payload: Payload,
}

/// Collects what a step emits.
#[derive(Debug, Default)]
pub struct Out {
    pub drafts: Vec<Draft>,
}

impl Out {
    pub fn emit(&mut self, device_id: &str, location: Option<Point>, payload: Payload) {
        self.drafts.push(Draft {
            device_id: device_id.to_string(),
            location,
            payload,
        });
    }
}

/// How many copies of a group of `base` devices run at `scale`: at least one.
pub fn scaled(base: u32, scale: f64) -> u32 {
    ((f64::from(base) * scale).round() as u32).max(1)
}

/// Rounds to cents.
pub fn cents(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
