//! `citybrain-query`: reads its settings from the environment (see
//! `config.rs`) and serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use citybrain_query::config::QueryConfig;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = QueryConfig::from_env().context("invalid configuration")?;
    citybrain_runtime::init_tracing(config.log_json);
    let bind = |addr, name: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} ({name})"))
    };
    let grpc = bind(config.grpc_addr, "CITYBRAIN_QUERY_GRPC_ADDR").await?;
    let http = bind(config.http_addr, "CITYBRAIN_QUERY_HTTP_ADDR").await?;
    let admin = bind(config.admin_addr, "CITYBRAIN_QUERY_ADMIN_ADDR").await?;
    citybrain_query::serve(
        config,
        grpc,
        http,
        admin,
        citybrain_runtime::shutdown_signal(),
    )
    .await?;
    Ok(())
}
