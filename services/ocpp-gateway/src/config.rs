//! The gateway's settings, from environment variables. An invalid value
//! stops the service with a message naming the variable.

use citybrain_config::{ConfigError, Env, ToEnv};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

const INGEST_KEYS: &str = "CITYBRAIN_OCPP_INGEST_KEYS";

/// The development API key of the gateway (public, in
/// `deploy/local/dev-api-keys.toml`; refused in production).
pub const DEV_INGEST_KEY: &str = "cb_dev_lucheng_ocpp_gateway_key_01";

#[derive(Debug, Clone, PartialEq)]
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
            admin_addr: ([127, 0, 0, 1], 9106).into(),
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

    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads every setting, failing on the first invalid one.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let production = env.is_production()?;
        let d = Self::new(
            env.string_or(
                "CITYBRAIN_OCPP_STATIONS",
                "deploy/local/dev-ocpp-stations.toml",
            ),
            &env.string_or("CITYBRAIN_OCPP_INGEST_URL", "http://127.0.0.1:50051"),
        );
        let ingest_keys = env.key_values(INGEST_KEYS)?;
        let ingest_keys = match (ingest_keys.is_empty(), production) {
            (false, _) => ingest_keys,
            (true, false) => d.ingest_keys.clone(),
            (true, true) => {
                return Err(ConfigError::Missing {
                    name: INGEST_KEYS,
                    hint: "tenant=API-key for every tenant of the station registry",
                });
            }
        };
        if production && ingest_keys.iter().any(|(_, key)| key == DEV_INGEST_KEY) {
            return Err(ConfigError::invalid(
                INGEST_KEYS,
                "(not shown)",
                "the public development key is refused in production",
            ));
        }
        let config = Self {
            listen_addr: env.var_or("CITYBRAIN_OCPP_ADDR", d.listen_addr)?,
            admin_addr: env.var_or("CITYBRAIN_OCPP_ADMIN_ADDR", d.admin_addr)?,
            registry_reload: env.secs_or("CITYBRAIN_OCPP_STATIONS_RELOAD_S", d.registry_reload)?,
            ingest_keys,
            ingest_timeout: env.millis_or("CITYBRAIN_OCPP_INGEST_TIMEOUT_MS", d.ingest_timeout)?,
            heartbeat_interval: env
                .secs_or("CITYBRAIN_OCPP_HEARTBEAT_INTERVAL_S", d.heartbeat_interval)?,
            offline_after_intervals: env.var_or(
                "CITYBRAIN_OCPP_OFFLINE_AFTER_INTERVALS",
                d.offline_after_intervals,
            )?,
            ping_interval: env.secs_or("CITYBRAIN_OCPP_PING_INTERVAL_S", d.ping_interval)?,
            max_message_bytes: env
                .var_or("CITYBRAIN_OCPP_MAX_MESSAGE_BYTES", d.max_message_bytes)?,
            shutdown_timeout: env
                .secs_or("CITYBRAIN_OCPP_SHUTDOWN_TIMEOUT_S", d.shutdown_timeout)?,
            production,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", production)?,
            ..d
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid =
            |name, value: String, reason: &str| Err(ConfigError::invalid(name, value, reason));
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

impl ToEnv for GatewayConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CITYBRAIN_OCPP_ADDR", self.listen_addr.to_string()),
            ("CITYBRAIN_OCPP_ADMIN_ADDR", self.admin_addr.to_string()),
            (
                "CITYBRAIN_OCPP_STATIONS",
                self.stations_file.to_string_lossy().into_owned(),
            ),
            (
                "CITYBRAIN_OCPP_STATIONS_RELOAD_S",
                self.registry_reload.as_secs().to_string(),
            ),
            ("CITYBRAIN_OCPP_INGEST_URL", self.ingest_url.clone()),
            (
                INGEST_KEYS,
                citybrain_config::env::join_key_values(&self.ingest_keys),
            ),
            (
                "CITYBRAIN_OCPP_INGEST_TIMEOUT_MS",
                self.ingest_timeout.as_millis().to_string(),
            ),
            (
                "CITYBRAIN_OCPP_HEARTBEAT_INTERVAL_S",
                self.heartbeat_interval.as_secs().to_string(),
            ),
            (
                "CITYBRAIN_OCPP_OFFLINE_AFTER_INTERVALS",
                self.offline_after_intervals.to_string(),
            ),
            (
                "CITYBRAIN_OCPP_PING_INTERVAL_S",
                self.ping_interval.as_secs().to_string(),
            ),
            (
                "CITYBRAIN_OCPP_MAX_MESSAGE_BYTES",
                self.max_message_bytes.to_string(),
            ),
            (
                "CITYBRAIN_OCPP_SHUTDOWN_TIMEOUT_S",
                self.shutdown_timeout.as_secs().to_string(),
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
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut config = GatewayConfig::new("/etc/citybrain/stations.toml", "http://ingest:50051");
        config.listen_addr = ([0, 0, 0, 0], 8887).into();
        config.ingest_keys = vec![
            ("lucheng".into(), "k1".into()),
            ("other-town".into(), "k2".into()),
        ];
        config.heartbeat_interval = Duration::from_secs(60);
        config.offline_after_intervals = 4;
        config.ping_interval = Duration::ZERO;
        config.production = true;
        config.log_json = true;
        let read = GatewayConfig::read(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
    }

    #[test]
    fn production_needs_keys_of_its_own() {
        let production = [("CITYBRAIN_ENV", "production")];
        let err = GatewayConfig::read(&Env::from_pairs(production)).unwrap_err();
        assert!(err.to_string().contains(INGEST_KEYS), "{err}");
        let dev_key = format!("lucheng={DEV_INGEST_KEY}");
        let err = GatewayConfig::read(&Env::from_pairs([
            ("CITYBRAIN_ENV", "production"),
            (INGEST_KEYS, dev_key.as_str()),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("development key"), "{err}");
        let dev = GatewayConfig::read(&Env::from_pairs([("CITYBRAIN_OCPP_ADDR", "0.0.0.0:9220")]))
            .unwrap();
        assert_eq!(
            dev.ingest_keys,
            vec![("lucheng".to_string(), DEV_INGEST_KEY.to_string())]
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (name, value) in [
            ("CITYBRAIN_OCPP_HEARTBEAT_INTERVAL_S", "0"),
            ("CITYBRAIN_OCPP_OFFLINE_AFTER_INTERVALS", "1"),
            ("CITYBRAIN_OCPP_INGEST_URL", "ingest:50051"),
            ("CITYBRAIN_OCPP_ADDR", "everywhere"),
        ] {
            let err = GatewayConfig::read(&Env::from_pairs([(name, value)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }
}
