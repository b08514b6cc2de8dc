//! Handing events to ingest, with one API key per tenant.
//!
//! [`Ingest::store`] is all or nothing for the charger: the message is
//! stored only when ingest accepted every event of it. A rejected event (it
//! will never be stored) makes the answer a PropertyConstraintViolation; a
//! retryable one, or a failed call, an InternalError that makes the charger
//! resend. Events of a resent message carry the same ids, so those that were
//! accepted the first time are stored once.

use crate::config::GatewayConfig;
use crate::error::Fault;
use crate::{metrics, server::Shared};
use citybrain_ingest_client::{EventOutcome, IngestClient};
use citybrain_proto::events::v1::Event;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often `/readyz` re-checks that ingest answers, and how long it waits.
pub const READINESS_INTERVAL: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Offline reports are retried with this backoff, doubling up to
/// [`OFFLINE_MAX_BACKOFF`], for at most [`OFFLINE_DEADLINE`].
const OFFLINE_FIRST_BACKOFF: Duration = Duration::from_millis(200);
const OFFLINE_MAX_BACKOFF: Duration = Duration::from_secs(10);
const OFFLINE_DEADLINE: Duration = Duration::from_secs(300);

/// Ingest clients by tenant.
pub struct Ingest {
    by_tenant: HashMap<String, IngestClient>,
}

impl Ingest {
    pub fn new(config: &GatewayConfig) -> Result<Self, citybrain_ingest_client::ClientError> {
        let mut by_tenant = HashMap::new();
        for (tenant, key) in &config.ingest_keys {
            let client = IngestClient::new(&config.ingest_url, key, config.ingest_timeout)?;
            by_tenant.insert(tenant.clone(), client);
        }
        Ok(Self { by_tenant })
    }

    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.by_tenant.contains_key(tenant)
    }

    /// Stores `events` for `tenant`: Ok once ingest accepted every one.
    pub async fn store(&self, tenant: &str, events: Vec<Event>) -> Result<(), Fault> {
        let client = self
            .by_tenant
            .get(tenant)
            .ok_or_else(|| Fault::Refused(format!("no API key for tenant {tenant:?}")))?;
        let count = events.len();
        let started = Instant::now();
        let answers = client.ingest(events).await;
        metrics::ingest_duration(started.elapsed());
        let answers = match answers {
            Ok(answers) => answers,
            Err(err) if err.is_retryable() => {
                metrics::events("retry", count);
                return Err(Fault::Unavailable(err.message));
            }
            Err(err) => {
                metrics::events("rejected", count);
                tracing::error!(code = ?err.code, message = %err.message, tenant,
                    "ingest refused the gateway's call; check CITYBRAIN_OCPP_INGEST_KEYS");
                return Err(Fault::Refused(format!("{:?}: {}", err.code, err.message)));
            }
        };
        let mut rejected = None;
        let mut retry = None;
        let (mut stored, mut not_stored) = (0, 0);
        for answer in answers {
            match answer.outcome {
                EventOutcome::Accepted | EventOutcome::Duplicate => stored += 1,
                EventOutcome::Rejected { field, message, .. } => {
                    not_stored += 1;
                    rejected.get_or_insert(Fault::Rejected { field, message });
                }
                EventOutcome::Retryable { message, .. } => {
                    not_stored += 1;
                    retry.get_or_insert(Fault::Unavailable(message));
                }
            }
        }
        metrics::events("stored", stored);
        // A rejection decides: resending cannot store that event.
        match rejected.or(retry) {
            None => Ok(()),
            Some(fault) => {
                metrics::events(
                    if fault.is_retryable() {
                        "retry"
                    } else {
                        "rejected"
                    },
                    not_stored,
                );
                Err(fault)
            }
        }
    }

    /// Whether ingest answers at all (an empty call: any answer that is not
    /// "unavailable" means it is up).
    async fn reachable(&self) -> bool {
        let Some(client) = self.by_tenant.values().next() else {
            return false;
        };
        match client.ingest(Vec::new()).await {
            Ok(_) => true,
            Err(err) => !err.is_retryable(),
        }
    }
}

/// `/readyz`'s `ingest` check: ingest answers a call.
pub struct IngestProbe(pub Arc<Shared>);

impl citybrain_runtime::Probe for IngestProbe {
    fn name(&self) -> &'static str {
        "ingest"
    }

    async fn check(&mut self) -> bool {
        tokio::time::timeout(PROBE_TIMEOUT, self.0.ingest.reachable())
            .await
            .unwrap_or(false)
    }
}

/// Delivers a station's OFFLINE reports, retrying while ingest cannot take
/// them (nobody resends these for us). Gives up after a deadline, or at
/// shutdown once the shutdown timeout runs out.
pub async fn deliver_offline(
    shared: Arc<Shared>,
    tenant: String,
    station: String,
    events: Vec<Event>,
) {
    let deadline = Instant::now() + OFFLINE_DEADLINE;
    let mut backoff = OFFLINE_FIRST_BACKOFF;
    loop {
        match shared.ingest.store(&tenant, events.clone()).await {
            Ok(()) => return,
            Err(fault) if fault.is_retryable() && Instant::now() < deadline => {
                tracing::debug!(%station, error = %fault, "offline report not stored yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(OFFLINE_MAX_BACKOFF);
            }
            Err(fault) => {
                tracing::error!(%station, error = %fault, "offline report not stored; giving up");
                return;
            }
        }
    }
}
