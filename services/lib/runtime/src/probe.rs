//! Readiness that probes what it names, on a cadence.
//!
//! Each dependency a service names in `/readyz` (Kafka, ClickHouse, …) has a
//! [`Probe`] that actually asks it; [`watch`] runs the probe every interval
//! until shutdown, records the answer in [`Readiness`], logs each change
//! once, and lets the probe act on changes (a gRPC health status, a gauge).
//! A readiness flag set only as a side effect of work (an insert that
//! failed) stays green while the service is idle and the dependency is
//! gone; a probe does not.

use crate::Readiness;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One dependency's check.
pub trait Probe: Send {
    /// The check's name in `/readyz`, e.g. `kafka`.
    fn name(&self) -> &'static str;

    /// Whether the dependency answers now. Must finish in well under the
    /// watch interval (bound its own timeout).
    fn check(&mut self) -> impl Future<Output = bool> + Send;

    /// Called when the answer changed (and after the first check).
    fn changed(&mut self, up: bool) -> impl Future<Output = ()> + Send {
        let _ = up;
        async {}
    }
}

/// Checks `probe` every `interval` until `stop` is cancelled; returns once
/// the check in flight, if any, is done.
pub async fn watch<P: Probe>(
    mut probe: P,
    readiness: Readiness,
    interval: Duration,
    stop: CancellationToken,
) {
    let name = probe.name();
    let mut was_up = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        // A check in flight is finished, not dropped: the blocking work a
        // probe hands to a thread (a Kafka metadata request) would outlive a
        // dropped future and the service's shutdown with it, still using the
        // client, which librdkafka 2.12 crashed on when the test's topics
        // were deleted right after. Checks bound their own time.
        let up = probe.check().await;
        readiness.set(name, up);
        if was_up != Some(up) {
            if up {
                tracing::info!(check = name, "dependency answers");
            } else {
                tracing::warn!(check = name, "dependency does not answer");
            }
            probe.changed(up).await;
            was_up = Some(up);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    struct Flag {
        up: Arc<AtomicBool>,
        changes: Arc<AtomicUsize>,
    }

    impl Probe for Flag {
        fn name(&self) -> &'static str {
            "thing"
        }
        async fn check(&mut self) -> bool {
            self.up.load(Ordering::SeqCst)
        }
        async fn changed(&mut self, _up: bool) {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn readiness_follows_the_probe_and_changes_are_reported_once() {
        let up = Arc::new(AtomicBool::new(true));
        let changes = Arc::new(AtomicUsize::new(0));
        let readiness = Readiness::new();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(
            Flag {
                up: up.clone(),
                changes: changes.clone(),
            },
            readiness.clone(),
            Duration::from_millis(5),
            stop.clone(),
        ));
        let until = |want: bool| {
            let readiness = readiness.clone();
            async move {
                while readiness.is_ready() != want {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        until(true).await;
        up.store(false, Ordering::SeqCst);
        until(false).await;
        assert_eq!(readiness.report(), "thing: not ready\n");
        up.store(true, Ordering::SeqCst);
        until(true).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(changes.load(Ordering::SeqCst), 3);
    }

    struct Slow {
        started: Arc<tokio::sync::Notify>,
        finished: Arc<AtomicBool>,
    }

    impl Probe for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn check(&mut self) -> bool {
            self.started.notify_one();
            let finished = self.finished.clone();
            tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(100));
                finished.store(true, Ordering::SeqCst);
            })
            .await
            .is_ok()
        }
    }

    #[tokio::test]
    async fn a_check_in_flight_finishes_before_watch_returns() {
        let started = Arc::new(tokio::sync::Notify::new());
        let finished = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(
            Slow {
                started: started.clone(),
                finished: finished.clone(),
            },
            Readiness::new(),
            Duration::from_secs(60),
            stop.clone(),
        ));
        started.notified().await;
        stop.cancel();
        task.await.unwrap();
        assert!(
            finished.load(Ordering::SeqCst),
            "the blocking part outlived watch"
        );
    }
}
