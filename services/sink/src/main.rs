//! `citybrain-sink`: reads its settings from the environment (see
//! `config.rs`) and consumes until Ctrl-C or SIGTERM.
//!
//! `citybrain-sink migrate` only applies pending schema migrations and exits.

use anyhow::Context;
use citybrain_sink::config::SinkConfig;
use citybrain_sink::store::Store;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = SinkConfig::from_env().context("invalid configuration")?;
    citybrain_runtime::init_tracing(config.log_json);
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("migrate") => {
            let report = Store::new(&config)
                .migrate(config.store.raw_retention_days)
                .await
                .context("migration failed")?;
            tracing::info!(server = %report.server, applied = ?report.applied, skipped = ?report.skipped, "schema up to date");
            return Ok(());
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}: expected `serve` (default) or `migrate`")
        }
    }
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_SINK_ADMIN_ADDR)",
                config.admin_addr
            )
        })?;
    citybrain_sink::serve(config, admin, citybrain_runtime::shutdown_signal()).await?;
    Ok(())
}
