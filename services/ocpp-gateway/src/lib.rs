//! The OCPP gateway: the central-system (CSMS) side of OCPP 1.6-J and 2.0.1
//! for the town's chargers. Chargers connect over WebSocket to
//! `/ocpp/{chargePointId}`; their messages become contract events sent
//! through the ingest gRPC API, and a message is answered CALLRESULT only
//! once ingest accepted every event made of it.
//!
//! Pure parts, unit-tested without I/O: [`frame`] (OCPP-J), [`time`],
//! [`units`], [`registry`], [`txid`], [`events`] (ids), [`session`] with
//! [`v16`] and [`v201`] (a CALL in, a decision out). I/O: [`server`] (HTTP
//! upgrade, who may connect), [`connection`] (one socket), [`store`] (ingest).
//!
//! [`serve`] runs the whole service on listeners the caller bound, so tests
//! bind port 0.

pub mod config;
pub mod connection;
pub mod error;
pub mod events;
pub mod frame;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod session;
pub mod store;
pub mod time;
pub mod txid;
pub mod units;
pub mod v16;
pub mod v201;

use crate::config::GatewayConfig;
use crate::registry::{Registry, RegistryError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The OCPP version a connection speaks (its WebSocket subprotocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V16,
    V201,
}

impl Version {
    /// The WebSocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }

    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name.trim() {
            "ocpp1.6" => Some(Version::V16),
            "ocpp2.0.1" => Some(Version::V201),
            _ => None,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Version::V16 => "1.6",
            Version::V201 => "2.0.1",
        }
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "no ingest API key for tenant {0:?} of the station registry: add {0}=KEY to CITYBRAIN_OCPP_INGEST_KEYS"
    )]
    MissingKey(String),
    #[error(transparent)]
    Client(#[from] citybrain_ingest_client::ClientError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the gateway until `shutdown` resolves; then it stops accepting
/// chargers, answers the messages in flight, closes every socket with
/// "going away" (1001) and waits for the station-offline reports it owes,
/// all within the configured shutdown timeout.
pub async fn serve(
    config: GatewayConfig,
    ocpp_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let registry = Registry::load(&config.stations_file, config.production)?;
    let ingest = store::Ingest::new(&config)?;
    for tenant in registry.tenants() {
        if !ingest.has_tenant(tenant) {
            return Err(ServeError::MissingKey(tenant.to_string()));
        }
    }
    metrics::registry(registry.len(), "loaded");
    let metrics_handle = citybrain_runtime::install_prometheus(metrics::BUCKETS);
    let readiness = citybrain_runtime::Readiness::new();
    let stop = CancellationToken::new();
    let shared = Arc::new(server::Shared::new(config, registry, ingest, stop.clone()));

    let admin_addr = admin_listener.local_addr()?;
    let ocpp_addr = ocpp_listener.local_addr()?;
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(citybrain_runtime::serve_admin(
        admin_listener,
        metrics_handle,
        readiness.clone(),
        admin_stop.clone().cancelled_owned(),
    ));
    let watchers = [
        tokio::spawn(citybrain_runtime::watch(
            store::IngestProbe(shared.clone()),
            readiness.clone(),
            store::READINESS_INTERVAL,
            stop.clone(),
        )),
        tokio::spawn(server::watch_registry(shared.clone())),
    ];
    tracing::info!(
        ocpp = %format!("ws://{ocpp_addr}/ocpp/{{chargePointId}}"),
        admin = %admin_addr,
        ingest = %shared.config.ingest_url,
        stations = shared.registry().len(),
        "ocpp gateway serving"
    );

    let http_stop = stop.clone();
    let served = axum::serve(
        ocpp_listener,
        server::router(shared.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        http_stop.cancel();
    })
    .await;

    // Stop is cancelled: connections answer what they are handling, close
    // with 1001 and end; offline reports still being delivered get the rest
    // of the timeout.
    stop.cancel();
    shared.tasks.close();
    let open = shared.tasks.len();
    tracing::info!(open, "no longer accepting chargers; closing their sockets");
    let timeout = shared.config.shutdown_timeout;
    if tokio::time::timeout(timeout, shared.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = shared.tasks.len(),
            "connections still open after {timeout:?}; abandoning them"
        );
    }
    admin_stop.cancel();
    for watcher in watchers {
        watcher.abort();
    }
    let admin_result = tokio::time::timeout(Duration::from_secs(5), admin).await;
    served?;
    if let Ok(Ok(result)) = admin_result {
        result?;
    }
    tracing::info!("ocpp gateway stopped");
    Ok(())
}
