//! The Grafana dashboards, checked without Grafana: structure, variables and
//! datasources; every ClickHouse panel query run against the real ClickHouse
//! holding events that went through ingest → Kafka → sink; every Prometheus
//! panel's metric present in the services' live `/metrics`.

use citybrain_proto::events::v1::{self as ev, Event, event::Payload};
use citybrain_proto::ingest::v1::{IngestRequest, ingest_service_client::IngestServiceClient};
use citybrain_tests::grafana::{Choices, TimeRange, expand};
use citybrain_tests::samples;
use citybrain_tests::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLICKHOUSE_UID: &str = "citybrain-clickhouse";
const PROMETHEUS_UID: &str = "citybrain-prometheus";

fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// Every dashboard: (file name, parsed JSON).
fn dashboards() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(dashboards_dir())
        .expect("dashboards/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("{} is not valid JSON: {err}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(found.len() >= 6, "the six dashboards exist");
    found
}

fn panels(dashboard: &Value) -> &Vec<Value> {
    dashboard["panels"].as_array().expect("panels")
}

fn variables(dashboard: &Value) -> &Vec<Value> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
}

fn datasource_uid(value: &Value) -> &str {
    value["datasource"]["uid"].as_str().unwrap_or("")
}

/// `$name`, `${name}` and `${name:format}` references in a text, minus
/// Grafana's own `$__` macros.
fn referenced_variables(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let rest = &text[i + 1..];
            let (name, skip) = if let Some(inner) = rest.strip_prefix('{') {
                let end = inner.find('}').expect("closing brace");
                (inner[..end].split(':').next().unwrap().to_string(), end + 2)
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let len = name.len();
                (name, len)
            };
            if !name.is_empty() && !name.starts_with("__") {
                names.insert(name);
            }
            i += 1 + skip;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn dashboards_are_well_formed() {
    let provisioning =
        std::fs::read_to_string(dashboards_dir().join("provisioning/datasources/citybrain.yaml"))
            .unwrap();
    let provisioned: BTreeSet<&str> = provisioning
        .lines()
        .filter_map(|line| line.trim().strip_prefix("uid: "))
        .collect();
    assert_eq!(
        provisioned,
        BTreeSet::from([CLICKHOUSE_UID, PROMETHEUS_UID])
    );

    let mut uids = BTreeSet::new();
    for (file, dashboard) in dashboards() {
        let uid = dashboard["uid"].as_str().expect("uid");
        assert!(
            uids.insert(uid.to_string()),
            "{file}: uid {uid} is used twice"
        );
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        let defined: BTreeSet<String> = variables(&dashboard)
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        for variable in variables(&dashboard) {
            assert!(
                provisioned.contains(datasource_uid(variable)),
                "{file}: variable {} uses an unknown datasource",
                variable["name"]
            );
        }
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            let id = panel["id"].as_u64().expect("panel id");
            assert!(ids.insert(id), "{file}: panel id {id} is used twice");
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(
                x + w <= 24 && grid["h"].as_u64().unwrap() > 0,
                "{file}: {title} fits the grid"
            );
            assert!(
                provisioned.contains(datasource_uid(panel)),
                "{file}: {title} uses an unknown datasource"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: {title} has a query");
            for target in targets {
                let text = target["rawSql"]
                    .as_str()
                    .or(target["expr"].as_str())
                    .unwrap_or_else(|| panic!("{file}: {title} has no rawSql/expr"));
                let mut used = referenced_variables(text);
                used.extend(referenced_variables(
                    panel["description"].as_str().unwrap_or(""),
                ));
                for name in used {
                    assert!(
                        defined.contains(&name),
                        "{file}: {title} uses undefined ${name}"
                    );
                }
            }
        }
    }
}

// ---- running the queries against data that went through the pipeline -----

fn event(kind: Kind, at: SystemTime, device: &str, edit: impl FnOnce(&mut Payload)) -> Event {
    let mut event = samples::event(kind, at);
    event.device_id = device.to_string();
    edit(event.payload.as_mut().unwrap());
    event
}

/// A small town afternoon that gives every panel something to show.
fn town_events(now: SystemTime) -> Vec<Event> {
    let ago = |minutes: u64| now - Duration::from_secs(minutes * 60);
    let status = |minutes,
                  device: &str,
                  value: ev::ConnectorStatusValue,
                  error: ev::ChargePointErrorCode| {
        event(Kind::ConnectorStatus, ago(minutes), device, |p| {
            if let Payload::ConnectorStatus(s) = p {
                s.station_id = device.split(':').next().unwrap().to_string();
                s.status = value as i32;
                s.error_code = error as i32;
            }
        })
    };
    use ev::{ChargePointErrorCode as E, ConnectorStatusValue as S};
    let mut events = vec![
        status(150, "HBY-CP-01:1", S::Available, E::NoError),
        status(120, "HBY-CP-01:1", S::Charging, E::NoError),
        status(40, "HBY-CP-01:1", S::Faulted, E::HighTemperature),
        status(100, "HBY-CP-02:1", S::Available, E::NoError),
        status(30, "HBY-CP-02:1", S::Offline, E::NoError),
    ];
    events.push(event(Kind::ChargingSession, ago(60), "HBY-CP-01:1", |_| {}));
    events.push(event(Kind::MeterSample, ago(90), "HBY-CP-01:1", |_| {}));
    for (minutes, occupied) in [(90, 120), (30, 150)] {
        events.push(event(
            Kind::ParkingSiteCounts,
            ago(minutes),
            "P-WUTUAN-1",
            |p| {
                if let Payload::ParkingSiteCounts(c) = p {
                    c.occupied = occupied;
                    c.available = 150 - occupied;
                    c.status = if occupied == 150 {
                        ev::ParkingSiteStatus::Full
                    } else {
                        ev::ParkingSiteStatus::AlmostFull
                    } as i32;
                }
            },
        ));
    }
    events.push(event(
        Kind::ParkingSpotStatus,
        ago(30),
        "P-WUTUAN-1:A017",
        |_| {},
    ));
    for (i, minutes) in [50u64, 45, 40].into_iter().enumerate() {
        let mut position = event(Kind::VehiclePosition, ago(minutes), "VB-02", |p| {
            if let Payload::VehiclePosition(v) = p {
                v.odometer_km = Some(18_230.0 + i as f64 * 2.5);
                v.passengers = Some(4 + i as u32);
            }
        });
        position.location.as_mut().unwrap().longitude += i as f64 * 0.01;
        events.push(position);
    }
    events.push(event(Kind::PatrolCheckIn, ago(70), "PATROL-HH-07", |_| {}));
    events.push(event(Kind::PatrolCheckIn, ago(65), "PATROL-HH-07", |p| {
        if let Payload::PatrolCheckIn(c) = p {
            c.village = "七级村".into();
            c.checkpoint_id = "CK-QJ-03".into();
        }
    }));
    events.push(event(Kind::BinReading, ago(20), "BIN-QJ-044", |p| {
        if let Payload::BinReading(b) = p {
            b.fill_level = 0.95;
        }
    }));
    events.push(event(Kind::WasteCollection, ago(15), "TRUCK-S-05", |_| {}));
    let request = |minutes, id: &str, transition: ev::RequestTransition, department: &str| {
        event(Kind::ServiceRequest, ago(minutes), id, |p| {
            if let Payload::ServiceRequest(r) = p {
                r.request_id = id.to_string();
                r.transition = transition as i32;
                r.department = department.to_string();
                r.expected_by = Some(samples::timestamp(
                    ago(minutes) + Duration::from_secs(2 * 3600),
                ));
            }
        })
    };
    use ev::RequestTransition as T;
    events.push(request(110, "SR-1", T::Created, ""));
    events.push(request(100, "SR-1", T::Assigned, "民政科"));
    events.push(request(50, "SR-1", T::Resolved, "民政科"));
    events.push(request(80, "SR-2", T::Created, ""));
    events
}

async fn clickhouse_json(client: &clickhouse::Client, sql: &str) -> Value {
    let bytes = client
        .query(sql)
        .fetch_bytes("JSONCompact")
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|err| panic!("query failed: {err}\n{sql}"));
    serde_json::from_slice(&bytes).expect("JSONCompact")
}

/// What each panel type needs from its query's columns.
fn check_columns(file: &str, title: &str, kind: &str, meta: &[(String, String)]) {
    let numeric = |t: &str| {
        let t = t.trim_start_matches("Nullable(").trim_end_matches(')');
        t.starts_with("UInt")
            || t.starts_with("Int")
            || t.starts_with("Float")
            || t.starts_with("Decimal")
    };
    let names: Vec<&str> = meta.iter().map(|(n, _)| n.as_str()).collect();
    match kind {
        "timeseries" => {
            assert_eq!(
                names.first(),
                Some(&"time"),
                "{file}: {title}: a time series starts with `time`"
            );
            assert!(
                meta[0].1.starts_with("DateTime"),
                "{file}: {title}: `time` is a DateTime"
            );
            assert!(
                meta[1..].iter().any(|(_, t)| numeric(t)),
                "{file}: {title}: a numeric series"
            );
        }
        "geomap" => {
            for column in ["latitude", "longitude"] {
                assert!(
                    names.contains(&column),
                    "{file}: {title}: a geomap needs {column}"
                );
            }
        }
        "piechart" | "barchart" | "bargauge" | "stat" | "heatmap" => {
            assert!(
                meta.iter().any(|(_, t)| numeric(t)),
                "{file}: {title}: needs a number"
            );
        }
        "table" => assert!(!meta.is_empty(), "{file}: {title}: a table needs columns"),
        other => panic!("{file}: {title}: no column rule for panel type {other}"),
    }
}

#[tokio::test]
async fn every_panel_query_runs_on_clickhouse_with_pipeline_data() {
    // Ingest and sink share this process and its one Prometheus recorder,
    // whose histogram buckets are fixed by the first install: install it with
    // both services' buckets, as each has in its own process.
    let buckets = [
        citybrain_ingest::metrics::BUCKETS,
        citybrain_sink::metrics::BUCKETS,
    ]
    .concat();
    citybrain_runtime::install_prometheus(&buckets);
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let database = format!(
        "test_dash_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let dir = scratch_dir("dashboards");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let sink = RunningSink::start(sink_config(
        &brokers,
        &stack_clickhouse_url(),
        &prefix,
        &database,
    ))
    .await;

    let now = SystemTime::now();
    let events = town_events(now);
    let mut client = IngestServiceClient::connect(ingest.endpoint())
        .await
        .unwrap();
    let mut request = tonic::Request::new(IngestRequest {
        events: events.clone(),
    });
    request
        .metadata_mut()
        .insert("x-api-key", FULL_KEY.parse().unwrap());
    let response = client.ingest(request).await.unwrap().into_inner();
    assert_eq!(response.accepted as usize, events.len(), "{response:?}");

    let ch = citybrain_tests::clickhouse::client(&stack_clickhouse_url()).with_database(&database);
    let expected = events.len() as u64;
    eventually(
        Duration::from_secs(60),
        "the sink to store every event",
        || {
            let sink = &sink;
            async move { sink.rows_inserted().await >= expected }
        },
    )
    .await;

    let epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let range = TimeRange {
        from: epoch(now) - 6 * 3600,
        to: epoch(now) + 3600,
    };
    let mut ran = 0;
    for (file, dashboard) in dashboards() {
        // Each variable: first "All", then the first value its own query returns.
        let mut all: Choices = BTreeMap::new();
        let mut picked: Choices = BTreeMap::new();
        for variable in variables(&dashboard) {
            let name = variable["name"].as_str().unwrap().to_string();
            let sql = expand(variable["query"].as_str().unwrap(), &picked, &range);
            let result = clickhouse_json(&ch, &sql).await;
            let first = result["data"][0][0].as_str().map(str::to_string);
            let first =
                first.unwrap_or_else(|| panic!("{file}: variable {name} has no values:\n{sql}"));
            if name == "tenant" {
                assert_eq!(first, TENANT);
            }
            let includes_all = variable["includeAll"].as_bool().unwrap_or(false);
            all.insert(
                name.clone(),
                if includes_all {
                    None
                } else {
                    Some(vec![first.clone()])
                },
            );
            picked.insert(name, Some(vec![first]));
        }
        for panel in panels(&dashboard) {
            if datasource_uid(panel) != CLICKHOUSE_UID {
                continue;
            }
            let title = panel["title"].as_str().unwrap();
            let kind = panel["type"].as_str().unwrap();
            let raw = panel["targets"][0]["rawSql"].as_str().unwrap();
            for choices in [&all, &picked] {
                let sql = expand(raw, choices, &range);
                let result = clickhouse_json(&ch, &sql).await;
                let meta: Vec<(String, String)> = result["meta"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["name"].as_str().unwrap().to_string(),
                            m["type"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                check_columns(&file, title, kind, &meta);
                assert!(
                    result["rows"].as_u64().unwrap_or(0) > 0,
                    "{file}: {title} shows nothing for the town's data with {choices:?}:\n{sql}"
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 2 * 20, "ran {ran} panel queries");
    utilisation_panel_agrees_with_the_events(&ch, &events, &range).await;

    // Prometheus panels: every metric they read is one the services export.
    // Consumer lag comes from librdkafka's statistics, reported every 5 s.
    eventually(
        Duration::from_secs(30),
        "the sink to report consumer lag",
        || async {
            sink.admin_get("/metrics")
                .await
                .body
                .contains("citybrain_sink_consumer_lag_messages{")
        },
    )
    .await;
    let ingest_metrics = ingest.admin_get("/metrics").await.body;
    let sink_metrics = sink.admin_get("/metrics").await.body;
    let exported: BTreeSet<String> = ingest_metrics
        .lines()
        .chain(sink_metrics.lines())
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            if datasource_uid(panel) != PROMETHEUS_UID {
                continue;
            }
            let expr = panel["targets"][0]["expr"].as_str().unwrap();
            for metric in metric_names(expr) {
                assert!(
                    exported.contains(&metric),
                    "{file}: {} reads {metric}, which no service exports",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "checked {checked} Prometheus metrics");

    sink.shutdown().await.unwrap();
    ingest.shutdown().await.unwrap();
    let _ = ch
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}

/// The utilisation panel computes time in status itself (from the raw
/// events, like the query service): its hourly values against the events'
/// own intervals (a status lasts until the connector's next event in event
/// time, whole seconds; the newest one is not counted).
async fn utilisation_panel_agrees_with_the_events(
    ch: &clickhouse::Client,
    events: &[Event],
    range: &TimeRange,
) {
    const BUSY: [&str; 3] = ["charging", "suspended_ev", "suspended_evse"];
    const UNAVAILABLE: [&str; 3] = ["offline", "unavailable", "faulted"];
    let mut by_device: BTreeMap<&str, Vec<(i64, String)>> = BTreeMap::new();
    for event in events {
        if let Some(Payload::ConnectorStatus(p)) = &event.payload {
            let status = ev::ConnectorStatusValue::try_from(p.status)
                .unwrap()
                .as_str_name()
                .trim_start_matches("CONNECTOR_STATUS_VALUE_")
                .to_ascii_lowercase();
            let at = event.observed_at.as_ref().unwrap().seconds;
            by_device
                .entry(&event.device_id)
                .or_default()
                .push((at, status));
        }
    }
    // Per hour: (busy seconds, available seconds).
    let mut hours: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for mut changes in by_device.into_values() {
        changes.sort();
        for pair in changes.windows(2) {
            let (mut a, b, status) = (pair[0].0, pair[1].0, pair[0].1.as_str());
            while a < b {
                let hour = a - a.rem_euclid(3600);
                let end = (hour + 3600).min(b);
                let entry = hours.entry(hour).or_default();
                if BUSY.contains(&status) {
                    entry.0 += end - a;
                }
                if !UNAVAILABLE.contains(&status) {
                    entry.1 += end - a;
                }
                a = end;
            }
        }
    }
    let expected: Vec<(i64, f64)> = hours
        .into_iter()
        .map(|(hour, (busy, available))| (hour, busy as f64 / available.max(1) as f64))
        .collect();

    let (_, dashboard) = dashboards()
        .into_iter()
        .find(|(file, _)| file == "ev_charging.json")
        .expect("ev_charging.json");
    let panel = panels(&dashboard)
        .iter()
        .find(|p| p["title"].as_str().unwrap().starts_with("Utilisation"))
        .expect("the utilisation panel");
    let choices: Choices = BTreeMap::from([
        ("tenant".to_string(), Some(vec![TENANT.to_string()])),
        ("site".to_string(), None),
    ]);
    let sql = expand(
        panel["targets"][0]["rawSql"].as_str().unwrap(),
        &choices,
        range,
    );
    let result = clickhouse_json(
        ch,
        &format!("SELECT toInt64(time), utilisation FROM ({sql}) ORDER BY time"),
    )
    .await;
    let answered: Vec<(i64, f64)> = result["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let hour = match &row[0] {
                Value::String(s) => s.parse().unwrap(),
                other => other.as_i64().unwrap(),
            };
            (hour, row[1].as_f64().unwrap())
        })
        .collect();
    assert_eq!(
        answered.len(),
        expected.len(),
        "{answered:?} vs {expected:?}"
    );
    for ((hour, got), (want_hour, want)) in answered.iter().zip(&expected) {
        assert_eq!(hour, want_hour);
        assert!(
            (got - want).abs() < 1e-9,
            "hour {hour}: panel says {got}, the events {want}"
        );
    }
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(pos) = rest.find("citybrain_") {
        let name: String = rest[pos..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[pos + name.len()..];
        names.insert(name);
    }
    names
}
