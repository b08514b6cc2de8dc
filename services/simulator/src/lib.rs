//! The town simulator: a deterministic model of 潞城镇 whose chargers,
//! parking sites, vehicles, bins, patrols and citizens' requests produce
//! events, pushed through the ingest API like any vendor's.
//!
//! - [`town::Town`]: the model, an endless iterator of events in time order,
//!   a pure function of (seed, origin, scale).
//! - [`client::IngestClient`]: batches, retries and backoff against ingest.
//! - [`driver::run`]: live, backfill, or both, with a progress bar.
//! - [`ocpp::Chargers`]: with `--chargers-via-ocpp`, the chargers speak
//!   OCPP 1.6 to the OCPP gateway instead.
//! - [`jt808::Fleet`]: vehicles that report as JT/T 808 terminals to the
//!   jt808 gateway once live (`--vehicles-via-jt808`).

pub mod client;
pub mod clock;
pub mod config;
pub mod driver;
pub mod geo;
pub mod jt808;
pub mod model;
pub mod ocpp;
pub mod progress;
pub mod rng;
pub mod town;

pub use config::{Mode, SimulatorConfig};
pub use driver::{Plan, RunError, Summary, run, run_plan};
pub use town::{Town, TownConfig};
