//! The bridge's settings, read once at start-up from the environment.

use citybrain_config::{ConfigError, Env, ToEnv};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the bridge can be told. Each field names its variable.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// `CITYBRAIN_MQTT_HOST` / `CITYBRAIN_MQTT_PORT`: the broker.
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// `CITYBRAIN_MQTT_CLIENT_ID`: the bridge's MQTT client id. Its session
    /// is persistent (clean session off): messages not yet acknowledged
    /// when the bridge stops are delivered again when it connects again
    /// under the same id.
    pub client_id: String,
    /// `CITYBRAIN_MQTT_PASSWORD`: the bridge's broker password, when the
    /// registry keeps only its hash (production).
    pub mqtt_password: Option<String>,
    /// `CITYBRAIN_MQTT_DEVICES`: the device registry (`registry.rs`); the
    /// bridge's broker account and the tenants' ingest keys come from it.
    pub registry_file: PathBuf,
    /// `CITYBRAIN_MQTT_BRIDGE_INGEST_URL`: ingest's gRPC endpoint.
    pub ingest_url: String,
    /// `CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: SocketAddr,
    /// `CITYBRAIN_ENV=production`: passwords in clear are refused.
    pub production: bool,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines.
    pub log_json: bool,
    /// `CITYBRAIN_MQTT_BRIDGE_BATCH_MESSAGES`: messages sent to ingest in one
    /// call at most (their events together also at most
    /// `CITYBRAIN_MQTT_BRIDGE_BATCH_EVENTS`, ingest's per-request limit).
    pub batch_messages: usize,
    pub batch_events: usize,
    /// `CITYBRAIN_MQTT_BRIDGE_MAX_EVENTS_PER_MESSAGE`: a payload with more
    /// events is refused whole.
    pub max_events_per_message: usize,
    /// `CITYBRAIN_MQTT_BRIDGE_MAX_PAYLOAD_BYTES`: the largest MQTT packet
    /// read (the broker's `max_packet_size` should be the same or lower:
    /// a larger packet would break the bridge's connection).
    pub max_payload_bytes: usize,
    /// `CITYBRAIN_MQTT_BRIDGE_INFLIGHT`: messages received and not yet
    /// acknowledged at most; the broker holds the rest (set its
    /// `max_inflight_messages` to the same).
    pub inflight: usize,
    /// `CITYBRAIN_MQTT_BRIDGE_INGEST_TIMEOUT_MS`: one ingest call at most.
    pub ingest_timeout: Duration,
    /// `CITYBRAIN_MQTT_BRIDGE_DRAIN_TIMEOUT_MS`: on shutdown, how long the
    /// batch in hand may take to be stored and acknowledged.
    pub drain_timeout: Duration,
}

impl BridgeConfig {
    /// Development defaults: the local stack's broker and ingest.
    pub fn new() -> Self {
        Self {
            mqtt_host: "127.0.0.1".into(),
            mqtt_port: 11883,
            client_id: "citybrain-mqtt-bridge".into(),
            mqtt_password: None,
            registry_file: "deploy/local/dev-devices.toml".into(),
            ingest_url: "http://127.0.0.1:50051".into(),
            admin_addr: ([127, 0, 0, 1], 9104).into(),
            production: false,
            log_json: false,
            batch_messages: 500,
            batch_events: 1000,
            max_events_per_message: 100,
            max_payload_bytes: 256 * 1024,
            inflight: 1000,
            ingest_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::new();
        let production = env.is_production()?;
        let config = Self {
            mqtt_host: env.string_or("CITYBRAIN_MQTT_HOST", &d.mqtt_host),
            mqtt_port: env.var_or("CITYBRAIN_MQTT_PORT", d.mqtt_port)?,
            client_id: env.string_or("CITYBRAIN_MQTT_CLIENT_ID", &d.client_id),
            mqtt_password: env.optional("CITYBRAIN_MQTT_PASSWORD"),
            registry_file: env
                .string_or("CITYBRAIN_MQTT_DEVICES", &d.registry_file.to_string_lossy())
                .into(),
            ingest_url: env.string_or("CITYBRAIN_MQTT_BRIDGE_INGEST_URL", &d.ingest_url),
            admin_addr: env.var_or("CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR", d.admin_addr)?,
            production,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", production)?,
            batch_messages: env.var_or("CITYBRAIN_MQTT_BRIDGE_BATCH_MESSAGES", d.batch_messages)?,
            batch_events: env.var_or("CITYBRAIN_MQTT_BRIDGE_BATCH_EVENTS", d.batch_events)?,
            max_events_per_message: env.var_or(
                "CITYBRAIN_MQTT_BRIDGE_MAX_EVENTS_PER_MESSAGE",
                d.max_events_per_message,
            )?,
            max_payload_bytes: env.var_or(
                "CITYBRAIN_MQTT_BRIDGE_MAX_PAYLOAD_BYTES",
                d.max_payload_bytes,
            )?,
            inflight: env.var_or("CITYBRAIN_MQTT_BRIDGE_INFLIGHT", d.inflight)?,
            ingest_timeout: env
                .millis_or("CITYBRAIN_MQTT_BRIDGE_INGEST_TIMEOUT_MS", d.ingest_timeout)?,
            drain_timeout: env
                .millis_or("CITYBRAIN_MQTT_BRIDGE_DRAIN_TIMEOUT_MS", d.drain_timeout)?,
        };
        if config.client_id.is_empty() {
            return Err(ConfigError::invalid(
                "CITYBRAIN_MQTT_CLIENT_ID",
                "",
                "a persistent session needs a client id",
            ));
        }
        if config.max_events_per_message > config.batch_events || config.batch_messages == 0 {
            return Err(ConfigError::invalid(
                "CITYBRAIN_MQTT_BRIDGE_MAX_EVENTS_PER_MESSAGE",
                config.max_events_per_message,
                "must be at most CITYBRAIN_MQTT_BRIDGE_BATCH_EVENTS, and batches at least 1 message",
            ));
        }
        if config.inflight == 0 || config.inflight > usize::from(u16::MAX) {
            return Err(ConfigError::invalid(
                "CITYBRAIN_MQTT_BRIDGE_INFLIGHT",
                config.inflight,
                "must be 1 to 65535",
            ));
        }
        Ok(config)
    }
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ToEnv for BridgeConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("CITYBRAIN_MQTT_HOST", self.mqtt_host.clone()),
            ("CITYBRAIN_MQTT_PORT", self.mqtt_port.to_string()),
            ("CITYBRAIN_MQTT_CLIENT_ID", self.client_id.clone()),
            (
                "CITYBRAIN_MQTT_DEVICES",
                self.registry_file.to_string_lossy().into_owned(),
            ),
            ("CITYBRAIN_MQTT_BRIDGE_INGEST_URL", self.ingest_url.clone()),
            (
                "CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR",
                self.admin_addr.to_string(),
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
                "CITYBRAIN_MQTT_BRIDGE_BATCH_MESSAGES",
                self.batch_messages.to_string(),
            ),
            (
                "CITYBRAIN_MQTT_BRIDGE_BATCH_EVENTS",
                self.batch_events.to_string(),
            ),
            (
                "CITYBRAIN_MQTT_BRIDGE_MAX_EVENTS_PER_MESSAGE",
                self.max_events_per_message.to_string(),
            ),
            (
                "CITYBRAIN_MQTT_BRIDGE_MAX_PAYLOAD_BYTES",
                self.max_payload_bytes.to_string(),
            ),
            ("CITYBRAIN_MQTT_BRIDGE_INFLIGHT", self.inflight.to_string()),
            (
                "CITYBRAIN_MQTT_BRIDGE_INGEST_TIMEOUT_MS",
                self.ingest_timeout.as_millis().to_string(),
            ),
            (
                "CITYBRAIN_MQTT_BRIDGE_DRAIN_TIMEOUT_MS",
                self.drain_timeout.as_millis().to_string(),
            ),
        ];
        if let Some(password) = &self.mqtt_password {
            vars.push(("CITYBRAIN_MQTT_PASSWORD", password.clone()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut config = BridgeConfig::new();
        config.mqtt_port = 1;
        config.client_id = "b-2".into();
        config.mqtt_password = Some("p".into());
        config.batch_messages = 7;
        config.ingest_timeout = Duration::from_millis(1500);
        config.admin_addr = ([127, 0, 0, 1], 0).into();
        let read = BridgeConfig::read(&Env::from_pairs(config.to_env())).unwrap();
        assert_eq!(read, config);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let env = Env::from_pairs([("CITYBRAIN_MQTT_BRIDGE_INFLIGHT", "0")]);
        let err = BridgeConfig::read(&env).unwrap_err().to_string();
        assert!(err.contains("CITYBRAIN_MQTT_BRIDGE_INFLIGHT"), "{err}");
        let env = Env::from_pairs([("CITYBRAIN_MQTT_PORT", "x")]);
        let err = BridgeConfig::read(&env).unwrap_err().to_string();
        assert!(err.contains("CITYBRAIN_MQTT_PORT"), "{err}");
    }
}
