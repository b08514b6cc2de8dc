//! OCPP timestamps: lenient reading, strict writing.
//!
//! OCPP says `dateTime` is RFC 3339 with a zone, but firmware in the field
//! sends `2024-05-01T08:00:00` (no zone), lower-case separators, a space
//! instead of `T`, or seven digits of fraction. A time without a zone is read
//! as **UTC** (what OCPP 2.0.1 recommends chargers use, and what a charger
//! synchronised from our `currentTime` reports); the caller is told, so the
//! case is counted. An impossible date (`2024-02-30`) is an error naming the
//! text, never silently moved.

use citybrain_proto::time::{civil_from_days, days_from_civil, days_in_month};
use prost_types::Timestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timestamp read from a charger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub at: Timestamp,
    /// The text carried no zone and was read as UTC.
    pub zoneless: bool,
}

/// Reads an OCPP `dateTime`.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let bad = |why: &str| format!("{text:?} is not a date-time ({why})");
    let s = text.trim().as_bytes();
    if s.len() < 19 {
        return Err(bad("expected YYYY-MM-DDThh:mm:ss"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &s[range];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err(bad("a field is not a number"))
        }
    };
    if s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return Err(bad("expected YYYY-MM-DDThh:mm:ss"));
    }
    if s[13] != b':' || s[16] != b':' {
        return Err(bad("expected hh:mm:ss"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > i64::from(days_in_month(year, month as u32)) {
        return Err(bad("no such day"));
    }
    // 60 is a leap second; it is read as the last second of the minute.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let mut rest = &s[19..];
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad("empty fraction of a second"));
        }
        for (i, digit) in fraction[..digits].iter().enumerate().take(9) {
            nanos += i64::from(digit - b'0') * 10_i64.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let (offset_s, zoneless) = match rest {
        [] => (0, true),
        [b'Z' | b'z'] => (0, false),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let zone: Vec<u8> = zone.iter().copied().filter(|c| *c != b':').collect();
            if zone.len() != 4 || !zone.iter().all(u8::is_ascii_digit) {
                return Err(bad("the zone is not ±hh:mm"));
            }
            let hours = i64::from(zone[0] - b'0') * 10 + i64::from(zone[1] - b'0');
            let minutes = i64::from(zone[2] - b'0') * 10 + i64::from(zone[3] - b'0');
            if hours > 23 || minutes > 59 {
                return Err(bad("the zone is out of range"));
            }
            let offset = hours * 3600 + minutes * 60;
            (if *sign == b'-' { -offset } else { offset }, false)
        }
        _ => return Err(bad("unexpected text after the time")),
    };
    let seconds = days_from_civil(year, month as u32, day as u32) * 86_400
        + hour * 3600
        + minute * 60
        + second.min(59)
        - offset_s;
    if seconds < 0 {
        return Err(bad("before 1970"));
    }
    Ok(Parsed {
        at: Timestamp {
            seconds,
            nanos: nanos as i32,
        },
        zoneless,
    })
}

/// `2026-11-29T08:15:00.123Z`: what the gateway sends (`currentTime`).
pub fn format(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() as i64;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

pub use citybrain_proto::time::timestamp;

/// The wall-clock time of a protobuf timestamp (clamped at 1970).
pub fn system_time(ts: &Timestamp) -> SystemTime {
    UNIX_EPOCH
        + Duration::new(
            u64::try_from(ts.seconds).unwrap_or(0),
            u32::try_from(ts.nanos).unwrap_or(0),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        parse(text).unwrap().at.seconds
    }

    #[test]
    fn zoned_times_are_exact() {
        // date -u -d 2024-05-01T08:00:00Z +%s
        assert_eq!(secs("2024-05-01T08:00:00Z"), 1_714_550_400);
        assert_eq!(secs("2024-05-01T16:00:00+08:00"), 1_714_550_400);
        assert_eq!(secs("2024-05-01T03:30:00-0430"), 1_714_550_400);
        let parsed = parse("2024-05-01T08:00:00.1234567Z").unwrap();
        assert_eq!(parsed.at.nanos, 123_456_700);
        assert!(!parsed.zoneless);
    }

    #[test]
    fn a_time_without_a_zone_is_utc_and_flagged() {
        let parsed = parse("2024-05-01T08:00:00").unwrap();
        assert_eq!(parsed.at.seconds, 1_714_550_400);
        assert!(parsed.zoneless);
        assert_eq!(secs("2024-05-01 08:00:00.5"), 1_714_550_400);
        assert_eq!(secs("2024-05-01t08:00:00z"), 1_714_550_400);
    }

    #[test]
    fn impossible_dates_are_errors() {
        for text in [
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T08:00:00+25:00",
            "1969-12-31T23:59:59Z",
            "yesterday",
            "2024-05-01T08:00:00Zulu",
            "",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(&format!("{text:?}")), "{err}");
        }
        assert_eq!(secs("2024-02-29T00:00:00Z"), 1_709_164_800);
    }

    #[test]
    fn formatting_round_trips() {
        let at = UNIX_EPOCH + Duration::from_millis(1_714_550_400_123);
        assert_eq!(format(at), "2024-05-01T08:00:00.123Z");
        let back = parse(&format(at)).unwrap().at;
        assert_eq!((back.seconds, back.nanos), (1_714_550_400, 123_000_000));
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
