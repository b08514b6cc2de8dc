//! The JT/T 808 benchmark's section of `BENCHMARKS.md` (between markers,
//! replaced in place by each run) and its key in `BENCHMARKS.json` (added
//! last, the rest of the file kept as the main run wrote it).

use crate::jt808::Jt808Result;
use anyhow::Context;
use std::fmt::Write as _;

const BEGIN: &str = "<!-- jt808-benchmark:begin -->";
const END: &str = "<!-- jt808-benchmark:end -->";

impl Jt808Result {
    /// The section of `BENCHMARKS.md`, between its markers.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "{BEGIN}");
        let _ = writeln!(
            w,
            "## JT/T 808 gateway: {} terminals\n",
            thousands(self.terminals as f64)
        );
        let _ = writeln!(
            w,
            "Written by `make bench-jt808` (and `make bench`; `services/bench/src/jt808.rs`). \
             {} terminals (half JT/T 808-2013, half 2019, written with the gateway's codec) \
             connected within about a second (50 every 50 ms) and stayed connected, \
             registered and authenticated, then each sent a 0x0200 location \
             report every {:.0} s, the fleet's reports spread evenly over the interval, and \
             waited for the platform's 0x8001 before the next, like a terminal. The gateway and \
             ingest ran as their release binaries against a private Tansu 0.6.0 (memory \
             storage); CPU and memory come from `/proc` over the {:.0} s steady state.\n",
            thousands(self.terminals as f64),
            self.interval_s,
            self.steady_s
        );
        let _ = writeln!(
            w,
            "**Machine:** {} cores ({}), {} GiB memory, Linux {}. **Date:** {}. **Commit:** `{}`.\n",
            m.cores, m.cpu_model, m.memory_gib, m.kernel, m.date, m.commit
        );
        if !m.uncommitted.is_empty() {
            let _ = writeln!(
                w,
                "**Uncommitted changes** were in the tree the services were built from: {}.\n",
                m.uncommitted.join(", ")
            );
        }
        let rate = self.terminals as f64 / self.interval_s;
        let _ = writeln!(w, "| | measured |\n|---|---:|");
        let rows = [
            (
                "terminals connected and authenticated",
                format!("{} in {:.1} s", self.terminals, self.connect_s),
            ),
            ("reports offered", format!("{rate:.0}/s")),
            (
                "reports answered ok / not ok",
                format!(
                    "{} / {}",
                    thousands(self.reports_ok as f64),
                    self.reports_not_ok
                ),
            ),
            (
                "accepted by ingest (vehicle positions)",
                thousands(self.ingest_accepted as f64),
            ),
            (
                "answer latency p50 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    self.answer_p50_ms, self.answer_p99_ms, self.answer_max_ms
                ),
            ),
            (
                "gateway CPU",
                format!(
                    "{:.3} cores",
                    self.cpu_cores.get("jt808 gateway").copied().unwrap_or(0.0)
                ),
            ),
            (
                "gateway RSS at the end / peak",
                format!(
                    "{:.0} / {:.0} MB",
                    self.gateway_rss_mb, self.gateway_peak_rss_mb
                ),
            ),
            (
                "ingest peak RSS",
                format!("{:.0} MB", self.ingest_peak_rss_mb),
            ),
        ];
        for (what, value) in rows {
            let _ = writeln!(w, "| {what} | {value} |");
        }
        let cores: Vec<String> = self
            .cpu_cores
            .iter()
            .map(|(name, c)| format!("{name} {c:.3}"))
            .collect();
        let _ = writeln!(
            w,
            "\nCPU over the steady state, in cores of {}: {}.\n",
            m.cores,
            cores.join(", ")
        );
        let _ = writeln!(w, "{END}");
        s
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes `result` into `BENCHMARKS.md` (its section) and `BENCHMARKS.json`
/// (key `jt808`) in `dir`, keeping everything else.
pub fn write(dir: &std::path::Path, result: &Jt808Result) -> anyhow::Result<()> {
    let md = dir.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&md).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&md, splice(&existing, &result.markdown()))?;
    let json = dir.join("BENCHMARKS.json");
    let existing = std::fs::read_to_string(&json).unwrap_or_else(|_| "{}".into());
    let text = with_key(&existing, &serde_json::to_string_pretty(result)?);
    serde_json::from_str::<serde_json::Value>(&text)
        .context("BENCHMARKS.json would not be JSON")?;
    std::fs::write(&json, text)?;
    Ok(())
}

/// The JSON object `existing` with its last key `jt808` set to `value`,
/// everything else as it was written (the main run's field order).
fn with_key(existing: &str, value: &str) -> String {
    let head = match existing.find("\n  \"jt808\": ") {
        Some(at) => existing[..at].trim_end().trim_end_matches(','),
        None => existing.trim_end().trim_end_matches('}').trim_end(),
    };
    let value = value.replace('\n', "\n  ");
    if head.trim() == "{" {
        format!("{{\n  \"jt808\": {value}\n}}\n")
    } else {
        format!("{head},\n  \"jt808\": {value}\n}}\n")
    }
}

/// `existing` with its JT/T 808 section replaced by `section` (appended
/// when it has none).
pub fn splice(existing: &str, section: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            let after = &existing[end + END.len()..];
            format!("{}{}{}", &existing[..begin], section.trim_end(), after)
        }
        _ => format!("{}\n\n{}", existing.trim_end(), section),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place() {
        let section = format!("{BEGIN}\n## new\n{END}\n");
        let appended = splice("# Benchmarks\n\nbody\n", &section);
        assert_eq!(appended, format!("# Benchmarks\n\nbody\n\n{section}"));
        let again = splice(
            &(appended.clone() + "\n## later\n"),
            &format!("{BEGIN}\n## newer\n{END}\n"),
        );
        assert!(
            again.contains("## newer") && !again.contains("## new\n"),
            "{again}"
        );
        assert!(again.ends_with("\n## later\n"), "{again}");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        let first = with_key("{\n  \"b\": 1,\n  \"a\": 2\n}\n", "{\n  \"x\": 1\n}");
        assert_eq!(
            first,
            "{\n  \"b\": 1,\n  \"a\": 2,\n  \"jt808\": {\n    \"x\": 1\n  }\n}\n"
        );
        let again = with_key(&first, "{\n  \"x\": 2\n}");
        assert_eq!(again, first.replace("\"x\": 1", "\"x\": 2"));
        assert_eq!(with_key("{}", "3"), "{\n  \"jt808\": 3\n}\n");
    }
}
