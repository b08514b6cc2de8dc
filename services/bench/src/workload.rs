//! The events every phase sends: the town model's own history (the
//! simulator's [`Town`], scale 1 by default), and their Kafka form exactly
//! as ingest writes it (an `IngestedEvent` keyed `tenant/device`, with the
//! kind and schema headers), so the bare producer sends the same bytes.

use citybrain_proto::events::v1::{Event, IngestedEvent};
use citybrain_proto::feed::{Feed, Kind};
use citybrain_simulator::clock::{self, DAY, Millis};
use citybrain_simulator::{Town, TownConfig};
use prost::Message as _;
use std::time::SystemTime;

/// The development key's tenant and source (deploy/local/dev-api-keys.toml).
pub const TENANT: &str = "lucheng";
pub const SOURCE: &str = "town-simulator";
/// The public development key (`make run` prints it).
pub const API_KEY: &str = "cb_dev_lucheng_simulator_key_0001";
/// The simulator's default seed.
pub const SEED: u64 = 20_240_501;

/// One event as ingest would write it to Kafka.
pub struct Record {
    pub feed: Feed,
    pub kind: Kind,
    pub key: String,
    pub payload: Vec<u8>,
}

/// The history the run sends.
pub struct Workload {
    /// Where the model started (a UTC midnight `days` before today's).
    pub origin: Millis,
    /// Where it stopped (the wall clock when generated).
    pub until: Millis,
    pub events: Vec<Event>,
}

impl Workload {
    /// Walks the town from `days` before today's UTC midnight up to now.
    pub fn generate(days: u32, scale: f64) -> Self {
        let now = clock::from_system(SystemTime::now());
        let origin = clock::utc_midnight(now) - Millis::from(days) * DAY;
        let town = Town::new(TownConfig {
            seed: SEED,
            origin,
            scale,
        });
        let events = town
            .take_while(|event| event.observed_at.as_ref().map_or(0, clock::from_timestamp) < now)
            .collect();
        Self {
            origin,
            until: now,
            events,
        }
    }

    /// Events per kind, in `Kind::ALL` order.
    pub fn mix(&self) -> Vec<(Kind, usize)> {
        Kind::ALL
            .iter()
            .map(|kind| {
                let n = self
                    .events
                    .iter()
                    .filter(|e| kind_of(e) == Some(*kind))
                    .count();
                (*kind, n)
            })
            .collect()
    }

    /// The Kafka records ingest makes of these events.
    pub fn records(&self) -> Vec<Record> {
        let received_at = clock::timestamp(clock::from_system(SystemTime::now()));
        self.events
            .iter()
            .filter_map(|event| {
                let kind = kind_of(event)?;
                Some(Record {
                    feed: kind.feed(),
                    kind,
                    key: citybrain_proto::record::key(TENANT, &event.device_id),
                    payload: IngestedEvent {
                        event: Some(event.clone()),
                        tenant_id: TENANT.into(),
                        source_id: SOURCE.into(),
                        received_at: Some(received_at),
                    }
                    .encode_to_vec(),
                })
            })
            .collect()
    }

    /// The events cut into request-sized batches (moved, not copied: a
    /// month of history is millions of events).
    pub fn into_batches(self, size: usize) -> Vec<Vec<Event>> {
        let mut events = self.events.into_iter().peekable();
        let mut batches = Vec::new();
        while events.peek().is_some() {
            batches.push(events.by_ref().take(size).collect());
        }
        batches
    }
}

pub fn kind_of(event: &Event) -> Option<Kind> {
    event.payload.as_ref().map(Kind::of)
}

/// A fresh copy of `template` happening at `at`, with a new event id.
pub fn restamp(template: &Event, at: SystemTime) -> Event {
    let mut event = template.clone();
    event.event_id = uuid::Uuid::now_v7().to_string();
    event.observed_at = Some(clock::timestamp(clock::from_system(at)));
    event
}
