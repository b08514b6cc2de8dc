//! Payload kinds, the feeds they belong to, and the Kafka topic of each feed.
//!
//! One topic per feed keeps related kinds (a connector's status, its meter
//! samples and its sessions) in one ordered stream per device. Topic names
//! carry the contract version: a `v2` contract gets new topics.

use crate::events::v1::event::Payload;
use std::fmt;

/// Version of the contract written into every record's `schema` header.
pub const SCHEMA_VERSION: &str = "citybrain.events.v1";

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

/// The topic of dead letters: records the sink can never store, with why.
pub const DEAD_LETTER_TOPIC: &str = "citybrain.dead_letter.v1";

/// Declares [`Kind`] and everything derived from its one table: the payload
/// field name, the feed, the raw table and the payload variant.
macro_rules! kinds {
    ($($kind:ident => $name:literal, $feed:ident;)+) => {
        /// The kind of an event: which payload it carries.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $($kind,)+
        }

        impl Kind {
            /// Every kind, in the contract's order.
            pub const ALL: [Kind; [$(Kind::$kind),+].len()] = [$(Kind::$kind),+];

            /// The kind of a payload.
            pub fn of(payload: &Payload) -> Kind {
                match payload {
                    $(Payload::$kind(_) => Kind::$kind,)+
                }
            }

            /// The name used in API keys' allow-lists, Kafka headers and
            /// metrics: the payload's field name in `Event`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$kind => $name,)+
                }
            }

            /// The ClickHouse table of the kind's raw rows, `raw_<name>`.
            pub fn raw_table(self) -> &'static str {
                match self {
                    $(Kind::$kind => concat!("raw_", $name),)+
                }
            }

            /// The feed (and so the Kafka topic) the kind travels on.
            pub fn feed(self) -> Feed {
                match self {
                    $(Kind::$kind => Feed::$feed,)+
                }
            }
        }
    };
}

kinds! {
    ConnectorStatus => "connector_status", EvCharging;
    MeterSample => "meter_sample", EvCharging;
    ChargingSession => "charging_session", EvCharging;
    ParkingSiteCounts => "parking_site_counts", Parking;
    ParkingSpotStatus => "parking_spot_status", Parking;
    VehiclePosition => "vehicle_position", Vehicles;
    PatrolCheckIn => "patrol_check_in", Sanitation;
    BinReading => "bin_reading", Sanitation;
    WasteCollection => "waste_collection", Sanitation;
    ServiceRequest => "service_request", ServiceRequests;
}

impl Kind {
    /// Parses [`Kind::as_str`] back.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
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
        assert_eq!(Kind::BinReading.raw_table(), "raw_bin_reading");
    }

    #[test]
    fn every_feed_has_a_kind_and_a_versioned_topic() {
        for feed in Feed::ALL {
            assert!(Kind::ALL.iter().any(|k| k.feed() == feed));
            assert!(feed.topic().ends_with(".v1"));
        }
    }
}
