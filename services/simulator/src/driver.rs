//! Runs the town against a real ingest: a generator thread walks the model
//! and cuts batches; the async side sends them with a bound on requests in
//! flight, waiting for the wall clock in live mode.

use crate::client::{ClientError, Counters, IngestClient};
use crate::clock::{self, DAY, Millis, SECOND};
use crate::config::{Mode, SimulatorConfig};
use crate::jt808::Fleet;
use crate::progress::Progress;
use crate::town::{Town, TownConfig};
use citybrain_proto::events::v1::Event;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// Which part of the town's history to send, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Where the model starts (a UTC midnight, so re-runs line up).
    pub origin: Millis,
    /// Events before this are generated (the town's state needs them) but
    /// not sent.
    pub send_from: Millis,
    /// Stop before this time; `None`: run until shut down.
    pub until: Option<Millis>,
    /// Send events only once the wall clock has reached them.
    pub paced: bool,
}

impl Plan {
    pub fn new(mode: Mode, days: u32, now: Millis) -> Self {
        let origin = clock::utc_midnight(now) - Millis::from(days) * DAY;
        match mode {
            Mode::Backfill => Self {
                origin,
                send_from: origin,
                until: Some(now),
                paced: false,
            },
            Mode::Live => Self {
                origin,
                send_from: now,
                until: None,
                paced: true,
            },
            Mode::Run => Self {
                origin,
                send_from: origin,
                until: None,
                paced: true,
            },
        }
    }
}

impl Plan {
    /// Sends nothing at or before `sent_until` (Unix seconds), which an
    /// earlier run sent already; the model still starts at `origin`.
    pub fn resuming_after(mut self, sent_until: Option<i64>) -> Self {
        if let Some(seconds) = sent_until {
            self.send_from = self.send_from.max((seconds + 1) * SECOND);
        }
        self
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub retried: u64,
    pub elapsed: Duration,
    /// Simulated time of the last event handed to the client.
    pub reached: Millis,
}

impl Summary {
    /// Events accepted per second of wall time.
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the model generator stopped unexpectedly: {0}")]
    Generator(String),
    #[error("--vehicles-via-jt808: {0}")]
    Jt808(#[from] citybrain_jt808_gateway::registry::RegistryError),
}

struct Batch {
    events: Vec<Event>,
    last_at: Millis,
}

/// Runs the simulator as configured until it is done (backfill) or
/// `shutdown` resolves, then lets requests in flight finish.
pub async fn run(
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, RunError> {
    let plan = Plan::new(
        config.mode,
        config.days,
        clock::from_system(SystemTime::now()),
    )
    .resuming_after(config.send_after);
    run_plan(&config, plan, shutdown).await
}

/// Runs one [`Plan`]; public so tests can choose the window.
pub async fn run_plan(
    config: &SimulatorConfig,
    plan: Plan,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, RunError> {
    let client = IngestClient::new(&config.ingest_url, &config.api_key)?;
    let fleet = match &config.vehicles_via_jt808 {
        Some(addr) => Some(Fleet::start(addr, &config.jt808_terminals)?),
        None => None,
    };
    let town = Town::new(TownConfig {
        seed: config.seed,
        origin: plan.origin,
        scale: config.scale,
    });
    let [connectors, lots, vehicles, bins, patrols] = town.device_counts();
    tracing::info!(
        mode = ?config.mode,
        seed = config.seed,
        scale = config.scale,
        origin = %clock::utc_display(plan.origin),
        from = %clock::utc_display(plan.send_from),
        until = %plan.until.map_or("live".into(), clock::utc_display),
        ingest = %config.ingest_url,
        connectors, lots, vehicles, bins, patrols,
        "simulating 潞城镇"
    );
    let (tx, mut rx) = mpsc::channel::<Batch>(config.in_flight * 2);
    let batch_size = config.batch_size;
    let generator = tokio::task::spawn_blocking(move || generate(town, plan, batch_size, tx));

    let counters = Arc::new(Counters::default());
    let mut chargers = config
        .chargers_via_ocpp
        .as_deref()
        .map(|url| crate::ocpp::Chargers::new(url, &config.ocpp_password, counters.clone()));
    let permits = Arc::new(Semaphore::new(config.in_flight));
    let mut calls: JoinSet<Result<(), ClientError>> = JoinSet::new();
    let started = Instant::now();
    let catch_up_to = plan
        .until
        .unwrap_or_else(|| clock::from_system(SystemTime::now()));
    let mut progress = Progress::new(plan.send_from, catch_up_to, config.progress);
    let mut reached = plan.send_from;
    let mut live = false;
    let mut failure = None;
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            () = &mut shutdown => break,
            batch = rx.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        if plan.paced {
            let wait = batch.last_at - clock::from_system(SystemTime::now());
            if wait > 0 {
                if !live {
                    live = true;
                    progress.finish(reached, &counters);
                    tracing::info!(
                        accepted = Counters::get(&counters.accepted),
                        "caught up with the clock; running live"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                }
            }
        }
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        reached = batch.last_at;
        let mut events = batch.events;
        // Live positions of the fleet's vehicles go through their terminals;
        // history (and everything else) through ingest.
        if live && let Some(fleet) = &fleet {
            events = fleet.take(events);
        }
        // Charging events go to their stations' sockets here, in order.
        if let Some(chargers) = chargers.as_mut() {
            events = chargers.route(events).await;
        }
        let (client, shared) = (client.clone(), counters.clone());
        calls.spawn(async move {
            let result = if events.is_empty() {
                Ok(())
            } else {
                client.send(events, &shared).await
            };
            drop(permit);
            result
        });
        while let Some(done) = calls.try_join_next() {
            if let Err(err) = flatten(done) {
                failure = Some(err);
            }
        }
        if failure.is_some() {
            break;
        }
        if !live {
            progress.tick(reached, &counters);
        }
    }
    drop(rx);
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while let Some(done) = calls.join_next().await {
            if let Err(err) = flatten(done) {
                failure.get_or_insert(err);
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            in_flight = calls.len(),
            "requests still in flight after the drain timeout; abandoning them"
        );
        calls.abort_all();
    }
    if let Some(chargers) = chargers {
        chargers.drain(config.drain_timeout).await;
    }
    if !live {
        progress.finish(reached, &counters);
    }
    if let Some(fleet) = fleet {
        let c = fleet.counters.clone();
        fleet.close(config.drain_timeout).await;
        let get = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            stored = get(&c.stored),
            refused = get(&c.refused),
            dropped = get(&c.dropped),
            resent = get(&c.resent),
            "positions sent through the jt808 gateway"
        );
    }
    if let Err(err) = generator.await {
        return Err(RunError::Generator(err.to_string()));
    }
    if let Some(err) = failure {
        return Err(err.into());
    }
    let get = Counters::get;
    Ok(Summary {
        sent: get(&counters.sent),
        accepted: get(&counters.accepted),
        duplicates: get(&counters.duplicates),
        rejected: get(&counters.rejected),
        retried: get(&counters.retried),
        elapsed: started.elapsed(),
        reached,
    })
}

fn flatten(
    done: Result<Result<(), ClientError>, tokio::task::JoinError>,
) -> Result<(), ClientError> {
    match done {
        Ok(result) => result,
        Err(err) if err.is_cancelled() => Ok(()),
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Walks the town and cuts batches: by size while catching up, and also at
/// each second of simulated time near the wall clock, so live events go out
/// when they happen rather than when a batch fills.
fn generate(town: Town, plan: Plan, batch_size: usize, tx: mpsc::Sender<Batch>) {
    let mut batch: Vec<Event> = Vec::with_capacity(batch_size);
    let mut batch_second = 0;
    for event in town {
        let at = event.observed_at.as_ref().map_or(0, clock::from_timestamp);
        if at < plan.send_from {
            continue;
        }
        if plan.until.is_some_and(|until| at >= until) {
            break;
        }
        let near_clock = plan.paced && at >= clock::from_system(SystemTime::now()) - SECOND;
        let full = batch.len() >= batch_size || (near_clock && at / SECOND != batch_second);
        if full && !batch.is_empty() {
            let last_at = batch_second * SECOND;
            let events = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
            if tx
                .blocking_send(Batch {
                    events,
                    last_at: last_at.max(plan.send_from),
                })
                .is_err()
            {
                return;
            }
        }
        batch_second = at / SECOND;
        batch.push(event);
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Batch {
            events: batch,
            last_at: batch_second * SECOND,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::HOUR;

    #[test]
    fn plans_start_at_a_utc_midnight_and_reach_now() {
        let now = 1_741_393_800_000 + 5 * HOUR;
        let backfill = Plan::new(Mode::Backfill, 3, now);
        assert_eq!(backfill.origin % DAY, 0);
        assert!(now - backfill.origin >= 3 * DAY && now - backfill.origin < 4 * DAY);
        assert_eq!(
            (backfill.send_from, backfill.until, backfill.paced),
            (backfill.origin, Some(now), false)
        );
        let live = Plan::new(Mode::Live, 3, now);
        assert_eq!(
            (live.origin, live.send_from, live.until, live.paced),
            (backfill.origin, now, None, true)
        );
        let run = Plan::new(Mode::Run, 3, now);
        assert_eq!(
            (run.send_from, run.until, run.paced),
            (backfill.origin, None, true)
        );
        // A re-run sends only what is newer than what the last one sent.
        let resumed = Plan::new(Mode::Run, 3, now).resuming_after(Some(now / SECOND - 600));
        assert_eq!(resumed.send_from, now - 599 * SECOND);
        assert_eq!(resumed.origin, run.origin);
        let nothing_new = Plan::new(Mode::Run, 3, now).resuming_after(Some(0));
        assert_eq!(nothing_new.send_from, run.send_from);
        // Even the longest backfill stays inside ingest's 30-day window.
        let longest = Plan::new(Mode::Backfill, crate::config::MAX_DAYS, now);
        assert!(now - longest.origin < 29 * DAY + DAY);
    }
}
