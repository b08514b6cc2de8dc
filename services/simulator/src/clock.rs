//! Simulated time: milliseconds since the Unix epoch (UTC), and the town's
//! local calendar (Beijing time, UTC+8, no daylight saving) that drives its
//! daily rhythms.

use citybrain_proto::time::civil_from_days;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Beijing time is UTC+8 all year.
const LOCAL_OFFSET: Millis = 8 * HOUR;

pub fn from_system(at: SystemTime) -> Millis {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

pub fn to_system(at: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(at.max(0) as u64)
}

pub fn timestamp(at: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.div_euclid(SECOND),
        nanos: (at.rem_euclid(SECOND) * 1_000_000) as i32,
    }
}

pub fn from_timestamp(ts: &prost_types::Timestamp) -> Millis {
    ts.seconds * SECOND + Millis::from(ts.nanos) / 1_000_000
}

/// The start of the UTC day containing `at`.
pub fn utc_midnight(at: Millis) -> Millis {
    at.div_euclid(DAY) * DAY
}

/// Local hour of day as a fraction, 0.0..24.0.
pub fn local_hour(at: Millis) -> f64 {
    (at + LOCAL_OFFSET).rem_euclid(DAY) as f64 / HOUR as f64
}

/// Local midnight at or before `at`, as UTC millis.
pub fn local_midnight(at: Millis) -> Millis {
    (at + LOCAL_OFFSET).div_euclid(DAY) * DAY - LOCAL_OFFSET
}

/// The UTC instant of local time `hour` (fractional) on the local day of `at`.
pub fn local_time_on_day(at: Millis, hour: f64) -> Millis {
    local_midnight(at) + (hour * HOUR as f64) as Millis
}

/// Saturday or Sunday, local time.
pub fn is_weekend(at: Millis) -> bool {
    // 1970-01-01 was a Thursday (day 0); Saturday is day 2 modulo 7.
    let day = (at + LOCAL_OFFSET).div_euclid(DAY);
    matches!(day.rem_euclid(7), 2 | 3)
}

/// Sunday, local time: the patrols' day off.
pub fn local_weekday_is_sunday(at: Millis) -> bool {
    (at + LOCAL_OFFSET).div_euclid(DAY).rem_euclid(7) == 3
}

/// The local date as `YYYYMMDD`, for ids such as trip and request numbers.
pub fn local_date(at: Millis) -> String {
    let (y, m, d) = civil_from_days((at + LOCAL_OFFSET).div_euclid(DAY));
    format!("{y:04}{m:02}{d:02}")
}

/// The UTC date and time as `YYYY-MM-DD HH:MM`, for progress output.
pub fn utc_display(at: Millis) -> String {
    let (y, m, d) = civil_from_days(at.div_euclid(DAY));
    let minutes = at.rem_euclid(DAY) / MINUTE;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}Z",
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2025-03-08 00:30 UTC = 2025-03-08 08:30 Beijing, a Saturday.
    const SAT_MORNING: Millis = 1_741_393_800_000;

    #[test]
    fn local_calendar() {
        assert_eq!(local_date(SAT_MORNING), "20250308");
        assert!((local_hour(SAT_MORNING) - 8.5).abs() < 1e-9);
        assert!(is_weekend(SAT_MORNING));
        assert!(!is_weekend(SAT_MORNING + 2 * DAY));
        assert_eq!(local_time_on_day(SAT_MORNING, 8.5), SAT_MORNING);
        assert_eq!(utc_display(SAT_MORNING), "2025-03-08 00:30Z");
        assert_eq!(local_date(SAT_MORNING - 9 * HOUR), "20250307");
    }

    #[test]
    fn timestamps_round_trip() {
        let at = SAT_MORNING + 123;
        assert_eq!(from_timestamp(&timestamp(at)), at);
        assert_eq!(from_system(to_system(at)), at);
        assert_eq!(utc_midnight(at) % DAY, 0);
    }
}
