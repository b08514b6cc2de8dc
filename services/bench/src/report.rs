//! The machine a run measured, and the results written as `BENCHMARKS.json`
//! (for comparing runs) and `BENCHMARKS.md` (for people).

use crate::freshness::Level;
use crate::ingest::Throughput;
use crate::query::Latency;
use crate::sink::Drain;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Targets from the issue.
pub const INGEST_TARGET: f64 = 0.60;
pub const SINK_TARGET: f64 = 0.70;
pub const FRESHNESS_P99_TARGET_MS: f64 = 2000.0;
pub const RSS_TARGET_MB: f64 = 150.0;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    pub kernel: String,
    pub date: String,
    pub commit: String,
    /// Source files of the services changed since the commit (a dirty tree
    /// means the binaries measured are not exactly the commit).
    pub uncommitted: Vec<String>,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
                .unwrap_or_default(),
            kernel: command("uname", &["-r"]),
            date: command("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            commit: command("git", &["rev-parse", "--short=12", "HEAD"]),
            uncommitted: command(
                "git",
                &[
                    "status",
                    "--porcelain",
                    "--",
                    "services",
                    "proto",
                    "Cargo.lock",
                ],
            )
            .lines()
            .map(|l| l.get(3..).unwrap_or(l).to_string())
            .filter(|path| !path.starts_with("services/bench"))
            .collect(),
        }
    }
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

/// CPU used by each process during one phase, in cores (CPU s / wall s).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCpu {
    pub phase: String,
    pub wall_s: f64,
    pub cores: BTreeMap<String, f64>,
}

/// The top of a `perf` profile of one service during one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub service: String,
    pub phase: String,
    pub top_symbols: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub days: u32,
    pub scale: f64,
    pub events: usize,
    pub mix: BTreeMap<String, usize>,
    pub generate_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub workload: Workload,
    pub ingest_events_per_s: f64,
    pub ingest_ceiling_events_per_s: f64,
    pub ingest_ratio: f64,
    pub ingest: Throughput,
    pub ingest_ceiling: Throughput,
    pub sink_rows_per_s: f64,
    pub sink_ceiling_rows_per_s: f64,
    pub sink_ratio: f64,
    pub sink: Drain,
    pub sink_ceiling: Throughput,
    /// The load the headline freshness figures were measured at.
    pub freshness_offered_events_per_s: f64,
    pub freshness_p50_ms: f64,
    pub freshness_p99_ms: f64,
    /// The highest offered load that met the target, if any.
    pub freshness_sustained_events_per_s: Option<f64>,
    pub freshness_levels: Vec<Level>,
    pub peak_rss_mb: BTreeMap<String, f64>,
    pub query_p50_ms: BTreeMap<String, f64>,
    pub query_p99_ms: BTreeMap<String, f64>,
    pub queries: Vec<Latency>,
    pub cpu: Vec<PhaseCpu>,
    pub profiles: Vec<Profile>,
    pub notes: Vec<String>,
    pub total_s: f64,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

impl Results {
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# Benchmarks\n");
        let _ = writeln!(
            w,
            "Written by `make bench` (`services/bench`, binary `citybrain-bench`); every figure \
             below comes from the run described here, and `BENCHMARKS.json` holds the same \
             figures for comparing runs. The services ran as their release binaries, each its \
             own process, against a private Tansu 0.6.0 broker with memory storage and the \
             local ClickHouse 18.16 (a fresh database per run). This machine is shared and \
             noisy: compare the ratios, which were measured side by side in the same run.\n"
        );
        let _ = writeln!(
            w,
            "**Machine:** {} cores ({}), {} GiB memory, Linux {}. **Date:** {}. **Commit:** `{}`. \
             **Run time:** {:.0} s.\n",
            m.cores, m.cpu_model, m.memory_gib, m.kernel, m.date, m.commit, self.total_s
        );
        if !m.uncommitted.is_empty() {
            let _ = writeln!(
                w,
                "**Uncommitted changes** were in the tree the services were built from: {}.\n",
                m.uncommitted.join(", ")
            );
        }
        let wl = &self.workload;
        let mix: Vec<String> = wl
            .mix
            .iter()
            .map(|(k, n)| format!("{k} {}", thousands(*n as f64)))
            .collect();
        let _ = writeln!(
            w,
            "**Workload:** the simulator's town model (seed 20240501, scale {}), {} days of \
             history up to the run's start: {} events ({}), generated in {:.1} s.\n",
            wl.scale,
            wl.days,
            thousands(wl.events as f64),
            mix.join(", "),
            wl.generate_s
        );

        let _ = writeln!(w, "## Results\n");
        let _ = writeln!(w, "| | measured | ceiling / target | ratio | target | |");
        let _ = writeln!(w, "|---|---:|---:|---:|---|---|");
        let _ = writeln!(
            w,
            "| Ingest, events/s acknowledged | {} | {} (bare producer) | {:.0}% | ≥ 60% | {} |",
            thousands(self.ingest_events_per_s),
            thousands(self.ingest_ceiling_events_per_s),
            self.ingest_ratio * 100.0,
            verdict(self.ingest_ratio >= INGEST_TARGET)
        );
        let _ = writeln!(
            w,
            "| Sink, rows/s from a backlog | {} | {} (direct RowBinary) | {:.0}% | ≥ 70% | {} |",
            thousands(self.sink_rows_per_s),
            thousands(self.sink_ceiling_rows_per_s),
            self.sink_ratio * 100.0,
            verdict(self.sink_ratio >= SINK_TARGET)
        );
        let _ = writeln!(
            w,
            "| Freshness p50 / p99 at {} events/s offered | {:.0} / {:.0} ms | | | p99 ≤ 2000 ms | {} |",
            thousands(self.freshness_offered_events_per_s),
            self.freshness_p50_ms,
            self.freshness_p99_ms,
            verdict(self.freshness_p99_ms <= FRESHNESS_P99_TARGET_MS)
        );
        for (service, mb) in &self.peak_rss_mb {
            let _ = writeln!(
                w,
                "| Peak RSS, {service} | {mb:.0} MB | | | ≤ 150 MB | {} |",
                verdict(*mb <= RSS_TARGET_MB)
            );
        }
        for q in &self.queries {
            let _ = writeln!(
                w,
                "| Query `{}` p50 / p99 | {:.0} / {:.0} ms | | | | {} rows |",
                q.name, q.p50_ms, q.p99_ms, q.rows
            );
        }
        let _ = writeln!(w);

        let i = &self.ingest;
        let c = &self.ingest_ceiling;
        let _ = writeln!(w, "## 1. Ingest\n");
        let _ = writeln!(
            w,
            "{} events in batches of 1000 through unary `Ingest` calls, 4 connections × 2 calls \
             in flight: {} acknowledged in {:.1} s ({} not ACCEPTED). The ceiling sent the same \
             {} encoded `IngestedEvent` records (same keys, headers and topics under another \
             prefix) with one rdkafka producer configured as ingest's (acks=all, lz4, linger \
             5 ms, idempotence off) to the same broker: {:.1} s ({} failed). Ingest ran with \
             `CITYBRAIN_INGEST_IDEMPOTENCE=false`: Tansu 0.6.0 cannot bump an idempotent \
             producer's epoch (see `services/ingest/src/config.rs`); production keeps it on.\n",
            thousands(i.events as f64 + i.not_accepted as f64),
            thousands(i.events as f64),
            i.seconds,
            i.not_accepted,
            thousands(c.events as f64 + c.not_accepted as f64),
            c.seconds,
            c.not_accepted
        );
        self.cpu_table(w, "ingest");
        self.cpu_table(w, "ingest ceiling");
        self.profile_list(w, "ingest");

        let d = &self.sink;
        let _ = writeln!(w, "## 2. Sink\n");
        let _ = writeln!(
            w,
            "The sink started with the whole ingest phase's {} events waiting in Kafka \
             (4 partitions per topic) and its defaults (batches of ≤ 50,000 rows or 1 s, \
             event-id lookup on). First rows after {:.1} s (group join); all {} rows after \
             {:.1} s: {} rows/s between first and last rows, {} rows/s counting from start. \
             The ceiling inserted the same events, decoded into the sink's own row types, into \
             a second fresh database with the same schema (so the same materialized views \
             ran), one INSERT per raw table per 50,000 events (a batch's tables concurrently, as the sink writes them), one client: {:.1} s.\n",
            thousands(d.rows as f64),
            d.first_rows_after_s,
            thousands(d.rows as f64),
            d.seconds,
            thousands(d.per_s),
            thousands(d.per_s_from_start),
            self.sink_ceiling.seconds
        );
        self.cpu_table(w, "sink");
        self.cpu_table(w, "sink ceiling");
        self.profile_list(w, "sink");

        let _ = writeln!(w, "## 3. Freshness\n");
        let _ = writeln!(
            w,
            "Town events re-stamped to the moment of sending (fresh ids), offered at a steady \
             rate in calls of ≤ 1000 every 50 ms, while four marker vehicles each reported one \
             position per second in calls of their own; the query service's \
             `/v1/live/vehicles` was polled every 100 ms, and a marker counted as visible once \
             its vehicle's newest position reached the marker's second (latency = answer \
             arrival − event time, so it includes up to one poll interval). Levels run from \
             20,000 events/s down until one keeps up (≥ 95% of the offered load accepted, every \
             marker seen, p99 ≤ 2 s). The sink column is the sink's own \
             `citybrain_sink_freshness_seconds` histogram over the level (event time to \
             INSERT, all events, bucket upper bounds), which splits the delay between the \
             write path and what follows the INSERT.\n"
        );
        let _ = writeln!(
            w,
            "| offered/s | accepted/s | not accepted | markers seen | p50 ms | p99 ms | max ms | sink p50 / p99 (bucket) | |"
        );
        let _ = writeln!(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for l in &self.freshness_levels {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {}/{} | {:.0} | {:.0} | {:.0} | ≤ {} / ≤ {} s | {} |",
                thousands(l.offered_per_s),
                thousands(l.achieved_per_s),
                l.not_accepted,
                l.markers_seen,
                l.markers_sent,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.sink_insert_p50_le_s.map_or("?".into(), |v| v.to_string()),
                l.sink_insert_p99_le_s.map_or("?".into(), |v| v.to_string()),
                if l.sustained(FRESHNESS_P99_TARGET_MS) {
                    "kept up"
                } else {
                    "fell behind"
                }
            );
        }
        let _ = writeln!(w);
        match self.freshness_sustained_events_per_s {
            Some(rate) => {
                let _ = writeln!(
                    w,
                    "Highest offered load that kept up: {} events/s.\n",
                    thousands(rate)
                );
            }
            None => {
                let _ = writeln!(w, "No level kept up.\n");
            }
        }
        for phase in self
            .cpu
            .iter()
            .filter(|p| p.phase.starts_with("freshness"))
            .map(|p| p.phase.clone())
            .collect::<Vec<_>>()
        {
            self.cpu_table(w, &phase);
        }

        let _ = writeln!(w, "## 4. Memory\n");
        let _ = writeln!(
            w,
            "Peak resident set (`VmHWM` from `/proc/<pid>/status`) of each service process \
             over the whole run (ingest: phases 1–5, sink: 2–5, query: 5 then 3):\n"
        );
        let _ = writeln!(w, "| service | peak RSS MB | target |");
        let _ = writeln!(w, "|---|---:|---|");
        for (service, mb) in &self.peak_rss_mb {
            let _ = writeln!(
                w,
                "| {service} | {mb:.0} | {} |",
                verdict(*mb <= RSS_TARGET_MB)
            );
        }
        let _ = writeln!(w);

        let _ = writeln!(w, "## 5. Query\n");
        let _ = writeln!(
            w,
            "The planners' main aggregates over the whole loaded history (from the model's \
             origin to a day past the run) through the query service's HTTP API, one request \
             at a time, a new connection each, after warm-up requests:\n"
        );
        let _ = writeln!(
            w,
            "| aggregate | rows | samples | p50 ms | p99 ms | max ms |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
        for q in &self.queries {
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {:.0} | {:.0} | {:.0} |",
                q.name, q.rows, q.samples, q.p50_ms, q.p99_ms, q.max_ms
            );
        }
        let _ = writeln!(w);
        if !self.notes.is_empty() {
            let _ = writeln!(w, "## Notes\n");
            for note in &self.notes {
                let _ = writeln!(w, "- {note}");
            }
            let _ = writeln!(w);
        }
        s
    }

    fn cpu_table(&self, w: &mut String, phase: &str) {
        let Some(p) = self.cpu.iter().find(|p| p.phase == phase) else {
            return;
        };
        let parts: Vec<String> = p
            .cores
            .iter()
            .filter(|(_, cores)| **cores >= 0.01)
            .map(|(name, cores)| format!("{name} {cores:.2}"))
            .collect();
        let total: f64 = p.cores.values().sum();
        let _ = writeln!(
            w,
            "CPU during *{phase}* ({:.1} s), in cores of {}: {} (total {total:.2}).\n",
            p.wall_s,
            self.machine.cores,
            parts.join(", ")
        );
    }

    fn profile_list(&self, w: &mut String, service: &str) {
        for p in self.profiles.iter().filter(|p| p.service == service) {
            let _ = writeln!(
                w,
                "`perf record` of {} during the {} phase, hottest symbols (self time):\n",
                p.service, p.phase
            );
            let _ = writeln!(w, "```text");
            for line in &p.top_symbols {
                let _ = writeln!(w, "{line}");
            }
            let _ = writeln!(w, "```\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-4200.0), "-4,200");
    }
}
