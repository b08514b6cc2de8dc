//! A location body becomes a contract `VehiclePosition` event: every unit
//! conversion the gateway makes is here.
//!
//! | JT/T 808 | event |
//! |---|---|
//! | latitude, longitude (degrees × 10⁶; status bits 2 south, 3 west) | `location` degrees, negative south / west |
//! | altitude (m, WORD) | `location.altitude_m` (values ≥ 32768 read as negative, as terminals below sea level send them) |
//! | speed (0.1 km/h) | `speed_kmh` |
//! | direction (0-359) | `heading_deg`, left out when the speed is 0 (the contract: absent when stationary) |
//! | time (BCD `YYMMDDhhmmss`, GMT+8) | `observed_at` (UTC) |
//! | add-on 0x01 mileage (0.1 km) | `odometer_km` |
//! | add-on 0x30 signal, 0x31 satellites | `signal_strength`, `satellites` |
//! | alarm, status words | `alarm_flags`, `status_flags` (raw) |
//! | status bit 0 ACC | `ignition_on`; with bit 4 (out of operation) → `service_status` |
//!
//! No fix (status bit 1 clear) is not a position: nothing is stored, the
//! report is counted. Encrypted coordinates (bit 5) are not positions the
//! gateway can read either.

use crate::body::{Location, status};
use crate::registry::Vehicle;
use citybrain_proto::events::v1::{
    Event, GnssFix, Location as Point, ServiceStatus, VehiclePosition, event::Payload,
};
use citybrain_proto::time;

/// What a location body is to the platform.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Position(Box<Event>),
    /// Status bit 1 clear: the terminal has no GNSS fix.
    NoFix,
    /// Status bit 5: coordinates encrypted by a secrecy plug-in.
    Encrypted,
    /// The time is not a BCD date.
    BadTime(String),
}

/// The event of one location report of `vehicle`, sent in message `serial`.
pub fn report(location: &Location, vehicle: &Vehicle, serial: u16) -> Report {
    if location.status & status::FIXED == 0 {
        return Report::NoFix;
    }
    if location.status & status::ENCRYPTED != 0 {
        return Report::Encrypted;
    }
    let observed = match utc_seconds(&location.time) {
        Ok(seconds) => seconds,
        Err(reason) => return Report::BadTime(reason),
    };
    let sign = |bit: u32| {
        if location.status & bit != 0 {
            -1.0
        } else {
            1.0
        }
    };
    let speed_kmh = f64::from(location.speed) / 10.0;
    let ignition_on = location.status & status::ACC_ON != 0;
    let service_status = if location.status & status::OUT_OF_SERVICE != 0 {
        ServiceStatus::OutOfService
    } else if !ignition_on {
        ServiceStatus::Parked
    } else {
        ServiceStatus::OnRoute
    };
    let time_digits = crate::wire::hex(&location.time);
    let serial_text = serial.to_string();
    Report::Position(Box::new(Event {
        // A terminal that resends a report (same serial, same time) gets the
        // same id, so it is stored once.
        event_id: citybrain_ingest_client::event_id(
            "jt808",
            &[
                vehicle.terminal.as_bytes(),
                serial_text.as_bytes(),
                time_digits.as_bytes(),
            ],
        ),
        device_id: vehicle.terminal.clone(),
        observed_at: Some(prost_types::Timestamp {
            seconds: observed,
            nanos: 0,
        }),
        seq_no: Some(u64::from(serial)),
        location: Some(Point {
            latitude: sign(status::SOUTH) * f64::from(location.latitude) / 1e6,
            longitude: sign(status::WEST) * f64::from(location.longitude) / 1e6,
            altitude_m: Some(f64::from(location.altitude as i16)),
            accuracy_m: None,
        }),
        payload: Some(Payload::VehiclePosition(VehiclePosition {
            vehicle_id: vehicle.vehicle_id.clone(),
            role: vehicle.role as i32,
            speed_kmh,
            heading_deg: (location.speed > 0).then(|| f64::from(location.direction)),
            odometer_km: location.mileage.map(|m| f64::from(m) / 10.0),
            ignition_on,
            fix: GnssFix::Unspecified as i32,
            service_status: service_status as i32,
            satellites: location.satellites.map(u32::from),
            signal_strength: location.signal.map(u32::from),
            alarm_flags: Some(location.alarm),
            status_flags: Some(location.status),
            ..Default::default()
        })),
        // The terminal's own report time, not the gateway's.
        observed_at_assumed: false,
    }))
}

/// BCD `YYMMDDhhmmss` in GMT+8 (years 2000-2099) as Unix seconds.
pub fn utc_seconds(bcd: &[u8; 6]) -> Result<i64, String> {
    let mut v = [0u32; 6];
    for (slot, byte) in v.iter_mut().zip(bcd) {
        let (hi, lo) = (byte >> 4, byte & 0x0f);
        if hi > 9 || lo > 9 {
            return Err(format!(
                "time {} is not BCD YYMMDDhhmmss",
                crate::wire::hex(bcd)
            ));
        }
        *slot = u32::from(hi * 10 + lo);
    }
    let [yy, month, day, hour, minute, second] = v;
    let year = 2000 + i64::from(yy);
    if !(1..=12).contains(&month)
        || !(1..=time::days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!(
            "time {} is not a valid date and time",
            crate::wire::hex(bcd)
        ));
    }
    let days = time::days_from_civil(year, month, day);
    Ok(days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second) - GMT8)
}

/// Unix seconds as BCD digits `YYMMDDhhmmss` of the same instant in UTC
/// (0x8004), or in GMT+8 with `gmt8`.
pub fn bcd_digits_at(unix_seconds: i64, gmt8: bool) -> String {
    let local = unix_seconds + if gmt8 { GMT8 } else { 0 };
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (year, month, day) = time::civil_from_days(days);
    format!(
        "{:02}{month:02}{day:02}{:02}{:02}{:02}",
        year.rem_euclid(100),
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// China Standard Time's offset, seconds: terminals report GMT+8.
const GMT8: i64 = 8 * 3_600;

#[cfg(test)]
mod tests {
    use super::*;
    use citybrain_proto::events::v1::VehicleRole;

    fn vehicle() -> Vehicle {
        Vehicle {
            terminal: "13912345678".into(),
            tenant: "lucheng".into(),
            vehicle_id: "VS-N-1".into(),
            plate: "京A12345".into(),
            role: VehicleRole::VaccineShuttle,
        }
    }

    fn location(status: u32) -> Location {
        Location {
            alarm: 0x0000_0100,
            status,
            latitude: 39_901_234,
            longitude: 116_749_876,
            altitude: 31,
            speed: 325,
            direction: 87,
            time: [0x26, 0x11, 0x29, 0x16, 0x15, 0x00],
            mileage: Some(182_304),
            signal: Some(25),
            satellites: Some(11),
        }
    }

    fn position(report: Report) -> (Event, VehiclePosition) {
        let Report::Position(event) = report else {
            panic!("not a position: {report:?}")
        };
        let Some(Payload::VehiclePosition(p)) = event.payload.clone() else {
            unreachable!()
        };
        (*event, p)
    }

    #[test]
    fn every_unit_is_converted() {
        let (event, p) = position(report(&location(0b11), &vehicle(), 42));
        // 2026-11-29 16:15:00 GMT+8 is 08:15:00 UTC.
        assert_eq!(event.observed_at.unwrap().seconds, 1_795_940_100);
        assert_eq!(event.device_id, "13912345678");
        assert_eq!(event.seq_no, Some(42));
        let point = event.location.unwrap();
        assert_eq!(
            (point.latitude, point.longitude, point.altitude_m),
            (39.901234, 116.749876, Some(31.0))
        );
        assert_eq!(p.vehicle_id, "VS-N-1");
        assert_eq!(p.role, VehicleRole::VaccineShuttle as i32);
        assert_eq!(p.speed_kmh, 32.5);
        assert_eq!(p.heading_deg, Some(87.0));
        assert_eq!(p.odometer_km, Some(18_230.4));
        assert!(p.ignition_on);
        assert_eq!(p.service_status, ServiceStatus::OnRoute as i32);
        assert_eq!((p.satellites, p.signal_strength), (Some(11), Some(25)));
        assert_eq!((p.alarm_flags, p.status_flags), (Some(0x100), Some(0b11)));
    }

    #[test]
    fn south_west_stationary_parked_and_out_of_service() {
        let mut loc = location(status::FIXED | status::SOUTH | status::WEST);
        loc.speed = 0;
        loc.altitude = 65_535;
        let (event, p) = position(report(&loc, &vehicle(), 1));
        let point = event.location.unwrap();
        assert_eq!((point.latitude, point.longitude), (-39.901234, -116.749876));
        assert_eq!(point.altitude_m, Some(-1.0));
        assert_eq!(p.heading_deg, None, "absent when stationary");
        assert!(!p.ignition_on);
        assert_eq!(p.service_status, ServiceStatus::Parked as i32);
        let (_, p) = position(report(
            &location(status::FIXED | status::ACC_ON | status::OUT_OF_SERVICE),
            &vehicle(),
            1,
        ));
        assert_eq!(p.service_status, ServiceStatus::OutOfService as i32);
    }

    #[test]
    fn no_fix_and_encrypted_are_not_positions() {
        assert_eq!(
            report(&location(status::ACC_ON), &vehicle(), 1),
            Report::NoFix
        );
        assert_eq!(
            report(&location(status::FIXED | status::ENCRYPTED), &vehicle(), 1),
            Report::Encrypted
        );
        let mut bad = location(status::FIXED);
        bad.time = [0x26, 0x02, 0x30, 0x00, 0x00, 0x00];
        assert!(matches!(report(&bad, &vehicle(), 1), Report::BadTime(r) if r.contains("260230")));
    }

    #[test]
    fn a_resent_report_keeps_its_id() {
        let (a, _) = position(report(&location(0b11), &vehicle(), 7));
        let (b, _) = position(report(&location(0b11), &vehicle(), 7));
        let (c, _) = position(report(&location(0b11), &vehicle(), 8));
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn times_convert_both_ways() {
        assert_eq!(
            utc_seconds(&[0x00, 0x01, 0x01, 0x08, 0, 0]),
            Ok(946_684_800)
        );
        assert_eq!(
            utc_seconds(&[0x24, 0x02, 0x29, 0x07, 0x59, 0x59]).unwrap() % 86_400,
            86_399
        );
        assert!(
            utc_seconds(&[0x23, 0x02, 0x29, 0, 0, 0]).is_err(),
            "not a leap year"
        );
        assert_eq!(bcd_digits_at(1_795_940_100, true), "261129161500");
        assert_eq!(bcd_digits_at(1_795_940_100, false), "261129081500");
    }
}
