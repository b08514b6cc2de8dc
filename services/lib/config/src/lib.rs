//! Configuration every citybrain service shares.
//!
//! - [`Env`]: typed settings from the environment; an invalid value stops
//!   the service with a message naming the variable.
//! - [`KafkaConfig`] and [`ClickHouseConfig`]: the connection settings all
//!   services read from the same variables.
//! - [`ToEnv`]: a configuration written back as the variables that produce
//!   it, for child processes (tests, the benchmark, `make run`); each
//!   service's config has a unit test that reading its `to_env()` gives the
//!   same configuration back.

mod clickhouse;
pub mod env;
mod kafka;

pub use clickhouse::ClickHouseConfig;
pub use env::{ConfigError, Env};
pub use kafka::KafkaConfig;

/// A configuration as the environment variables that produce it.
pub trait ToEnv {
    /// Every setting as `(variable, value)`; reading them with the type's
    /// `from_env` gives this configuration back.
    fn to_env(&self) -> Vec<(&'static str, String)>;
}
