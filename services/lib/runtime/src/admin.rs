//! The admin HTTP port: Prometheus metrics, liveness and readiness.
//!
//! Liveness (`/healthz`) only says the process serves HTTP; readiness
//! (`/readyz`) says its dependencies answer, so a load balancer stops sending
//! work while, say, Kafka is unreachable, without the process being restarted.

use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::PrometheusHandle;
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
};
use tokio::net::TcpListener;

/// Named readiness checks, each set by the component that owns it.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whether the dependency `name` currently answers.
    pub fn set(&self, name: &'static str, ready: bool) {
        self.checks
            .lock()
            .expect("readiness lock")
            .insert(name, ready);
    }

    /// Ready when at least one check exists and all pass.
    pub fn is_ready(&self) -> bool {
        let checks = self.checks.lock().expect("readiness lock");
        !checks.is_empty() && checks.values().all(|ok| *ok)
    }

    /// One line per check, e.g. `kafka: ok`.
    pub fn report(&self) -> String {
        let checks = self.checks.lock().expect("readiness lock");
        if checks.is_empty() {
            return "starting\n".to_string();
        }
        checks
            .iter()
            .map(|(name, ok)| format!("{name}: {}\n", if *ok { "ok" } else { "not ready" }))
            .collect()
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    readiness: Readiness,
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve_admin(
    listener: TcpListener,
    metrics: PrometheusHandle,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AdminState { metrics, readiness });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn render_metrics(State(state): State<AdminState>) -> String {
    state.metrics.run_upkeep();
    state.metrics.render()
}

async fn ready(State(state): State<AdminState>) -> (StatusCode, String) {
    let status = if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, state.readiness.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_check() {
        let readiness = Readiness::new();
        assert!(!readiness.is_ready(), "no checks yet means still starting");
        readiness.set("kafka", true);
        assert!(readiness.is_ready());
        readiness.set("clickhouse", false);
        assert!(!readiness.is_ready());
        assert_eq!(readiness.report(), "clickhouse: not ready\nkafka: ok\n");
    }
}
