//! Payload kinds, the feeds they belong to, and the Kafka topic of each feed.
//!
//! One topic per feed keeps related kinds (a connector's status, its meter
//! samples and its sessions) in one ordered stream per device. Topic names
//! carry the contract version: a `v2` contract gets new topics.

use crate::events::v1::event::Payload;
use std::fmt;

/// Version of the contract written into every record's `schema` header.
pub const SCHEMA_VERSION: &str = "citybrain.events.v1";

/// Kafka header names set on every record ingest produces.
pub mod headers {
    /// The payload kind, as [`super::Kind::as_str`].
    pub const KIND: &str = "kind";
    /// The contract version, [`super::SCHEMA_VERSION`].
    pub const SCHEMA: &str = "schema";
    /// The tenant that sent the event.
    pub const TENANT: &str = "tenant";
}

/// A feed: a group of kinds that share one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    EvCharging,
    Parking,
    Vehicles,
    Sanitation,
    ServiceRequests,
}

impl Feed {
    pub const ALL: [Feed; 5] = [
        Feed::EvCharging,
        Feed::Parking,
        Feed::Vehicles,
        Feed::Sanitation,
        Feed::ServiceRequests,
    ];

    /// The topic name without any deployment prefix, e.g. `citybrain.ev_charging.v1`.
    pub fn topic(self) -> &'static str {
        match self {
            Feed::EvCharging => "citybrain.ev_charging.v1",
            Feed::Parking => "citybrain.parking.v1",
            Feed::Vehicles => "citybrain.vehicles.v1",
            Feed::Sanitation => "citybrain.sanitation.v1",
            Feed::ServiceRequests => "citybrain.service_requests.v1",
        }
    }
}

/// The kind of an event: which payload it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ConnectorStatus,
    MeterSample,
    ChargingSession,
    ParkingSiteCounts,
    ParkingSpotStatus,
    VehiclePosition,
    PatrolCheckIn,
    BinReading,
    WasteCollection,
    ServiceRequest,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::ConnectorStatus,
        Kind::MeterSample,
        Kind::ChargingSession,
        Kind::ParkingSiteCounts,
        Kind::ParkingSpotStatus,
        Kind::VehiclePosition,
        Kind::PatrolCheckIn,
        Kind::BinReading,
        Kind::WasteCollection,
        Kind::ServiceRequest,
    ];

    /// The kind of a payload.
    pub fn of(payload: &Payload) -> Kind {
        match payload {
            Payload::ConnectorStatus(_) => Kind::ConnectorStatus,
            Payload::MeterSample(_) => Kind::MeterSample,
            Payload::ChargingSession(_) => Kind::ChargingSession,
            Payload::ParkingSiteCounts(_) => Kind::ParkingSiteCounts,
            Payload::ParkingSpotStatus(_) => Kind::ParkingSpotStatus,
            Payload::VehiclePosition(_) => Kind::VehiclePosition,
            Payload::PatrolCheckIn(_) => Kind::PatrolCheckIn,
            Payload::BinReading(_) => Kind::BinReading,
            Payload::WasteCollection(_) => Kind::WasteCollection,
            Payload::ServiceRequest(_) => Kind::ServiceRequest,
        }
    }

    /// The name used in API keys' allow-lists, Kafka headers and metrics:
    /// the payload's field name in `Event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConnectorStatus => "connector_status",
            Kind::MeterSample => "meter_sample",
            Kind::ChargingSession => "charging_session",
            Kind::ParkingSiteCounts => "parking_site_counts",
            Kind::ParkingSpotStatus => "parking_spot_status",
            Kind::VehiclePosition => "vehicle_position",
            Kind::PatrolCheckIn => "patrol_check_in",
            Kind::BinReading => "bin_reading",
            Kind::WasteCollection => "waste_collection",
            Kind::ServiceRequest => "service_request",
        }
    }

    /// Parses [`Kind::as_str`] back.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn feed(self) -> Feed {
        match self {
            Kind::ConnectorStatus | Kind::MeterSample | Kind::ChargingSession => Feed::EvCharging,
            Kind::ParkingSiteCounts | Kind::ParkingSpotStatus => Feed::Parking,
            Kind::VehiclePosition => Feed::Vehicles,
            Kind::PatrolCheckIn | Kind::BinReading | Kind::WasteCollection => Feed::Sanitation,
            Kind::ServiceRequest => Feed::ServiceRequests,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_unique() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
        assert_eq!(Kind::parse("nope"), None);
    }

    #[test]
    fn every_feed_has_a_kind_and_a_versioned_topic() {
        for feed in Feed::ALL {
            assert!(Kind::ALL.iter().any(|k| k.feed() == feed));
            assert!(feed.topic().ends_with(".v1"));
        }
    }
}
