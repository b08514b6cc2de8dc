//! Identifiers as the ingest contract allows them — Chinese names, the
//! middle dot of a plate number, and the URL's own characters (`/ # ? & %`)
//! — sent through the real pipeline (ingest → Kafka → sink → ClickHouse)
//! come back unchanged through every query filter that names a thing: the
//! live views' filters, an aggregate's filter and group-by, its CSV export,
//! and a vehicle's track over HTTP (the id in the path) and gRPC.

#[allow(unused_imports)]
mod support;

use citybrain_proto::events::v1::{self as ev, Event, Location, event::Payload};
use citybrain_proto::query::v1 as pb;
use citybrain_tests::{
    RunningSink, TestTopics, ingest_all, sink_config, stack_brokers, start_ingest, unique_prefix,
};
use std::time::Duration;
use support::*;

const CONNECTOR: &str = "后北营家园-3号桩:1";
const STATION: &str = "后北营家园-3号桩";
const SITE: &str = "后北营家园（东区）";
const SHUTTLE: &str = "京A·V0002";
const TERMINAL: &str = "车载终端-02";
/// Characters a URL gives meaning to, inside one identifier.
const ODD: &str = "班车/东线#1?a=b&c%20 d";

fn event(device: &str, offset: i64, location: Option<Location>, payload: Payload) -> Event {
    Event {
        event_id: uuid::Uuid::now_v7().to_string(),
        device_id: device.to_string(),
        observed_at: ts(offset),
        location,
        payload: Some(payload),
        ..Default::default()
    }
}

fn status(offset: i64, status: ev::ConnectorStatusValue) -> Event {
    event(
        CONNECTOR,
        offset,
        None,
        Payload::ConnectorStatus(ev::ConnectorStatus {
            station_id: STATION.into(),
            connector_id: 1,
            status: status as i32,
            site: SITE.into(),
            ..Default::default()
        }),
    )
}

fn position(vehicle: &str, offset: i64) -> Event {
    event(
        TERMINAL,
        offset,
        Some(Location {
            latitude: 39.90 + offset as f64 * 1e-5,
            longitude: 116.75,
            ..Default::default()
        }),
        Payload::VehiclePosition(ev::VehiclePosition {
            vehicle_id: vehicle.into(),
            role: ev::VehicleRole::VaccineShuttle as i32,
            speed_kmh: 30.0,
            ..Default::default()
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_and_url_characters_in_identifiers_round_trip_through_every_filter() {
    use ev::ConnectorStatusValue::{Available, Charging};
    let db = TestDatabase::migrated(&clickhouse_url(), "qt").await;
    let (brokers, url, prefix) = (stack_brokers(), clickhouse_url(), unique_prefix());
    let _topics = TestTopics::pipeline(&brokers, &prefix, 1).await;
    let ingest = start_ingest(&brokers, &prefix, "query-identifiers").await;
    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &db.name)).await;
    let mut events = vec![
        status(0, Available),
        status(600, Charging),
        status(4_200, Available),
    ];
    for vehicle in [SHUTTLE, ODD] {
        events.extend((0..3).map(|i| position(vehicle, i * 60)));
    }
    ingest_all(&ingest, KEY_A, events).await;
    let service = Service::start(config(&url, &db.name)).await;

    // Live connectors by station and by site: the device id comes back.
    for filter in [
        format!("station={}", enc(STATION)),
        format!("site={}", enc(SITE)),
    ] {
        let path = format!("/v1/live/connectors?{filter}");
        eventually(Duration::from_secs(60), &path, || async {
            records(&service.table(&path, KEY_A).await)
                .first()
                .is_some_and(|row| row["observed_at"] == at(4_200))
        })
        .await;
        let rows = records(&service.table(&path, KEY_A).await);
        assert_eq!(rows.len(), 1, "{path}: {rows:?}");
        assert_eq!(
            (&rows[0]["connector"], &rows[0]["station"], &rows[0]["site"]),
            (&CONNECTOR.into(), &STATION.into(), &SITE.into())
        );
    }

    // An aggregate filtered and grouped by the connector, and its CSV.
    let range = format!("from={}&to={}", t0(), t0() + 86_400);
    let path = format!(
        "/v1/aggregates/charger_utilisation?{range}&bucket=day&group_by=connector&connector={}",
        enc(CONNECTOR)
    );
    eventually(Duration::from_secs(60), &path, || async {
        records(&service.table(&path, KEY_A).await)
            .first()
            .is_some_and(|row| row["observed_seconds"] == 4_200)
    })
    .await;
    let rows = records(&service.table(&path, KEY_A).await);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["connector"], CONNECTOR);
    assert_eq!(rows[0]["charging_seconds"], 3_600);
    let csv = service
        .get(
            &format!("/v1/aggregates/charger_utilisation/csv?{range}&bucket=day&group_by=site"),
            Some(KEY_A),
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.body
            .lines()
            .nth(1)
            .unwrap_or_default()
            .contains(&format!("\"{SITE}\"")),
        "{}",
        csv.body
    );

    // Vehicles: the live view's filter, the track with the id in the path
    // (percent-encoded, `/` included), and the gRPC track.
    for vehicle in [SHUTTLE, ODD] {
        let path = format!("/v1/live/vehicles?vehicle={}", enc(vehicle));
        let rows = records(&service.table(&path, KEY_A).await);
        assert_eq!(rows.len(), 1, "{path}: {rows:?}");
        assert_eq!(
            (&rows[0]["vehicle"], &rows[0]["device"]),
            (&vehicle.into(), &TERMINAL.into())
        );
        let path = format!("/v1/vehicles/{}/track?{range}", enc(vehicle));
        let rows = records(&service.table(&path, KEY_A).await);
        assert_eq!(rows.len(), 3, "{path}: {rows:?}");
        let track = service
            .grpc_client()
            .await
            .track(with_key(
                pb::TrackRequest {
                    vehicle_id: vehicle.into(),
                    from: ts(0),
                    to: ts(86_400),
                    max_points: 10,
                },
                KEY_A,
            ))
            .await
            .expect("gRPC track")
            .into_inner();
        assert_eq!(grpc_records(&track).len(), 3, "{vehicle}");
    }

    service.stop().await;
    sink.shutdown().await.expect("sink stops");
    ingest.shutdown().await.expect("ingest stops");
}
