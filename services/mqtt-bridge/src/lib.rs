//! The MQTT bridge: sensors publish JSON events to the broker under
//! `citybrain/v1/<tenant>/<kind>/<device_id>`; the bridge subscribes (QoS 1,
//! persistent session, manual acknowledgements), sends the events through
//! the ingest gRPC API, and acknowledges a message only once ingest stored
//! (or refused for good) every event of it. Refusals go back to the device
//! on `…/rejected`.
//!
//! - `message.rs`: a message into events (the sensor shortcuts) and ingest's
//!   answers back, pure;
//! - `pipeline.rs`: batches, retries and acknowledgements;
//! - `registry.rs`: the device registry (tenants' ingest keys; the broker's
//!   password file and ACLs are generated from the same file).

pub mod config;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod registry;

use crate::config::BridgeConfig;
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use citybrain_ingest_client::IngestClient;
use citybrain_runtime::Readiness;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The subscription: every device topic (and not `…/rejected`, a level
/// deeper).
pub const SUBSCRIPTION: &str = "citybrain/v1/+/+/+";
/// How long to wait before connecting again after the connection failed.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error("the ingest client for tenant {tenant:?}: {source}")]
    Client {
        tenant: String,
        source: citybrain_ingest_client::ClientError,
    },
    #[error(
        "the device registry stores the bridge's password_hash only: set CITYBRAIN_MQTT_PASSWORD"
    )]
    NoPassword,
    #[error("admin HTTP server failed: {0}")]
    Admin(#[from] std::io::Error),
}

/// Runs the bridge until `shutdown` resolves; then it takes no new message,
/// settles and acknowledges the batch in hand, and disconnects.
pub async fn serve(
    config: BridgeConfig,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let registry = Registry::load(&config.registry_file, config.production)?;
    let password = config
        .mqtt_password
        .clone()
        .or_else(|| registry.bridge_password.clone())
        .ok_or(ServeError::NoPassword)?;
    let mut ingest = std::collections::HashMap::new();
    for (tenant, key) in &registry.ingest_keys {
        let client = IngestClient::new(&config.ingest_url, key, config.ingest_timeout).map_err(
            |source| ServeError::Client {
                tenant: tenant.clone(),
                source,
            },
        )?;
        ingest.insert(tenant.clone(), client);
    }
    let metrics_handle = citybrain_runtime::install_prometheus(metrics::BUCKETS);
    let readiness = Readiness::new();
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(citybrain_runtime::serve_admin(
        admin_listener,
        metrics_handle,
        readiness.clone(),
        admin_stop.clone().cancelled_owned(),
    ));

    let mut options = MqttOptions::new(&config.client_id, &config.mqtt_host, config.mqtt_port);
    options
        .set_credentials(registry.bridge_username.clone(), password)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(
            config.max_payload_bytes + 1024,
            config.max_payload_bytes + 1024,
        )
        .set_inflight(100);
    let (client, eventloop) = AsyncClient::new(options, config.inflight * 2);
    let (messages, received) = mpsc::channel(config.inflight);
    let stop_taking = CancellationToken::new();
    let connected = Arc::new(AtomicBool::new(false));
    let connection = tokio::spawn(connection(
        eventloop,
        client.clone(),
        messages,
        connected.clone(),
    ));
    let probe = tokio::spawn(citybrain_runtime::watch(
        MqttProbe(connected),
        readiness,
        Duration::from_millis(500),
        admin_stop.clone(),
    ));
    tracing::info!(
        broker = %format!("{}:{}", config.mqtt_host, config.mqtt_port),
        client_id = %config.client_id,
        ingest = %config.ingest_url,
        tenants = registry.ingest_keys.len(),
        devices = registry.devices,
        "mqtt bridge serving"
    );
    let pipeline = Pipeline {
        mqtt: client.clone(),
        ingest,
        batch_messages: config.batch_messages,
        batch_events: config.batch_events,
        max_events_per_message: config.max_events_per_message,
        drain_timeout: config.drain_timeout,
    };
    let worker = tokio::spawn(pipeline.run(received, stop_taking.clone()));
    shutdown.await;
    tracing::info!("no longer taking messages; settling the batch in hand");
    stop_taking.cancel();
    let _ = worker.await;
    // The acknowledgements are queued in the client; disconnecting sends
    // them first, then DISCONNECT, and the connection task ends.
    let _ = client.disconnect().await;
    if tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .is_err()
    {
        tracing::warn!("the broker connection did not close within 5 s");
    }
    admin_stop.cancel();
    let _ = probe.await;
    if let Ok(result) = admin.await {
        result?;
    }
    tracing::info!("mqtt bridge stopped");
    Ok(())
}

/// Drives the MQTT connection: (re)subscribes on every CONNACK, hands
/// messages to the pipeline, reconnects after an error. Ends once the
/// bridge disconnected.
async fn connection(
    mut eventloop: EventLoop,
    client: AsyncClient,
    messages: mpsc::Sender<rumqttc::Publish>,
    connected: Arc<AtomicBool>,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                connected.store(true, Ordering::Relaxed);
                metrics::connected(true);
                if let Err(err) = client.try_subscribe(SUBSCRIPTION, QoS::AtLeastOnce) {
                    tracing::error!(error = %err, "could not subscribe");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // The pipeline has stopped taking messages: this one stays
                // unacknowledged and comes again in the next session.
                let _ = messages.send(publish).await;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                tracing::info!(codes = ?ack.return_codes, topic = SUBSCRIPTION, "subscribed");
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                connected.store(false, Ordering::Relaxed);
                metrics::connected(false);
                return;
            }
            Ok(_) => {}
            Err(err) => {
                if connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "lost the broker connection; reconnecting");
                } else {
                    tracing::debug!(error = %err, "cannot connect to the broker");
                }
                metrics::connected(false);
                metrics::connection_error();
                if messages.is_closed() {
                    return;
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// `/readyz`: connected to the broker (what the connection task saw last).
struct MqttProbe(Arc<AtomicBool>);

impl citybrain_runtime::Probe for MqttProbe {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    async fn check(&mut self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
