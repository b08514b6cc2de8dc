//! OCPP 1.6 transaction ids: the central system assigns an integer in its
//! StartTransaction answer, and it must be unique per charge point across
//! gateway restarts and replicas.
//!
//! # Why no counter
//!
//! A counter needs storage shared by every replica and kept across restarts
//! (and a charger that resends StartTransaction after a lost answer would get
//! a second number for one transaction). Instead the id is a pure function of
//! what the charger sent: the transaction's start time and its connector.
//!
//! ```text
//! id = slot << 2 | (connectorId - 1) mod 4
//! slot = (timestamp - 2024-01-01T00:00:00Z) / 4 s        (29 bits: until 2092)
//! ```
//!
//! - Restarts and replicas: nothing is stored, every replica computes the
//!   same id from the same message.
//! - A resend (same StartTransaction, same timestamp and connector) gets the
//!   same id, and its ChargingSession event the same event id: stored once.
//! - Two transactions of one station get the same id only if they start on
//!   the same connector within the same 4 s (a charger cannot stop, be
//!   unplugged and start again that fast), or on connectors c and c + 4 (a
//!   station with more than 4 connectors) in the same 4 s.
//! - The id fits OCPP's `integer` (a positive 31-bit number), and the
//!   connector can be read back from it: a StopTransaction that reaches a
//!   gateway which did not see the start (another replica, a restart) is
//!   still stored on its connector, exactly for stations of up to 4
//!   connectors.
//!
//! It relies on the charger's clock, which BootNotification's `currentTime`
//! sets. A charger whose clock restarts from a fixed date after each reboot
//! sends times ingest rejects anyway (older than its 30-day window).

use prost_types::Timestamp;

/// 2024-01-01T00:00:00Z.
const EPOCH_S: i64 = 1_704_067_200;
const SLOT_S: i64 = 4;
const CONNECTOR_BITS: u32 = 2;

/// The transaction id for a StartTransaction at `start` on `connector` (>= 1).
pub fn allocate(start: &Timestamp, connector: u32) -> Result<i32, String> {
    let since = start.seconds - EPOCH_S;
    if since < 0 {
        return Err("a transaction cannot start before 2024-01-01".into());
    }
    let slot = since / SLOT_S;
    let id = (slot << CONNECTOR_BITS) | i64::from(connector.saturating_sub(1) % 4);
    i32::try_from(id).map_err(|_| "the start time is after 2092".to_string())
}

/// The connector a transaction id was allocated for, when the station has
/// at most 4 connectors (otherwise it is ambiguous).
pub fn connector(id: i64, connectors: u32) -> Option<u32> {
    if id < 0 || connectors > 4 {
        return None;
    }
    let connector = (id & 0b11) as u32 + 1;
    (connector <= connectors).then_some(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn ids_are_unique_per_connector_and_start_slot() {
        let t = 1_780_000_000;
        let a = allocate(&at(t), 1).unwrap();
        assert_eq!(a, allocate(&at(t), 1).unwrap(), "a resend gets the same id");
        let b = allocate(&at(t), 2).unwrap();
        let later = allocate(&at(t + SLOT_S), 1).unwrap();
        assert!(a > 0 && a != b && a != later && b != later);
        assert_eq!(connector(i64::from(a), 2), Some(1));
        assert_eq!(connector(i64::from(b), 2), Some(2));
        assert_eq!(
            connector(i64::from(b), 1),
            None,
            "not a connector of a 1-connector station"
        );
        assert_eq!(
            connector(i64::from(b), 8),
            None,
            "ambiguous above 4 connectors"
        );
    }

    #[test]
    fn every_start_until_2092_fits_an_ocpp_integer() {
        let last = EPOCH_S + ((i64::from(i32::MAX) >> CONNECTOR_BITS) * SLOT_S);
        assert!(allocate(&at(last), 4).unwrap() > 0);
        // 2092-01-01T00:00:00Z
        assert!(allocate(&at(3_849_984_000), 4).is_ok());
        assert!(allocate(&at(last + SLOT_S), 1).is_err());
        assert!(allocate(&at(EPOCH_S - 1), 1).is_err());
    }

    #[test]
    fn a_day_of_back_to_back_sessions_never_collides() {
        // Every connector of a 4-connector station starting a session every
        // 4 s for a day: 86,400 distinct ids.
        let mut seen = std::collections::HashSet::new();
        for slot in 0..(86_400 / SLOT_S) {
            for c in 1..=4 {
                assert!(seen.insert(allocate(&at(1_780_000_000 + slot * SLOT_S), c).unwrap()));
            }
        }
    }
}
