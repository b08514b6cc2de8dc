//! Times as callers write them and as ClickHouse prints them, without a
//! calendar crate: UTC seconds since the epoch throughout.

use citybrain_proto::time::{days_from_civil, days_in_month};

/// Parses a caller's time: RFC 3339 (`2024-05-01T08:00:00Z`,
/// `2024-05-01T16:00:00+08:00`, fractions ignored), a date (`2024-05-01`,
/// midnight UTC) or Unix seconds (`1714550400`).
pub fn parse(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .filter(|secs| *secs < 253_402_300_800)
            .ok_or_else(|| "Unix seconds out of range".to_string());
    }
    let bytes = text.as_bytes();
    let date = parse_date(bytes.get(..10).ok_or_else(expected)?)?;
    if bytes.len() == 10 {
        return Ok(date);
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes.len() < 19 {
        return Err(expected());
    }
    let clock = parse_clock(&bytes[11..19])?;
    let mut rest = &bytes[19..];
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(expected());
        }
        rest = &rest[1 + digits..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = two_digits(*h1, *h2)?;
            let minutes = two_digits(*m1, *m2)?;
            if hours > 23 || minutes > 59 {
                return Err(expected());
            }
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return Err(expected()),
    };
    Ok(date + clock - offset)
}

fn expected() -> String {
    "expected RFC 3339 (2024-05-01T08:00:00Z), a date (2024-05-01) or Unix seconds".to_string()
}

fn two_digits(a: u8, b: u8) -> Result<i64, String> {
    if a.is_ascii_digit() && b.is_ascii_digit() {
        Ok(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
    } else {
        Err(expected())
    }
}

/// `YYYY-MM-DD` → seconds at midnight UTC.
fn parse_date(b: &[u8]) -> Result<i64, String> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(expected());
    }
    let year = two_digits(b[0], b[1])? * 100 + two_digits(b[2], b[3])?;
    let month = two_digits(b[5], b[6])?;
    let day = two_digits(b[8], b[9])?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
        return Err("date out of range (years 1970–9999)".to_string());
    }
    if day < 1 || day > i64::from(days_in_month(year, month as u32)) {
        return Err(format!("{year}-{month:02} has no day {day}"));
    }
    Ok(days_from_civil(year, month as u32, day as u32) * 86_400)
}

/// `hh:mm:ss` → seconds since midnight.
fn parse_clock(b: &[u8]) -> Result<i64, String> {
    if b[2] != b':' || b[5] != b':' {
        return Err(expected());
    }
    let (h, m, s) = (
        two_digits(b[0], b[1])?,
        two_digits(b[3], b[4])?,
        two_digits(b[6], b[7])?,
    );
    if h > 23 || m > 59 || s > 60 {
        return Err(expected());
    }
    Ok(h * 3600 + m * 60 + s.min(59))
}

/// ClickHouse's text form of a `DateTime('UTC')`: `YYYY-MM-DD hh:mm:ss`.
pub fn parse_clickhouse(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19 || b[10] != b' ' {
        return None;
    }
    Some(parse_date(&b[..10]).ok()? + parse_clock(&b[11..]).ok()?)
}

/// RFC 3339 in UTC, e.g. `2024-05-01T08:00:00Z`.
pub fn format(secs: i64) -> String {
    citybrain_proto::time::format_utc(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("2024-05-01T00:00:00Z"), Ok(1_714_521_600));
        assert_eq!(parse("2024-05-01"), Ok(1_714_521_600));
        assert_eq!(parse("1714521600"), Ok(1_714_521_600));
        assert_eq!(parse("2024-05-01T08:00:00+08:00"), Ok(1_714_521_600));
        assert_eq!(parse("2024-04-30T20:30:00.250-03:30"), Ok(1_714_521_600));
        assert_eq!(parse("2024-02-29 12:00:00Z"), Ok(1_709_208_000));
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-05-01T25:00:00Z",
            "2024-05-01T08:00:00",
            "2024-05-01T08:00:00+8",
            "1969-12-31",
            "2024-05-01' OR 1=1 --",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_and_reads_back() {
        for secs in [0, 951_782_400, 1_714_521_600, 4_102_444_799] {
            assert_eq!(parse(&format(secs)), Ok(secs));
        }
        assert_eq!(format(1_714_521_600), "2024-05-01T00:00:00Z");
        assert_eq!(parse_clickhouse("2024-05-01 08:30:00"), Some(1_714_552_200));
        assert_eq!(parse_clickhouse("2024-05-01T08:30:00"), None);
    }
}
