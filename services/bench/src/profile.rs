//! `perf` profiles of a service during a phase, when `perf` works here.

use crate::procs::ChildProcess;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Whether `perf` can sample here. Profiles use the `cpu-clock` software
/// event: VMs like this one often expose no hardware counters.
pub fn available() -> bool {
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A `perf record` attached to one process.
pub struct Recording {
    proc: ChildProcess,
    file: PathBuf,
}

impl Recording {
    pub fn start(pid: u32, dir: &Path, label: &'static str) -> anyhow::Result<Self> {
        let file = dir.join(format!("perf-{label}.data"));
        let proc = ChildProcess::spawn(
            label,
            Command::new("perf").args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "499",
                "-p",
                &pid.to_string(),
                "-o",
                &file.to_string_lossy(),
            ]),
            dir,
        );
        Ok(Self { proc, file })
    }

    /// Stops recording and returns the hottest symbols by self time.
    pub fn finish(mut self) -> Vec<String> {
        self.proc.signal("INT");
        self.proc.stop(Duration::from_secs(20));
        let report = Command::new("perf")
            .args(["report", "--stdio", "--no-children", "--sort", "dso,symbol"])
            .args(["--percent-limit", "1.5", "-i"])
            .arg(&self.file)
            .output();
        let _ = std::fs::remove_file(&self.file);
        let Ok(report) = report else {
            return vec!["perf report failed to run".into()];
        };
        String::from_utf8_lossy(&report.stdout)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#') && line.contains('%'))
            .take(15)
            .map(|line| {
                let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
                line.chars().take(140).collect()
            })
            .collect()
    }
}
