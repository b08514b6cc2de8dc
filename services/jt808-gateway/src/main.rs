//! `citybrain-jt808-gateway`: reads its settings from the environment (see
//! `config.rs`) and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use citybrain_jt808_gateway::config::Jt808Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Jt808Config::from_env().context("invalid configuration")?;
    citybrain_runtime::init_tracing(config.log_json);
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_JT808_ADDR)",
                config.listen_addr
            )
        })?;
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_JT808_ADMIN_ADDR)",
                config.admin_addr
            )
        })?;
    citybrain_jt808_gateway::serve(
        config,
        listener,
        admin,
        citybrain_runtime::shutdown_signal(),
    )
    .await?;
    Ok(())
}
