//! `citybrain-ingest`: reads its settings from the environment (see
//! `config.rs`) and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use citybrain_ingest::config::IngestConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = IngestConfig::from_env().context("invalid configuration")?;
    citybrain_runtime::init_tracing(config.log_json);
    let grpc = TcpListener::bind(config.grpc_addr).await.with_context(|| {
        format!(
            "cannot listen on {} (CITYBRAIN_INGEST_GRPC_ADDR)",
            config.grpc_addr
        )
    })?;
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_INGEST_ADMIN_ADDR)",
                config.admin_addr
            )
        })?;
    citybrain_ingest::serve(config, grpc, admin, citybrain_runtime::shutdown_signal()).await?;
    Ok(())
}
