//! The gateway's settings, from environment variables. An invalid value
//! stops the service with a message naming the variable.

use citybrain_telemetry::env::{self, ConfigError};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// The development API key of the gateway (public, in
/// `deploy/local/dev-api-keys.toml`; refused in production).
pub const DEV_INGEST_KEY: &str = "cb_dev_lucheng_ocpp_gateway_key_01";

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `CITYBRAIN_OCPP_ADDR`: where chargers connect, `ws://ADDR/ocpp/{id}`.
    pub listen_addr: SocketAddr,
    /// `CITYBRAIN_OCPP_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_OCPP_STATIONS`: the station registry (TOML).
    pub stations_file: PathBuf,
    /// `CITYBRAIN_OCPP_STATIONS_RELOAD_S`: how often the registry file is
    /// checked for changes (a changed file is loaded without a restart;
    /// one that does not load is logged and the old one kept). 0: never.
    pub registry_reload: Duration,
    /// `CITYBRAIN_OCPP_INGEST_URL`: the ingest gRPC endpoint.
    pub ingest_url: String,
    /// `CITYBRAIN_OCPP_INGEST_KEYS`: `tenant=API-key,…`, one ingest API key
    /// per tenant of the registry (ingest takes the tenant from the key).
    /// Development default: the development key for tenant `lucheng`.
    pub ingest_keys: Vec<(String, String)>,
    /// `CITYBRAIN_OCPP_INGEST_TIMEOUT_MS`: the longest an ingest call may
    /// take before the charger is told to resend.
    pub ingest_timeout: Duration,
    /// `CITYBRAIN_OCPP_HEARTBEAT_INTERVAL_S`: the `interval` BootNotification
    /// gives the charger.
    pub heartbeat_interval: Duration,
    /// `CITYBRAIN_OCPP_OFFLINE_AFTER_INTERVALS`: a charger silent for this
    /// many heartbeat intervals is reported OFFLINE and its socket closed.
    pub offline_after_intervals: u32,
    /// `CITYBRAIN_OCPP_PING_INTERVAL_S`: WebSocket pings to each charger; a
    /// socket that shows no sign of life for two intervals is closed. 0: no
    /// pings.
    pub ping_interval: Duration,
    /// `CITYBRAIN_OCPP_MAX_MESSAGE_BYTES`: the largest WebSocket message.
    pub max_message_bytes: usize,
    /// `CITYBRAIN_OCPP_SHUTDOWN_TIMEOUT_S`: how long shutdown waits for
    /// messages in flight to be answered and sockets to close.
    pub shutdown_timeout: Duration,
    /// `CITYBRAIN_ENV=production`: refuses clear-text passwords, the
    /// development password and the development API key.
    pub production: bool,
    /// `CITYBRAIN_LOG_JSON` (default: on in production).
    pub log_json: bool,
}

impl GatewayConfig {
    /// Development defaults around a registry file and an ingest endpoint.
    pub fn new(stations_file: impl Into<PathBuf>, ingest_url: &str) -> Self {
        Self {
            listen_addr: ([127, 0, 0, 1], 9220).into(),
            admin_addr: ([127, 0, 0, 1], 9104).into(),
            stations_file: stations_file.into(),
            registry_reload: Duration::from_secs(10),
            ingest_url: ingest_url.to_string(),
            ingest_keys: vec![("lucheng".into(), DEV_INGEST_KEY.into())],
            ingest_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(300),
            offline_after_intervals: 3,
            ping_interval: Duration::from_secs(30),
            max_message_bytes: 256 * 1024,
            shutdown_timeout: Duration::from_secs(15),
            production: false,
            log_json: false,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let production = env::is_production()?;
        let defaults = Self::new(
            env::string_or(
                "CITYBRAIN_OCPP_STATIONS",
                "deploy/local/dev-ocpp-stations.toml",
            ),
            &env::string_or("CITYBRAIN_OCPP_INGEST_URL", "http://127.0.0.1:50051"),
        );
        let ingest_keys = env::key_values("CITYBRAIN_OCPP_INGEST_KEYS")?;
        let ingest_keys = match (ingest_keys.is_empty(), production) {
            (false, _) => ingest_keys,
            (true, false) => defaults.ingest_keys.clone(),
            (true, true) => {
                return Err(ConfigError::Missing {
                    name: "CITYBRAIN_OCPP_INGEST_KEYS",
                    hint: "tenant=API-key for every tenant of the station registry",
                });
            }
        };
        if production && ingest_keys.iter().any(|(_, key)| key == DEV_INGEST_KEY) {
            return Err(ConfigError::Invalid {
                name: "CITYBRAIN_OCPP_INGEST_KEYS",
                value: "(not shown)".into(),
                reason: "the public development key is refused in production".into(),
            });
        }
        let config = Self {
            listen_addr: env::var_or("CITYBRAIN_OCPP_ADDR", defaults.listen_addr)?,
            admin_addr: env::var_or("CITYBRAIN_OCPP_ADMIN_ADDR", defaults.admin_addr)?,
            registry_reload: env::secs_or(
                "CITYBRAIN_OCPP_STATIONS_RELOAD_S",
                defaults.registry_reload,
            )?,
            ingest_keys,
            ingest_timeout: env::millis_or(
                "CITYBRAIN_OCPP_INGEST_TIMEOUT_MS",
                defaults.ingest_timeout,
            )?,
            heartbeat_interval: env::secs_or(
                "CITYBRAIN_OCPP_HEARTBEAT_INTERVAL_S",
                defaults.heartbeat_interval,
            )?,
            offline_after_intervals: env::var_or(
                "CITYBRAIN_OCPP_OFFLINE_AFTER_INTERVALS",
                defaults.offline_after_intervals,
            )?,
            ping_interval: env::secs_or("CITYBRAIN_OCPP_PING_INTERVAL_S", defaults.ping_interval)?,
            max_message_bytes: env::var_or(
                "CITYBRAIN_OCPP_MAX_MESSAGE_BYTES",
                defaults.max_message_bytes,
            )?,
            shutdown_timeout: env::secs_or(
                "CITYBRAIN_OCPP_SHUTDOWN_TIMEOUT_S",
                defaults.shutdown_timeout,
            )?,
            production,
            log_json: env::bool_or("CITYBRAIN_LOG_JSON", production)?,
            ..defaults
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |name, value: String, reason: &str| {
            Err(ConfigError::Invalid {
                name,
                value,
                reason: reason.into(),
            })
        };
        let interval = self.heartbeat_interval.as_secs();
        if !(1..=86_400).contains(&interval) {
            return invalid(
                "CITYBRAIN_OCPP_HEARTBEAT_INTERVAL_S",
                interval.to_string(),
                "expected 1..=86400 seconds",
            );
        }
        if self.offline_after_intervals < 2 {
            return invalid(
                "CITYBRAIN_OCPP_OFFLINE_AFTER_INTERVALS",
                self.offline_after_intervals.to_string(),
                "expected at least 2: one late heartbeat is not an outage",
            );
        }
        if self.max_message_bytes < 4096 {
            return invalid(
                "CITYBRAIN_OCPP_MAX_MESSAGE_BYTES",
                self.max_message_bytes.to_string(),
                "expected at least 4096",
            );
        }
        if !(self.ingest_url.starts_with("http://") || self.ingest_url.starts_with("https://")) {
            return invalid(
                "CITYBRAIN_OCPP_INGEST_URL",
                self.ingest_url.clone(),
                "expected http://host:port or https://…",
            );
        }
        Ok(())
    }

    /// How long a charger may stay silent before it is reported OFFLINE.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat_interval * self.offline_after_intervals
    }
}
