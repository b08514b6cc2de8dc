//! The query service's settings, read once at start-up from the environment.

use citybrain_telemetry::env::{self, ConfigError};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the query service can be told. Each field names its variable.
#[derive(Debug, Clone)]
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
    pub clickhouse: ClickHouseConfig,
    pub limits: Limits,
}

/// Where the data is.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// `CITYBRAIN_CLICKHOUSE_URL`: the HTTP interface.
    pub url: String,
    /// `CITYBRAIN_CLICKHOUSE_DATABASE`: letters, digits and `_` only.
    pub database: String,
    /// `CITYBRAIN_CLICKHOUSE_USER`.
    pub user: String,
    /// `CITYBRAIN_CLICKHOUSE_PASSWORD`.
    pub password: String,
}

/// Bounds on what one request may ask for. Errors name the variable.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

impl ClickHouseConfig {
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: "default".into(),
            password: String::new(),
        }
    }
}

impl QueryConfig {
    /// Reads every setting, failing on the first invalid one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Limits::default();
        let production = env::is_production()?;
        let database = env::string_or("CITYBRAIN_CLICKHOUSE_DATABASE", "citybrain");
        if database.is_empty()
            || database.starts_with(|c: char| c.is_ascii_digit())
            || !database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_CLICKHOUSE_DATABASE",
                value: database,
                reason: "use letters, digits and _ only".into(),
            });
        }
        let timeout = env::millis_or("CITYBRAIN_QUERY_TIMEOUT_MS", d.timeout)?;
        if timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_QUERY_TIMEOUT_MS",
                value: timeout.as_millis().to_string(),
                reason: "at least 1000 (ClickHouse counts whole seconds)".into(),
            });
        }
        let r = &d.max_range_days;
        Ok(Self {
            grpc_addr: env::var_or("CITYBRAIN_QUERY_GRPC_ADDR", ([127, 0, 0, 1], 50052).into())?,
            http_addr: env::var_or("CITYBRAIN_QUERY_HTTP_ADDR", ([127, 0, 0, 1], 8080).into())?,
            admin_addr: env::var_or("CITYBRAIN_QUERY_ADMIN_ADDR", ([127, 0, 0, 1], 9103).into())?,
            api_keys_file: env::string_or(
                "CITYBRAIN_QUERY_API_KEYS",
                "deploy/local/dev-api-keys.toml",
            )
            .into(),
            production,
            log_json: env::bool_or("CITYBRAIN_LOG_JSON", production)?,
            clickhouse: ClickHouseConfig {
                url: env::string_or("CITYBRAIN_CLICKHOUSE_URL", "http://127.0.0.1:18123"),
                database,
                user: env::string_or("CITYBRAIN_CLICKHOUSE_USER", "default"),
                password: std::env::var("CITYBRAIN_CLICKHOUSE_PASSWORD").unwrap_or_default(),
            },
            limits: Limits {
                timeout,
                max_rows: env::var_or("CITYBRAIN_QUERY_MAX_ROWS", d.max_rows)?,
                max_export_rows: env::var_or("CITYBRAIN_QUERY_MAX_EXPORT_ROWS", d.max_export_rows)?,
                max_buckets: env::var_or("CITYBRAIN_QUERY_MAX_BUCKETS", d.max_buckets)?,
                max_range_days: RangeLimits {
                    five_minutes: env::var_or("CITYBRAIN_QUERY_MAX_RANGE_5M_DAYS", r.five_minutes)?,
                    hour: env::var_or("CITYBRAIN_QUERY_MAX_RANGE_HOUR_DAYS", r.hour)?,
                    day: env::var_or("CITYBRAIN_QUERY_MAX_RANGE_DAY_DAYS", r.day)?,
                    week: env::var_or("CITYBRAIN_QUERY_MAX_RANGE_WEEK_DAYS", r.week)?,
                    month: env::var_or("CITYBRAIN_QUERY_MAX_RANGE_MONTH_DAYS", r.month)?,
                },
                max_track_days: env::var_or("CITYBRAIN_QUERY_MAX_TRACK_DAYS", d.max_track_days)?,
                max_track_points: env::var_or(
                    "CITYBRAIN_QUERY_MAX_TRACK_POINTS",
                    d.max_track_points,
                )?,
                max_top_n: env::var_or("CITYBRAIN_QUERY_MAX_TOP_N", d.max_top_n)?,
            },
        })
    }
}
