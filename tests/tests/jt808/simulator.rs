//! The simulator's JT/T 808 terminals (`--vehicles-via-jt808`) against the
//! real gateway: every position handed to the fleet is stored once, under
//! the terminal's number, with the vehicle's id; the backlog of a terminal
//! goes out as 0x0704 batches.

use crate::harness::*;
use citybrain_proto::events::v1::{
    Event, IngestedEvent, Location, VehiclePosition, VehicleRole, event::Payload,
};
use citybrain_simulator::jt808::Fleet;
use citybrain_tests::*;
use prost::Message as _;
use rdkafka::Message as _;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn position(vehicle: &str, at: i64, n: u32) -> Event {
    Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        device_id: vehicle.into(),
        observed_at: Some(prost_types::Timestamp {
            seconds: at,
            nanos: 0,
        }),
        location: Some(Location {
            latitude: 39.9 + f64::from(n) * 0.0001,
            longitude: 116.75,
            altitude_m: Some(30.0),
            accuracy_m: None,
        }),
        payload: Some(Payload::VehiclePosition(VehiclePosition {
            vehicle_id: vehicle.into(),
            role: VehicleRole::VaccineShuttle as i32,
            speed_kmh: 20.0 + f64::from(n),
            heading_deg: Some(90.0),
            odometer_km: Some(1000.0 + f64::from(n) / 10.0),
            ignition_on: true,
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_terminals_report_every_position_once() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("jt808-sim");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let config = gateway_config(&ingest.endpoint(), &dir);
    let registry = config.registry_file.clone();
    let gateway = RunningJt808::start(config).await;

    let fleet = Fleet::start(&gateway.addr.to_string(), &registry).expect("the registry");
    let base = now() - 300;
    let mut events: Vec<Event> = (0..25)
        .map(|n| position("VS-N-1", base + i64::from(n), n))
        .collect();
    events.extend((0..5).map(|n| position("ST-01", base + i64::from(n), n)));
    let other = position("VS-E-1", base, 0);
    events.push(other.clone());
    let rest = fleet.take(events);
    assert_eq!(
        rest,
        vec![other],
        "only the registry's vehicles go through their terminals"
    );
    let counters = fleet.counters.clone();
    fleet.close(Duration::from_secs(60)).await;
    assert_eq!(counters.stored.load(Ordering::Relaxed), 30);
    assert_eq!(counters.refused.load(Ordering::Relaxed), 0);

    let topics = vec![format!("{prefix}{}", Feed::Vehicles.topic())];
    let records = tokio::task::spawn_blocking(move || {
        read_topics(
            &brokers,
            &topics,
            30,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
    })
    .await
    .unwrap();
    let mut seen = BTreeSet::new();
    for record in &records {
        let event = IngestedEvent::decode(record.payload().unwrap())
            .unwrap()
            .event
            .unwrap();
        let Some(Payload::VehiclePosition(p)) = &event.payload else {
            panic!("{event:?}")
        };
        let at = event.observed_at.unwrap().seconds;
        let terminal = if p.vehicle_id == "VS-N-1" {
            SHUTTLE
        } else {
            TRUCK
        };
        assert_eq!(event.device_id, terminal);
        let n = (at - base) as u32;
        assert_eq!(p.speed_kmh, 20.0 + f64::from(n), "{event:?}");
        assert!(
            seen.insert((p.vehicle_id.clone(), at)),
            "stored once: {event:?}"
        );
    }
    assert_eq!(seen.len(), 30);
    assert!(
        gateway
            .metric("citybrain_jt808_messages_total{id=\"0x0704\",outcome=\"ok\"}")
            .await
            >= 1.0
    );

    gateway.shutdown().await;
    ingest.shutdown().await.expect("ingest stops");
    let _ = std::fs::remove_dir_all(&dir);
}
