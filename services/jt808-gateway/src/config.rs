//! The gateway's settings, read once at start-up from the environment.

use citybrain_config::{ConfigError, Env, ToEnv};
use std::collections::BTreeMap;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// The variable of the per-tenant ingest API keys.
pub const API_KEYS: &str = "CITYBRAIN_JT808_API_KEYS";

/// Everything the JT/T 808 gateway can be told. Each field names its variable.
#[derive(Debug, Clone, PartialEq)]
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
    /// Development defaults with the given keys: loopback addresses, the
    /// local registry.
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

    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let production = env.is_production()?;
        let api_keys: BTreeMap<String, String> = env.key_values(API_KEYS)?.into_iter().collect();
        if api_keys.is_empty() {
            return Err(ConfigError::Missing {
                name: API_KEYS,
                hint: "tenant=api-key pairs, one per tenant of the terminal registry",
            });
        }
        let d = Self::new(api_keys);
        let path = |name, default: &PathBuf| -> PathBuf {
            env.string_or(name, &default.to_string_lossy()).into()
        };
        let config = Self {
            listen_addr: env.var_or("CITYBRAIN_JT808_ADDR", d.listen_addr)?,
            admin_addr: env.var_or("CITYBRAIN_JT808_ADMIN_ADDR", d.admin_addr)?,
            ingest_url: env.string_or("CITYBRAIN_JT808_INGEST_URL", &d.ingest_url),
            registry_file: path("CITYBRAIN_JT808_TERMINALS", &d.registry_file),
            state_dir: path("CITYBRAIN_JT808_STATE_DIR", &d.state_dir),
            idle_timeout: env.secs_or("CITYBRAIN_JT808_IDLE_TIMEOUT_S", d.idle_timeout)?,
            ingest_timeout: env.millis_or("CITYBRAIN_JT808_INGEST_TIMEOUT_MS", d.ingest_timeout)?,
            max_connections: env.var_or("CITYBRAIN_JT808_MAX_CONNECTIONS", d.max_connections)?,
            drain_timeout: env.secs_or("CITYBRAIN_JT808_DRAIN_TIMEOUT_S", d.drain_timeout)?,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", production)?,
            ..d
        };
        if config.idle_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "CITYBRAIN_JT808_IDLE_TIMEOUT_S",
                0,
                "must be at least 1 second",
            ));
        }
        if config.max_connections == 0 {
            return Err(ConfigError::invalid(
                "CITYBRAIN_JT808_MAX_CONNECTIONS",
                0,
                "must be at least 1",
            ));
        }
        Ok(config)
    }
}

impl ToEnv for Jt808Config {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let keys: Vec<(String, String)> = self
            .api_keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vec![
            ("CITYBRAIN_JT808_ADDR", self.listen_addr.to_string()),
            ("CITYBRAIN_JT808_ADMIN_ADDR", self.admin_addr.to_string()),
            ("CITYBRAIN_JT808_INGEST_URL", self.ingest_url.clone()),
            (API_KEYS, citybrain_config::env::join_key_values(&keys)),
            (
                "CITYBRAIN_JT808_TERMINALS",
                self.registry_file.to_string_lossy().into_owned(),
            ),
            (
                "CITYBRAIN_JT808_STATE_DIR",
                self.state_dir.to_string_lossy().into_owned(),
            ),
            (
                "CITYBRAIN_JT808_IDLE_TIMEOUT_S",
                self.idle_timeout.as_secs().to_string(),
            ),
            (
                "CITYBRAIN_JT808_INGEST_TIMEOUT_MS",
                self.ingest_timeout.as_millis().to_string(),
            ),
            (
                "CITYBRAIN_JT808_MAX_CONNECTIONS",
                self.max_connections.to_string(),
            ),
            (
                "CITYBRAIN_JT808_DRAIN_TIMEOUT_S",
                self.drain_timeout.as_secs().to_string(),
            ),
            ("CITYBRAIN_LOG_JSON", self.log_json.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut config = Jt808Config::new(BTreeMap::from([
            ("lucheng".to_string(), "key-1".to_string()),
            ("other".to_string(), "key-2".to_string()),
        ]));
        config.listen_addr = ([0, 0, 0, 0], 7611).into();
        config.idle_timeout = Duration::from_secs(30);
        config.state_dir = "/var/lib/citybrain-jt808".into();
        let read = Jt808Config::read(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
    }

    #[test]
    fn keys_are_required_and_bad_values_name_the_variable() {
        let err = Jt808Config::read(&Env::from_pairs([("X", "1")])).unwrap_err();
        assert!(err.to_string().contains(API_KEYS), "{err}");
        let env = Env::from_pairs([(API_KEYS, "t=k"), ("CITYBRAIN_JT808_IDLE_TIMEOUT_S", "0")]);
        let err = Jt808Config::read(&env).unwrap_err().to_string();
        assert!(err.contains("CITYBRAIN_JT808_IDLE_TIMEOUT_S"), "{err}");
    }
}
