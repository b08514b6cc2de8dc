//! `make run`, the way a newcomer runs it: on a private stack (its own
//! ports and state directory, the debug binaries of this build), its output
//! piped through `tee`, stopped with Ctrl-C — SIGINT to the whole foreground
//! process group, so `tee` dies at the same moment. Stopping in order must not
//! depend on the pipe: afterwards no service, broker or ClickHouse of that
//! stack may still run.
//!
//! The binaries must be built (`make test` builds them first:
//! `cargo build --bins`).

use citybrain_tests::process::{ChildProcess, binary, free_port, port_open, repo_root};
use citybrain_tests::{eventually, scratch_dir};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The addresses `deploy/local/run.sh` reads (env.sh), each a free port.
fn private_ports() -> Vec<(&'static str, u16)> {
    [
        "KAFKA_PORT",
        "CLICKHOUSE_HTTP_PORT",
        "CLICKHOUSE_TCP_PORT",
        "CITYBRAIN_INGEST_GRPC_ADDR",
        "CITYBRAIN_INGEST_ADMIN_ADDR",
        "CITYBRAIN_SINK_ADMIN_ADDR",
        "CITYBRAIN_QUERY_HTTP_ADDR",
        "CITYBRAIN_QUERY_GRPC_ADDR",
        "CITYBRAIN_QUERY_ADMIN_ADDR",
        "CITYBRAIN_JT808_ADDR",
        "CITYBRAIN_JT808_ADMIN_ADDR",
        "CITYBRAIN_INGEST_HTTP_ADDR",
        "MQTT_PORT",
        "CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR",
        "CITYBRAIN_OCPP_ADDR",
        "CITYBRAIN_OCPP_ADMIN_ADDR",
    ]
    .into_iter()
    .map(|name| (name, free_port()))
    .collect()
}

fn any_port_open(ports: &[(&str, u16)]) -> impl Future<Output = Vec<u16>> {
    let ports: Vec<u16> = ports.iter().map(|(_, port)| *port).collect();
    async move {
        let mut open = Vec::new();
        for port in ports {
            if port_open(port).await {
                open.push(port);
            }
        }
        open
    }
}

/// Pid files of the stack (broker, ClickHouse, mosquitto) under `dir` whose
/// process still runs.
fn live_pid_files(dir: &Path) -> Vec<String> {
    let mut live = Vec::new();
    for sub in ["broker", "clickhouse", "mosquitto"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pid")
                && let Ok(pid) = std::fs::read_to_string(&path)
                && Path::new(&format!("/proc/{}", pid.trim())).exists()
            {
                live.push(path.display().to_string());
            }
        }
    }
    live
}

/// Kills, when dropped, every process started with `STACK_DIR=<stack>` in
/// its environment (all of make run's are): a failing run must not leave
/// its stack behind for the next test.
struct KillLeftovers(String);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        let marker = format!("STACK_DIR={}", self.0);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
            {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_through_a_tee_stops_every_service_and_the_stack() {
    let dir = scratch_dir("make-run");
    let stack = dir.join("stack");
    let _leftovers = KillLeftovers(stack.display().to_string());
    let ports = private_ports();
    let bin_dir = binary("citybrain-ingest")
        .parent()
        .expect("binaries' directory")
        .to_path_buf();
    for name in [
        "citybrain-sink",
        "citybrain-query",
        "citybrain-simulator",
        "citybrain-jt808-gateway",
        "citybrain-ocpp-gateway",
    ] {
        binary(name);
    }

    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            "make --no-print-directory run 2>&1 | tee {}",
            dir.join("tee.log").display()
        ))
        .current_dir(repo_root())
        .env("STACK_DIR", &stack)
        .env("BROKER_STORAGE", "memory")
        .env("CITYBRAIN_BIN_DIR", &bin_dir)
        // Today's history only: the test is about stopping.
        .env("SIMULATOR_DAYS", "0")
        .env_remove("CITYBRAIN_KAFKA_BROKERS")
        .env_remove("CITYBRAIN_CLICKHOUSE_URL")
        // A process group of its own, as a terminal's foreground job.
        .process_group(0);
    for (name, port) in &ports {
        let value = if name.starts_with("CITYBRAIN_") {
            format!("127.0.0.1:{port}")
        } else {
            port.to_string()
        };
        command.env(name, value);
    }
    let mut run = ChildProcess::spawn("make-run", &mut command, &dir);
    let simulator_log = stack.join("logs/citybrain-simulator.log");
    eventually(
        Duration::from_secs(240),
        "make run to start the stack and every service, and the town to run live",
        || async {
            std::fs::read_to_string(&simulator_log).is_ok_and(|log| log.contains("running live"))
        },
    )
    .await;
    assert!(
        live_pid_files(&stack).len() == 3,
        "broker, ClickHouse and mosquitto run: {:?}",
        live_pid_files(&stack)
    );

    // Ctrl-C: SIGINT to the whole group (make, bash, tee).
    run.signal_group("INT");
    eventually(
        Duration::from_secs(120),
        "make run to stop after Ctrl-C",
        || std::future::ready(!run.is_running()),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "every service, the broker and ClickHouse of the stack to be gone",
        || async { any_port_open(&ports).await.is_empty() && live_pid_files(&stack).is_empty() },
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
