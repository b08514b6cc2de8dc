//! `citybrain-simulator <live|backfill|run> [flags]`: see `config.rs`.

use anyhow::Context;
use citybrain_simulator::config::{ConfigFault, SimulatorConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match SimulatorConfig::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(ConfigFault::Help) => {
            eprint!("{}", citybrain_simulator::config::USAGE);
            return Ok(());
        }
        Err(err) => return Err(err).context("invalid configuration"),
    };
    citybrain_runtime::init_tracing(config.log_json);
    let summary = citybrain_simulator::run(config, citybrain_runtime::shutdown_signal()).await?;
    tracing::info!(
        sent = summary.sent,
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        rejected = summary.rejected,
        retried = summary.retried,
        seconds = summary.elapsed.as_secs_f64(),
        events_per_s = summary.rate().round(),
        "simulator stopped"
    );
    if summary.rejected > 0 {
        anyhow::bail!(
            "ingest rejected {} simulated events (see the log above)",
            summary.rejected
        );
    }
    Ok(())
}
