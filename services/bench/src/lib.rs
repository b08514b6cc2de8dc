//! `make bench`: the pipeline measured against what this machine allows, in
//! one run, side by side (see `BENCHMARKS.md` for what each phase does).
//!
//! 1. ingest vs a bare rdkafka producer, same records, same broker;
//! 2. the sink draining that backlog vs direct RowBinary inserts;
//! 5. the planners' aggregates over the loaded history;
//! 3. freshness at a steady offered load (after 5, so the live load does
//!    not pile a minute of extra rows onto the history being queried);
//! 4. each service's peak RSS over all of it;
//! 6. the JT/T 808 gateway under 1,000 terminals ([`jt808`]), on a broker
//!    and ingest of its own.

pub mod freshness;
pub mod ingest;
pub mod jt808;
pub mod jt808_report;
pub mod procs;
pub mod profile;
pub mod query;
pub mod report;
pub mod sink;
pub mod workload;

use anyhow::Context;
use citybrain_config::{ClickHouseConfig, ToEnv};
use citybrain_proto::events::v1::event::Payload;
use citybrain_proto::feed::Feed;
use procs::{ChildProcess, ProcStats, free_port, wait_for_port};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use report::{PhaseCpu, Profile, Results};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::Workload;

/// What a run does; `main` reads it from the environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Days of history (ingest accepts events at most 30 days old).
    pub days: u32,
    pub scale: f64,
    pub clickhouse_url: String,
    /// Where the release binaries of the services are.
    pub bin_dir: PathBuf,
    /// The repository root (API key file, git commit).
    pub root: PathBuf,
    /// Where BENCHMARKS.md / .json are written.
    pub out_dir: PathBuf,
    /// Offered loads for freshness, tried in order until one keeps up.
    pub freshness_rates: Vec<f64>,
    pub freshness_duration: Duration,
    pub query_samples: usize,
    /// Profile ingest and the sink with `perf` (when it works here).
    pub perf: bool,
    pub jt808: jt808::Jt808Options,
}

const INGEST_PREFIX: &str = "bi.";
const CEILING_PREFIX: &str = "bc.";
const PARTITIONS: i32 = 4;

/// The processes of a run and their CPU counters at the last phase mark.
struct Fleet {
    procs: Vec<ChildProcess>,
    /// Processes not started here but measured (ClickHouse, this runner).
    others: Vec<(String, u32)>,
    mark: (Instant, BTreeMap<String, f64>),
    phases: Vec<PhaseCpu>,
}

impl Fleet {
    fn cpu_now(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for p in &self.procs {
            out.insert(p.name.clone(), ProcStats::read(p.pid()).cpu_s);
        }
        for (name, pid) in &self.others {
            out.insert(name.clone(), procs::cpu_seconds(*pid));
        }
        out
    }

    fn start_phase(&mut self) {
        self.mark = (Instant::now(), self.cpu_now());
    }

    fn end_phase(&mut self, phase: &str) {
        let wall = self.mark.0.elapsed().as_secs_f64();
        let now = self.cpu_now();
        let cores = now
            .iter()
            .map(|(name, cpu)| {
                let before = self.mark.1.get(name).copied().unwrap_or(0.0);
                (name.clone(), (cpu - before) / wall.max(1e-3))
            })
            .collect();
        self.phases.push(PhaseCpu {
            phase: phase.to_string(),
            wall_s: wall,
            cores,
        });
        tracing::info!(phase, wall_s = wall, "phase done");
    }

    fn get(&mut self, name: &str) -> &mut ChildProcess {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .expect("started")
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            procs::check_alive(p)?;
        }
        Ok(())
    }
}

/// Runs every phase and writes the results; returns them.
pub async fn run(options: Options) -> anyhow::Result<Results> {
    let run_started = Instant::now();
    let machine = report::Machine::describe();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let dir = std::env::temp_dir().join(format!("citybrain-bench-{id}"));
    std::fs::create_dir_all(&dir)?;
    tracing::info!(dir = %dir.display(), "logs and scratch files");
    let mut notes = Vec::new();

    tracing::info!(
        days = options.days,
        scale = options.scale,
        "generating the town's history"
    );
    let generated = Instant::now();
    let work = Workload::generate(options.days, options.scale);
    let generate_s = generated.elapsed().as_secs_f64();
    let mix: BTreeMap<String, usize> = work
        .mix()
        .into_iter()
        .map(|(k, n)| (k.as_str().to_string(), n))
        .collect();
    let records = work.records();
    let (pool, marker_template) = freshness_templates(&work)?;
    let (origin, until, events) = (work.origin, work.until, work.events.len());
    let batches = work.into_batches(1000);
    tracing::info!(events, generate_s, "history generated");

    // The broker and the topics.
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let broker = procs::start_broker(broker_port, &dir).await?;
    let mut topics: Vec<String> = Vec::new();
    for prefix in [INGEST_PREFIX, CEILING_PREFIX] {
        topics.extend(Feed::ALL.iter().map(|f| format!("{prefix}{}", f.topic())));
    }
    topics.push(format!(
        "{INGEST_PREFIX}{}",
        citybrain_proto::feed::DEAD_LETTER_TOPIC
    ));
    create_topics(&brokers, &topics).await?;

    let clickhouse = sink::clickhouse(&options.clickhouse_url);
    let db = format!("bench_{id}");
    let ceiling_db = format!("bench_{id}_ceiling");
    citybrain_schema::migrate(
        &clickhouse,
        &citybrain_schema::SchemaOptions::new(&ceiling_db),
    )
    .await
    .context("cannot create the ceiling database (is ClickHouse up?)")?;

    let keys = options.root.join("deploy/local/dev-api-keys.toml");
    let (grpc_port, ingest_admin) = (free_port(), free_port());
    let mut ingest_config = citybrain_ingest::config::IngestConfig::new(&brokers);
    ingest_config.kafka.topic_prefix = INGEST_PREFIX.into();
    ingest_config.grpc_addr = ([127, 0, 0, 1], grpc_port).into();
    ingest_config.admin_addr = ([127, 0, 0, 1], ingest_admin).into();
    ingest_config.api_keys_file = keys.clone();
    // Tansu 0.6.0 cannot bump an idempotent producer's epoch (see make run).
    ingest_config.producer.settings.idempotence = false;
    let ingest = service(&options, "citybrain-ingest", &ingest_config, &dir);
    wait_for_port(grpc_port, "ingest", Duration::from_secs(30)).await?;
    let ingest_url = format!("http://127.0.0.1:{grpc_port}");

    let mut others = vec![("bench client".to_string(), std::process::id())];
    if let Some(pid) = clickhouse_pid(&options.root) {
        others.push(("clickhouse".to_string(), pid));
    } else {
        notes.push("ClickHouse's process was not found, so its CPU is not shown.".into());
    }
    let mut fleet = Fleet {
        procs: vec![broker, ingest],
        others,
        mark: (Instant::now(), BTreeMap::new()),
        phases: Vec::new(),
    };
    let perf = options.perf && profile::available();
    if options.perf && !perf {
        notes.push("`perf` does not work on this machine; no profiles.".into());
    } else if perf {
        notes.push(
            "Profiles sample the `cpu-clock` event (this VM exposes no hardware counters) at \
             499 Hz while the phase runs; the recording itself costs a little CPU."
                .into(),
        );
    }
    let mut profiles = Vec::new();

    // 1. Ingest vs the bare producer (the ceiling first: anything the
    // broker slows down by holding more data then counts against ingest).
    tracing::info!(records = records.len(), "phase 1: bare producer (ceiling)");
    fleet.start_phase();
    let ingest_ceiling = ingest::bare_producer(&brokers, CEILING_PREFIX, &records, 50_000).await?;
    fleet.end_phase("ingest ceiling");
    tracing::info!(
        per_s = ingest_ceiling.per_s,
        "bare producer done; phase 1: ingest"
    );
    let recording = if perf {
        Some(profile::Recording::start(
            fleet.get("ingest").pid(),
            &dir,
            "perf-ingest",
        )?)
    } else {
        None
    };
    fleet.start_phase();
    let ingest_result = ingest::through_ingest(&ingest_url, batches, 4, 2).await?;
    fleet.end_phase("ingest");
    if let Some(recording) = recording {
        profiles.push(Profile {
            service: "ingest".into(),
            phase: "ingest".into(),
            top_symbols: recording.finish(),
        });
    }
    tracing::info!(per_s = ingest_result.per_s, "ingest done");
    fleet.check_alive()?;
    if ingest_result.not_accepted > 0 {
        notes.push(format!(
            "{} events were not ACCEPTED by ingest in phase 1 (counted, not resent).",
            ingest_result.not_accepted
        ));
    }

    // 2. Sink vs direct inserts.
    tracing::info!("phase 2: direct inserts (ceiling)");
    fleet.start_phase();
    let sink_ceiling = sink::direct_insert(&clickhouse, &ceiling_db, &records, 50_000).await?;
    fleet.end_phase("sink ceiling");
    tracing::info!(
        per_s = sink_ceiling.per_s,
        "direct inserts done; phase 2: sink"
    );
    drop(records);
    let sink_admin = free_port();
    let mut sink_config =
        citybrain_sink::config::SinkConfig::new(&brokers, options.clickhouse_url.as_str());
    sink_config.kafka.topic_prefix = INGEST_PREFIX.into();
    sink_config.group.group_id = format!("bench-{id}");
    sink_config.clickhouse.database = db.clone();
    sink_config.admin_addr = ([127, 0, 0, 1], sink_admin).into();
    fleet
        .procs
        .push(service(&options, "citybrain-sink", &sink_config, &dir));
    let sink_started = Instant::now();
    fleet.start_phase();
    let recording = if perf {
        Some(profile::Recording::start(
            fleet.get("sink").pid(),
            &dir,
            "perf-sink",
        )?)
    } else {
        None
    };
    let drained = sink::wait_for_rows(
        &clickhouse,
        &db,
        ingest_result.events,
        sink_started,
        Duration::from_secs(600),
    )
    .await;
    fleet.end_phase("sink");
    if let Some(recording) = recording {
        profiles.push(Profile {
            service: "sink".into(),
            phase: "sink".into(),
            top_symbols: recording.finish(),
        });
    }
    let drained = drained?;
    tracing::info!(per_s = drained.per_s, "sink drained the backlog");
    fleet.check_alive()?;

    // 5. Query latency over the history.
    let (http_port, query_grpc, query_admin) = (free_port(), free_port(), free_port());
    let mut query_config = citybrain_query::config::QueryConfig::new(ClickHouseConfig::new(
        options.clickhouse_url.as_str(),
        db.as_str(),
    ));
    query_config.http_addr = ([127, 0, 0, 1], http_port).into();
    query_config.grpc_addr = ([127, 0, 0, 1], query_grpc).into();
    query_config.admin_addr = ([127, 0, 0, 1], query_admin).into();
    query_config.api_keys_file = keys.clone();
    fleet
        .procs
        .push(service(&options, "citybrain-query", &query_config, &dir));
    wait_for_port(http_port, "query", Duration::from_secs(30)).await?;
    tracing::info!("phase 5: query latency");
    fleet.start_phase();
    let (from, to) = (origin / 1000, until / 1000 + 86_400);
    let queries = query::aggregates(http_port, from, to, 3, options.query_samples).await?;
    fleet.end_phase("query");

    // 3. Freshness, from the target load down until one keeps up.
    let pool = Arc::new(pool);
    let mut levels = Vec::new();
    let mut expected_rows = drained.rows;
    for rate in &options.freshness_rates {
        tracing::info!(rate, "phase 3: freshness");
        fleet.start_phase();
        let level = freshness::run_level(
            &ingest_url,
            http_port,
            sink_admin,
            pool.clone(),
            marker_template.clone(),
            *rate,
            options.freshness_duration,
        )
        .await?;
        fleet.end_phase(&format!("freshness {rate:.0}/s"));
        tracing::info!(?level, "freshness level done");
        fleet.check_alive()?;
        expected_rows += level.accepted + level.markers_sent as u64;
        let kept_up = level.sustained(report::FRESHNESS_P99_TARGET_MS);
        levels.push(level);
        if kept_up {
            break;
        }
        // Let the backlog drain so the next level starts clean.
        let _ = sink::wait_for_rows(
            &clickhouse,
            &db,
            expected_rows,
            Instant::now(),
            Duration::from_secs(90),
        )
        .await;
    }

    // 4. Memory: each service's high-water mark over the whole run.
    let peak_rss_mb: BTreeMap<String, f64> = ["ingest", "sink", "query"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                ProcStats::read(fleet.get(name).pid()).peak_rss_mb,
            )
        })
        .collect();
    let broker_peak = ProcStats::read(fleet.get("tansu").pid()).peak_rss_mb;
    notes.push(format!(
        "The private broker (Tansu, memory storage, holding both phase-1 streams) peaked at \
         {broker_peak:.0} MB; it is not a citybrain service."
    ));
    for mut proc in fleet.procs.drain(..).rev() {
        proc.stop(Duration::from_secs(15));
    }
    for database in [&db, &ceiling_db] {
        let _ = citybrain_schema::drop_database(&clickhouse, database).await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    let first = levels.first().context("no freshness level ran")?;
    let results = Results {
        machine,
        workload: report::Workload {
            days: options.days,
            scale: options.scale,
            events,
            mix,
            generate_s,
        },
        ingest_events_per_s: ingest_result.per_s,
        ingest_ceiling_events_per_s: ingest_ceiling.per_s,
        ingest_ratio: ingest_result.per_s / ingest_ceiling.per_s,
        ingest: ingest_result,
        ingest_ceiling,
        sink_rows_per_s: drained.per_s,
        sink_ceiling_rows_per_s: sink_ceiling.per_s,
        sink_ratio: drained.per_s / sink_ceiling.per_s,
        sink: drained,
        sink_ceiling,
        freshness_offered_events_per_s: first.offered_per_s,
        freshness_p50_ms: first.p50_ms,
        freshness_p99_ms: first.p99_ms,
        freshness_sustained_events_per_s: levels
            .iter()
            .find(|l| l.sustained(report::FRESHNESS_P99_TARGET_MS))
            .map(|l| l.offered_per_s),
        freshness_levels: levels,
        peak_rss_mb,
        query_p50_ms: queries.iter().map(|q| (q.name.clone(), q.p50_ms)).collect(),
        query_p99_ms: queries.iter().map(|q| (q.name.clone(), q.p99_ms)).collect(),
        queries,
        cpu: fleet.phases,
        profiles,
        notes,
        total_s: run_started.elapsed().as_secs_f64(),
    };
    std::fs::write(
        options.out_dir.join("BENCHMARKS.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    let path = options.out_dir.join("BENCHMARKS.md");
    let kept = kept_sections(&std::fs::read_to_string(&path).unwrap_or_default());
    std::fs::write(&path, results.markdown() + &kept)?;
    tracing::info!(
        terminals = options.jt808.terminals,
        "phase 6: the jt808 gateway"
    );
    let terminals = jt808::run(&options, &options.jt808).await?;
    jt808_report::write(&options.out_dir, &terminals)?;
    Ok(results)
}

/// The sections other benchmarks wrote into BENCHMARKS.md (between
/// `<!-- begin: NAME -->` and `<!-- end: NAME -->`, e.g. the OCPP gateway's
/// 500 chargers), kept when `make bench` rewrites the rest.
fn kept_sections(markdown: &str) -> String {
    let mut kept = String::new();
    let mut inside = false;
    for line in markdown.lines() {
        if line.starts_with("<!-- begin: ") {
            inside = true;
            kept.push('\n');
        }
        if inside {
            kept.push_str(line);
            kept.push('\n');
        }
        if line.starts_with("<!-- end: ") {
            inside = false;
        }
    }
    kept
}

/// The load pool (every town event) and a vehicle position for markers.
fn freshness_templates(
    work: &Workload,
) -> anyhow::Result<(
    Vec<citybrain_proto::events::v1::Event>,
    citybrain_proto::events::v1::Event,
)> {
    let marker = work
        .events
        .iter()
        .find(|e| matches!(e.payload, Some(Payload::VehiclePosition(_))))
        .cloned()
        .context("the town sent no vehicle position to copy for markers")?;
    let pool = work.events.iter().take(200_000).cloned().collect();
    Ok((pool, marker))
}

/// A service's release binary with `config` as its environment.
fn service(options: &Options, binary: &str, config: &impl ToEnv, dir: &Path) -> ChildProcess {
    let mut command = Command::new(options.bin_dir.join(binary));
    command
        .current_dir(&options.root)
        .envs(config.to_env())
        .env("RUST_LOG", "warn");
    ChildProcess::spawn(binary.trim_start_matches("citybrain-"), &mut command, dir)
}

async fn create_topics(brokers: &str, topics: &[String]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
    }
    Ok(())
}

/// The local stack's ClickHouse server, from its pid file.
fn clickhouse_pid(root: &Path) -> Option<u32> {
    let stack = std::env::var("STACK_DIR").map_or_else(|_| root.join(".stack"), PathBuf::from);
    std::fs::read_to_string(stack.join("clickhouse/clickhouse.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod kept_tests {
    #[test]
    fn other_benchmarks_sections_survive_a_rewrite() {
        let old = "# Benchmarks\nold results\n<!-- begin: ocpp -->\n## OCPP\n500\n<!-- end: ocpp -->\ntrailing\n";
        assert_eq!(
            super::kept_sections(old),
            "\n<!-- begin: ocpp -->\n## OCPP\n500\n<!-- end: ocpp -->\n"
        );
        assert_eq!(super::kept_sections("# Benchmarks\nnothing else\n"), "");
    }
}
