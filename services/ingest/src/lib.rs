//! The ingest gateway: vendors push events over gRPC; each is authenticated,
//! validated and answered on its own, and "accepted" means Kafka acknowledged
//! it.
//!
//! [`serve`] runs the whole service on listeners the caller bound, so tests
//! bind port 0 and drive it through its public gRPC API.

/// API keys (shared with the other services).
pub use citybrain_keys as auth;
mod batch;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod producer;
pub mod service;
pub mod transport;
pub mod validate;

use crate::config::IngestConfig;
use crate::producer::EventProducer;
use crate::service::IngestHandler;
use crate::transport::Guarded;
use citybrain_keys::KeyStore;
use citybrain_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use citybrain_runtime::Readiness;
use std::future::{Future, IntoFuture};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

/// How often Kafka reachability is re-checked for `/readyz` and gRPC health.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long shutdown waits for queued events to be acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Keys(#[from] citybrain_keys::KeyFileError),
    #[error("cannot create the Kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("gRPC reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("HTTP server (admin or API) failed: {0}")]
    Admin(#[from] std::io::Error),
}

/// The listeners ingest serves on, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// The gRPC API.
    pub grpc: TcpListener,
    /// `POST /v1/events` (JSON) and `/openapi.json`.
    pub http: TcpListener,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub admin: TcpListener,
}

/// Runs ingest until `shutdown` resolves, then stops accepting calls, lets
/// in-flight calls finish and flushes the producer.
pub async fn serve(
    config: IngestConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Listeners {
        grpc: grpc_listener,
        http: http_listener,
        admin: admin_listener,
    } = listeners;
    let keys = KeyStore::load(&config.api_keys_file, config.production)?;
    let producer = EventProducer::new(&config.kafka, &config.producer)?;
    let metrics_handle = citybrain_runtime::install_prometheus(metrics::BUCKETS);
    let readiness = Readiness::new();
    let stop = CancellationToken::new();

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<IngestServiceServer<IngestHandler>>()
        .await;
    let watcher = tokio::spawn(citybrain_runtime::watch(
        KafkaProbe {
            producer: producer.clone(),
            health: health_reporter,
        },
        readiness.clone(),
        READINESS_INTERVAL,
        stop.clone(),
    ));

    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let admin = tokio::spawn(citybrain_runtime::serve_admin(
        admin_listener,
        metrics_handle,
        readiness.clone(),
        stop.clone().cancelled_owned(),
    ));

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(citybrain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let handler = IngestHandler::new(
        keys,
        producer.clone(),
        config.limits.clone(),
        config.validation.clone(),
    );
    // The byte limit of a request message is the guard's: it refuses a
    // message over it, naming the limit, before tonic reads it. tonic's own
    // limit is the same, so it never acts. Answers are not limited: ours are
    // bounded by the event limits (an IngestStream answer lists the stream).
    let max_message = config.limits.max_batch_bytes;
    let http_addr = http_listener.local_addr()?;
    // One shutdown for both transports: each stops accepting, finishes its
    // calls in flight, and only then is the producer flushed.
    let closing = CancellationToken::new();
    let http = tokio::spawn(
        axum::serve(http_listener, http::router(handler.clone()))
            .with_graceful_shutdown(closing.clone().cancelled_owned())
            .into_future(),
    );
    let ingest = Guarded::new(
        IngestServiceServer::new(handler).max_decoding_message_size(max_message),
        max_message,
    );
    let close = closing.clone();
    tokio::spawn(async move {
        shutdown.await;
        close.cancel();
    });

    tracing::info!(
        grpc = %grpc_addr,
        http = %http_addr,
        admin = %admin_addr,
        brokers = %config.kafka.brokers,
        "ingest serving"
    );
    let grpc_result = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(64)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ingest)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            closing.clone().cancelled_owned(),
        )
        .await;
    closing.cancel();
    let http_result = http.await;

    tracing::info!("no longer accepting calls; flushing the producer");
    if let Err(err) = producer.flush(FLUSH_TIMEOUT).await {
        tracing::error!(error = %err, "producer flush did not complete");
    }
    stop.cancel();
    let _ = watcher.await;
    let admin_result = admin.await;
    grpc_result?;
    if let Ok(result) = http_result {
        result.map_err(ServeError::Admin)?;
    }
    if let Ok(result) = admin_result {
        result?;
    }
    tracing::info!("ingest stopped");
    Ok(())
}

/// Kafka for `/readyz`, the gRPC health status and `citybrain_ingest_kafka_up`;
/// each check also replaces a producer that cannot recover by itself.
struct KafkaProbe {
    producer: EventProducer,
    health: tonic_health::server::HealthReporter,
}

impl citybrain_runtime::Probe for KafkaProbe {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn check(&mut self) -> bool {
        let up = self.producer.is_reachable(Duration::from_secs(2)).await;
        self.producer.heal(up);
        metrics::kafka_up(up);
        up
    }

    async fn changed(&mut self, up: bool) {
        if up {
            self.health
                .set_serving::<IngestServiceServer<IngestHandler>>()
                .await;
        } else {
            self.health
                .set_not_serving::<IngestServiceServer<IngestHandler>>()
                .await;
        }
    }
}
