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
    let http = TcpListener::bind(config.http_addr).await.with_context(|| {
        format!(
            "cannot listen on {} (CITYBRAIN_INGEST_HTTP_ADDR)",
            config.http_addr
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
    let listeners = citybrain_ingest::Listeners { grpc, http, admin };
    citybrain_ingest::serve(config, listeners, citybrain_runtime::shutdown_signal()).await?;
    Ok(())
}
