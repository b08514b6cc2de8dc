//! `citybrain-mqtt-bridge`: reads its settings from the environment (see
//! `config.rs`) and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use citybrain_mqtt_bridge::config::BridgeConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = BridgeConfig::from_env().context("invalid configuration")?;
    citybrain_runtime::init_tracing(config.log_json);
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR)",
                config.admin_addr
            )
        })?;
    citybrain_mqtt_bridge::serve(config, admin, citybrain_runtime::shutdown_signal()).await?;
    Ok(())
}
