//! Terminals report through the gateway into ClickHouse and the query API:
//! the rows, `/v1/live/vehicles` and the track are what they sent, units
//! converted; a resend is stored once; ingest down means "fail" and the
//! resent report is stored once after it is back; codes survive a restart.

use crate::harness::*;
use crate::terminal::{self, Report, Terminal, Version};
use citybrain_tests::*;
use serde_json::Value;
use std::time::Duration;

const ROWS: &str = "SELECT device_id, vehicle_id, role, tenant_id, toUInt32(observed_at) AS at, \
    toUInt32(ifNull(seq_no, 0)) AS seq_no, latitude, longitude, altitude_m, speed_kmh, heading_deg, \
    odometer_km, ignition_on, service_status";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminals_report_through_the_gateway_into_clickhouse_and_the_query_api() {
    let brokers = stack_brokers();
    let url = stack_clickhouse_url();
    let prefix = unique_prefix();
    let db = TestDatabase::named(&url, "test_jt808");
    let _topics = TestTopics::pipeline(&brokers, &prefix, 2).await;
    let dir = scratch_dir("jt808-e2e");
    let mut ingest_config = ingest_config(&brokers, &prefix, write_key_file(&dir));
    let ingest = RunningIngest::start(ingest_config.clone()).await;
    ingest_config.grpc_addr = ingest.grpc_addr;
    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &db.name)).await;
    eventually(Duration::from_secs(60), "the sink to be ready", || async {
        sink.admin_get("/readyz").await.status == 200
    })
    .await;
    let query = RunningQuery::start(query_config(&url, &db.name, write_key_file(&dir))).await;
    let config = gateway_config(&ingest.endpoint(), &dir);
    let gateway = RunningJt808::start(config.clone()).await;

    // The shuttle's 2013 terminal: register, authenticate, heartbeat.
    let mut shuttle = Terminal::connect(gateway.addr, SHUTTLE, Version::V2013).await;
    let (result, code) = shuttle.register(PLATE_A).await;
    assert_eq!(result, 0, "registered");
    assert!(!code.is_empty());
    assert_eq!(shuttle.authenticate(&code).await, 0);
    assert_eq!(shuttle.request(terminal::HEARTBEAT, &[]).await, 0);

    let base = now() - 600;
    let mut sent: Vec<(String, u16, Report)> = Vec::new();
    let mut a = [report(base, 0), report(base + 10, 1), report(base + 20, 2)];
    a[1].speed_e1 = 0; // stationary: no heading
    a[1].acc_on = false; // ignition off: parked
    for r in &a {
        let serial = shuttle.send(terminal::LOCATION, &r.body()).await;
        assert_eq!(
            shuttle.general().await,
            (serial, terminal::LOCATION, 0),
            "stored"
        );
        sent.push((SHUTTLE.into(), serial, *r));
    }
    // The last report again, same serial (its answer was "lost"): stored once.
    let (last_serial, last) = (sent[2].1, sent[2].2);
    shuttle
        .send_as(terminal::LOCATION, last_serial, &last.body())
        .await;
    assert_eq!(
        shuttle.general().await,
        (last_serial, terminal::LOCATION, 0)
    );
    // No GNSS fix: answered, counted, never stored.
    let mut no_fix = report(base + 30, 3);
    no_fix.fixed = false;
    assert_eq!(shuttle.request(terminal::LOCATION, &no_fix.body()).await, 0);
    // Late data after a coverage gap: a batch keeps each item's own time.
    let late = [report(base - 300, 4), report(base - 240, 5)];
    let serial = shuttle.send(terminal::BATCH, &terminal::batch(&late)).await;
    assert_eq!(shuttle.general().await, (serial, terminal::BATCH, 0));
    sent.extend(late.iter().map(|r| (SHUTTLE.to_string(), serial, *r)));

    // The truck's 2019 terminal, southern-hemisphere test coordinates
    // included, then logout (its connection is closed after the answer).
    let mut truck = Terminal::connect(gateway.addr, TRUCK, Version::V2019).await;
    let (result, truck_code) = truck.register(PLATE_B).await;
    assert_eq!(result, 0);
    assert_eq!(truck.authenticate(&truck_code).await, 0);
    let mut b = report(base + 5, 6);
    b.south = true;
    b.west = true;
    let serial = truck.send(terminal::LOCATION, &b.body()).await;
    assert_eq!(truck.general().await, (serial, terminal::LOCATION, 0));
    sent.push((TRUCK.into(), serial, b));
    assert_eq!(truck.request(terminal::LOGOUT, &[]).await, 0);
    assert!(
        truck.closed_within(Duration::from_secs(10)).await,
        "closed after logout"
    );

    let expected: Vec<Value> = {
        let mut rows: Vec<(String, i64, Value)> = sent
            .iter()
            .map(|(device, serial, r)| {
                let (vehicle, role) = if device == SHUTTLE {
                    ("VS-N-1", "vaccine_shuttle")
                } else {
                    ("ST-01", "sanitation_truck")
                };
                (
                    device.clone(),
                    r.at,
                    expected_row(device, vehicle, role, *serial, r),
                )
            })
            .collect();
        rows.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
        rows.into_iter().map(|(_, _, row)| row).collect()
    };
    let table = format!("{}.raw_vehicle_position", db.name);
    let sql = format!("{ROWS} FROM {table} ORDER BY device_id, observed_at");
    eventually(
        Duration::from_secs(60),
        "the positions in ClickHouse",
        || {
            let (url, sql, n) = (url.clone(), sql.clone(), expected.len());
            async move { clickhouse_rows(&url, &sql).await.len() >= n }
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the sink's INSERTs to return",
        || async { sink.rows_inserted().await >= expected.len() as u64 },
    )
    .await;
    assert_eq!(
        clickhouse_rows(&url, &sql).await,
        expected,
        "rows are what was sent"
    );

    // The live view: each vehicle's newest report.
    let live = query.table("/v1/live/vehicles", FULL_KEY).await;
    let columns: Vec<&str> = live["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let rows = live["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{live}");
    let col =
        |row: &Value, name: &str| row[columns.iter().position(|c| *c == name).unwrap()].clone();
    for (vehicle, newest) in [("VS-N-1", &a[2]), ("ST-01", &b)] {
        let row = rows
            .iter()
            .find(|r| col(r, "vehicle") == vehicle)
            .expect(vehicle);
        assert_eq!(col(row, "latitude"), newest.latitude(), "{vehicle}");
        assert_eq!(col(row, "longitude"), newest.longitude(), "{vehicle}");
        assert_eq!(col(row, "speed_kmh"), newest.speed_kmh(), "{vehicle}");
        assert_eq!(
            col(row, "heading_deg"),
            f64::from(newest.direction),
            "{vehicle}"
        );
        assert_eq!(col(row, "observed_at"), rfc3339(newest.at), "{vehicle}");
        assert_eq!(col(row, "service_status"), "on_route");
    }
    let device = rows.iter().find(|r| col(r, "vehicle") == "VS-N-1").unwrap();
    assert_eq!(col(device, "device"), SHUTTLE);

    // The shuttle's track: its five positions in time order.
    let track = query
        .table(
            &format!(
                "/v1/vehicles/VS-N-1/track?from={}&to={}",
                base - 600,
                base + 600
            ),
            FULL_KEY,
        )
        .await;
    let points: Vec<(String, f64, f64, f64)> = track["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_f64().unwrap(),
                p[2].as_f64().unwrap(),
                p[3].as_f64().unwrap(),
            )
        })
        .collect();
    let mut shuttle_sent: Vec<Report> = sent
        .iter()
        .filter(|(d, _, _)| d == SHUTTLE)
        .map(|(_, _, r)| *r)
        .collect();
    shuttle_sent.sort_by_key(|r| r.at);
    let want: Vec<_> = shuttle_sent
        .iter()
        .map(|r| (rfc3339(r.at), r.latitude(), r.longitude(), r.speed_kmh()))
        .collect();
    assert_eq!(points, want, "the track is what the terminal sent");

    // Ingest down: the report is answered "fail", however often it is sent.
    ingest.shutdown().await.expect("ingest stops");
    let outage = report(base + 40, 7);
    let outage_serial = shuttle.send(terminal::LOCATION, &outage.body()).await;
    assert_eq!(
        shuttle.general().await,
        (outage_serial, terminal::LOCATION, 1),
        "fail"
    );
    shuttle
        .send_as(terminal::LOCATION, outage_serial, &outage.body())
        .await;
    assert_eq!(shuttle.general().await.2, 1, "still fail");
    // Back: the terminal resends until "ok", and once more for luck.
    let ingest = RunningIngest::start(ingest_config).await;
    let mut answers = Vec::new();
    loop {
        shuttle
            .send_as(terminal::LOCATION, outage_serial, &outage.body())
            .await;
        let result = shuttle.general().await.2;
        answers.push(result);
        if result == 0 {
            break;
        }
        assert!(answers.len() < 100, "ingest came back: {answers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shuttle
        .send_as(terminal::LOCATION, outage_serial, &outage.body())
        .await;
    assert_eq!(shuttle.general().await.2, 0);
    let outage_rows = format!(
        "{ROWS} FROM {table} WHERE toUInt32(observed_at) = {}",
        outage.at
    );
    eventually(
        Duration::from_secs(60),
        "the resent report in ClickHouse",
        || {
            let (url, sql) = (url.clone(), outage_rows.clone());
            async move { !clickhouse_rows(&url, &sql).await.is_empty() }
        },
    )
    .await;
    let total = expected.len() as u64 + 1;
    eventually(
        Duration::from_secs(30),
        "the sink's INSERTs to return",
        || async { sink.rows_inserted().await >= total },
    )
    .await;
    assert_eq!(
        clickhouse_rows(&url, &outage_rows).await,
        vec![expected_row(
            SHUTTLE,
            "VS-N-1",
            "vaccine_shuttle",
            outage_serial,
            &outage
        )],
        "stored once"
    );
    assert_eq!(
        clickhouse_rows(&url, &format!("SELECT count() AS n FROM {table}")).await,
        vec![serde_json::json!({"n": total.to_string()})],
        "nothing else was added: the resends were stored once"
    );
    assert_eq!(
        gateway
            .metric("citybrain_jt808_reports_total{outcome=\"no_fix\"}")
            .await,
        1.0
    );

    // A gateway restart: the codes were persisted, the terminal
    // authenticates on a new connection without registering again.
    gateway.shutdown().await;
    assert!(
        shuttle.closed_within(Duration::from_secs(10)).await,
        "closed at shutdown"
    );
    let gateway = RunningJt808::start(config).await;
    let mut shuttle = Terminal::connect(gateway.addr, SHUTTLE, Version::V2013).await;
    assert_eq!(
        shuttle.authenticate(&code).await,
        0,
        "the code survived the restart"
    );
    let mut truck = Terminal::connect(gateway.addr, TRUCK, Version::V2019).await;
    assert_eq!(
        truck.authenticate(&truck_code).await,
        1,
        "logout revoked its code"
    );

    gateway.shutdown().await;
    ingest.shutdown().await.expect("ingest stops");
    sink.shutdown().await.expect("sink stops");
    let _ = std::fs::remove_dir_all(&dir);
}
