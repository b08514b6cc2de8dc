//! The gateway's settings, read once at start-up from the environment.

use citybrain_telemetry::env::{self, ConfigError};
use std::collections::BTreeMap;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the JT/T 808 gateway can be told. Each field names its variable.
#[derive(Debug, Clone)]
pub struct Jt808Config {
    /// `CITYBRAIN_JT808_ADDR`: where terminals connect (TCP).
    pub listen_addr: SocketAddr,
    /// `CITYBRAIN_JT808_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_JT808_INGEST_URL`: the ingest gRPC endpoint.
    pub ingest_url: String,
    /// `CITYBRAIN_JT808_API_KEYS`: the ingest API key of each tenant in the
    /// registry, `tenant=key` pairs separated by commas (ingest takes the
    /// tenant from the key). Required.
    pub api_keys: BTreeMap<String, String>,
    /// `CITYBRAIN_JT808_TERMINALS`: the terminal registry (TOML, see
    /// `registry.rs`).
    pub registry_file: PathBuf,
    /// `CITYBRAIN_JT808_STATE_DIR`: where issued authentication codes are
    /// kept across restarts (see `auth_codes.rs`).
    pub state_dir: PathBuf,
    /// `CITYBRAIN_JT808_IDLE_TIMEOUT_S`: a connection that sends no valid
    /// frame for this long is closed (terminals send heartbeats, 0x0002).
    pub idle_timeout: Duration,
    /// `CITYBRAIN_JT808_INGEST_TIMEOUT_MS`: how long one ingest call may
    /// take before the report is answered "fail".
    pub ingest_timeout: Duration,
    /// `CITYBRAIN_JT808_MAX_CONNECTIONS`: connections beyond this are closed
    /// at once (the terminal retries later).
    pub max_connections: usize,
    /// `CITYBRAIN_JT808_DRAIN_TIMEOUT_S`: how long shutdown waits for
    /// messages in flight to be answered.
    pub drain_timeout: Duration,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines instead of text.
    pub log_json: bool,
}

impl Jt808Config {
    /// Defaults (and the given keys), without reading the environment.
    pub fn new(api_keys: BTreeMap<String, String>) -> Self {
        Self {
            listen_addr: ([127, 0, 0, 1], 6808).into(),
            admin_addr: ([127, 0, 0, 1], 9105).into(),
            ingest_url: "http://127.0.0.1:50051".into(),
            api_keys,
            registry_file: "deploy/local/jt808-terminals.toml".into(),
            state_dir: "jt808-state".into(),
            idle_timeout: Duration::from_secs(180),
            ingest_timeout: Duration::from_secs(5),
            max_connections: 20_000,
            drain_timeout: Duration::from_secs(10),
            log_json: false,
        }
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let production = env::is_production()?;
        let api_keys: BTreeMap<String, String> = env::key_values("CITYBRAIN_JT808_API_KEYS")?
            .into_iter()
            .collect();
        if api_keys.is_empty() {
            return Err(ConfigError::Missing {
                name: "CITYBRAIN_JT808_API_KEYS",
                hint: "tenant=api-key pairs, one per tenant of the terminal registry",
            });
        }
        let d = Self::new(api_keys);
        let config = Self {
            listen_addr: env::var_or("CITYBRAIN_JT808_ADDR", d.listen_addr)?,
            admin_addr: env::var_or("CITYBRAIN_JT808_ADMIN_ADDR", d.admin_addr)?,
            ingest_url: env::string_or("CITYBRAIN_JT808_INGEST_URL", &d.ingest_url),
            registry_file: env::string_or(
                "CITYBRAIN_JT808_TERMINALS",
                &d.registry_file.display().to_string(),
            )
            .into(),
            state_dir: env::string_or(
                "CITYBRAIN_JT808_STATE_DIR",
                &d.state_dir.display().to_string(),
            )
            .into(),
            idle_timeout: env::secs_or("CITYBRAIN_JT808_IDLE_TIMEOUT_S", d.idle_timeout)?,
            ingest_timeout: env::millis_or("CITYBRAIN_JT808_INGEST_TIMEOUT_MS", d.ingest_timeout)?,
            max_connections: env::var_or("CITYBRAIN_JT808_MAX_CONNECTIONS", d.max_connections)?,
            drain_timeout: env::secs_or("CITYBRAIN_JT808_DRAIN_TIMEOUT_S", d.drain_timeout)?,
            log_json: env::bool_or("CITYBRAIN_LOG_JSON", production)?,
            ..d
        };
        if config.idle_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_JT808_IDLE_TIMEOUT_S",
                value: "0".into(),
                reason: "must be at least 1 second".into(),
            });
        }
        Ok(config)
    }
}
