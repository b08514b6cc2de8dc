//! `citybrain-ocpp-gateway`: reads its settings from the environment (see
//! `config.rs`) and serves chargers until Ctrl-C or SIGTERM.

use anyhow::Context;
use citybrain_ocpp_gateway::config::GatewayConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = GatewayConfig::from_env().context("invalid configuration")?;
    citybrain_runtime::init_tracing(config.log_json);
    let ocpp = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_OCPP_ADDR)",
                config.listen_addr
            )
        })?;
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_OCPP_ADMIN_ADDR)",
                config.admin_addr
            )
        })?;
    citybrain_ocpp_gateway::serve(config, ocpp, admin, citybrain_runtime::shutdown_signal())
        .await?;
    Ok(())
}
