//! What the sink has read but not yet written: rows per raw table, dead
//! letters, and the offset to commit per partition once they are written.

use crate::config::BatchLimits;
use crate::dead_letter::DeadLetter;
use crate::rows::*;
use citybrain_proto::feed::Kind;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// A Kafka partition: (topic, partition).
pub type PartitionId = (String, i32);

/// What every raw-table row tells the pipeline about itself.
pub trait TableRow:
    clickhouse::RowOwned + clickhouse::RowWrite + serde::Serialize + Send + Sync + 'static
{
    fn partition_id(&self) -> (&str, i32);
    /// The cluster id of the broker the row's message was read from.
    fn cluster(&self) -> &str;
    fn offset(&self) -> u64;
    fn observed_at(&self) -> u32;
    fn event_id(&self) -> uuid::Uuid;
    /// (tenant, device): the start of the raw table's sorting key.
    fn device(&self) -> (&str, &str);
}

/// Rows per raw table, one field per kind.
#[derive(Debug, Default)]
pub struct Tables {
    pub connector_status: Vec<ConnectorStatusRow>,
    pub meter_sample: Vec<MeterSampleRow>,
    pub charging_session: Vec<ChargingSessionRow>,
    pub parking_site_counts: Vec<ParkingSiteCountsRow>,
    pub parking_spot_status: Vec<ParkingSpotStatusRow>,
    pub vehicle_position: Vec<VehiclePositionRow>,
    pub patrol_check_in: Vec<PatrolCheckInRow>,
    pub bin_reading: Vec<BinReadingRow>,
    pub waste_collection: Vec<WasteCollectionRow>,
    pub service_request: Vec<ServiceRequestRow>,
}

/// Runs `$body` once per table with `$kind: Kind` and `$rows: &mut Vec<_>`
/// bound, in a fixed order. The body may `.await` and use `?`.
macro_rules! each_table {
    ($tables:expr, |$kind:ident, $rows:ident| $body:block) => {{
        let tables: &mut $crate::batch::Tables = $tables;
        {
            let $kind = citybrain_proto::feed::Kind::ConnectorStatus;
            let $rows = &mut tables.connector_status;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::MeterSample;
            let $rows = &mut tables.meter_sample;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::ChargingSession;
            let $rows = &mut tables.charging_session;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::ParkingSiteCounts;
            let $rows = &mut tables.parking_site_counts;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::ParkingSpotStatus;
            let $rows = &mut tables.parking_spot_status;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::VehiclePosition;
            let $rows = &mut tables.vehicle_position;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::PatrolCheckIn;
            let $rows = &mut tables.patrol_check_in;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::BinReading;
            let $rows = &mut tables.bin_reading;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::WasteCollection;
            let $rows = &mut tables.waste_collection;
            $body
        }
        {
            let $kind = citybrain_proto::feed::Kind::ServiceRequest;
            let $rows = &mut tables.service_request;
            $body
        }
    }};
}

macro_rules! impl_table_row {
    ($($name:ident),*) => {$(
        impl TableRow for $name {
            fn partition_id(&self) -> (&str, i32) {
                (&self.kafka_topic, self.kafka_partition)
            }
            fn cluster(&self) -> &str {
                &self.kafka_cluster
            }
            fn offset(&self) -> u64 {
                self.kafka_offset
            }
            fn observed_at(&self) -> u32 {
                self.observed_at
            }
            fn event_id(&self) -> uuid::Uuid {
                self.event_id
            }
            fn device(&self) -> (&str, &str) {
                (&self.tenant_id, &self.device_id)
            }
        }
    )*};
}
impl_table_row!(
    ConnectorStatusRow,
    MeterSampleRow,
    ChargingSessionRow,
    ParkingSiteCountsRow,
    ParkingSpotStatusRow,
    VehiclePositionRow,
    PatrolCheckInRow,
    BinReadingRow,
    WasteCollectionRow,
    ServiceRequestRow
);

impl Tables {
    /// Files a decoded row under its kind's table.
    pub fn push(&mut self, row: RawRow) {
        match row {
            RawRow::ConnectorStatus(r) => self.connector_status.push(r),
            RawRow::MeterSample(r) => self.meter_sample.push(r),
            RawRow::ChargingSession(r) => self.charging_session.push(r),
            RawRow::ParkingSiteCounts(r) => self.parking_site_counts.push(r),
            RawRow::ParkingSpotStatus(r) => self.parking_spot_status.push(r),
            RawRow::VehiclePosition(r) => self.vehicle_position.push(r),
            RawRow::PatrolCheckIn(r) => self.patrol_check_in.push(r),
            RawRow::BinReading(r) => self.bin_reading.push(r),
            RawRow::WasteCollection(r) => self.waste_collection.push(r),
            RawRow::ServiceRequest(r) => self.service_request.push(r),
        }
    }

    /// Keeps the rows for which `keep(kind, partition, offset)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(Kind, (&str, i32), u64) -> bool) {
        each_table!(self, |kind, rows| {
            rows.retain(|row| keep(kind, row.partition_id(), row.offset()));
        });
    }

    /// Rows in all tables.
    pub fn row_count(&self) -> usize {
        self.connector_status.len()
            + self.meter_sample.len()
            + self.charging_session.len()
            + self.parking_site_counts.len()
            + self.parking_spot_status.len()
            + self.vehicle_position.len()
            + self.patrol_check_in.len()
            + self.bin_reading.len()
            + self.waste_collection.len()
            + self.service_request.len()
    }
}

/// One batch: grows until a limit is reached, then is written as a whole.
#[derive(Debug, Default)]
pub struct Batch {
    pub tables: Tables,
    /// Dead letters to send before the rows are inserted.
    pub dead_letters: Vec<DeadLetter>,
    /// Per partition, the offset to commit once everything above is written:
    /// one past the last message read, whether it became a row, a dead letter
    /// or was skipped as already stored.
    pub commit_offsets: BTreeMap<PartitionId, i64>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    /// Notes that the message at `offset` was read; `bytes` is its size.
    pub fn advance(&mut self, partition: (&str, i32), offset: i64, bytes: usize) {
        self.started.get_or_insert_with(Instant::now);
        self.bytes += bytes;
        let next = offset + 1;
        let entry = self
            .commit_offsets
            .entry((partition.0.to_string(), partition.1))
            .or_insert(next);
        *entry = (*entry).max(next);
    }

    pub fn push_row(&mut self, row: RawRow) {
        self.tables.push(row);
    }

    pub fn push_dead_letter(&mut self, letter: DeadLetter) {
        self.dead_letters.push(letter);
    }

    pub fn rows(&self) -> usize {
        self.tables.row_count()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Nothing read since the last flush.
    pub fn is_empty(&self) -> bool {
        self.commit_offsets.is_empty()
    }

    /// A row or byte limit is reached: stop reading until written.
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.rows() >= limits.max_rows || self.bytes >= limits.max_bytes
    }

    /// When the batch must be written because of its age.
    pub fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.started.map(|at| at + limits.max_age)
    }

    pub fn is_due(&self, limits: &BatchLimits, now: Instant) -> bool {
        !self.is_empty()
            && (self.is_full(limits) || self.deadline(limits).is_some_and(|at| now >= at))
    }

    /// The partitions this batch holds anything of.
    pub fn partitions(&self) -> Vec<PartitionId> {
        self.commit_offsets.keys().cloned().collect()
    }

    /// Drops everything of `revoked`: none of it was written or committed, so
    /// the partitions' next owner reads it again.
    pub fn forget(&mut self, revoked: &HashSet<PartitionId>) {
        let gone = |topic: &str, partition: i32| revoked.contains(&(topic.to_string(), partition));
        self.tables
            .retain(|_, (topic, partition), _| !gone(topic, partition));
        self.dead_letters
            .retain(|letter| !gone(&letter.lineage.topic, letter.lineage.partition));
        self.commit_offsets
            .retain(|(topic, partition), _| !gone(topic, *partition));
        if self.commit_offsets.is_empty() {
            *self = Batch::default();
        }
    }

    /// Starts the next batch.
    pub fn clear(&mut self) {
        *self = Batch::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_make_a_batch_due() {
        let limits = BatchLimits {
            max_rows: 10,
            max_bytes: 100,
            max_age: Duration::from_secs(60),
        };
        let mut batch = Batch::default();
        assert!(!batch.is_due(&limits, Instant::now()));
        batch.advance(("t", 0), 5, 60);
        assert!(!batch.is_due(&limits, Instant::now()));
        assert!(batch.is_due(&limits, Instant::now() + Duration::from_secs(61)));
        batch.advance(("t", 0), 6, 60);
        assert!(batch.is_full(&limits), "bytes over the limit");
        assert_eq!(batch.commit_offsets[&("t".to_string(), 0)], 7);
    }

    #[test]
    fn forgetting_a_partition_keeps_the_others() {
        let mut batch = Batch::default();
        batch.advance(("a", 0), 1, 1);
        batch.advance(("a", 1), 9, 1);
        let revoked: HashSet<PartitionId> = [("a".to_string(), 0)].into();
        batch.forget(&revoked);
        assert_eq!(batch.partitions(), vec![("a".to_string(), 1)]);
        batch.forget(&[("a".to_string(), 1)].into());
        assert!(batch.is_empty());
    }
}
