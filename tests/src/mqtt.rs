//! MQTT for the suites: a device registry of the test's own, a sensor that
//! publishes through the real Eclipse paho-mqtt client (PyPI, in a venv that
//! `tests/mqtt/install.sh` caches outside the checkout), and the bridge's
//! configuration for a private broker.

use crate::process::repo_root;
use crate::{FULL_KEY, OTHER_TENANT, OTHER_TENANT_KEY, TENANT};
use citybrain_mqtt_bridge::config::BridgeConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The bridge's broker account in [`write_device_registry`]'s file.
pub const BRIDGE_USER: &str = "test-bridge";
/// Every device's password there.
pub const DEVICE_PASSWORD: &str = "test-device-password";
/// A bin sensor and a parking-spot sensor of [`TENANT`], and a bin sensor
/// of [`OTHER_TENANT`].
pub const BIN_SENSOR: &str = "WT-T-01-kitchen";
pub const SPOT_SENSOR: &str = "P-T-01-017";
pub const OTHER_BIN_SENSOR: &str = "OT-01-kitchen";

/// A registry with the devices above; the tenants' ingest keys are the kit's
/// test keys.
pub fn write_device_registry(dir: &Path) -> PathBuf {
    let path = dir.join("devices.toml");
    let text = format!(
        r#"
[bridge]
username = "{BRIDGE_USER}"
password = "test-bridge-password"

[[tenants]]
tenant = "{TENANT}"
ingest_key = "{FULL_KEY}"

[[tenants]]
tenant = "{OTHER_TENANT}"
ingest_key = "{OTHER_TENANT_KEY}"

[[devices]]
tenant = "{TENANT}"
device_id = "{BIN_SENSOR}"
kinds = ["bin_reading"]
password = "{DEVICE_PASSWORD}"

[[devices]]
tenant = "{TENANT}"
device_id = "{SPOT_SENSOR}"
kinds = ["parking_spot_status"]
password = "{DEVICE_PASSWORD}"

[[devices]]
tenant = "{OTHER_TENANT}"
device_id = "{OTHER_BIN_SENSOR}"
kinds = ["bin_reading"]
password = "{DEVICE_PASSWORD}"
"#
    );
    std::fs::write(&path, text).expect("write device registry");
    path
}

/// The bridge for the broker on `mqtt_port` and the ingest at `ingest_url`,
/// with the registry at `registry`; admin on port 0 is not possible for a
/// child process, so it gets a free port.
pub fn bridge_config(mqtt_port: u16, ingest_url: &str, registry: &Path) -> BridgeConfig {
    let mut config = BridgeConfig::new();
    config.mqtt_port = mqtt_port;
    config.ingest_url = ingest_url.to_string();
    config.registry_file = registry.to_path_buf();
    config.client_id = format!("bridge-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    config.admin_addr = ([127, 0, 0, 1], crate::process::free_port()).into();
    config
}

/// The topic of `device` of `tenant` for `kind`.
pub fn topic(tenant: &str, kind: &str, device: &str) -> String {
    format!("citybrain/v1/{tenant}/{kind}/{device}")
}

/// The venv's python with paho-mqtt (`CITYBRAIN_PAHO_PYTHON`, else what
/// `tests/mqtt/install.sh` installs or finds cached).
pub fn paho_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Ok(path) = std::env::var("CITYBRAIN_PAHO_PYTHON") {
                return path.into();
            }
            let script = repo_root().join("tests/mqtt/install.sh");
            let output = Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|err| panic!("bash {}: {err}", script.display()));
            assert!(
                output.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// What a paho device saw: its CONNACK, one PUBACK reason per payload, and
/// what arrived on its `…/rejected` topic.
#[derive(Debug)]
pub struct Published {
    pub connected: String,
    pub pubacks: Vec<String>,
    pub rejected: Vec<serde_json::Value>,
}

/// A device that publishes with paho-mqtt (MQTT 5, QoS 1).
pub struct Device {
    pub port: u16,
    pub username: String,
    pub password: String,
}

impl Device {
    /// The registry's device `device` of `tenant`.
    pub fn new(port: u16, tenant: &str, device: &str) -> Self {
        Self {
            port,
            username: format!("{tenant}/{device}"),
            password: DEVICE_PASSWORD.to_string(),
        }
    }

    /// Publishes `payloads` to `topic`, waits for their PUBACKs and for
    /// `expect_rejected` messages on `topic/rejected` (at most `timeout`).
    pub async fn publish(
        &self,
        topic: &str,
        payloads: &[String],
        expect_rejected: usize,
        timeout: Duration,
    ) -> Published {
        let mut command = tokio::process::Command::new(paho_python());
        command
            .arg(repo_root().join("tests/mqtt/device.py"))
            .args(["--port", &self.port.to_string()])
            .args(["--username", &self.username, "--password", &self.password])
            .args(["--topic", topic])
            .args(["--expect-rejected", &expect_rejected.to_string()])
            .args(["--timeout", &timeout.as_secs_f64().to_string()])
            .args(payloads);
        let output = command.output().await.expect("run device.py");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "device.py failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|err| panic!("device.py printed no JSON ({err}): {stdout}"));
        let strings = |key: &str| -> Vec<String> {
            json[key]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        Published {
            connected: json["connected"].as_str().unwrap_or_default().to_string(),
            pubacks: strings("pubacks"),
            rejected: json["rejected"].as_array().cloned().unwrap_or_default(),
        }
    }
}
