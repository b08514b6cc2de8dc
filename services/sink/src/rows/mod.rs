//! From a Kafka record to a typed ClickHouse row.
//!
//! [`decode`] checks the record's schema header, decodes the `IngestedEvent`
//! and maps it to the row of its kind's raw table (`raw_<kind>`, see the
//! schema crate). Anything that cannot become a row is a [`Poison`] with a
//! reason from a fixed set; the pipeline dead-letters it.
//!
//! Row structs list their columns in the table's order; the envelope columns
//! every kind shares come from [`raw_row!`].

mod charging;
mod parking;
mod sanitation;
mod service_requests;
mod vehicles;

pub use charging::{ChargingSessionRow, ConnectorStatusRow, MeterSampleRow};
pub use parking::{ParkingSiteCountsRow, ParkingSpotStatusRow};
pub use sanitation::{BinReadingRow, PatrolCheckInRow, WasteCollectionRow};
pub use service_requests::ServiceRequestRow;
pub use vehicles::VehiclePositionRow;

use citybrain_proto::events::v1::{IngestedEvent, event::Payload};
use citybrain_proto::feed::{Kind, SCHEMA_VERSION};
use prost::Message;
use std::sync::Arc;
use uuid::Uuid;

/// Where a record came from: its Kafka coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lineage {
    /// The cluster id of the broker the record was read from: with topic
    /// and partition it names the log the offset belongs to.
    pub cluster: Arc<str>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why a record cannot be stored. The label is a metric label and the
/// dead-letter reason header, so it comes from this fixed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    /// The `schema` header is missing or names a contract this sink does not
    /// know (e.g. a future `citybrain.events.v2`).
    #[error("unknown schema version {0:?}")]
    UnknownSchema(String),
    /// The bytes are not an `IngestedEvent`.
    #[error("undecodable protobuf: {0}")]
    Undecodable(String),
    /// It decodes, but lacks what every stored event has.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// ClickHouse refused the row itself (not the server being down).
    #[error("rejected by ClickHouse: {0}")]
    Rejected(String),
}

impl Poison {
    pub fn reason(&self) -> &'static str {
        match self {
            Poison::UnknownSchema(_) => "unknown_schema",
            Poison::Undecodable(_) => "undecodable",
            Poison::InvalidEvent(_) => "invalid_event",
            Poison::Rejected(_) => "rejected_by_clickhouse",
        }
    }

    /// Every reason, for pre-registering metrics.
    pub const REASONS: [&'static str; 4] = [
        "unknown_schema",
        "undecodable",
        "invalid_event",
        "rejected_by_clickhouse",
    ];
}

/// The columns every raw table starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: Uuid,
    pub tenant_id: String,
    pub source_id: String,
    pub device_id: String,
    pub observed_at: u32,
    pub observed_ms: u16,
    pub seq_no: Option<u64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub altitude_m: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub received_at: u32,
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: u64,
    pub kafka_cluster: String,
}

/// Declares a raw-table row: the envelope columns, then the kind's own.
macro_rules! raw_row {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize)]
        pub struct $name {
            #[serde(with = "clickhouse::serde::uuid")]
            pub event_id: uuid::Uuid,
            pub tenant_id: String,
            pub source_id: String,
            pub device_id: String,
            pub observed_at: u32,
            pub observed_ms: u16,
            pub seq_no: Option<u64>,
            pub latitude: Option<f64>,
            pub longitude: Option<f64>,
            pub altitude_m: Option<f64>,
            pub accuracy_m: Option<f64>,
            pub received_at: u32,
            pub kafka_topic: String,
            pub kafka_partition: i32,
            pub kafka_offset: u64,
            pub kafka_cluster: String,
            $($(#[$fattr])* pub $field: $ty,)*
        }
    };
}
use raw_row;

/// Builds a row from an [`Envelope`] and the kind's own fields.
macro_rules! with_envelope {
    ($name:ident, $envelope:expr, { $($field:ident : $value:expr),* $(,)? }) => {{
        let e: $crate::rows::Envelope = $envelope;
        $name {
            event_id: e.event_id,
            tenant_id: e.tenant_id,
            source_id: e.source_id,
            device_id: e.device_id,
            observed_at: e.observed_at,
            observed_ms: e.observed_ms,
            seq_no: e.seq_no,
            latitude: e.latitude,
            longitude: e.longitude,
            altitude_m: e.altitude_m,
            accuracy_m: e.accuracy_m,
            received_at: e.received_at,
            kafka_topic: e.kafka_topic,
            kafka_partition: e.kafka_partition,
            kafka_offset: e.kafka_offset,
            kafka_cluster: e.kafka_cluster,
            $($field: $value,)*
        }
    }};
}
use with_envelope;

/// A protobuf enum value as a lower-case name without the enum's prefix:
/// `enum_name!(ConnectorStatusValue, 3, "CONNECTOR_STATUS_VALUE_")` is
/// `"charging"`. Values this build does not know become `unknown_<n>`.
macro_rules! enum_name {
    ($ty:ty, $value:expr, $prefix:literal) => {{
        let value: i32 = $value;
        match <$ty>::try_from(value) {
            Ok(known) => $crate::rows::short_name(known.as_str_name(), $prefix),
            Err(_) => format!("unknown_{value}"),
        }
    }};
}
use enum_name;

pub(crate) fn short_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

/// One event as a row of its kind's raw table.
#[derive(Debug, Clone, PartialEq)]
pub enum RawRow {
    ConnectorStatus(ConnectorStatusRow),
    MeterSample(MeterSampleRow),
    ChargingSession(ChargingSessionRow),
    ParkingSiteCounts(ParkingSiteCountsRow),
    ParkingSpotStatus(ParkingSpotStatusRow),
    VehiclePosition(VehiclePositionRow),
    PatrolCheckIn(PatrolCheckInRow),
    BinReading(BinReadingRow),
    WasteCollection(WasteCollectionRow),
    ServiceRequest(ServiceRequestRow),
}

impl RawRow {
    pub fn kind(&self) -> Kind {
        match self {
            RawRow::ConnectorStatus(_) => Kind::ConnectorStatus,
            RawRow::MeterSample(_) => Kind::MeterSample,
            RawRow::ChargingSession(_) => Kind::ChargingSession,
            RawRow::ParkingSiteCounts(_) => Kind::ParkingSiteCounts,
            RawRow::ParkingSpotStatus(_) => Kind::ParkingSpotStatus,
            RawRow::VehiclePosition(_) => Kind::VehiclePosition,
            RawRow::PatrolCheckIn(_) => Kind::PatrolCheckIn,
            RawRow::BinReading(_) => Kind::BinReading,
            RawRow::WasteCollection(_) => Kind::WasteCollection,
            RawRow::ServiceRequest(_) => Kind::ServiceRequest,
        }
    }
}

/// Decodes a record into the row it becomes.
///
/// `schema` is the record's `schema` header (None when absent).
pub fn decode(payload: &[u8], schema: Option<&str>, lineage: &Lineage) -> Result<RawRow, Poison> {
    match schema {
        Some(SCHEMA_VERSION) => {}
        other => return Err(Poison::UnknownSchema(other.unwrap_or("<none>").to_string())),
    }
    let ingested =
        IngestedEvent::decode(payload).map_err(|err| Poison::Undecodable(err.to_string()))?;
    let event = ingested
        .event
        .as_ref()
        .ok_or_else(|| Poison::InvalidEvent("no event".into()))?;
    let envelope = envelope(&ingested, lineage)?;
    let payload = event
        .payload
        .clone()
        .ok_or_else(|| Poison::InvalidEvent("no payload".into()))?;
    Ok(match payload {
        Payload::ConnectorStatus(p) => {
            RawRow::ConnectorStatus(charging::connector_status(envelope, p))
        }
        Payload::MeterSample(p) => RawRow::MeterSample(charging::meter_sample(envelope, p)),
        Payload::ChargingSession(p) => {
            RawRow::ChargingSession(charging::charging_session(envelope, p)?)
        }
        Payload::ParkingSiteCounts(p) => {
            RawRow::ParkingSiteCounts(parking::site_counts(envelope, p))
        }
        Payload::ParkingSpotStatus(p) => {
            RawRow::ParkingSpotStatus(parking::spot_status(envelope, p))
        }
        Payload::VehiclePosition(p) => RawRow::VehiclePosition(vehicles::position(envelope, p)),
        Payload::PatrolCheckIn(p) => {
            RawRow::PatrolCheckIn(sanitation::patrol_check_in(envelope, p))
        }
        Payload::BinReading(p) => RawRow::BinReading(sanitation::bin_reading(envelope, p)?),
        Payload::WasteCollection(p) => {
            RawRow::WasteCollection(sanitation::waste_collection(envelope, p))
        }
        Payload::ServiceRequest(p) => {
            RawRow::ServiceRequest(service_requests::transition(envelope, p)?)
        }
    })
}

fn envelope(ingested: &IngestedEvent, lineage: &Lineage) -> Result<Envelope, Poison> {
    let event = ingested.event.as_ref().expect("checked by decode");
    let event_id = Uuid::parse_str(&event.event_id).map_err(|_| {
        Poison::InvalidEvent(format!("event_id {:?} is not a UUID", event.event_id))
    })?;
    if event.device_id.is_empty() {
        return Err(Poison::InvalidEvent("empty device_id".into()));
    }
    let observed = event
        .observed_at
        .as_ref()
        .ok_or_else(|| Poison::InvalidEvent("no observed_at".into()))?;
    let (observed_at, observed_ms) = seconds_and_millis(observed, "observed_at")?;
    let received_at = match &ingested.received_at {
        Some(at) => seconds_and_millis(at, "received_at")?.0,
        None => return Err(Poison::InvalidEvent("no received_at".into())),
    };
    let location = event.location.as_ref();
    Ok(Envelope {
        event_id,
        tenant_id: ingested.tenant_id.clone(),
        source_id: ingested.source_id.clone(),
        device_id: event.device_id.clone(),
        observed_at,
        observed_ms,
        seq_no: event.seq_no,
        latitude: location.map(|l| l.latitude),
        longitude: location.map(|l| l.longitude),
        altitude_m: location.and_then(|l| l.altitude_m),
        accuracy_m: location.and_then(|l| l.accuracy_m),
        received_at,
        kafka_topic: lineage.topic.clone(),
        kafka_partition: lineage.partition,
        kafka_offset: u64::try_from(lineage.offset).unwrap_or_default(),
        kafka_cluster: lineage.cluster.to_string(),
    })
}

/// A timestamp as ClickHouse `DateTime` seconds (1970..2106) and millis.
fn seconds_and_millis(at: &prost_types::Timestamp, field: &str) -> Result<(u32, u16), Poison> {
    let seconds = u32::try_from(at.seconds).map_err(|_| {
        Poison::InvalidEvent(format!("{field} {}s is outside 1970..2106", at.seconds))
    })?;
    let millis = u16::try_from(at.nanos.clamp(0, 999_999_999) / 1_000_000).unwrap_or_default();
    Ok((seconds, millis))
}

/// An optional timestamp field as `Nullable(DateTime)`.
pub(crate) fn optional_time(
    at: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<u32>, Poison> {
    at.map(|at| seconds_and_millis(at, field).map(|(seconds, _)| seconds))
        .transpose()
}

#[cfg(test)]
mod tests;
