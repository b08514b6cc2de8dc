//! What the sink's end-to-end tests share beyond the test kit
//! (`citybrain-tests`): the sink's binary, and events that spread over
//! devices and vary what the roll-ups add up.
//!
//! The broker and ClickHouse are the stack's (`CITYBRAIN_KAFKA_BROKERS`,
//! `CITYBRAIN_CLICKHOUSE_URL`), except where a test stops ClickHouse or the
//! broker: it runs a private one of its own (`PrivateClickHouse`,
//! `PrivateBroker`).

#![allow(dead_code, unused_imports)] // each test file uses a different part of this module

use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_sink::config::SinkConfig;
use citybrain_tests::process::{ChildProcess, spawn_service};
use citybrain_tests::{FULL_KEY, Kind, RunningIngest, samples};
use std::path::Path;
use std::time::{Duration, SystemTime};

pub use citybrain_tests::clickhouse::{
    TestDatabase, assert_exact_rows, client as clickhouse, number, rows, settles_equal, settles_to,
};
pub use citybrain_tests::process::{PrivateBroker, PrivateClickHouse, free_port};
pub use citybrain_tests::{
    RunningSink, TestTopics, sink_config, stack_brokers, stack_clickhouse_url, unique_prefix,
};

/// The real `citybrain-sink` binary as a child process, configured by
/// `config` (its environment is the config's `to_env()`).
pub fn spawn_sink(config: &SinkConfig, log_dir: &Path, name: &str) -> ChildProcess {
    spawn_service(
        name,
        Path::new(env!("CARGO_BIN_EXE_citybrain-sink")),
        config,
        log_dir,
    )
}

/// `n` valid events of `kind`, one second apart ending now, spread over
/// `devices` devices (so over partitions), each with its own event id.
pub fn events(kind: Kind, n: usize, devices: usize, now: SystemTime) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let at = now - Duration::from_secs((n - i) as u64);
            let mut event = samples::event(kind, at);
            event.event_id = uuid::Uuid::now_v7().to_string();
            let device = i % devices;
            event.device_id = format!("{}-{device}", event.device_id);
            set_identity(&mut event, device, i);
            event
        })
        .collect()
}

/// Makes the payload's own ids follow the device (site, vehicle, bin...) and
/// varies the numbers the roll-ups add up.
fn set_identity(event: &mut Event, device: usize, i: usize) {
    let statuses = [1, 3, 6, 1, 2, 3, 9];
    match event.payload.as_mut().expect("samples have payloads") {
        Payload::ConnectorStatus(p) => {
            p.station_id = format!("CP-{device}");
            p.status = statuses[i % statuses.len()];
        }
        Payload::MeterSample(p) => p.energy_active_import_wh += i as f64,
        Payload::ChargingSession(p) => {
            p.transaction_id = format!("tx-{i}");
            if i.is_multiple_of(2) {
                p.phase = citybrain_proto::events::v1::SessionPhase::Started as i32;
                p.meter_stop_wh = None;
                p.energy_kwh = None;
                p.duration_s = None;
                p.stop_reason = 0;
                p.fee_electricity_cny = None;
                p.fee_service_cny = None;
                p.fee_total_cny = None;
            } else {
                p.energy_kwh = Some(10.0 + (i % 7) as f64);
                p.meter_stop_wh = Some(p.meter_start_wh + 1000.0 * (10.0 + (i % 7) as f64));
            }
        }
        Payload::ParkingSiteCounts(p) => {
            p.site_id = format!("P-{device}");
            p.occupied = (i % 100) as u32;
            p.available = p.total_spots - p.occupied;
        }
        Payload::ParkingSpotStatus(p) => p.spot_id = format!("S-{i}"),
        Payload::VehiclePosition(p) => {
            p.vehicle_id = format!("V-{device}");
            p.odometer_km = Some(1000.0 + i as f64 * 0.1);
            p.speed_kmh = (i % 60) as f64;
        }
        Payload::PatrolCheckIn(p) => p.team_id = format!("team-{}", device % 3),
        Payload::BinReading(p) => {
            p.bin_id = format!("BIN-{device}");
            p.fill_level = (i % 100) as f64 / 100.0;
        }
        Payload::WasteCollection(p) => p.truck_id = format!("T-{device}"),
        Payload::ServiceRequest(p) => {
            p.request_id = format!("SR-{device}");
            p.transition = [1, 2, 4, 5][i % 4];
            p.department = "civil-affairs".into();
        }
    }
}

/// Sends `events` through ingest with the full-access key until every one
/// is accepted, resending those answered RETRYABLE with the same ids.
pub async fn send(ingest: &RunningIngest, events: Vec<Event>) {
    citybrain_tests::ingest_all(ingest, FULL_KEY, events).await;
}
