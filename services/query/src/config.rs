//! The query service's settings, read once at start-up from the environment.

use citybrain_config::{ClickHouseConfig, ConfigError, Env, ToEnv};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the query service can be told. Each field names its variable.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    /// `CITYBRAIN_QUERY_GRPC_ADDR`: the gRPC API.
    pub grpc_addr: SocketAddr,
    /// `CITYBRAIN_QUERY_HTTP_ADDR`: the HTTP/JSON API (and CSV, OpenAPI).
    pub http_addr: SocketAddr,
    /// `CITYBRAIN_QUERY_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_QUERY_API_KEYS`: the TOML file of API keys.
    pub api_keys_file: PathBuf,
    /// `CITYBRAIN_ENV=production` refuses development keys and keys in clear.
    pub production: bool,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines (production) instead of text.
    pub log_json: bool,
    /// `CITYBRAIN_CLICKHOUSE_URL`, `_DATABASE`, `_USER`, `_PASSWORD`.
    pub clickhouse: ClickHouseConfig,
    pub limits: Limits,
}

/// Bounds on what one request may ask for. Errors name the variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `CITYBRAIN_QUERY_TIMEOUT_MS`: one query's budget, enforced by
    /// ClickHouse (`max_execution_time`) and by the client (a little later).
    pub timeout: Duration,
    /// `CITYBRAIN_QUERY_MAX_ROWS`: rows in a JSON/gRPC answer.
    pub max_rows: usize,
    /// `CITYBRAIN_QUERY_MAX_EXPORT_ROWS`: rows in a CSV export.
    pub max_export_rows: usize,
    /// `CITYBRAIN_QUERY_MAX_BUCKETS`: time buckets in one aggregate.
    pub max_buckets: u64,
    /// `CITYBRAIN_QUERY_MAX_RANGE_5M_DAYS`, `…_HOUR_DAYS`, `…_DAY_DAYS`,
    /// `…_WEEK_DAYS`, `…_MONTH_DAYS`: the longest range per bucket size.
    pub max_range_days: RangeLimits,
    /// `CITYBRAIN_QUERY_MAX_TRACK_DAYS`: the longest vehicle track.
    pub max_track_days: u64,
    /// `CITYBRAIN_QUERY_MAX_TRACK_POINTS`: the largest point budget.
    pub max_track_points: u32,
    /// `CITYBRAIN_QUERY_MAX_TOP_N`: the largest n for top-N.
    pub max_top_n: u32,
}

/// Longest time range (days) per bucket size.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeLimits {
    pub five_minutes: u64,
    pub hour: u64,
    pub day: u64,
    pub week: u64,
    pub month: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_rows: 10_000,
            max_export_rows: 500_000,
            max_buckets: 2_016,
            max_range_days: RangeLimits {
                five_minutes: 7,
                hour: 92,
                day: 732,
                week: 1_830,
                month: 3_660,
            },
            max_track_days: 7,
            max_track_points: 10_000,
            max_top_n: 100,
        }
    }
}

impl QueryConfig {
    /// Development defaults for the ClickHouse at `clickhouse`, every
    /// address on loopback, the development key file.
    pub fn new(clickhouse: ClickHouseConfig) -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 50052).into(),
            http_addr: ([127, 0, 0, 1], 8080).into(),
            admin_addr: ([127, 0, 0, 1], 9103).into(),
            api_keys_file: "deploy/local/dev-api-keys.toml".into(),
            production: false,
            log_json: false,
            clickhouse,
            limits: Limits::default(),
        }
    }

    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::new(ClickHouseConfig::new(
            ClickHouseConfig::DEFAULT_URL,
            ClickHouseConfig::DEFAULT_DATABASE,
        ));
        let d = Limits::default();
        let production = env.is_production()?;
        let timeout = env.millis_or("CITYBRAIN_QUERY_TIMEOUT_MS", d.timeout)?;
        if timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_QUERY_TIMEOUT_MS",
                value: timeout.as_millis().to_string(),
                reason: "at least 1000 (ClickHouse counts whole seconds)".into(),
            });
        }
        let r = &d.max_range_days;
        Ok(Self {
            grpc_addr: env.var_or("CITYBRAIN_QUERY_GRPC_ADDR", defaults.grpc_addr)?,
            http_addr: env.var_or("CITYBRAIN_QUERY_HTTP_ADDR", defaults.http_addr)?,
            admin_addr: env.var_or("CITYBRAIN_QUERY_ADMIN_ADDR", defaults.admin_addr)?,
            api_keys_file: env
                .string_or(
                    "CITYBRAIN_QUERY_API_KEYS",
                    &defaults.api_keys_file.to_string_lossy(),
                )
                .into(),
            production,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", production)?,
            clickhouse: ClickHouseConfig::from_env(env)?,
            limits: Limits {
                timeout,
                max_rows: env.var_or("CITYBRAIN_QUERY_MAX_ROWS", d.max_rows)?,
                max_export_rows: env
                    .var_or("CITYBRAIN_QUERY_MAX_EXPORT_ROWS", d.max_export_rows)?,
                max_buckets: env.var_or("CITYBRAIN_QUERY_MAX_BUCKETS", d.max_buckets)?,
                max_range_days: RangeLimits {
                    five_minutes: env
                        .var_or("CITYBRAIN_QUERY_MAX_RANGE_5M_DAYS", r.five_minutes)?,
                    hour: env.var_or("CITYBRAIN_QUERY_MAX_RANGE_HOUR_DAYS", r.hour)?,
                    day: env.var_or("CITYBRAIN_QUERY_MAX_RANGE_DAY_DAYS", r.day)?,
                    week: env.var_or("CITYBRAIN_QUERY_MAX_RANGE_WEEK_DAYS", r.week)?,
                    month: env.var_or("CITYBRAIN_QUERY_MAX_RANGE_MONTH_DAYS", r.month)?,
                },
                max_track_days: env.var_or("CITYBRAIN_QUERY_MAX_TRACK_DAYS", d.max_track_days)?,
                max_track_points: env
                    .var_or("CITYBRAIN_QUERY_MAX_TRACK_POINTS", d.max_track_points)?,
                max_top_n: env.var_or("CITYBRAIN_QUERY_MAX_TOP_N", d.max_top_n)?,
            },
        })
    }
}

impl ToEnv for QueryConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let l = &self.limits;
        let r = &l.max_range_days;
        let mut vars = vec![
            ("CITYBRAIN_QUERY_GRPC_ADDR", self.grpc_addr.to_string()),
            ("CITYBRAIN_QUERY_HTTP_ADDR", self.http_addr.to_string()),
            ("CITYBRAIN_QUERY_ADMIN_ADDR", self.admin_addr.to_string()),
            (
                "CITYBRAIN_QUERY_API_KEYS",
                self.api_keys_file.to_string_lossy().into_owned(),
            ),
            (
                citybrain_config::env::PRODUCTION,
                if self.production {
                    "production"
                } else {
                    "development"
                }
                .into(),
            ),
            ("CITYBRAIN_LOG_JSON", self.log_json.to_string()),
            (
                "CITYBRAIN_QUERY_TIMEOUT_MS",
                l.timeout.as_millis().to_string(),
            ),
            ("CITYBRAIN_QUERY_MAX_ROWS", l.max_rows.to_string()),
            (
                "CITYBRAIN_QUERY_MAX_EXPORT_ROWS",
                l.max_export_rows.to_string(),
            ),
            ("CITYBRAIN_QUERY_MAX_BUCKETS", l.max_buckets.to_string()),
            (
                "CITYBRAIN_QUERY_MAX_RANGE_5M_DAYS",
                r.five_minutes.to_string(),
            ),
            ("CITYBRAIN_QUERY_MAX_RANGE_HOUR_DAYS", r.hour.to_string()),
            ("CITYBRAIN_QUERY_MAX_RANGE_DAY_DAYS", r.day.to_string()),
            ("CITYBRAIN_QUERY_MAX_RANGE_WEEK_DAYS", r.week.to_string()),
            ("CITYBRAIN_QUERY_MAX_RANGE_MONTH_DAYS", r.month.to_string()),
            (
                "CITYBRAIN_QUERY_MAX_TRACK_DAYS",
                l.max_track_days.to_string(),
            ),
            (
                "CITYBRAIN_QUERY_MAX_TRACK_POINTS",
                l.max_track_points.to_string(),
            ),
            ("CITYBRAIN_QUERY_MAX_TOP_N", l.max_top_n.to_string()),
        ];
        vars.extend(self.clickhouse.to_env());
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut config = QueryConfig::new(ClickHouseConfig::new("http://ch:8123", "town"));
        config.limits.timeout = Duration::from_secs(3);
        config.limits.max_range_days.week = 9;
        config.http_addr = ([127, 0, 0, 1], 0).into();
        let read = QueryConfig::read(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
    }
}
