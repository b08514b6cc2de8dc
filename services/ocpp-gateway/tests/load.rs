//! The 500-charger benchmark (`make bench-ocpp`; ignored by `cargo test`):
//! the gateway and ingest as their release binaries, each its own process,
//! on a private Tansu broker (memory storage); 500 real OCPP 1.6 charge
//! points (PyPI `ocpp`, `tests/ocpp/load.py`) connect at once and send
//! heartbeats, status and meter values. Every message must be answered
//! CALLRESULT; the gateway's CPU and memory go into `BENCHMARKS.md`, in a
//! section of its own that `make bench` keeps.

mod support;

use citybrain_ocpp_gateway::config::GatewayConfig;
use citybrain_tests::process::{ChildProcess, binary, free_port, repo_root, spawn_service};
use citybrain_tests::{
    BrokerStorage, FULL_KEY, PrivateBroker, TENANT, TestTopics, eventually, ingest_config,
    scratch_dir, unique_prefix, write_key_file,
};
use serde_json::Value;
use std::time::Duration;
use support::*;

const STATIONS: usize = 500;
const STEADY_S: u32 = 60;
const BEGIN: &str = "<!-- begin: ocpp-gateway -->";
const END: &str = "<!-- end: ocpp-gateway -->";

async fn ready(admin: u16) -> bool {
    let addr = ([127, 0, 0, 1], admin).into();
    citybrain_tests::process::port_open(admin).await
        && citybrain_tests::http::get(addr, "/readyz", &[])
            .await
            .status
            == 200
}

/// The release binaries `make bench-ocpp` built (`BENCH_BIN_DIR`), else the
/// ones next to this test.
fn service_binary(name: &str) -> std::path::PathBuf {
    match std::env::var_os("BENCH_BIN_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join(name),
        None => binary(name),
    }
}

fn memory_mb(process: &ChildProcess, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", process.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench-ocpp"]
async fn five_hundred_chargers_at_once() {
    let broker = PrivateBroker::start(BrokerStorage::Memory).await;
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&broker.brokers(), &prefix, 2).await;
    let dir = scratch_dir("ocpp-load");

    let mut ingest = ingest_config(&broker.brokers(), &prefix, write_key_file(&dir));
    let (ingest_port, ingest_admin) = (free_port(), free_port());
    ingest.grpc_addr = ([127, 0, 0, 1], ingest_port).into();
    ingest.admin_addr = ([127, 0, 0, 1], ingest_admin).into();
    // Tansu 0.6.0 cannot bump an idempotent producer's epoch (see ingest's
    // config); `make bench` runs ingest the same way.
    ingest.producer.settings.idempotence = false;
    let ingest_process =
        spawn_service("ingest", &service_binary("citybrain-ingest"), &ingest, &dir);

    let registry = dir.join("stations.toml");
    let entries: String = (1..=STATIONS)
        .map(|i| {
            format!(
                "[[stations]]\nid = \"LOAD-CP-{i:03}\"\ntenant = \"{TENANT}\"\nsite = \"load-site-{}\"\nconnectors = 2\npassword = \"{PASSWORD}\"\n\n",
                i % 25
            )
        })
        .collect();
    std::fs::write(&registry, entries).unwrap();
    let mut config = GatewayConfig::new(&registry, &format!("http://127.0.0.1:{ingest_port}"));
    let (port, admin) = (free_port(), free_port());
    config.listen_addr = ([127, 0, 0, 1], port).into();
    config.admin_addr = ([127, 0, 0, 1], admin).into();
    config.ingest_keys = vec![(TENANT.into(), FULL_KEY.into())];
    config.heartbeat_interval = Duration::from_secs(30);
    let gateway = spawn_service(
        "ocpp-gateway",
        &service_binary("citybrain-ocpp-gateway"),
        &config,
        &dir,
    );
    eventually(
        Duration::from_secs(60),
        "ingest and the gateway to be ready",
        || async { ready(ingest_admin).await && ready(admin).await },
    )
    .await;
    let idle_rss = memory_mb(&gateway, "VmRSS");

    let output = tokio::process::Command::new(python())
        .arg(script("load.py"))
        .args([format!("ws://127.0.0.1:{port}/ocpp"), PASSWORD.to_string()])
        .args([
            "--stations",
            &STATIONS.to_string(),
            "--duration",
            &STEADY_S.to_string(),
        ])
        .args(["--gateway-pid", &gateway.pid().to_string()])
        .args(["--ingest-pid", &ingest_process.pid().to_string()])
        .output()
        .await
        .expect("run load.py");
    assert!(
        output.status.success(),
        "load.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: Value = serde_json::from_slice(&output.stdout).expect("load.py prints JSON");
    eprintln!("{figures:#}");
    assert_eq!(
        figures["errors"],
        serde_json::json!({}),
        "every message answered CALLRESULT"
    );
    assert_eq!(figures["calls"], figures["results"]);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    write_section(
        &figures,
        idle_rss,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    drop((gateway, ingest_process, broker));
}

fn write_section(f: &Value, idle_rss: f64, load: String) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = citybrain_ocpp_gateway::time::format(std::time::SystemTime::now());
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    let stations = f["stations"].as_u64().unwrap_or(0);
    let section = format!(
        "{BEGIN}\n## OCPP gateway: {stations} chargers at once\n\n\
Written by `make bench-ocpp` (`services/ocpp-gateway/tests/load.rs`, the chargers in `tests/ocpp/load.py`); `make bench` keeps this section.\n\n\
**Machine:** {cores} cores ({cpu}), {memory_gib:.1} GiB memory, Linux {kernel}; load average {load} at the end of the run (the machine is shared). **Date:** {date}. **Commit:** `{commit}`.\n\n\
**Workload:** {stations} OCPP 1.6 charge points (PyPI `ocpp` 2.1.0, which checks every answer against the official schemas; one WebSocket each, {connectors} connectors), all in one Python process on the same machine. \
They connect, {connecting} at a time, boot and report their connectors ({connect_s:.1} s until all {stations} had), and stay connected. Then, for {steady_s:.0} s, half of them run a transaction and every station sends MeterValues every {meter} s, a Heartbeat every {beat} s and a StatusNotification every {status} s: \
{steady} messages answered ({rate} per second); those that carry events (all but the heartbeats) were answered only once ingest (release build, its own process) had them in a private Tansu 0.6.0 broker (memory storage). \
{calls} calls in all, {results} CALLRESULTs, no CALLERROR.\n\n\
| | OCPP gateway | ingest |\n|---|---:|---:|\n\
| CPU during the steady phase, cores (of {cores}) | {gw_cpu:.3} | {in_cpu:.3} |\n\
| RSS at the end of the steady phase | {gw_rss:.1} MB | {in_rss:.1} MB |\n\
| Peak RSS (VmHWM) | {gw_peak:.1} MB | {in_peak:.1} MB |\n\
| RSS before any charger connected | {idle_rss:.1} MB | |\n\n\
Answers as the chargers saw them during the steady phase (the gateway's work plus ingest's call to Kafka): p50 {p50} ms, p99 {p99} ms. The {stations} Python clients took {client_cpu:.2} cores meanwhile.\n{END}\n",
        connectors = f["connectors"],
        connecting = f["connecting"],
        connect_s = n(&f["connect_s"]),
        steady_s = n(&f["steady_s"]),
        meter = f["meter_every_s"],
        beat = f["heartbeat_every_s"],
        status = f["status_every_s"],
        steady = f["steady_results"],
        rate = f["steady_per_s"],
        calls = f["calls"],
        results = f["results"],
        gw_cpu = n(&f["cpu_cores"]["gateway"]),
        in_cpu = n(&f["cpu_cores"]["ingest"]),
        gw_rss = n(&f["rss_mb"]["gateway"]),
        in_rss = n(&f["rss_mb"]["ingest"]),
        gw_peak = n(&f["peak_rss_mb"]["gateway"]),
        in_peak = n(&f["peak_rss_mb"]["ingest"]),
        p50 = f["latency_p50_ms"],
        p99 = f["latency_p99_ms"],
        client_cpu = n(&f["client_cpu_cores"]),
        kernel = kernel.trim(),
    );
    let path = repo_root().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            format!(
                "{}{}{}",
                &text[..begin],
                section,
                text[end + END.len()..].trim_start_matches('\n')
            )
        }
        _ => format!(
            "{}\n{section}",
            text.trim_end_matches('\n').to_string() + "\n"
        ),
    };
    std::fs::write(&path, updated).unwrap();
    eprintln!("wrote the OCPP section of {}", path.display());
}
