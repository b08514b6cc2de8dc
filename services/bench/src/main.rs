//! `citybrain-bench`: runs every benchmark once and writes `BENCHMARKS.md`
//! and `BENCHMARKS.json` (see `services/bench/README.md` for the settings).

use anyhow::Context;
use citybrain_bench::{Options, run};
use std::path::PathBuf;
use std::time::Duration;

fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid {name}: {text:?}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    citybrain_runtime::init_tracing(false);
    let root: PathBuf = var("BENCH_ROOT", std::env::current_dir()?)?;
    let days: u32 = var("BENCH_DAYS", 28)?;
    anyhow::ensure!(
        (1..=29).contains(&days),
        "BENCH_DAYS must be 1..=29 (ingest refuses events over 30 days old)"
    );
    let rates: String = var("BENCH_FRESHNESS_RATES", "20000,10000,5000,2500".to_string())?;
    let options = Options {
        days,
        scale: var("BENCH_SCALE", 1.0)?,
        clickhouse_url: var(
            "CITYBRAIN_CLICKHOUSE_URL",
            "http://127.0.0.1:18123".to_string(),
        )?,
        bin_dir: var("BENCH_BIN_DIR", root.join("target/release"))?,
        out_dir: var("BENCH_OUT", root.clone())?,
        freshness_rates: rates
            .split(',')
            .map(|r| r.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .context("invalid BENCH_FRESHNESS_RATES: expected numbers separated by commas")?,
        freshness_duration: Duration::from_secs(var("BENCH_FRESHNESS_SECONDS", 20)?),
        query_samples: var("BENCH_QUERY_SAMPLES", 30)?,
        perf: var("BENCH_PERF", true)?,
        root,
    };
    let results = run(options).await?;
    tracing::info!(
        ingest_ratio = results.ingest_ratio,
        sink_ratio = results.sink_ratio,
        freshness_p99_ms = results.freshness_p99_ms,
        total_s = results.total_s,
        "wrote BENCHMARKS.md and BENCHMARKS.json"
    );
    Ok(())
}
