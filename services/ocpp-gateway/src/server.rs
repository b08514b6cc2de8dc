//! The HTTP side: who may open `ws://HOST:PORT/ocpp/{chargePointId}`, in
//! which OCPP version, and what the gateway shares between connections.
//!
//! The upgrade is refused with 401 (and counted, and logged with the station
//! and the peer) for a station the registry does not know, a missing or
//! malformed `Authorization: Basic` header, a user other than the charge
//! point id, or a wrong password. The subprotocol is the first of the
//! charger's list the gateway speaks (`ocpp2.0.1`, `ocpp1.6`); a charger that
//! offers none is taken to speak 1.6 (older firmware does not send the
//! header), one that offers only others is refused with 400.

use crate::config::GatewayConfig;
use crate::registry::{Registry, Station};
use crate::session::StationState;
use crate::store::Ingest;
use crate::{Version, connection, metrics};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::get};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Each socket's read buffer (it grows for a larger message).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// What every connection shares.
pub struct Shared {
    pub config: GatewayConfig,
    registry: RwLock<Arc<Registry>>,
    pub ingest: Ingest,
    /// Cancelled at shutdown.
    pub stop: CancellationToken,
    /// Connections and the offline reports they leave behind.
    pub tasks: TaskTracker,
    stations: Mutex<HashMap<String, Slot>>,
}

/// A station's place in this process: its state, which survives reconnects,
/// and its current connection.
#[derive(Default)]
struct Slot {
    state: StationState,
    /// Increases with every connection; only the current one may write the
    /// state or report the station offline.
    generation: u64,
    /// Closes the current connection when a newer one arrives.
    replaced: Option<CancellationToken>,
    /// The gateway reported the station offline and has not heard a status
    /// since: on reconnection it asks for one (TriggerMessage).
    offline: bool,
}

/// A connection's claim on its station.
pub struct Claim {
    pub generation: u64,
    pub replaced: CancellationToken,
    /// The station was reported offline before this connection.
    pub was_offline: bool,
}

impl Shared {
    pub fn new(
        config: GatewayConfig,
        registry: Registry,
        ingest: Ingest,
        stop: CancellationToken,
    ) -> Self {
        Self {
            config,
            registry: RwLock::new(Arc::new(registry)),
            ingest,
            stop,
            tasks: TaskTracker::new(),
            stations: Mutex::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().expect("registry lock").clone()
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.stations.lock().expect("stations lock")
    }

    /// Makes a new connection the station's current one; the previous one,
    /// if still open, is told to close (without reporting the station
    /// offline: it is online on the new one).
    pub fn claim(&self, station: &str) -> Claim {
        let mut slots = self.slots();
        let slot = slots.entry(station.to_string()).or_default();
        if let Some(previous) = slot.replaced.take() {
            previous.cancel();
        }
        slot.generation += 1;
        let replaced = CancellationToken::new();
        slot.replaced = Some(replaced.clone());
        Claim {
            generation: slot.generation,
            replaced,
            was_offline: slot.offline,
        }
    }

    /// The station's state, to handle a message on a copy of it.
    pub fn state(&self, station: &str) -> StationState {
        self.slots()
            .get(station)
            .map(|slot| slot.state.clone())
            .unwrap_or_default()
    }

    /// Keeps `state` if `generation` is still the station's connection.
    pub fn commit(&self, station: &str, generation: u64, state: StationState) {
        if let Some(slot) = self.slots().get_mut(station)
            && slot.generation == generation
        {
            slot.state = state;
            slot.offline = false;
        }
    }

    /// Ends a connection; true when it was the current one (and so may
    /// report the station offline, which `offline` records).
    pub fn release(&self, station: &str, generation: u64, offline: bool) -> bool {
        let mut slots = self.slots();
        match slots.get_mut(station) {
            Some(slot) if slot.generation == generation => {
                slot.replaced = None;
                slot.offline |= offline;
                true
            }
            _ => false,
        }
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ocpp/{charge_point_id}", get(upgrade))
        .with_state(shared)
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let station = match shared.registry().authenticate(&id, authorization) {
        Ok(station) => station,
        Err(refusal) => {
            metrics::refused(refusal.as_str());
            tracing::warn!(station = %id, %peer, reason = refusal.as_str(), "charger refused");
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "unknown charge point or wrong credentials\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"citybrain OCPP\""),
            );
            return response;
        }
    };
    // In the charger's order of preference (axum's own list is sorted).
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    let version = match offered
        .iter()
        .find_map(|name| Version::from_subprotocol(name))
    {
        Some(version) => Some(version),
        None if offered.is_empty() => None,
        None => {
            metrics::refused("subprotocol");
            tracing::warn!(station = %id, %peer, ?offered, "charger offers no OCPP version this gateway speaks");
            return (
                StatusCode::BAD_REQUEST,
                "supported subprotocols: ocpp2.0.1, ocpp1.6\n",
            )
                .into_response();
        }
    };
    // OCPP messages are small and answered one at a time: 8 KiB read buffers
    // and eager writes instead of tungstenite's 128 KiB each. With the
    // defaults, 500 idle chargers held 75 MB, about one 128 KiB buffer each
    // (BENCHMARKS.md, OCPP section).
    let mut ws = ws
        .max_message_size(shared.config.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    if let Some(version) = version {
        ws.set_selected_protocol(HeaderValue::from_static(version.subprotocol()));
    } else {
        metrics::quirk("no_subprotocol");
    }
    let version = version.unwrap_or(Version::V16);
    tracing::info!(station = %station.id, %peer, version = version.label(), "charger connected");
    // Claimed here, in the order the upgrades arrive, not in the socket's
    // task: that task starts later, and a charger that reconnects at once
    // could otherwise have its new socket replaced by its old one.
    let claim = shared.claim(&station.id);
    let (generation, failed) = (claim.generation, (shared.clone(), station.id.clone()));
    let tracker = shared.tasks.clone();
    ws.on_failed_upgrade(move |err| {
        let (shared, id) = failed;
        tracing::warn!(station = %id, error = %err, "WebSocket upgrade failed");
        shared.release(&id, generation, false);
    })
    .on_upgrade(move |socket| {
        tracker.track_future(connection::run(shared, station, version, claim, socket))
    })
}

/// Reloads the registry when its file changes. Connections of stations it
/// no longer lists are answered Rejected / SecurityError from then on; a
/// file that does not load is logged and the old registry kept.
pub async fn watch_registry(shared: Arc<Shared>) {
    let every = shared.config.registry_reload;
    if every.is_zero() {
        return;
    }
    let path = shared.config.stations_file.clone();
    let modified = |path: &std::path::Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let mut seen = modified(&path);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match Registry::load(&path, shared.config.production) {
            Ok(registry) => {
                if let Some(tenant) = registry.tenants().find(|t| !shared.ingest.has_tenant(t)) {
                    metrics::registry(shared.registry().len(), "refused");
                    tracing::error!(%tenant, "new station registry names a tenant without an ingest key; keeping the old one");
                    continue;
                }
                metrics::registry(registry.len(), "loaded");
                tracing::info!(stations = registry.len(), "station registry reloaded");
                *shared.registry.write().expect("registry lock") = Arc::new(registry);
            }
            Err(err) => {
                metrics::registry(shared.registry().len(), "failed");
                tracing::error!(error = %err, "station registry not reloaded; keeping the old one");
            }
        }
    }
}

/// The registry's current entry for a station (None once it was removed).
pub fn current(shared: &Shared, station: &Station) -> Option<Arc<Station>> {
    shared.registry().get(&station.id).cloned()
}
