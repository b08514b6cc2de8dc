//! Typed configuration from environment variables.
//!
//! Every service reads its settings through these helpers so that an invalid
//! value stops the process with a message naming the variable.

use std::{str::FromStr, time::Duration};

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

/// Reads `name`, or returns `default` when it is unset or empty.
pub fn var_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => parse(name, &value),
        _ => Ok(default),
    }
}

/// Reads a string setting, or `default`.
pub fn string_or(name: &'static str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => default.to_string(),
    }
}

/// Reads a duration given in milliseconds, or `default`.
pub fn millis_or(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    var_or(name, default.as_millis() as u64).map(Duration::from_millis)
}

/// Reads a duration given in seconds, or `default`.
pub fn secs_or(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    var_or(name, default.as_secs()).map(Duration::from_secs)
}

/// Reads a boolean (`true/false/1/0/yes/no`), or `default`.
pub fn bool_or(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name,
                value,
                reason: "expected true or false".into(),
            }),
        },
        _ => Ok(default),
    }
}

/// `CITYBRAIN_ENV`: `production` or `development` (the default). Production
/// refuses development conveniences (keys in clear, the development key) and
/// keeps Kafka's own timeouts.
pub fn is_production() -> Result<bool, ConfigError> {
    match string_or("CITYBRAIN_ENV", "development").as_str() {
        "production" => Ok(true),
        "development" => Ok(false),
        other => Err(ConfigError::Invalid {
            name: "CITYBRAIN_ENV",
            value: other.to_string(),
            reason: "expected production or development".into(),
        }),
    }
}

/// Reads `key=value,key=value` pairs (e.g. pass-through client settings);
/// empty when unset.
pub fn key_values(name: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
    let value = match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => return Ok(Vec::new()),
    };
    value
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, val)) if !key.trim().is_empty() => {
                Ok((key.trim().to_string(), val.trim().to_string()))
            }
            _ => Err(ConfigError::Invalid {
                name,
                value: value.clone(),
                reason: format!("{pair:?} is not key=value"),
            }),
        })
        .collect()
}

fn parse<T>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_name_the_variable() {
        let err = parse::<u32>("CITYBRAIN_X", "many").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CITYBRAIN_X=\"many\" is invalid: invalid digit found in string"
        );
    }
}
