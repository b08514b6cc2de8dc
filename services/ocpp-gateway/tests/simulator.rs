//! `citybrain-simulator --chargers-via-ocpp`: a backfill of the town whose
//! chargers speak OCPP 1.6 to the gateway, one socket per station. Every
//! charging event the model made reaches ClickHouse through the gateway
//! (OFFLINE statuses excepted: in OCPP the gateway reports those, here when
//! the stations disconnect at the end).

mod support;

use citybrain_proto::events::v1::{ConnectorStatusValue, event::Payload};
use citybrain_simulator::clock::{self, DAY, HOUR};
use citybrain_simulator::model::charging;
use citybrain_simulator::{Mode, Plan, SimulatorConfig, Town, TownConfig};
use citybrain_tests::{FULL_KEY, TENANT};
use std::time::{Duration, SystemTime};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_chargers_speak_ocpp_through_the_gateway() {
    let (seed, scale) = (11, 0.5);
    let stations = charging::stations(scale);
    let pipeline = Pipeline::start(&[]).await;
    // The town's stations in the test tenant, with the development password.
    let registry: String = stations
        .iter()
        .map(|s| {
            format!(
                "[[stations]]\nid = \"{}\"\ntenant = \"{TENANT}\"\nsite = \"{}\"\nconnectors = {}\npassword = \"{}\"\n\n",
                s.id,
                s.site,
                s.connectors,
                citybrain_simulator::config::DEV_OCPP_PASSWORD
            )
        })
        .collect();
    std::fs::write(&pipeline.registry_file, registry).unwrap();
    // The only gateway of this test binary: its gauge is its own.
    let gw = &pipeline.gateway;
    citybrain_tests::eventually(
        Duration::from_secs(10),
        "the registry to list the town",
        || async {
            gw.metric("citybrain_ocpp_registry_stations", &[]).await == stations.len() as f64
        },
    )
    .await;

    // Yesterday 08:00–14:00 in the town (GMT+8): a window with sessions in
    // it whatever the hour the test runs (a window ending "now" at night
    // holds almost none).
    let now = clock::from_system(SystemTime::now());
    let origin = clock::local_time_on_day(now - DAY, 8.0);
    let until = origin + 6 * HOUR;
    let plan = Plan {
        origin,
        send_from: origin,
        until: Some(until),
        paced: false,
    };
    let mut config = SimulatorConfig::new(Mode::Backfill);
    config.ingest_url = pipeline.ingest.as_ref().unwrap().endpoint();
    config.api_key = FULL_KEY.into();
    config.scale = scale;
    config.seed = seed;
    config.progress = false;
    config.chargers_via_ocpp = Some(pipeline.url());

    // What the model's chargers do in that window.
    let (mut statuses, mut samples, mut sessions) = (0u64, 0u64, 0u64);
    // Stations connect when they first have something to say.
    let mut talking = std::collections::BTreeSet::new();
    for event in Town::new(TownConfig {
        seed,
        origin,
        scale,
    })
    .take_while(|e| clock::from_timestamp(e.observed_at.as_ref().unwrap()) < until)
    {
        match event.payload {
            Some(Payload::ConnectorStatus(s))
                if s.status != ConnectorStatusValue::Offline as i32 =>
            {
                talking.insert(s.station_id);
                statuses += 1
            }
            Some(Payload::MeterSample(m)) => {
                talking.insert(m.station_id);
                samples += 1
            }
            Some(Payload::ChargingSession(c)) => {
                talking.insert(c.station_id);
                sessions += 1
            }
            _ => {}
        }
    }
    assert!(
        sessions >= 4 && samples > 100,
        "a busy enough window: {sessions} sessions, {samples} samples"
    );

    let summary = tokio::time::timeout(
        Duration::from_secs(300),
        citybrain_simulator::run_plan(&config, plan, std::future::pending()),
    )
    .await
    .expect("the backfill finishes")
    .expect("the backfill succeeds");
    assert_eq!(summary.rejected, 0, "{summary:?}");
    assert_eq!(summary.sent, summary.accepted, "{summary:?}");

    // Each station reported OFFLINE on every connector when its socket closed.
    let connectors: u64 = stations
        .iter()
        .filter(|s| talking.contains(&s.id))
        .map(|s| u64::from(s.connectors))
        .sum();
    pipeline
        .wait_for_rows(&[
            ("raw_connector_status", statuses + connectors),
            ("raw_meter_sample", samples),
            ("raw_charging_session", sessions),
        ])
        .await;
    let sources: Vec<String> = pipeline
        .client()
        .query(&format!(
            "SELECT DISTINCT site FROM {}.raw_charging_session ORDER BY site",
            pipeline.database.name
        ))
        .fetch_all()
        .await
        .unwrap();
    assert!(!sources.is_empty());
    pipeline.shutdown().await;
}
