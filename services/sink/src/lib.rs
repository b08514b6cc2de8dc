//! The sink: a Kafka consumer group over every feed topic that writes each
//! event into its kind's raw table in ClickHouse exactly once, so that the
//! roll-ups the materialized views keep never count an event twice.
//!
//! [`serve`] runs the whole service on an admin listener the caller bound;
//! how exactly-once is achieved is explained in [`pipeline`].

pub mod batch;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod metrics;
pub mod pipeline;
pub mod rows;
pub mod store;

use crate::config::SinkConfig;
use crate::dead_letter::DeadLetterProducer;
use crate::pipeline::{CLICKHOUSE_CHECK, Pipeline};
use crate::store::Store;
use citybrain_proto::feed::Kind;
use citybrain_runtime::Readiness;
use citybrain_schema::SchemaError;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Readiness check name for the broker.
pub const KAFKA_CHECK: &str = "kafka";
/// How often Kafka reachability is re-checked for `/readyz`.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// Why the sink could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] citybrain_config::ConfigError),
    #[error("cannot create the Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("schema migration failed: {0}")]
    Schema(#[from] SchemaError),
    #[error("admin HTTP server failed: {0}")]
    Admin(#[from] std::io::Error),
}

/// Runs the sink until `shutdown` resolves, then writes and commits what it
/// has read (bounded by the shutdown timeout) and returns.
pub async fn serve(
    config: SinkConfig,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let metrics_handle = citybrain_runtime::install_prometheus(metrics::BUCKETS);
    let tables: Vec<&'static str> = Kind::ALL.into_iter().map(Kind::raw_table).collect();
    metrics::register(&tables, &rows::Poison::REASONS);
    let readiness = Readiness::new();
    readiness.set(CLICKHOUSE_CHECK, false);
    readiness.set(KAFKA_CHECK, false);

    let stop = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let admin_addr = admin_listener.local_addr()?;
    let admin = tokio::spawn(citybrain_runtime::serve_admin(
        admin_listener,
        metrics_handle,
        readiness.clone(),
        admin_stop.clone().cancelled_owned(),
    ));

    let store = Store::new(&config);
    let started = if config.migrate {
        migrate_until_done(&store, &config, &stop).await?
    } else {
        true
    };
    if started {
        readiness.set(CLICKHOUSE_CHECK, true);
        let topics = config.feed_topics();
        let consumer = Arc::new(consumer::subscribe(&config, &topics)?);
        let dead_letters = DeadLetterProducer::new(&config)?;
        tracing::info!(
            admin = %admin_addr,
            brokers = %config.kafka.brokers,
            group = %config.group.group_id,
            database = %store.database(),
            topics = ?topics,
            "sink consuming"
        );
        let watcher = tokio::spawn(citybrain_runtime::watch(
            KafkaProbe {
                consumer: consumer.clone(),
                topic: topics[0].clone(),
            },
            readiness.clone(),
            READINESS_INTERVAL,
            stop.clone(),
        ));
        Pipeline::new(consumer, store, dead_letters, config, readiness)
            .run(stop.clone())
            .await;
        let _ = watcher.await;
    }
    admin_stop.cancel();
    if let Ok(result) = admin.await {
        result?;
    }
    tracing::info!("sink stopped");
    Ok(())
}

/// Applies pending migrations, retrying while ClickHouse is unreachable.
/// Returns false when asked to stop first.
async fn migrate_until_done(
    store: &Store,
    config: &SinkConfig,
    stop: &CancellationToken,
) -> Result<bool, ServeError> {
    let mut backoff = config.backoff.initial;
    loop {
        match store.migrate(config.store.raw_retention_days).await {
            Ok(report) => {
                tracing::info!(server = %report.server, applied = ?report.applied, skipped = ?report.skipped, "schema up to date");
                return Ok(true);
            }
            Err(err) if is_transient(&err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "ClickHouse unreachable; retrying the migration");
            }
            Err(err) => return Err(err.into()),
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(false),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.backoff.max);
    }
}

fn is_transient(err: &SchemaError) -> bool {
    use clickhouse::error::Error;
    let inner = match err {
        SchemaError::Migration { source, .. } => source,
        SchemaError::ClickHouse(source) => source,
        SchemaError::DatabaseName(_)
        | SchemaError::Version(_)
        | SchemaError::ClusterName(_)
        | SchemaError::ClusterRender(_) => return false,
    };
    !matches!(inner, Error::BadResponse(_))
}

/// The broker, for `/readyz`: one topic's metadata (a shared cluster may
/// hold thousands of topics) through the consumer's own connection.
struct KafkaProbe {
    consumer: Arc<StreamConsumer<consumer::SinkContext>>,
    topic: String,
}

impl citybrain_runtime::Probe for KafkaProbe {
    fn name(&self) -> &'static str {
        KAFKA_CHECK
    }

    async fn check(&mut self) -> bool {
        let probe = self.consumer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            probe.client().fatal_error().is_none()
                && probe
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                    .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}
