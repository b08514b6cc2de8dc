//! The processes a run starts (the test kit's [`ChildProcess`]: killed when
//! dropped, output in a log file): a private Tansu broker (memory storage)
//! and the three services as their release binaries, so each one's memory
//! and CPU can be read from `/proc/<pid>`.

use anyhow::bail;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub use citybrain_tests::process::{ChildProcess, free_port, port_open, tansu_bin};

/// Fails if `process` has exited (it should run until stopped).
pub fn check_alive(process: &mut ChildProcess) -> anyhow::Result<()> {
    if !process.is_running() {
        bail!("{} exited early; see its log", process.name);
    }
    Ok(())
}

/// Memory and CPU of one process, from `/proc/<pid>/status` and `stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// Peak resident set (VmHWM), MiB.
    pub peak_rss_mb: f64,
    /// User + system CPU time so far, seconds.
    pub cpu_s: f64,
}

impl ProcStats {
    pub fn read(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            peak_rss_mb: peak_kb / 1024.0,
            cpu_s: cpu_seconds(pid),
        }
    }
}

/// utime + stime of `pid` in seconds (clock ticks are 100 Hz on Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; fields restart after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After ')': state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Waits until something accepts connections on `port`.
pub async fn wait_for_port(port: u16, what: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !port_open(port).await {
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Starts a private Tansu with memory storage on `port`.
pub async fn start_broker(port: u16, dir: &Path) -> anyhow::Result<ChildProcess> {
    let url = format!("tcp://127.0.0.1:{port}");
    let broker = ChildProcess::spawn(
        "tansu",
        Command::new(tansu_bin()).current_dir(dir).args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ]),
        dir,
    );
    wait_for_port(port, "the private broker", Duration::from_secs(30)).await?;
    Ok(broker)
}
