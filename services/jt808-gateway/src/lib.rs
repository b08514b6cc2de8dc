//! The JT/T 808 gateway: the vehicle terminals of the town's shuttles,
//! sanitation trucks and patrol cars connect over TCP, register and
//! authenticate, and their location reports (0x0200, batches 0x0704)
//! become `VehiclePosition` events sent through the ingest gRPC API.
//!
//! - [`codec`]: framing (delimiters, escaping, checksum, frame limit);
//!   [`message`]: 2013 / 2019 headers and the platform's replies;
//!   [`split`]: split packets; [`body`]: the bodies it reads;
//!   [`location`]: every unit conversion into the contract.
//! - [`session`]: one connection's protocol state, pure; [`registry`]:
//!   who may connect; [`auth_codes`]: the codes issued, persisted.
//! - [`serve`] runs the service on listeners the caller bound, so tests
//!   bind port 0 and talk to it as terminals do.

pub mod auth_codes;
pub mod body;
pub mod codec;
pub mod config;
mod connection;
pub mod error;
pub mod location;
pub mod message;
pub mod metrics;
pub mod registry;
pub mod session;
pub mod split;
pub mod wire;

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod session_tests;

pub use error::ServeError;

use crate::auth_codes::AuthCodes;
use crate::config::Jt808Config;
use crate::registry::{Registry, Vehicle};
use citybrain_ingest_client::IngestClient;
use citybrain_runtime::Readiness;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often ingest's health is checked for `/readyz`, and how long one
/// check may take.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every connection shares.
pub(crate) struct Gateway {
    registry: Registry,
    codes: AuthCodes,
    /// One ingest client (API key) per tenant of the registry.
    clients: HashMap<String, IngestClient>,
    idle_timeout: Duration,
    /// The connection each authenticated terminal is on (by connection id).
    live: Mutex<HashMap<String, (u64, CancellationToken)>>,
}

impl session::Directory for Gateway {
    fn vehicle(&self, number: &str) -> Option<Arc<Vehicle>> {
        self.registry.get(number).cloned()
    }

    fn auth_code(&self, vehicle: &Vehicle) -> Option<String> {
        self.codes.get(&vehicle.terminal)
    }
}

/// Runs the gateway until `shutdown` resolves, then stops accepting
/// terminals, lets each connection answer the message in hand and closes
/// them (bounded by the drain timeout).
pub async fn serve(
    config: Jt808Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let registry = Registry::load(&config.registry_file)?;
    let mut clients = HashMap::new();
    for tenant in registry.tenants() {
        let key = config
            .api_keys
            .get(tenant)
            .ok_or_else(|| ServeError::MissingKey {
                tenant: tenant.into(),
            })?;
        let client = IngestClient::new(&config.ingest_url, key, config.ingest_timeout).map_err(
            |source| ServeError::Client {
                tenant: tenant.into(),
                source,
            },
        )?;
        clients.insert(tenant.to_string(), client);
    }
    let codes = AuthCodes::open(&config.state_dir)?;
    let metrics_handle = citybrain_runtime::install_prometheus(metrics::BUCKETS);
    let readiness = Readiness::new();
    let stop = CancellationToken::new();
    let probe = IngestProbe {
        client: clients
            .values()
            .next()
            .cloned()
            .expect("a registry is never empty"),
    };
    let watcher = tokio::spawn(citybrain_runtime::watch(
        probe,
        readiness.clone(),
        READINESS_INTERVAL,
        stop.clone(),
    ));
    let admin_addr = admin_listener.local_addr().map_err(ServeError::Admin)?;
    let admin = tokio::spawn(citybrain_runtime::serve_admin(
        admin_listener,
        metrics_handle,
        readiness,
        stop.clone().cancelled_owned(),
    ));
    let listen_addr = listener.local_addr().map_err(ServeError::Listener)?;
    tracing::info!(
        listen = %listen_addr,
        admin = %admin_addr,
        ingest = %config.ingest_url,
        terminals = registry.len(),
        codes = codes.len(),
        "jt808 gateway serving"
    );
    let gateway = Arc::new(Gateway {
        registry,
        codes,
        clients,
        idle_timeout: config.idle_timeout,
        live: Mutex::new(HashMap::new()),
    });

    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let room = Arc::new(Semaphore::new(config.max_connections));
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, then accept
                    // again rather than spin or stop.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = room.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = config.max_connections, "too many connections; closing");
            metrics::connection_closed("limit");
            continue;
        };
        next_id += 1;
        let (gateway, closing, id) = (gateway.clone(), closing.clone(), next_id);
        connections.spawn(async move {
            connection::run(stream, peer, id, gateway, closing).await;
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!(
        open = connections.len(),
        "no longer accepting terminals; closing connections once their message in hand is answered"
    );
    closing.cancel();
    connections.close();
    if tokio::time::timeout(config.drain_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still busy after the drain timeout; leaving them"
        );
    }
    stop.cancel();
    let _ = watcher.await;
    if let Ok(result) = admin.await {
        result.map_err(ServeError::Admin)?;
    }
    tracing::info!("jt808 gateway stopped");
    Ok(())
}

/// `/readyz` says whether ingest serves (it reports SERVING only while
/// Kafka is reachable): without it every report is answered "fail".
struct IngestProbe {
    client: IngestClient,
}

impl citybrain_runtime::Probe for IngestProbe {
    fn name(&self) -> &'static str {
        "ingest"
    }

    async fn check(&mut self) -> bool {
        let up = tokio::time::timeout(PROBE_TIMEOUT, self.client.serving())
            .await
            .unwrap_or(false);
        metrics::ingest_up(up);
        up
    }
}
