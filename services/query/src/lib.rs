//! The query service: live state, historical aggregates, top-N, vehicle
//! tracks and CSV export, over gRPC and HTTP/JSON, per tenant.
//!
//! Both APIs call one [`core::QueryCore`]; every caller value reaches
//! ClickHouse as a bound argument or as a name chosen from the catalogue
//! ([`catalog`], [`live`]). [`serve`] runs the whole service on listeners
//! the caller bound, so tests bind port 0.

pub mod catalog;
pub mod config;
pub mod core;
pub mod error;
pub mod grpc;
pub mod http;
pub mod intervals;
pub mod live;
pub mod metrics;
pub mod sql;
pub mod store;
pub mod table;
pub mod time;

use crate::{
    config::QueryConfig, core::QueryCore, grpc::QueryHandler, sql::Database, store::Store,
};
use citybrain_keys::KeyStore;
use citybrain_proto::query::v1::query_service_server::QueryServiceServer;
use citybrain_runtime::Readiness;
use std::{future::Future, time::Duration};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

/// How often ClickHouse is probed for `/readyz` and gRPC health.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long a probe may take before ClickHouse counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Keys(#[from] citybrain_keys::KeyFileError),
    #[error("CITYBRAIN_CLICKHOUSE_DATABASE: {0}")]
    Database(String),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("gRPC reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the service until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    config: QueryConfig,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let keys = KeyStore::load(&config.api_keys_file, config.production)?;
    let database = Database::new(&config.clickhouse.database).map_err(ServeError::Database)?;
    let store = Store::new(&config.clickhouse, config.limits.timeout);
    let core = QueryCore::new(store.clone(), database, config.limits.clone());
    let metrics_handle = citybrain_runtime::install_prometheus(metrics::BUCKETS);
    let readiness = Readiness::new();
    let stop = CancellationToken::new();

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<QueryServiceServer<QueryHandler>>()
        .await;
    let watcher = tokio::spawn(citybrain_runtime::watch(
        ClickHouseProbe {
            store,
            health: health_reporter,
        },
        readiness.clone(),
        READINESS_INTERVAL,
        stop.clone(),
    ));

    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let admin = tokio::spawn(citybrain_runtime::serve_admin(
        admin_listener,
        metrics_handle,
        readiness,
        stop.clone().cancelled_owned(),
    ));

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(citybrain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let handler = QueryHandler::new(core.clone(), keys.clone());
    let app = http::router(core, keys);

    tracing::info!(
        grpc = %grpc_addr,
        http = %http_addr,
        admin = %admin_addr,
        clickhouse = %config.clickhouse.url,
        database = %config.clickhouse.database,
        "query serving"
    );
    let (grpc_stop, http_stop) = (stop.clone(), stop.clone());
    let http = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(http_stop.cancelled_owned())
            .await
    });
    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(QueryServiceServer::new(handler))
        .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), async move {
            tokio::select! {
                () = shutdown => {},
                () = grpc_stop.cancelled() => {},
            }
        });
    let grpc_result = grpc.await;
    tracing::info!("no longer accepting requests");
    stop.cancel();
    let _ = watcher.await;
    let http_result = http.await;
    let admin_result = admin.await;
    grpc_result?;
    if let Ok(result) = http_result {
        result?;
    }
    if let Ok(result) = admin_result {
        result?;
    }
    tracing::info!("query stopped");
    Ok(())
}

/// ClickHouse, for `/readyz`, the gRPC health status and
/// `citybrain_query_clickhouse_up`.
struct ClickHouseProbe {
    store: Store,
    health: tonic_health::server::HealthReporter,
}

impl citybrain_runtime::Probe for ClickHouseProbe {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn check(&mut self) -> bool {
        let up = self.store.ping(PROBE_TIMEOUT).await;
        metrics::clickhouse_up(up);
        up
    }

    async fn changed(&mut self, up: bool) {
        if up {
            self.health
                .set_serving::<QueryServiceServer<QueryHandler>>()
                .await;
        } else {
            self.health
                .set_not_serving::<QueryServiceServer<QueryHandler>>()
                .await;
        }
    }
}

/// The catalogue as JSON: views and their filters, metrics with their
/// dimensions and measures, bucket names.
pub fn describe_catalog() -> serde_json::Value {
    use serde_json::json;
    json!({
        "buckets": ["5m", "hour", "day", "week", "month"],
        "views": live::VIEWS.iter().map(|v| json!({
            "name": v.name,
            "description": v.description,
            "filters": v.filters.iter().map(|f| f.name).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "metrics": catalog::METRICS.iter().map(|m| json!({
            "name": m.name,
            "description": m.description,
            "dimensions": m.dimensions.iter().map(|d| d.name).collect::<Vec<_>>(),
            "default_group_by": m.default_group_by,
            "measures": m.measures.iter().map(|x| json!({"name": x.name, "description": x.description})).collect::<Vec<_>>(),
            "default_order_by": m.default_order_by,
        })).collect::<Vec<_>>(),
    })
}
