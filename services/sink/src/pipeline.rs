//! The consume → batch → insert → commit loop.
//!
//! # Exactly once, visibly
//!
//! ClickHouse's materialized views count every inserted block, before any
//! ReplacingMergeTree merge, so a row inserted twice is counted twice in the
//! roll-ups. The sink therefore never inserts a message twice, by treating
//! the Kafka lineage stored *with the rows* as the truth about what is done:
//!
//! 1. Within one partition, messages are handled in offset order and each
//!    batch writes a raw table's rows in a single INSERT (one block: the batch
//!    is far below `max_insert_block_size`), so an INSERT lands completely or
//!    not at all, and batches of one partition are written one after another.
//!    Hence, for every raw table T and partition p, the offsets of p stored in
//!    T are always a *prefix*: every T-message of p up to some offset m(T, p),
//!    and none after it.
//! 2. The same INSERT that writes T's rows writes m(T, p) into `sink_lineage`
//!    (a materialized view on T). It is never ahead of or behind the rows.
//! 3. Before a partition is read after an assignment (it is paused until
//!    then), and before any retry of a failed flush, the sink reads m(·, p);
//!    a message of kind T at offset o ≤ m(T, p) is skipped as already stored.
//! 4. Offsets are committed only after every INSERT of the batch succeeded.
//!    The commit is just a resume point: losing it (crash before or during
//!    the commit) only means redelivery, which step 3 absorbs.
//!
//! A crash between the INSERTs into two tables of one batch (say the batch
//! held connector_status rows at offsets 10 and 12 and meter samples at 11
//! and 13, and only the connector_status INSERT landed) leaves m(status, p) =
//! 12 and m(meter, p) at its old value. After the restart Kafka redelivers
//! 10..13; 10 and 12 are skipped, 11 and 13 inserted: nothing lost, nothing
//! twice. A failed INSERT whose outcome is unknown (timeout) is the same
//! case: the retry starts with step 3.
//!
//! Dead letters of a batch are sent (and acknowledged) before its rows are
//! inserted, so a poison message at an offset ≤ the highest stored offset of
//! its partition was dead-lettered already and is skipped on redelivery. A
//! crash before any row of a later batch lands may dead-letter it again: the
//! dead-letter topic is at least once.
//!
//! Reading resumes exactly where it must: see [`Pipeline::rewind`] for a
//! broker that answers a fetch from mid-batch with the next batch.
//!
//! Limits, stated plainly: ClickHouse itself crashing in the middle of an
//! INSERT (after the raw part, before a view's part) is not covered, nor an
//! instance evicted from the group *during* an INSERT (prevented by keeping
//! the insert timeout below `max.poll.interval.ms`). The same event sent to
//! ingest twice in separate requests is two Kafka messages at different
//! offsets; before each INSERT the sink also drops rows whose event id the
//! table already holds (see [`drop_repeated_events`]).

use crate::batch::{Batch, PartitionId, TableRow, Tables};
use crate::config::SinkConfig;
use crate::consumer::{RebalanceNote, SinkContext};
use crate::dead_letter::{DeadLetter, DeadLetterProducer};
use crate::metrics;
use crate::rows::{self, Lineage};
use crate::store::{Store, StoreError, StoredOffsets};
use citybrain_proto::feed::Kind;
use citybrain_proto::record;
use citybrain_runtime::Readiness;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{Headers, OwnedMessage},
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Readiness check name for ClickHouse.
pub const CLICKHOUSE_CHECK: &str = "clickhouse";

/// A partition with lag that delivered nothing for this long is sought back.
const STALL_AFTER: Duration = Duration::from_secs(6);

/// At most this many rows per INSERT feed the freshness histogram (evenly
/// spread), which bounds the exporter's work for large batches.
const FRESHNESS_SAMPLES_PER_INSERT: usize = 1000;

/// Why a flush (or lineage lookup) must be retried later.
#[derive(Debug, thiserror::Error)]
enum RetryLater {
    #[error("dead-letter topic unavailable: {0}")]
    DeadLetter(String),
    #[error("lineage lookup failed: {0}")]
    Lookup(StoreError),
    #[error("the broker did not tell its cluster id within {0} ms")]
    ClusterId(u128),
    #[error("insert into {table} failed: {error}")]
    Insert {
        table: &'static str,
        error: StoreError,
    },
}

impl RetryLater {
    fn stage(&self) -> &'static str {
        match self {
            RetryLater::DeadLetter(_) => "dead_letter",
            RetryLater::Lookup(_) => "lookup",
            RetryLater::ClusterId(_) => "broker_metadata",
            RetryLater::Insert { .. } => "insert",
        }
    }
}

/// What ClickHouse holds of one assigned partition.
#[derive(Debug, Default)]
struct PartitionState {
    stored: HashMap<Kind, u64>,
}

impl PartitionState {
    fn from_lineage(stored: &StoredOffsets, partition: &PartitionId) -> Self {
        let stored = stored
            .iter()
            .filter(|((_, topic, id), _)| *topic == partition.0 && *id == partition.1)
            .map(|((kind, _, _), offset)| (*kind, *offset))
            .collect();
        Self { stored }
    }

    fn is_stored(&self, kind: Kind, offset: u64) -> bool {
        self.stored.get(&kind).is_some_and(|max| offset <= *max)
    }

    fn max_stored(&self) -> Option<u64> {
        self.stored.values().copied().max()
    }
}

pub struct Pipeline {
    consumer: Arc<StreamConsumer<SinkContext>>,
    store: Store,
    dead_letters: DeadLetterProducer,
    config: SinkConfig,
    readiness: Readiness,
    /// The broker's cluster id, read with each lineage lookup: lineage is
    /// kept per log, and a log is (cluster, topic, partition). Empty until
    /// the first lookup.
    cluster: Arc<str>,
    /// Assigned partitions whose lineage is known: these are read.
    active: HashMap<PartitionId, PartitionState>,
    /// Assigned partitions, paused until their lineage is read.
    awaiting_lineage: BTreeSet<PartitionId>,
    batch: Batch,
    /// The offsets committed so far, per partition still assigned.
    committed: HashMap<PartitionId, i64>,
    /// A flush failed: what it wrote is unknown until the lineage is re-read.
    recheck: bool,
    /// Reading should stop for now (outage, full batch or shutdown).
    hold: bool,
    /// Partitions this instance paused.
    ///
    /// A partition is only ever paused after this instance received a
    /// message from it since its assignment. librdkafka resumes a paused
    /// partition from the last message the application received, but one
    /// paused before that drops what it had fetched without rewinding (seen
    /// here as lost messages right after assignments). Until then its
    /// messages are taken (or held while its lineage is read), which bounds
    /// the extra memory to one fetch per partition.
    paused: HashSet<PartitionId>,
    /// Partitions that delivered a message since their assignment.
    started: HashSet<PartitionId>,
    /// Per partition, the offset the next message must have: the committed
    /// offset at assignment, then one past each message taken. Resuming
    /// seeks there.
    next: HashMap<PartitionId, i64>,
    /// Partitions whose messages skipped ahead of `next`, with the current
    /// backward step (see [`Pipeline::rewind`]); a seek is pending or done.
    rewinding: HashMap<PartitionId, i64>,
    /// Seeks to issue: (partition, offset).
    pending_seeks: Vec<(PartitionId, i64)>,
    /// When each partition last delivered a message (or was last sought).
    last_progress: HashMap<PartitionId, Instant>,
    /// Messages of partitions whose lineage is not read yet.
    held: Vec<OwnedMessage>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Pipeline {
    pub fn new(
        consumer: Arc<StreamConsumer<SinkContext>>,
        store: Store,
        dead_letters: DeadLetterProducer,
        config: SinkConfig,
        readiness: Readiness,
    ) -> Self {
        let backoff = config.backoff.initial;
        Self {
            consumer,
            store,
            dead_letters,
            config,
            readiness,
            cluster: Arc::from(""),
            active: HashMap::new(),
            awaiting_lineage: BTreeSet::new(),
            batch: Batch::default(),
            committed: HashMap::new(),
            recheck: false,
            hold: false,
            paused: HashSet::new(),
            started: HashSet::new(),
            next: HashMap::new(),
            rewinding: HashMap::new(),
            pending_seeks: Vec::new(),
            last_progress: HashMap::new(),
            held: Vec::new(),
            retry_at: None,
            backoff,
        }
    }

    /// Runs until `shutdown` is cancelled, then writes and commits what it
    /// holds (within the shutdown timeout) and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let consumer = self.consumer.clone();
        let mut stop_by: Option<Instant> = None;
        loop {
            self.apply_rebalance_notes();
            self.check_stalls();
            self.seek_pending().await;
            let now = Instant::now();
            if self.retry_at.is_none_or(|at| now >= at) {
                let flush_now = self.batch.is_due(&self.config.batch, now)
                    || (stop_by.is_some() && !self.batch.is_empty());
                match self.step(flush_now).await {
                    Ok(()) => self.recovered(),
                    Err(err) => self.failed(err),
                }
            }
            if let Some(by) = stop_by
                && (self.batch.is_empty() || Instant::now() >= by)
            {
                if !self.batch.is_empty() {
                    tracing::warn!(
                        rows = self.batch.rows(),
                        "shutdown timeout: the last batch is not written and not committed; \
                         the partitions' next owner reads it again"
                    );
                }
                break;
            }
            let hold = stop_by.is_some()
                || self.retry_at.is_some()
                || self.batch.is_full(&self.config.batch);
            if hold != self.hold {
                self.hold(hold).await;
            }

            let idle = Instant::now() + Duration::from_millis(500);
            let wake = [
                self.batch.deadline(&self.config.batch),
                self.retry_at,
                Some(idle),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(idle);
            tokio::select! {
                () = shutdown.cancelled(), if stop_by.is_none() => {
                    tracing::info!(rows = self.batch.rows(), "stopping: writing the last batch");
                    stop_by = Some(Instant::now() + self.config.shutdown_timeout);
                    self.retry_at = None;
                }
                message = consumer.recv(), if stop_by.is_none() => match message {
                    Ok(message) => self.accept(&message),
                    Err(err) => tracing::warn!(error = %err, "kafka consumer error"),
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        self.final_commit().await;
    }

    /// Reads pending lineage, then flushes when asked to.
    async fn step(&mut self, flush: bool) -> Result<(), RetryLater> {
        self.load_lineage().await?;
        if flush {
            self.flush().await?;
        }
        Ok(())
    }

    fn recovered(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!("ClickHouse and the dead-letter topic answer again; resuming");
        }
        self.backoff = self.config.backoff.initial;
        self.readiness.set(CLICKHOUSE_CHECK, true);
        metrics::clickhouse_up(true);
    }

    fn failed(&mut self, err: RetryLater) {
        metrics::flush_failed(err.stage());
        if matches!(err, RetryLater::Lookup(_) | RetryLater::Insert { .. }) {
            self.readiness.set(CLICKHOUSE_CHECK, false);
            metrics::clickhouse_up(false);
        }
        tracing::warn!(error = %err, retry_in_ms = self.backoff.as_millis() as u64, rows = self.batch.rows(), "write failed; consumption paused");
        self.recheck = true;
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff.max);
    }

    /// Acts on the rebalances librdkafka reported since the last call.
    fn apply_rebalance_notes(&mut self) {
        for note in self.consumer.context().take_notes() {
            match note {
                RebalanceNote::Revoked(partitions) => {
                    let revoked: HashSet<PartitionId> = partitions.into_iter().collect();
                    self.batch.forget(&revoked);
                    self.held
                        .retain(|m| !revoked.contains(&(m.topic().to_string(), m.partition())));
                    for partition in &revoked {
                        self.paused.remove(partition);
                        self.forget_position(partition);
                        self.committed.remove(partition);
                        self.active.remove(partition);
                        self.awaiting_lineage.remove(partition);
                    }
                }
                RebalanceNote::Assigned(partitions) => {
                    for partition in partitions {
                        self.active.remove(&partition);
                        self.paused.remove(&partition);
                        self.forget_position(&partition);
                        self.awaiting_lineage.insert(partition);
                    }
                }
            }
            metrics::assigned_partitions(
                self.consumer.context().instance(),
                self.active.len() + self.awaiting_lineage.len(),
            );
        }
    }

    /// Reads what ClickHouse holds of newly assigned partitions and starts
    /// reading them.
    async fn load_lineage(&mut self) -> Result<(), RetryLater> {
        if self.awaiting_lineage.is_empty() {
            return Ok(());
        }
        let topics: Vec<String> = self
            .awaiting_lineage
            .iter()
            .map(|(topic, _)| topic.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The previous owner may have written through another replica.
        self.store
            .await_replication()
            .await
            .map_err(RetryLater::Lookup)?;
        self.read_cluster_id().await?;
        let stored = self
            .store
            .stored_offsets(&self.cluster, &topics)
            .await
            .map_err(RetryLater::Lookup)?;
        let awaiting: Vec<PartitionId> = self.awaiting_lineage.iter().cloned().collect();
        let committed = self.committed_offsets(&awaiting).await;
        for partition in std::mem::take(&mut self.awaiting_lineage) {
            let state = PartitionState::from_lineage(&stored, &partition);
            let start = committed.get(&partition).copied();
            tracing::debug!(topic = %partition.0, partition = partition.1, stored = ?state.stored, ?start, "partition ready");
            if let Some(start) = start {
                self.next.insert(partition.clone(), start);
            }
            self.active.insert(partition, state);
        }
        for message in std::mem::take(&mut self.held) {
            self.accept(&message);
        }
        self.apply_hold().await;
        Ok(())
    }

    /// Reads the broker's cluster id. If it changed under this instance, the
    /// log was replaced (a memory-storage broker restarted, say) and what is
    /// stored of every partition is looked up again under the new id.
    async fn read_cluster_id(&mut self) -> Result<(), RetryLater> {
        let consumer = self.consumer.clone();
        let timeout = self.config.group.session_timeout;
        let cluster =
            tokio::task::spawn_blocking(move || consumer.client().fetch_cluster_id(timeout))
                .await
                .ok()
                .flatten()
                .ok_or(RetryLater::ClusterId(timeout.as_millis()))?;
        if *self.cluster == *cluster {
            return Ok(());
        }
        if !self.cluster.is_empty() {
            tracing::warn!(before = %self.cluster, now = %cluster, "the broker's cluster id changed: its logs were replaced; looking up what is stored of each partition again");
            let active: Vec<PartitionId> = self.active.keys().cloned().collect();
            self.active.clear();
            self.awaiting_lineage.extend(active);
        } else {
            tracing::info!(cluster = %cluster, "reading from Kafka cluster");
        }
        self.cluster = Arc::from(cluster);
        Ok(())
    }

    /// The group's committed offsets of `partitions` (absent: none committed
    /// or not known; the first message then sets the expectation).
    async fn committed_offsets(&self, partitions: &[PartitionId]) -> HashMap<PartitionId, i64> {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition(topic, *partition);
        }
        let consumer = self.consumer.clone();
        let timeout = self.config.store.insert_timeout;
        let committed =
            tokio::task::spawn_blocking(move || consumer.committed_offsets(list, timeout)).await;
        match committed {
            Ok(Ok(list)) => list
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(offset) => {
                        Some(((e.topic().to_string(), e.partition()), offset))
                    }
                    _ => None,
                })
                .collect(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "committed offsets unknown; not checking the first fetch for gaps");
                HashMap::new()
            }
            Err(_) => HashMap::new(),
        }
    }

    fn forget_position(&mut self, partition: &PartitionId) {
        self.started.remove(partition);
        self.next.remove(partition);
        self.rewinding.remove(partition);
        self.last_progress.remove(partition);
        self.pending_seeks.retain(|(p, _)| p != partition);
    }

    /// A partition's messages skipped ahead of the offset it must continue
    /// from. Kafka never does that on these topics (no compaction, no
    /// transactions), but a broker may answer a fetch from the middle of a
    /// record batch with the *next* batch (Tansu 0.6 does), which would lose
    /// the rest of the batch. Seek back by a doubling step until the batch
    /// holding `want` is delivered; what is re-read is skipped.
    fn rewind(&mut self, partition: PartitionId, want: i64, got: i64) {
        if self.pending_seeks.iter().any(|(p, _)| *p == partition) {
            return;
        }
        let step = self.rewinding.get(&partition).map_or(1, |step| step * 2);
        self.last_progress.insert(partition.clone(), Instant::now());
        let target = (want - step).max(0);
        tracing::info!(topic = %partition.0, partition = partition.1, want, got, target, "fetch skipped ahead; seeking back");
        metrics::rewound();
        self.rewinding.insert(partition.clone(), step);
        self.pending_seeks.push((partition, target));
    }

    /// A partition with messages waiting (lag > 0) that delivered nothing
    /// for a while may sit behind a skipped record batch that no later
    /// message reveals: seek back as for a skip.
    fn check_stalls(&mut self) {
        if self.hold {
            return;
        }
        let now = Instant::now();
        let stalled: Vec<(PartitionId, i64)> = self
            .active
            .keys()
            .filter(|p| !self.paused.contains(*p))
            .filter(|p| self.consumer.context().lag(p).is_some_and(|lag| lag > 0))
            .filter(|p| {
                self.last_progress
                    .get(*p)
                    .is_none_or(|at| now.duration_since(*at) > STALL_AFTER)
            })
            .filter_map(|p| self.next.get(p).map(|want| (p.clone(), *want)))
            .collect();
        for (partition, want) in stalled {
            self.rewind(partition, want, want);
        }
    }

    /// Issues the seeks `rewind` asked for.
    async fn seek_pending(&mut self) {
        if self.pending_seeks.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.pending_seeks {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        let consumer = self.consumer.clone();
        let result = tokio::task::spawn_blocking(move || {
            consumer.seek_partitions(list, Duration::from_secs(5))
        })
        .await;
        match result {
            Ok(Ok(list)) => {
                let failed: HashSet<PartitionId> = list
                    .elements()
                    .iter()
                    .filter(|e| e.error().is_err())
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                // Failed seeks are asked for again by the next skipped message.
                self.pending_seeks.clear();
                for partition in failed {
                    tracing::warn!(topic = %partition.0, partition = partition.1, "seek failed");
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "seek failed");
                self.pending_seeks.clear();
            }
            Err(_) => self.pending_seeks.clear(),
        }
    }

    /// Sets whether reading should stop, and pauses or resumes accordingly.
    async fn hold(&mut self, hold: bool) {
        self.hold = hold;
        self.apply_hold().await;
    }

    fn wants_pause(&self, partition: &PartitionId) -> bool {
        self.hold
            || (self.awaiting_lineage.contains(partition)
                && self.held.len() >= self.config.batch.max_rows)
    }

    /// Pauses the partitions that should not be read and safely can be
    /// (those that delivered a message since their assignment).
    fn pause_what_waits(&mut self) {
        let mut list = TopicPartitionList::new();
        for partition in &self.started {
            if self.wants_pause(partition) && !self.paused.contains(partition) {
                list.add_partition(&partition.0, partition.1);
            }
        }
        if list.count() == 0 {
            return;
        }
        match self.consumer.pause(&list) {
            Ok(()) => self.paused.extend(ids(&list)),
            Err(err) => tracing::error!(error = %err, "pausing partitions failed"),
        }
    }

    /// Pauses what waits and resumes the rest, each resumed partition
    /// sought first to the message after the last one taken.
    async fn apply_hold(&mut self) {
        self.pause_what_waits();
        let mut list = TopicPartitionList::new();
        for partition in &self.paused {
            if !self.wants_pause(partition)
                && let Some(next) = self.next.get(partition)
            {
                let _ = list.add_partition_offset(&partition.0, partition.1, Offset::Offset(*next));
            }
        }
        if list.count() == 0 {
            return;
        }
        let consumer = self.consumer.clone();
        let seek = list.clone();
        let sought = tokio::task::spawn_blocking(move || {
            consumer.seek_partitions(seek, Duration::from_secs(5))
        })
        .await
        .map_err(|err| err.to_string())
        .and_then(|result| result.map_err(|err| err.to_string()));
        match sought {
            Ok(results) => {
                // Resume only what was sought; the rest is retried next time.
                let mut resume = TopicPartitionList::new();
                for element in results.elements() {
                    if element.error().is_ok() {
                        resume.add_partition(element.topic(), element.partition());
                    } else {
                        tracing::warn!(topic = element.topic(), partition = element.partition(), error = ?element.error(), "seek failed; staying paused");
                    }
                }
                match self.consumer.resume(&resume) {
                    Ok(()) => {
                        for id in ids(&resume) {
                            self.paused.remove(&id);
                        }
                    }
                    Err(err) => tracing::error!(error = %err, "resuming partitions failed"),
                }
            }
            Err(err) => tracing::warn!(error = %err, "seeking partitions failed; staying paused"),
        }
    }

    /// Takes one message into the batch: a row, a dead letter, or nothing
    /// when ClickHouse already holds it.
    fn accept<M: Message + Detach>(&mut self, message: &M) {
        // The `recv()` that returned this message may have run a rebalance
        // hook first (an assignment, and already a fetch from it): act on
        // the notes before deciding whose message this is, or a message of
        // a just-assigned partition would be taken for a stranger's and lost.
        self.apply_rebalance_notes();
        let id = (message.topic().to_string(), message.partition());
        let offset = message.offset();
        if self.awaiting_lineage.contains(&id) {
            // Held, not paused: pausing and resuming costs a seek (see
            // `rewind`). Only when the lineage lookup keeps failing and the
            // held messages pile up are the partitions paused.
            self.held.push(message.detach());
            self.started.insert(id);
            if self.held.len() >= self.config.batch.max_rows {
                self.pause_what_waits();
            }
            return;
        }
        if !self.active.contains_key(&id) {
            // From a partition no longer ours.
            return;
        }
        if let Some(&want) = self.next.get(&id) {
            if offset < want {
                // Re-read after seeking back: taken already.
                return;
            }
            if offset > want {
                self.rewind(id, want, offset);
                return;
            }
        }
        self.rewinding.remove(&id);
        self.last_progress.insert(id.clone(), Instant::now());
        self.next.insert(id.clone(), offset + 1);
        if self.started.insert(id.clone()) && self.hold {
            self.pause_what_waits();
        }
        let Some(state) = self.active.get(&id) else {
            return;
        };
        let lineage = Lineage {
            cluster: self.cluster.clone(),
            topic: id.0.clone(),
            partition: id.1,
            offset,
        };
        let payload = message.payload().unwrap_or_default();
        let schema = message.headers().and_then(|hs| {
            hs.iter()
                .find(|h| h.key == record::header::SCHEMA)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        let stored_offset = u64::try_from(offset).unwrap_or_default();
        match rows::decode(payload, schema.as_deref(), &lineage) {
            Ok(row) if state.is_stored(row.kind(), stored_offset) => {
                metrics::skipped_already_stored()
            }
            Ok(row) => self.batch.push_row(row),
            Err(_) if state.max_stored().is_some_and(|max| stored_offset <= max) => {
                metrics::skipped_already_stored();
            }
            Err(poison) => {
                tracing::warn!(topic = %lineage.topic, partition = lineage.partition, offset, reason = poison.reason(), error = %poison, "poison message");
                let original_headers = message
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                self.batch.push_dead_letter(DeadLetter::original(
                    lineage,
                    message.key().map(<[u8]>::to_vec),
                    payload.to_vec(),
                    original_headers,
                    &poison,
                ));
            }
        }
        self.batch.advance((&id.0, id.1), offset, payload.len());
    }

    /// Writes the batch: dead letters, then each raw table, then commits.
    async fn flush(&mut self) -> Result<(), RetryLater> {
        if self.recheck {
            self.drop_already_stored().await?;
            self.recheck = false;
        }
        let (rows, bytes) = (self.batch.rows(), self.batch.bytes());

        let mut letters = std::mem::take(&mut self.batch.dead_letters).into_iter();
        while let Some(letter) = letters.next() {
            if let Err(err) = self.dead_letters.send(&letter).await {
                self.batch.dead_letters = std::iter::once(letter).chain(letters).collect();
                return Err(RetryLater::DeadLetter(err.to_string()));
            }
            metrics::dead_lettered(letter.reason);
        }

        // The tables are written concurrently: each still gets the batch's
        // rows in one INSERT and the next batch starts only when all are
        // done, so every table's stored offsets stay a prefix (module doc).
        // Written one after another they spent most of a batch waiting on
        // round trips (`make bench`, sink at 0.16 cores).
        let store = &self.store;
        let dead_letters = &self.dead_letters;
        let dedup = self.config.store.dedup_event_ids;
        let Tables {
            connector_status,
            meter_sample,
            charging_session,
            parking_site_counts,
            parking_spot_status,
            vehicle_position,
            patrol_check_in,
            bin_reading,
            waste_collection,
            service_request,
        } = &mut self.batch.tables;
        let written = tokio::join!(
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::ConnectorStatus,
                connector_status
            ),
            write_table(store, dead_letters, dedup, Kind::MeterSample, meter_sample),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::ChargingSession,
                charging_session
            ),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::ParkingSiteCounts,
                parking_site_counts
            ),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::ParkingSpotStatus,
                parking_spot_status
            ),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::VehiclePosition,
                vehicle_position
            ),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::PatrolCheckIn,
                patrol_check_in
            ),
            write_table(store, dead_letters, dedup, Kind::BinReading, bin_reading),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::WasteCollection,
                waste_collection
            ),
            write_table(
                store,
                dead_letters,
                dedup,
                Kind::ServiceRequest,
                service_request
            ),
        );
        // A failure leaves what the others wrote to the lineage re-read
        // before the retry (`recheck`), as a failure part-way did before.
        [
            written.0, written.1, written.2, written.3, written.4, written.5, written.6, written.7,
            written.8, written.9,
        ]
        .into_iter()
        .collect::<Result<(), RetryLater>>()?;

        metrics::batch_written(rows, bytes);
        self.commit();
        self.batch.clear();
        Ok(())
    }

    /// After a failed flush: drops what ClickHouse turns out to hold.
    async fn drop_already_stored(&mut self) -> Result<(), RetryLater> {
        let topics: Vec<String> = self
            .batch
            .partitions()
            .into_iter()
            .map(|(topic, _)| topic)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if topics.is_empty() {
            return Ok(());
        }
        self.read_cluster_id().await?;
        let stored = self
            .store
            .stored_offsets(&self.cluster, &topics)
            .await
            .map_err(RetryLater::Lookup)?;
        let before = self.batch.rows();
        self.batch
            .tables
            .retain(|kind, (topic, partition), offset| {
                stored
                    .get(&(kind, topic.to_string(), partition))
                    .is_none_or(|max| offset > *max)
            });
        let dropped = before - self.batch.rows();
        if dropped > 0 {
            tracing::info!(
                rows = dropped,
                "the failed attempt had stored some rows after all; not inserting them again"
            );
        }
        Ok(())
    }

    /// Commits the batch's offsets (asynchronously: a lost commit only means
    /// redelivered messages, which are skipped).
    fn commit(&mut self) {
        for (partition, next) in &self.batch.commit_offsets {
            if self.active.contains_key(partition) {
                self.committed.insert(partition.clone(), *next);
            }
        }
        let list = self.commit_list(self.batch.commit_offsets.keys());
        tracing::debug!(offsets = ?self.batch.commit_offsets, "committing");
        if list.count() > 0
            && let Err(err) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::warn!(error = %err, "offset commit failed; redelivered messages will be skipped");
        }
    }

    /// The committed offsets of `partitions` that are still ours.
    fn commit_list<'a>(
        &self,
        partitions: impl Iterator<Item = &'a PartitionId>,
    ) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            if let (Some(next), true) = (
                self.committed.get(partition),
                self.active.contains_key(partition),
            ) {
                let _ = list.add_partition_offset(&partition.0, partition.1, Offset::Offset(*next));
            }
        }
        list
    }

    /// Commits once more, synchronously, what the flushes committed
    /// asynchronously, so the next owner starts exactly where this one
    /// stopped (a lost commit would only cost a re-read).
    async fn final_commit(&self) {
        let list = self.commit_list(self.committed.keys());
        if list.count() == 0 {
            return;
        }
        let consumer = self.consumer.clone();
        let result = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .unwrap_or(Ok(()));
        if let Err(err) = result {
            tracing::warn!(error = %err, "final offset commit failed");
        }
    }
}

/// Copies a message out of librdkafka's buffer.
pub trait Detach {
    fn detach(&self) -> OwnedMessage;
}

impl Detach for rdkafka::message::BorrowedMessage<'_> {
    fn detach(&self) -> OwnedMessage {
        rdkafka::message::BorrowedMessage::detach(self)
    }
}

impl Detach for OwnedMessage {
    fn detach(&self) -> OwnedMessage {
        self.clone()
    }
}

fn ids(list: &TopicPartitionList) -> Vec<PartitionId> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Drops rows whose event id is already stored or earlier in the batch: the
/// same event sent to ingest twice (a vendor retrying an answer it did not
/// get) is two Kafka messages, and the roll-ups must count it once. Both
/// copies share a Kafka key (tenant/device), so one partition, handled in
/// order by one instance: the later copy is always checked after the
/// earlier one is stored.
async fn drop_repeated_events<R: TableRow>(
    store: &Store,
    kind: Kind,
    rows: &mut Vec<R>,
) -> Result<(), RetryLater> {
    let before = rows.len();
    let mut seen = HashSet::with_capacity(rows.len());
    rows.retain(|row| seen.insert(row.event_id()));
    let stored = store
        .stored_event_ids(kind.raw_table(), rows)
        .await
        .map_err(RetryLater::Lookup)?;
    if !stored.is_empty() {
        rows.retain(|row| !stored.contains(&row.event_id()));
    }
    let dropped = before - rows.len();
    if dropped > 0 {
        metrics::skipped_repeated_event(dropped);
        tracing::info!(
            table = kind.raw_table(),
            rows = dropped,
            "event ids already stored; not inserting them again"
        );
    }
    Ok(())
}

/// Drops rows whose event id the table holds (if `dedup`), then inserts
/// the rest.
async fn write_table<R: TableRow>(
    store: &Store,
    dead_letters: &DeadLetterProducer,
    dedup: bool,
    kind: Kind,
    rows: &mut Vec<R>,
) -> Result<(), RetryLater> {
    if rows.is_empty() {
        return Ok(());
    }
    if dedup {
        drop_repeated_events(store, kind, rows).await?;
    }
    insert_table(store, dead_letters, kind, rows).await
}

/// Inserts one table's rows. A row ClickHouse refuses is found by halving
/// the failing range (inserting left to right, so stored offsets stay a
/// prefix) and dead-lettered. On an outage the rows already handled are
/// removed and the rest stay for the retry.
async fn insert_table<R: TableRow>(
    store: &Store,
    dead_letters: &DeadLetterProducer,
    kind: Kind,
    rows: &mut Vec<R>,
) -> Result<(), RetryLater> {
    let table = kind.raw_table();
    // Ranges still to insert, the next one last.
    let mut pending = Vec::new();
    pending.push(0..rows.len());
    let mut done = 0;
    while let Some(range) = pending.pop() {
        let started = Instant::now();
        match store.insert(table, &rows[range.clone()]).await {
            Ok(()) => {
                metrics::rows_inserted(table, range.len(), started.elapsed());
                record_freshness(kind, &rows[range.clone()]);
                done = range.end;
            }
            Err(StoreError::Rejected(_)) if range.len() > 1 => {
                let mid = range.start + range.len() / 2;
                pending.push(mid..range.end);
                pending.push(range.start..mid);
            }
            Err(StoreError::Rejected(detail)) => {
                let row = &rows[range.start];
                let (topic, partition) = row.partition_id();
                let letter = DeadLetter {
                    lineage: Lineage {
                        cluster: Arc::from(row.cluster()),
                        topic: topic.to_string(),
                        partition,
                        offset: i64::try_from(row.offset()).unwrap_or_default(),
                    },
                    key: None,
                    payload: serde_json::to_vec(row).unwrap_or_default(),
                    payload_format: "json_row",
                    headers: Vec::new(),
                    reason: rows::Poison::Rejected(String::new()).reason(),
                    detail,
                };
                if let Err(err) = dead_letters.send(&letter).await {
                    rows.drain(..done);
                    return Err(RetryLater::DeadLetter(err.to_string()));
                }
                metrics::dead_lettered(letter.reason);
                done = range.end;
            }
            Err(error) => {
                rows.drain(..done);
                return Err(RetryLater::Insert { table, error });
            }
        }
    }
    rows.clear();
    Ok(())
}

fn record_freshness<R: TableRow>(kind: Kind, rows: &[R]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let step = rows.len().div_ceil(FRESHNESS_SAMPLES_PER_INSERT).max(1);
    for row in rows.iter().step_by(step) {
        metrics::freshness(kind.as_str(), now - f64::from(row.observed_at()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_offsets_are_per_kind_and_partition() {
        let stored: StoredOffsets = HashMap::from([
            ((Kind::ConnectorStatus, "x".to_string(), 0), 12),
            ((Kind::MeterSample, "x".to_string(), 0), 9),
            ((Kind::MeterSample, "x".to_string(), 1), 99),
        ]);
        let state = PartitionState::from_lineage(&stored, &("x".to_string(), 0));
        assert!(state.is_stored(Kind::ConnectorStatus, 12));
        assert!(!state.is_stored(Kind::ConnectorStatus, 13));
        assert!(state.is_stored(Kind::MeterSample, 9));
        assert!(!state.is_stored(Kind::MeterSample, 11));
        assert!(!state.is_stored(Kind::BinReading, 0));
        assert_eq!(state.max_stored(), Some(12));
    }
}
