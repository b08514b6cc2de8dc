//! `citybrain-bench`: runs every benchmark once and writes `BENCHMARKS.md`
//! and `BENCHMARKS.json` (see `services/bench/README.md` for the settings);
//! `citybrain-bench jt808` runs only the JT/T 808 gateway's.

use anyhow::Context;
use citybrain_bench::jt808::Jt808Options;
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
        jt808: Jt808Options {
            terminals: var("BENCH_JT808_TERMINALS", 1000)?,
            interval: Duration::from_secs(var("BENCH_JT808_INTERVAL_S", 10)?),
            steady: Duration::from_secs(var("BENCH_JT808_STEADY_S", 120)?),
        },
        root,
    };
    // `citybrain-bench jt808`: only the gateway's benchmark, into its section.
    if std::env::args().nth(1).as_deref() == Some("jt808") {
        let result = citybrain_bench::jt808::run(&options, &options.jt808).await?;
        citybrain_bench::jt808_report::write(&options.out_dir, &result)?;
        tracing::info!(
            terminals = result.terminals,
            gateway_cores = result
                .cpu_cores
                .get("jt808 gateway")
                .copied()
                .unwrap_or(0.0),
            gateway_rss_mb = result.gateway_rss_mb,
            "wrote the jt808 section of BENCHMARKS.md and BENCHMARKS.json"
        );
        return Ok(());
    }
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
