//! Current-ClickHouse proof (issue #6): every statement the platform sends
//! to ClickHouse runs on the stack's ClickHouse 18.16 *and* on current
//! ClickHouse (PyPI `chdb-core`, the engine in-process, through
//! `tests/chdb/run_sql.py`). A statement that works on only one of them, or
//! on neither, fails the test; so does a query that answers a different
//! number of rows on the two for the same data.
//!
//! The services build their SQL in their own code, so the test does not
//! rebuild it: it points them at a recorder in front of 18.16
//! ([`recorder`]) and replays on current ClickHouse exactly the text, format
//! and settings they sent, in the same order:
//! - the schema: what `citybrain_schema::migrate` sends (bookkeeping and
//!   every migration 18.16 gets), then the statements of migrations gated
//!   above 18.16 (TTL), rendered by the schema crate, which must run on
//!   current ClickHouse (and are run on 18.16 too, expecting failure);
//! - the sink writing events of every kind (its decode, event-id dedup
//!   lookup and INSERT; the INSERT's rows are replayed as JSONEachRow, its
//!   RowBinary body being compressed), then its lookups on filled tables
//!   (resume offsets, dedup, ping); the views fill the roll-ups on each
//!   engine;
//! - every request shape of the query service (live views and each filter,
//!   each metric x bucket x grouping, each dimension as a filter, top-N by
//!   every measure, CSV export, vehicle track, readiness probe);
//! - every ClickHouse query of the Grafana dashboards (variables and
//!   panels, with "All" and with a picked value), macros expanded as the
//!   plugin does, run by the test itself.
//!
//! `CITYBRAIN_CHDB_PYTHON` names the Python of a virtualenv holding
//! chdb-core; `make test` installs it (`tests/chdb/install.sh`, cached
//! outside the checkout) and sets it. Without it the test fails.

#[path = "current_clickhouse/recorder.rs"]
mod recorder;

use citybrain_proto::events::v1::{self as ev, Event, IngestedEvent, event::Payload};
use citybrain_proto::feed::SCHEMA_VERSION;
use citybrain_query::catalog::{self, Bucket};
use citybrain_query::core::{AggregateRequest, LiveRequest, QueryCore, TopRequest, TrackRequest};
use citybrain_query::live::{self, FilterKind};
use citybrain_query::table::Table;
use citybrain_schema::{MIGRATIONS, MIGRATIONS_TABLE, SchemaOptions, ServerVersion};
use citybrain_sink::batch::{TableRow, Tables};
use citybrain_sink::rows::{Lineage, decode};
use citybrain_tests::grafana::{Choices, TimeRange, expand};
use citybrain_tests::samples;
use citybrain_tests::*;
use recorder::{Recorded, Recorder};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_stream::StreamExt;

/// The environment variable naming chdb-core's Python.
const CHDB_PYTHON: &str = "CITYBRAIN_CHDB_PYTHON";
const CLICKHOUSE_DATASOURCE: &str = "citybrain-clickhouse";
/// The Kafka topic the test's rows claim to come from (their lineage).
const TOPIC: &str = "cc.citybrain.events";
/// The Kafka cluster id in the rows' lineage.
const CLUSTER: &str = "cc-cluster";

/// The version 18.16 reports, below which nothing is gated.
const OLD: ServerVersion = ServerVersion::new(18, 16);

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// It ran; `rows` when the answer's format tells how many.
    Ran {
        rows: Option<u64>,
    },
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Must run on both engines, with equal row counts where known.
    Both,
    /// A migration gated above 18.16: must run on current ClickHouse; on
    /// 18.16 it is expected to fail (that is why it is gated).
    CurrentOnly,
    /// Rows copied to current ClickHouse for a table that neither the sink
    /// nor a view fills: must load.
    Fixture,
}

/// One statement and what happened to it.
#[derive(Debug, Clone)]
struct Statement {
    /// Which part of the platform sends it, e.g. `query: top charging_energy by energy_kwh`.
    origin: String,
    sql: String,
    format: Option<String>,
    settings: Vec<(String, String)>,
    database: Option<String>,
    expect: Expect,
    /// The outcome on 18.16 (None for fixtures).
    old: Option<Outcome>,
}

impl Statement {
    fn from_recorded(origin: impl Into<String>, recorded: Recorded, old: Outcome) -> Self {
        Self {
            origin: origin.into(),
            sql: recorded.sql,
            format: recorded.format,
            settings: recorded.settings,
            database: recorded.database,
            expect: Expect::Both,
            old: Some(old),
        }
    }
}

fn recorded_outcome(recorded: &Recorded) -> Outcome {
    if recorded.status == 200 {
        Outcome::Ran { rows: None }
    } else {
        Outcome::Failed(format!(
            "HTTP {}: {}",
            recorded.status,
            recorded.error.clone().unwrap_or_default()
        ))
    }
}

// ---- current ClickHouse through chdb-core --------------------------------

fn chdb_python() -> PathBuf {
    match std::env::var_os(CHDB_PYTHON).filter(|path| !path.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "{CHDB_PYTHON} is not set: it names the Python of a virtualenv with PyPI chdb-core. \
             `make test` sets it; by hand: export {CHDB_PYTHON}=\"$(bash tests/chdb/install.sh)\""
        ),
    }
}

fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("chdb/run_sql.py")
}

/// The ClickHouse release inside chdb-core, e.g. 26.9.
fn current_version(python: &PathBuf) -> ServerVersion {
    let output = Command::new(python)
        .arg(runner())
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", python.display()));
    assert!(
        output.status.success(),
        "chdb version probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    text.parse()
        .unwrap_or_else(|err| panic!("chdb reported version {text:?}: {err}"))
}

/// Runs `statements` in order in one fresh chdb session whose server time
/// zone is `timezone` (functions like `toStartOfDay` without a zone use it).
fn run_on_current(python: &PathBuf, timezone: &str, statements: &[Statement]) -> Vec<Outcome> {
    let input: Vec<Value> = statements
        .iter()
        .map(|s| {
            json!({
                "sql": s.sql,
                "format": s.format,
                "settings": s.settings.iter().cloned().collect::<BTreeMap<_, _>>(),
                "database": s.database,
            })
        })
        .collect();
    let mut child = Command::new(python)
        .arg(runner())
        .env("TZ", timezone)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", python.display()));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        serde_json::to_writer(&mut stdin, &Value::Array(input)).expect("write statements");
    });
    let output = child.wait_with_output().expect("chdb runner");
    writer.join().unwrap();
    assert!(output.status.success(), "chdb runner failed");
    let answers: Vec<Value> = serde_json::from_slice(&output.stdout).expect("runner's JSON");
    assert_eq!(answers.len(), statements.len(), "one answer per statement");
    answers
        .iter()
        .map(|answer| {
            if answer["ok"].as_bool() == Some(true) {
                Outcome::Ran {
                    rows: answer["rows"].as_u64(),
                }
            } else {
                Outcome::Failed(answer["error"].as_str().unwrap_or("?").to_string())
            }
        })
        .collect()
}

// ---- ClickHouse 18.16, directly ------------------------------------------

fn rows_in(body: &[u8], format: &str) -> Option<u64> {
    match format {
        "JSON" | "JSONCompact" => serde_json::from_slice::<Value>(body).ok()?["rows"].as_u64(),
        "CSVWithNames" | "TSVWithNames" => Some(
            String::from_utf8_lossy(body)
                .lines()
                .count()
                .saturating_sub(1) as u64,
        ),
        _ => None,
    }
}

/// Runs a statement on 18.16 and returns its outcome and answer.
async fn run_on_old(client: &clickhouse::Client, statement: &Statement) -> (Outcome, Vec<u8>) {
    let client = match &statement.database {
        Some(database) => client.clone().with_database(database),
        None => client.clone(),
    };
    let mut query = client.query_raw(&statement.sql);
    for (name, value) in &statement.settings {
        query = query.with_setting(name, value);
    }
    let format = statement.format.as_deref().unwrap_or("TabSeparated");
    let answer = match query.fetch_bytes(format) {
        Ok(mut cursor) => cursor.collect().await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(body) => (
            Outcome::Ran {
                rows: rows_in(&body, format),
            },
            body.to_vec(),
        ),
        Err(err) => (Outcome::Failed(err.to_string()), Vec::new()),
    }
}

// ---- the data ------------------------------------------------------------

fn event(kind: Kind, at: SystemTime, device: &str, edit: impl FnOnce(&mut Payload)) -> Event {
    let mut event = samples::event(kind, at);
    event.device_id = device.to_string();
    event.event_id = uuid::Uuid::new_v4().to_string();
    edit(event.payload.as_mut().unwrap());
    event
}

/// An afternoon of the town: every kind at least once, statuses that end
/// intervals (so the time-in-status roll-up has rows), a trip with riders,
/// a request assigned and resolved. Returned oldest first.
fn town(now: SystemTime) -> Vec<Event> {
    let ago = |minutes: u64| now - Duration::from_secs(minutes * 60);
    let mut events: Vec<Event> = Kind::ALL
        .iter()
        .map(|kind| {
            let mut event = samples::event(*kind, ago(100));
            event.event_id = uuid::Uuid::new_v4().to_string();
            event
        })
        .collect();
    use ev::{ChargePointErrorCode as E, ConnectorStatusValue as S};
    let status = |minutes, device: &str, value: S, error: E| {
        event(Kind::ConnectorStatus, ago(minutes), device, |p| {
            if let Payload::ConnectorStatus(s) = p {
                s.station_id = device.split(':').next().unwrap().to_string();
                s.status = value as i32;
                s.error_code = error as i32;
            }
        })
    };
    events.extend([
        status(150, "HBY-CP-01:1", S::Available, E::NoError),
        status(120, "HBY-CP-01:1", S::Charging, E::NoError),
        status(40, "HBY-CP-01:1", S::Faulted, E::HighTemperature),
        status(100, "HBY-CP-02:1", S::Available, E::NoError),
        status(30, "HBY-CP-02:1", S::Offline, E::NoError),
    ]);
    for (minutes, occupied) in [(90, 120), (30, 150)] {
        events.push(event(
            Kind::ParkingSiteCounts,
            ago(minutes),
            "P-WUTUAN-1",
            |p| {
                if let Payload::ParkingSiteCounts(c) = p {
                    c.occupied = occupied;
                    c.available = 150 - occupied;
                }
            },
        ));
    }
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
    use ev::RequestTransition as T;
    let request = |minutes, id: &str, transition: T, department: &str| {
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
    events.extend([
        request(110, "SR-1", T::Created, ""),
        request(100, "SR-1", T::Assigned, "民政科"),
        request(50, "SR-1", T::Resolved, "民政科"),
        request(80, "SR-2", T::Created, ""),
    ]);
    events.sort_by_key(|e| e.observed_at.as_ref().map(|t| t.seconds));
    events
}

/// The rows the sink would make of `events`, one Kafka offset each.
fn sink_rows(events: &[Event], now: SystemTime) -> Tables {
    let mut tables = Tables::default();
    for (offset, event) in events.iter().enumerate() {
        let ingested = IngestedEvent {
            event: Some(event.clone()),
            tenant_id: TENANT.to_string(),
            source_id: "current-clickhouse-test".to_string(),
            received_at: Some(samples::timestamp(now)),
        };
        let lineage = Lineage {
            cluster: Arc::from(CLUSTER),
            topic: TOPIC.to_string(),
            partition: 0,
            offset: offset as i64,
        };
        let payload = prost::Message::encode_to_vec(&ingested);
        tables.push(decode(&payload, Some(SCHEMA_VERSION), &lineage).expect("a valid row"));
    }
    tables
}

/// The sink's write of one table: the dedup lookup, then the INSERT. Both
/// are filed for current ClickHouse, the INSERT with the same rows as
/// JSONEachRow (its RowBinary body is LZ4-compressed by the client).
async fn write_table<R: TableRow>(sink: &Sink<'_>, kind: Kind, rows: &[R]) {
    if rows.is_empty() {
        return;
    }
    let table = Kind::raw_table(kind);
    sink.store
        .stored_event_ids(table, rows)
        .await
        .unwrap_or_else(|err| panic!("dedup lookup on {table}: {err}"));
    sink.file(&format!("sink: event-id dedup lookup on {table}"));
    sink.store
        .insert(table, rows)
        .await
        .unwrap_or_else(|err| panic!("insert into {table}: {err}"));
    let recorded = sink.recorder.take();
    assert_eq!(recorded.len(), 1, "one INSERT into {table}");
    let mut insert = recorded.into_iter().next().unwrap();
    let statement = insert
        .sql
        .trim_end()
        .strip_suffix("FORMAT RowBinary")
        .unwrap_or_else(|| panic!("the sink inserts RowBinary: {}", insert.sql))
        .to_string();
    let data: Vec<String> = rows
        .iter()
        .map(|row| serde_json::to_string(row).expect("row as JSON"))
        .collect();
    insert.sql = format!("{statement}FORMAT JSONEachRow\n{}", data.join("\n"));
    let old = recorded_outcome(&insert);
    sink.statements
        .lock()
        .unwrap()
        .push(Statement::from_recorded(
            format!("sink: INSERT into {table} ({} rows)", rows.len()),
            insert,
            old,
        ));
}

/// The sink's store behind the recorder, and the statements it sent.
struct Sink<'a> {
    store: citybrain_sink::store::Store,
    recorder: &'a Recorder,
    statements: std::sync::Mutex<Vec<Statement>>,
}

impl Sink<'_> {
    /// Files what the last call sent.
    fn file(&self, origin: &str) {
        record(self.recorder, &mut self.statements.lock().unwrap(), origin);
    }
}

/// Writes `tables` the way the sink's pipeline does: each table looked up
/// and inserted. Returns the rows written.
async fn write_like_the_sink(sink: &Sink<'_>, tables: Tables) -> usize {
    // Listed one by one because each table has its own row type; the count
    // below catches a table added to `Tables` but not here.
    write_table(sink, Kind::ConnectorStatus, &tables.connector_status).await;
    write_table(sink, Kind::MeterSample, &tables.meter_sample).await;
    write_table(sink, Kind::ChargingSession, &tables.charging_session).await;
    write_table(sink, Kind::ParkingSiteCounts, &tables.parking_site_counts).await;
    write_table(sink, Kind::ParkingSpotStatus, &tables.parking_spot_status).await;
    write_table(sink, Kind::VehiclePosition, &tables.vehicle_position).await;
    write_table(sink, Kind::PatrolCheckIn, &tables.patrol_check_in).await;
    write_table(sink, Kind::BinReading, &tables.bin_reading).await;
    write_table(sink, Kind::WasteCollection, &tables.waste_collection).await;
    write_table(sink, Kind::ServiceRequest, &tables.service_request).await;
    tables.connector_status.len()
        + tables.meter_sample.len()
        + tables.charging_session.len()
        + tables.parking_site_counts.len()
        + tables.parking_spot_status.len()
        + tables.vehicle_position.len()
        + tables.patrol_check_in.len()
        + tables.bin_reading.len()
        + tables.waste_collection.len()
        + tables.service_request.len()
}

// ---- the test --------------------------------------------------------------

/// What every part of the test works with.
struct Setup {
    /// ClickHouse 18.16, for statements the test runs itself.
    direct: clickhouse::Client,
    /// ClickHouse 18.16 behind the recorder, for the services' statements.
    recorder: Recorder,
    /// A fresh database on 18.16 (and the same name in chdb).
    database: String,
    /// When the test's events happen.
    now: SystemTime,
}

fn epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_runs_on_clickhouse_18_16_and_current() {
    let started = std::time::Instant::now();
    let python = chdb_python();
    let current = current_version(&python);
    let url = stack_clickhouse_url();
    let setup = Setup {
        direct: citybrain_tests::clickhouse::client(&url),
        recorder: Recorder::start(&url).await,
        database: format!(
            "test_cc_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
        now: SystemTime::now(),
    };
    let (direct, database) = (&setup.direct, &setup.database);

    // In the order they run on current ClickHouse: the schema, the sink's
    // writes (which fill the tables and, through the views, the roll-ups),
    // rows of any other table the sink does not write, then the reads.
    let (mut ordered, not_checked) = schema_statements(&setup, current).await;
    ordered.extend(sink_statements(&setup).await);
    let written: BTreeSet<String> = Kind::ALL
        .into_iter()
        .map(|kind| Kind::raw_table(kind).to_string())
        .collect();
    ordered.extend(copy_other_tables(direct, database, &written).await);
    ordered.extend(query_service_statements(&setup).await);
    ordered.extend(dashboard_statements(&setup).await);
    // The same server time zone as 18.16, so that both bucket alike.
    let timezone: String = direct
        .query_raw("SELECT timezone()")
        .fetch_one()
        .await
        .expect("18.16's time zone");
    let python_for_run = python.clone();
    let to_run = ordered.clone();
    let chdb_started = std::time::Instant::now();
    let current_outcomes =
        tokio::task::spawn_blocking(move || run_on_current(&python_for_run, &timezone, &to_run))
            .await
            .unwrap();
    let chdb_took = chdb_started.elapsed();

    let _ = direct
        .query_raw(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;

    // ---- the verdict ----
    let mut problems: Vec<String> = Vec::new();
    let mut compared = 0;
    let mut with_rows = 0;
    let mut gated_works_on_old = Vec::new();
    let mut per_origin: BTreeMap<String, usize> = BTreeMap::new();
    for (statement, new) in ordered.iter().zip(&current_outcomes) {
        let group = statement
            .origin
            .split([':', ' '])
            .next()
            .unwrap_or("?")
            .to_string();
        *per_origin.entry(group).or_default() += 1;
        let problem = match verdict(statement.expect, statement.old.as_ref(), new) {
            Verdict::Alike { rows } => {
                compared += 1;
                with_rows += usize::from(rows.is_some_and(|rows| rows > 0));
                None
            }
            Verdict::Fine => None,
            Verdict::GateNotNeeded => {
                gated_works_on_old.push(statement.origin.clone());
                None
            }
            Verdict::Problem(problem) => Some(problem),
        };
        if let Some(problem) = problem {
            let sql: String = statement.sql.chars().take(2000).collect();
            problems.push(format!("[{}] {problem}\n  SQL: {sql}", statement.origin));
        }
    }

    eprintln!(
        "current-clickhouse: {} statements on ClickHouse 18.16 and chdb-core {current} ({compared} answered on both, {with_rows} of them with rows); by origin: {per_origin:?}; chdb run {:.1} s, whole test {:.1} s",
        ordered.len(),
        chdb_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for note in &not_checked {
        eprintln!("current-clickhouse: not checked: {note}");
    }
    for origin in &gated_works_on_old {
        eprintln!(
            "current-clickhouse: {origin} also runs on 18.16: its gate may be lower than needed"
        );
    }
    assert!(
        problems.is_empty(),
        "{} of {} statements do not run alike on ClickHouse 18.16 and current ClickHouse {current}:\n\n{}",
        problems.len(),
        ordered.len(),
        problems.join("\n\n")
    );
    assert!(
        compared >= 200,
        "only {compared} statements were compared: the enumeration lost its way"
    );
}

/// What `migrate` sends to 18.16 (recorded), then the statements of the
/// migrations gated above 18.16 (rendered by the schema crate; they are run
/// on 18.16 too, expecting failure). Also returns the migrations that are
/// gated above even `current`, which cannot be checked here.
async fn schema_statements(setup: &Setup, current: ServerVersion) -> (Vec<Statement>, Vec<String>) {
    let (direct, recorder) = (&setup.direct, &setup.recorder);
    let via_recorder = citybrain_tests::clickhouse::client(&recorder.url());
    let options = SchemaOptions::new(&setup.database);
    let report = citybrain_schema::migrate(&via_recorder, &options)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "migrate on 18.16 failed: {err}\nlast statement: {:?}",
                recorder.take().last()
            )
        });
    assert_eq!(report.server, OLD, "the stack's ClickHouse is 18.16");
    let mut schema: Vec<Statement> = Vec::new();
    let rendered: Vec<(String, String)> = MIGRATIONS
        .iter()
        .flat_map(|m| {
            m.statements(&options)
                .into_iter()
                .enumerate()
                .map(move |(i, sql)| {
                    (
                        format!("migration {} {} #{}", m.version, m.name, i + 1),
                        sql,
                    )
                })
        })
        .collect();
    for recorded in recorder.take() {
        let origin = rendered
            .iter()
            .find(|(_, sql)| *sql == recorded.sql)
            .map_or_else(|| "migrate(): bookkeeping".to_string(), |(o, _)| o.clone());
        let old = recorded_outcome(&recorded);
        schema.push(Statement::from_recorded(origin, recorded, old));
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|m| report.applied.contains(&m.version))
    {
        for sql in migration.statements(&options) {
            assert!(
                schema.iter().any(|s| s.sql == sql),
                "migration {} was applied without sending {sql}: the recorder missed it",
                migration.version
            );
        }
    }
    let mut not_checked: Vec<String> = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|m| report.skipped.contains(&m.version))
    {
        let min = migration
            .min_server
            .expect("only gated migrations are skipped");
        if min > current {
            not_checked.push(format!(
                "migration {} {} needs ClickHouse {min}; chdb-core has {current}",
                migration.version, migration.name
            ));
            continue;
        }
        for (i, sql) in migration.statements(&options).into_iter().enumerate() {
            let mut statement = Statement {
                origin: format!(
                    "migration {} {} #{} (gated >= {min})",
                    migration.version,
                    migration.name,
                    i + 1
                ),
                sql,
                format: None,
                settings: Vec::new(),
                database: None,
                expect: Expect::CurrentOnly,
                old: None,
            };
            statement.old = Some(run_on_old(direct, &statement).await.0);
            schema.push(statement);
        }
    }
    (schema, not_checked)
}

/// Writes the town's events into 18.16 the way the sink does (decode, dedup
/// lookup, INSERT), in two rounds so that the second round's lookups find
/// stored rows; then the sink's lookups that run when tables hold rows
/// (resume offsets, dedup, ping).
/// Returns everything the sink sent, in order, for replay on current
/// ClickHouse.
async fn sink_statements(setup: &Setup) -> Vec<Statement> {
    let mut config = citybrain_sink::config::SinkConfig::new("unused:9092", setup.recorder.url());
    config.clickhouse.database = setup.database.clone();
    let sink = Sink {
        store: citybrain_sink::store::Store::new(&config),
        recorder: &setup.recorder,
        statements: std::sync::Mutex::new(Vec::new()),
    };
    let events = town(setup.now);
    let (earlier, later) = events.split_at(events.len() / 2);
    let mut written = 0;
    for round in [earlier, later] {
        written += write_like_the_sink(&sink, sink_rows(round, setup.now)).await;
    }
    assert_eq!(written, events.len(), "every event became a row");

    let offsets = sink
        .store
        .stored_offsets(CLUSTER, &[TOPIC.to_string()])
        .await
        .expect("stored offsets");
    assert!(!offsets.is_empty(), "the lineage views recorded offsets");
    sink.file("sink: stored offsets (resume)");
    // A vendor's repeat of the first round: every id is found.
    let repeated = sink_rows(earlier, setup.now);
    let found = sink
        .store
        .stored_event_ids(
            Kind::raw_table(Kind::ConnectorStatus),
            &repeated.connector_status,
        )
        .await
        .expect("dedup lookup");
    assert_eq!(found.len(), repeated.connector_status.len());
    sink.file("sink: event-id dedup lookup finding repeats");
    assert!(sink.store.ping().await);
    sink.file("sink: ping");
    sink.statements.into_inner().unwrap()
}

/// Every request shape of the query service, recorded while `QueryCore`
/// answers it from 18.16.
async fn query_service_statements(setup: &Setup) -> Vec<Statement> {
    let (recorder, database, now) = (&setup.recorder, &setup.database, setup.now);
    let mut queries = Vec::new();
    let (from, to) = (epoch(now) as i64 - 6 * 3600, epoch(now) as i64 + 3600);
    let limits = citybrain_query::config::Limits::default();
    let core = QueryCore::new(
        citybrain_query::store::Store::new(
            &citybrain_config::ClickHouseConfig::new(recorder.url(), database.as_str()),
            limits.timeout,
        ),
        citybrain_query::sql::Database::new(database).unwrap(),
        limits,
    );
    let mut service = QueryRecorder {
        recorder,
        statements: &mut queries,
    };
    let ping = core.store().ping(Duration::from_secs(5)).await;
    assert!(ping, "the query service reaches ClickHouse");
    service.take("query: readiness probe".to_string(), Ok(None));
    let mut vehicle = String::from("VB-02");
    for view in live::VIEWS {
        let request = LiveRequest {
            view: view.name.to_string(),
            filters: Vec::new(),
        };
        let table = service
            .table(
                format!("query: live {}", view.name),
                core.live(TENANT, &request).await,
            )
            .unwrap_or_else(empty_table);
        if view.name == "vehicles"
            && let Some(first) = first_value(&table, "vehicle")
        {
            vehicle = first;
        }
        for filter in view.filters {
            let value = match filter.kind {
                FilterKind::AtLeast => "0.5".to_string(),
                FilterKind::Equals => {
                    first_value(&table, filter.name).unwrap_or_else(|| "none".to_string())
                }
            };
            let request = LiveRequest {
                view: view.name.to_string(),
                filters: vec![(filter.name.to_string(), value)],
            };
            service.table(
                format!("query: live {} filtered by {}", view.name, filter.name),
                core.live(TENANT, &request).await,
            );
        }
    }
    let buckets: Vec<&str> = Bucket::NAMES.split(", ").collect();
    for metric in catalog::METRICS {
        let all_dimensions = metric
            .dimensions
            .iter()
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join(",");
        for bucket in &buckets {
            for group_by in [None, Some("none".to_string()), Some(all_dimensions.clone())] {
                let request = AggregateRequest {
                    metric: metric.name.to_string(),
                    from,
                    to,
                    bucket: bucket.to_string(),
                    group_by: group_by.clone(),
                    filters: Vec::new(),
                };
                service.table(
                    format!(
                        "query: aggregate {} per {bucket} by {}",
                        metric.name,
                        group_by.as_deref().unwrap_or("default")
                    ),
                    core.aggregate(TENANT, &request).await,
                );
            }
        }
        for dimension in metric.dimensions {
            let by_dimension = AggregateRequest {
                metric: metric.name.to_string(),
                from,
                to,
                bucket: "hour".to_string(),
                group_by: Some(dimension.name.to_string()),
                filters: Vec::new(),
            };
            let table = service
                .table(
                    format!(
                        "query: aggregate {} per hour by {}",
                        metric.name, dimension.name
                    ),
                    core.aggregate(TENANT, &by_dimension).await,
                )
                .unwrap_or_else(empty_table);
            let value = first_value(&table, dimension.name).unwrap_or_else(|| "none".to_string());
            let filtered = AggregateRequest {
                filters: vec![(dimension.name.to_string(), value)],
                ..by_dimension
            };
            service.table(
                format!(
                    "query: aggregate {} filtered by {}",
                    metric.name, dimension.name
                ),
                core.aggregate(TENANT, &filtered).await,
            );
        }
        let export = AggregateRequest {
            metric: metric.name.to_string(),
            from,
            to,
            bucket: "hour".to_string(),
            group_by: None,
            filters: Vec::new(),
        };
        let csv = match core.export(TENANT, &export).await {
            Ok(stream) => {
                let mut stream = Box::pin(stream);
                let mut body = Vec::new();
                let mut failure = None;
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(bytes) => body.extend_from_slice(&bytes),
                        Err(err) => failure = Some(err.to_string()),
                    }
                }
                failure.map_or(Ok(body), Err)
            }
            Err(err) => Err(err.to_string()),
        };
        service.take(
            format!("query: export {} as CSV", metric.name),
            csv.map(|body| rows_in(&body, "CSVWithNames")),
        );
        for measure in metric.measures {
            let request = TopRequest {
                metric: metric.name.to_string(),
                from,
                to,
                group_by: None,
                order_by: Some(measure.name.to_string()),
                n: None,
                filters: Vec::new(),
            };
            service.table(
                format!("query: top {} by {}", metric.name, measure.name),
                core.top(TENANT, &request).await,
            );
        }
        let request = TopRequest {
            metric: metric.name.to_string(),
            from,
            to,
            group_by: Some(all_dimensions),
            order_by: None,
            n: Some(3),
            filters: Vec::new(),
        };
        service.table(
            format!("query: top 3 {} by every dimension", metric.name),
            core.top(TENANT, &request).await,
        );
    }
    for max_points in [None, Some(3)] {
        let request = TrackRequest {
            vehicle_id: vehicle.clone(),
            from,
            to,
            max_points,
        };
        service.table(
            format!("query: track of {vehicle} ({max_points:?} points)"),
            core.track(TENANT, &request).await,
        );
    }
    queries
}

/// Every ClickHouse query of the dashboards: each variable's (with the
/// variables before it picked), then each panel's with every variable at
/// "All" and at its first value. Run on 18.16 here.
async fn dashboard_statements(setup: &Setup) -> Vec<Statement> {
    let (direct, database, now) = (&setup.direct, &setup.database, setup.now);
    let mut queries = Vec::new();
    let range = TimeRange {
        from: epoch(now) - 6 * 3600,
        to: epoch(now) + 3600,
    };
    for (file, dashboard) in dashboards() {
        let mut all: Choices = BTreeMap::new();
        let mut picked: Choices = BTreeMap::new();
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["datasource"]["uid"].as_str() != Some(CLICKHOUSE_DATASOURCE) {
                continue;
            }
            let name = variable["name"].as_str().unwrap().to_string();
            let mut statement = dashboard_statement(
                format!("dashboard {file}: variable {name}"),
                expand(variable["query"].as_str().unwrap(), &picked, &range),
                database,
            );
            let (old, body) = run_on_old(direct, &statement).await;
            statement.old = Some(old);
            queries.push(statement);
            let first = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|answer| answer["data"][0][0].as_str().map(str::to_string))
                .unwrap_or_else(|| "none".to_string());
            let includes_all = variable["includeAll"].as_bool().unwrap_or(false);
            all.insert(name.clone(), (!includes_all).then(|| vec![first.clone()]));
            picked.insert(name, Some(vec![first]));
        }
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            if panel["datasource"]["uid"].as_str() != Some(CLICKHOUSE_DATASOURCE) {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(raw) = target["rawSql"].as_str() else {
                    continue;
                };
                for (label, choices) in [("all", &all), ("picked", &picked)] {
                    let mut statement = dashboard_statement(
                        format!("dashboard {file}: {title} ({label})"),
                        expand(raw, choices, &range),
                        database,
                    );
                    statement.old = Some(run_on_old(direct, &statement).await.0);
                    queries.push(statement);
                }
            }
        }
    }
    queries
}

/// How a statement's outcomes on the two engines compare.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Ran on both, with the same row count where both tell it.
    Alike {
        rows: Option<u64>,
    },
    /// A fixture that loaded, or a gated statement that runs on current
    /// ClickHouse and fails on 18.16.
    Fine,
    /// A gated statement that runs on both: the gate could be lower.
    GateNotNeeded,
    Problem(String),
}

fn verdict(expect: Expect, old: Option<&Outcome>, new: &Outcome) -> Verdict {
    use Outcome::{Failed, Ran};
    match (expect, old, new) {
        (Expect::Fixture, _, Ran { .. }) => Verdict::Fine,
        (Expect::Fixture, _, Failed(err)) => Verdict::Problem(format!(
            "test data did not load on current ClickHouse: {err}"
        )),
        (Expect::CurrentOnly, Some(Ran { .. }), Ran { .. }) => Verdict::GateNotNeeded,
        (Expect::CurrentOnly, _, Ran { .. }) => Verdict::Fine,
        (Expect::CurrentOnly, _, Failed(err)) => Verdict::Problem(format!(
            "gated for newer servers but fails on current ClickHouse: {err}"
        )),
        (Expect::Both, Some(Ran { rows: old_rows }), Ran { rows: new_rows }) => {
            match (old_rows, new_rows) {
                (Some(a), Some(b)) if a != b => Verdict::Problem(format!(
                    "answers {a} rows on 18.16 but {b} on current ClickHouse"
                )),
                _ => Verdict::Alike { rows: *old_rows },
            }
        }
        (Expect::Both, Some(Ran { .. }), Failed(err)) => Verdict::Problem(format!(
            "works on 18.16, fails on current ClickHouse: {err}"
        )),
        (Expect::Both, Some(Failed(err)), Ran { .. }) => Verdict::Problem(format!(
            "works on current ClickHouse, fails on 18.16: {err}"
        )),
        (Expect::Both, Some(Failed(old)), Failed(new)) => {
            Verdict::Problem(format!("fails on both: 18.16: {old}\n  current: {new}"))
        }
        (Expect::Both, None, _) => Verdict::Problem("never ran on 18.16".to_string()),
    }
}

#[test]
fn a_statement_that_differs_between_the_engines_is_a_problem() {
    let ran = |rows| Outcome::Ran { rows };
    let failed = || Outcome::Failed("Code: 46".to_string());
    let problem = |v: Verdict| matches!(v, Verdict::Problem(_));
    assert_eq!(
        verdict(Expect::Both, Some(&ran(Some(2))), &ran(Some(2))),
        Verdict::Alike { rows: Some(2) }
    );
    assert_eq!(
        verdict(Expect::Both, Some(&ran(None)), &ran(Some(2))),
        Verdict::Alike { rows: None }
    );
    assert!(problem(verdict(
        Expect::Both,
        Some(&ran(Some(2))),
        &ran(Some(3))
    )));
    assert!(problem(verdict(Expect::Both, Some(&ran(None)), &failed())));
    assert!(problem(verdict(Expect::Both, Some(&failed()), &ran(None))));
    assert!(problem(verdict(Expect::Both, Some(&failed()), &failed())));
    assert!(problem(verdict(Expect::Both, None, &ran(None))));
    assert_eq!(
        verdict(Expect::CurrentOnly, Some(&failed()), &ran(None)),
        Verdict::Fine
    );
    assert_eq!(
        verdict(Expect::CurrentOnly, Some(&ran(None)), &ran(None)),
        Verdict::GateNotNeeded
    );
    assert!(problem(verdict(
        Expect::CurrentOnly,
        Some(&failed()),
        &failed()
    )));
    assert_eq!(verdict(Expect::Fixture, None, &ran(None)), Verdict::Fine);
    assert!(problem(verdict(Expect::Fixture, None, &failed())));
}

/// Collects what the query service sends while it answers requests.
struct QueryRecorder<'a> {
    recorder: &'a Recorder,
    statements: &'a mut Vec<Statement>,
}

impl QueryRecorder<'_> {
    /// Files the statements of one request, with what the service made of
    /// the answer: rows, or the service's error.
    fn take(&mut self, origin: String, answer: Result<Option<u64>, String>) {
        let recorded = self.recorder.take();
        assert!(
            !recorded.is_empty(),
            "{origin}: the service sent no SQL (rejected the request: {answer:?})"
        );
        let count = recorded.len();
        for recorded in recorded {
            let old = match (&answer, recorded_outcome(&recorded)) {
                (_, failed @ Outcome::Failed(_)) => failed,
                (Ok(rows), Outcome::Ran { .. }) if count == 1 => Outcome::Ran { rows: *rows },
                (Ok(_), ran) => ran,
                (Err(err), Outcome::Ran { .. }) => Outcome::Failed(err.clone()),
            };
            self.statements
                .push(Statement::from_recorded(origin.clone(), recorded, old));
        }
    }

    /// Files one request answered with a table; returns the table.
    fn table(
        &mut self,
        origin: String,
        answer: Result<Table, citybrain_query::error::QueryError>,
    ) -> Option<Table> {
        match answer {
            Ok(table) => {
                self.take(origin, Ok(Some(table.rows.len() as u64)));
                Some(table)
            }
            Err(err) => {
                self.take(origin, Err(err.to_string()));
                None
            }
        }
    }
}

/// Files what the sink sent for one call.
fn record(recorder: &Recorder, statements: &mut Vec<Statement>, origin: &str) {
    let recorded = recorder.take();
    assert!(!recorded.is_empty(), "{origin}: nothing was sent");
    for recorded in recorded {
        let old = recorded_outcome(&recorded);
        statements.push(Statement::from_recorded(origin, recorded, old));
    }
}

fn empty_table() -> Table {
    Table {
        columns: Vec::new(),
        rows: Vec::new(),
    }
}

/// The first non-empty value of `column` as text (filters reject "").
fn first_value(table: &Table, column: &str) -> Option<String> {
    use citybrain_query::table::Value as Cell;
    let index = table.column(column)?;
    table.rows.iter().find_map(|row| match row.get(index)? {
        Cell::Str(text) if !text.is_empty() => Some(text.clone()),
        Cell::Int(number) | Cell::Time(number) => Some(number.to_string()),
        Cell::Float(number) => Some(number.to_string()),
        _ => None,
    })
}

fn dashboard_statement(origin: String, sql: String, database: &str) -> Statement {
    Statement {
        origin,
        sql,
        format: Some("JSONCompact".to_string()),
        settings: Vec::new(),
        database: Some(database.to_string()),
        expect: Expect::Both,
        old: None,
    }
}

/// Every dashboard: (file name, parsed JSON).
fn dashboards() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("dashboards/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).expect("dashboard JSON"),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "dashboards found");
    found
}

/// INSERTs that give current ClickHouse the rows 18.16 holds in tables that
/// neither a materialized view nor the replayed sink INSERTs (`written`)
/// fill, should the sink ever write a table of its own.
async fn copy_other_tables(
    direct: &clickhouse::Client,
    database: &str,
    written: &BTreeSet<String>,
) -> Vec<Statement> {
    let tables: Vec<(String, String, String)> = direct
        .query_raw(&format!(
            "SELECT name, engine, create_table_query FROM system.tables WHERE database = '{database}' ORDER BY name"
        ))
        .fetch_all()
        .await
        .expect("list tables");
    let view_targets: BTreeSet<String> = tables
        .iter()
        .filter(|(_, engine, _)| engine == "MaterializedView")
        .filter_map(|(_, _, create)| {
            let after = &create[create.find(" TO ")? + 4..];
            let target = after.split_whitespace().next()?;
            Some(target.rsplit('.').next()?.to_string())
        })
        .collect();
    let mut statements = Vec::new();
    for (name, engine, _) in &tables {
        if engine.ends_with("View")
            || view_targets.contains(name)
            || written.contains(name)
            || name == MIGRATIONS_TABLE
        {
            continue;
        }
        let body = direct
            .query_raw(&format!("SELECT * FROM {database}.{name}"))
            .fetch_bytes("JSONEachRow")
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|err| panic!("read {name}: {err}"));
        if body.is_empty() {
            continue;
        }
        statements.push(Statement {
            origin: format!("test data: rows of {name}"),
            sql: format!(
                "INSERT INTO {database}.{name} FORMAT JSONEachRow\n{}",
                String::from_utf8_lossy(&body)
            ),
            format: None,
            settings: Vec::new(),
            database: None,
            expect: Expect::Fixture,
            old: None,
        });
    }
    statements
}
