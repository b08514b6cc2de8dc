//! The ClickHouse server's version, for features only newer servers have.

use std::{fmt, str::FromStr};

/// `major.minor` of a ClickHouse release, e.g. 18.16 or 24.8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The first release with table `TTL` (19.6).
    pub const TTL: ServerVersion = ServerVersion::new(19, 6);
}

impl FromStr for ServerVersion {
    type Err = String;

    /// Parses what `SELECT version()` answers, e.g. `18.16.1` or `24.8.4.13`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().split('.');
        let mut number = |what: &str| {
            parts
                .next()
                .and_then(|part| part.parse::<u32>().ok())
                .ok_or_else(|| format!("no {what} version in {text:?}"))
        };
        Ok(Self {
            major: number("major")?,
            minor: number("minor")?,
        })
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let old: ServerVersion = "18.16.1".parse().unwrap();
        let new: ServerVersion = "24.8.4.13".parse().unwrap();
        assert_eq!(old, ServerVersion::new(18, 16));
        assert!(old < ServerVersion::TTL);
        assert!(new >= ServerVersion::TTL);
        assert!(ServerVersion::new(19, 16) > ServerVersion::new(19, 6));
        assert!("garbage".parse::<ServerVersion>().is_err());
    }
}
