//! How every service reaches ClickHouse.

use crate::ToEnv;
use crate::env::{ConfigError, Env};

/// The ClickHouse connection the sink, query and alarm services share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// `CITYBRAIN_CLICKHOUSE_URL`: the HTTP interface.
    pub url: String,
    /// `CITYBRAIN_CLICKHOUSE_DATABASE`: letters, digits and `_`, not
    /// starting with a digit (it is written into SQL).
    pub database: String,
    /// `CITYBRAIN_CLICKHOUSE_USER`.
    pub user: String,
    /// `CITYBRAIN_CLICKHOUSE_PASSWORD`.
    pub password: String,
}

impl ClickHouseConfig {
    /// The local stack's ClickHouse.
    pub const DEFAULT_URL: &'static str = "http://127.0.0.1:18123";
    pub const DEFAULT_DATABASE: &'static str = "citybrain";

    /// `database` on the server at `url`, as user `default` without password.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: "default".into(),
            password: String::new(),
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = Self {
            url: env.string_or("CITYBRAIN_CLICKHOUSE_URL", Self::DEFAULT_URL),
            database: env.string_or("CITYBRAIN_CLICKHOUSE_DATABASE", Self::DEFAULT_DATABASE),
            user: env.string_or("CITYBRAIN_CLICKHOUSE_USER", "default"),
            password: env
                .optional("CITYBRAIN_CLICKHOUSE_PASSWORD")
                .unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// The database name is written into SQL, so it must be a plain name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.database;
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::invalid(
                "CITYBRAIN_CLICKHOUSE_DATABASE",
                name,
                "use letters, digits and _ only, not starting with a digit",
            ));
        }
        Ok(())
    }
}

impl ToEnv for ClickHouseConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CITYBRAIN_CLICKHOUSE_URL", self.url.clone()),
            ("CITYBRAIN_CLICKHOUSE_DATABASE", self.database.clone()),
            ("CITYBRAIN_CLICKHOUSE_USER", self.user.clone()),
            ("CITYBRAIN_CLICKHOUSE_PASSWORD", self.password.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_refuses_odd_names() {
        let mut config = ClickHouseConfig::new("http://ch:8123", "town_1");
        config.password = "secret".into();
        let read = ClickHouseConfig::from_env(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
        for bad in ["1town", "town-1", "town;DROP"] {
            let env = Env::from_pairs([("CITYBRAIN_CLICKHOUSE_DATABASE", bad)]);
            let err = ClickHouseConfig::from_env(&env).unwrap_err().to_string();
            assert!(err.contains("CITYBRAIN_CLICKHOUSE_DATABASE"), "{err}");
        }
    }
}
