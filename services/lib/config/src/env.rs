//! Typed settings from environment variables.
//!
//! Every service reads its settings through an [`Env`] so that an invalid
//! value stops the process with a message naming the variable. An `Env` is
//! the process environment ([`Env::process`]) or a fixed set of pairs
//! ([`Env::from_pairs`]): a configuration written out with
//! [`crate::ToEnv`] reads back to the same configuration, which the unit
//! tests of each service's config check without touching the process
//! environment.

use std::{collections::HashMap, str::FromStr, time::Duration};

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{name} is required: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
}

impl ConfigError {
    /// An invalid value of `name`.
    pub fn invalid(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Where settings are read from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `None`: the process environment.
    fixed: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self { fixed: None }
    }

    /// Exactly these variables, nothing from the process.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            fixed: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The value of `name`; unset and blank are the same: absent.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// Reads `name`, or returns `default` when it is absent.
    pub fn var_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            Some(value) => parse(name, &value),
            None => Ok(default),
        }
    }

    /// Reads a string setting, or `default`.
    pub fn string_or(&self, name: &'static str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    /// Reads a string setting that may be absent.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.get(name)
    }

    /// Reads a duration given in milliseconds, or `default`.
    pub fn millis_or(
        &self,
        name: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.var_or(name, default.as_millis() as u64)
            .map(Duration::from_millis)
    }

    /// Reads a duration given in seconds, or `default`.
    pub fn secs_or(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.var_or(name, default.as_secs())
            .map(Duration::from_secs)
    }

    /// Reads a boolean (`true/false/1/0/yes/no/on/off`), or `default`.
    pub fn bool_or(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(name, value, "expected true or false")),
            },
            None => Ok(default),
        }
    }

    /// `CITYBRAIN_ENV`: `production` or `development` (the default).
    /// Production refuses development conveniences (keys in clear, the
    /// development key) and keeps Kafka's own timeouts.
    pub fn is_production(&self) -> Result<bool, ConfigError> {
        match self.string_or(PRODUCTION, "development").as_str() {
            "production" => Ok(true),
            "development" => Ok(false),
            other => Err(ConfigError::invalid(
                PRODUCTION,
                other,
                "expected production or development",
            )),
        }
    }

    /// Reads `key=value,key=value` pairs (e.g. pass-through client
    /// settings); empty when absent.
    pub fn key_values(&self, name: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, val)) if !key.trim().is_empty() => {
                    Ok((key.trim().to_string(), val.trim().to_string()))
                }
                _ => Err(ConfigError::invalid(
                    name,
                    &value,
                    format!("{pair:?} is not key=value"),
                )),
            })
            .collect()
    }
}

/// The variable that switches production strictness on.
pub const PRODUCTION: &str = "CITYBRAIN_ENV";

/// Writes `pairs` as [`Env::key_values`] reads them.
pub fn join_key_values(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse<T>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::invalid(name, value, err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_name_the_variable() {
        let env = Env::from_pairs([("CITYBRAIN_X", "many")]);
        let err = env.var_or::<u32>("CITYBRAIN_X", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CITYBRAIN_X=\"many\" is invalid: invalid digit found in string"
        );
    }

    #[test]
    fn blank_is_absent_and_key_values_round_trip() {
        let pairs = vec![
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ("sasl.mechanisms".to_string(), "SCRAM-SHA-512".to_string()),
        ];
        let env = Env::from_pairs([("A", "  "), ("B", join_key_values(&pairs).as_str())]);
        assert_eq!(env.string_or("A", "default"), "default");
        assert_eq!(env.key_values("B").unwrap(), pairs);
        assert!(Env::from_pairs([("B", "nokey")]).key_values("B").is_err());
        assert!(
            Env::from_pairs([(PRODUCTION, "staging")])
                .is_production()
                .is_err()
        );
    }
}
