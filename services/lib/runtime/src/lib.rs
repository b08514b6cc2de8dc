//! What every citybrain service runs on: structured logs, the Prometheus
//! recorder, the admin HTTP port (`/metrics`, `/healthz`, `/readyz`),
//! readiness probes on a cadence, and shutdown signals. Configuration is
//! `citybrain-config`'s.

pub mod admin;
pub mod probe;

pub use admin::{Readiness, serve_admin};
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use probe::{Probe, watch};

use metrics_exporter_prometheus::PrometheusBuilder;
use std::sync::OnceLock;
use tracing_subscriber::{EnvFilter, fmt};

/// Sets up `tracing` output: filtered by `RUST_LOG` (default `info`), JSON
/// lines when `json` is true (production), human-readable otherwise.
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests start several services in one process) is harmless.
    let _ = result;
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
/// `buckets` sets explicit histogram buckets by metric-name suffix. The first
/// call in a process fixes them (a service owns its process; tests that run
/// several services in one process install the union first).
pub fn install_prometheus(buckets: &[(&str, &[f64])]) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (suffix, values) in buckets {
                builder = builder
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix((*suffix).to_string()),
                        values,
                    )
                    .expect("histogram buckets are non-empty constants");
            }
            builder
                .install_recorder()
                .expect("no other metrics recorder is installed in this process")
        })
        .clone()
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
