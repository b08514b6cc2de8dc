//! The device registry: which devices may publish what, and the ingest key
//! the bridge sends each tenant's events with.
//!
//! One TOML file is the source of both sides of the MQTT trust boundary:
//! the broker's password file and ACLs are generated from its `[[devices]]`
//! (`deploy/local/mosquitto/broker_files.py`, which `mosquitto.sh` and the
//! test kit run), and the bridge reads its `[[tenants]]`. Like the API key
//! file (`citybrain-keys`), passwords in clear are for development only.
//!
//! ```toml
//! [bridge]                      # the bridge's own broker account
//! username = "citybrain-mqtt-bridge"
//! password = "…"                # or password_hash = "$7$…" (mosquitto_passwd)
//!
//! [[tenants]]
//! tenant = "lucheng"
//! ingest_key = "…"              # the ingest API key for this tenant's events
//!
//! [[devices]]
//! tenant = "lucheng"
//! device_id = "WT-01-kitchen"   # or "+": any device (a vendor cloud's account)
//! kinds = ["bin_reading"]
//! username = "lucheng/WT-01-kitchen"   # default "<tenant>/<device_id>"
//! password = "…"                # or password_hash
//! ```
//!
//! A device may publish only to `citybrain/v1/<tenant>/<kind>/<device_id>`
//! for its kinds, and read only its own `…/rejected` topic.

use citybrain_proto::feed::Kind;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The first levels of every device topic.
pub const TOPIC_ROOT: &str = "citybrain/v1";

/// Why the registry cannot be used; each names the entry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the device registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the device registry {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("device registry, {entry}: {problem}")]
    Entry { entry: String, problem: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    bridge: Account,
    #[serde(default)]
    tenants: Vec<TenantEntry>,
    #[serde(default)]
    devices: Vec<DeviceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    username: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    tenant: String,
    ingest_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    tenant: String,
    device_id: String,
    kinds: Vec<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
}

/// The registry as the bridge uses it: tenants and their ingest keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// Ingest API key per tenant.
    pub ingest_keys: HashMap<String, String>,
    /// Devices listed (for the log line at start-up).
    pub devices: usize,
    /// The bridge's broker account; the password only when written in
    /// clear (development).
    pub bridge_username: String,
    pub bridge_password: Option<String>,
}

impl Registry {
    pub fn load(path: &Path, production: bool) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), production)
    }

    /// Parses and checks every entry: the broker files generated from it
    /// must not let a device out of its topics.
    pub fn parse(text: &str, path: &str, production: bool) -> Result<Self, RegistryError> {
        let file: File = toml::from_str(text).map_err(|source| RegistryError::Parse {
            path: path.to_string(),
            source,
        })?;
        check_account(
            "[bridge]",
            &file.bridge.password,
            &file.bridge.password_hash,
            production,
        )?;
        check_username("[bridge]", &file.bridge.username)?;
        let mut ingest_keys = HashMap::new();
        for entry in &file.tenants {
            let name = format!("tenant {:?}", entry.tenant);
            check_level(&name, "tenant", &entry.tenant)?;
            if entry.ingest_key.trim().is_empty() {
                return Err(problem(&name, "ingest_key is required"));
            }
            if ingest_keys
                .insert(entry.tenant.clone(), entry.ingest_key.clone())
                .is_some()
            {
                return Err(problem(&name, "listed twice"));
            }
        }
        let mut usernames = HashSet::from([file.bridge.username.clone()]);
        for device in &file.devices {
            let name = format!("device {:?} of {:?}", device.device_id, device.tenant);
            if !ingest_keys.contains_key(&device.tenant) {
                return Err(problem(&name, "its tenant has no [[tenants]] entry"));
            }
            if device.device_id != "+" {
                check_level(&name, "device_id", &device.device_id)?;
            }
            if device.kinds.is_empty() {
                return Err(problem(&name, "kinds is empty"));
            }
            for kind in &device.kinds {
                if Kind::parse(kind).is_none() {
                    return Err(problem(&name, &format!("unknown kind {kind:?}")));
                }
            }
            let username = device
                .username
                .clone()
                .unwrap_or_else(|| format!("{}/{}", device.tenant, device.device_id));
            if device.device_id == "+" && device.username.is_none() {
                return Err(problem(&name, "a \"+\" account needs a username"));
            }
            check_username(&name, &username)?;
            check_account(&name, &device.password, &device.password_hash, production)?;
            if !usernames.insert(username.clone()) {
                return Err(problem(
                    &name,
                    &format!("username {username:?} is used twice"),
                ));
            }
        }
        Ok(Self {
            ingest_keys,
            devices: file.devices.len(),
            bridge_username: file.bridge.username,
            bridge_password: file.bridge.password,
        })
    }
}

fn problem(entry: &str, problem: &str) -> RegistryError {
    RegistryError::Entry {
        entry: entry.to_string(),
        problem: problem.to_string(),
    }
}

/// A topic level: not empty, no MQTT wildcard or level separator, and no
/// `:` (the password file's separator) or space (the ACL file's).
fn check_level(entry: &str, field: &str, value: &str) -> Result<(), RegistryError> {
    if value.is_empty() || value.len() > 128 {
        return Err(problem(entry, &format!("{field} must be 1 to 128 bytes")));
    }
    if value
        .chars()
        .any(|c| matches!(c, '/' | '+' | '#' | ':' | ' ') || c.is_control())
    {
        return Err(problem(
            entry,
            &format!("{field} {value:?} may not contain / + # : spaces or control characters"),
        ));
    }
    Ok(())
}

fn check_username(entry: &str, username: &str) -> Result<(), RegistryError> {
    if username.is_empty() || username.chars().any(|c| c == ':' || c.is_whitespace()) {
        return Err(problem(
            entry,
            &format!("username {username:?} must be non-empty, without ':' or spaces"),
        ));
    }
    Ok(())
}

fn check_account(
    entry: &str,
    password: &Option<String>,
    hash: &Option<String>,
    production: bool,
) -> Result<(), RegistryError> {
    match (password, hash) {
        (Some(_), Some(_)) => Err(problem(entry, "set either password or password_hash")),
        (None, None) => Err(problem(
            entry,
            "password (development) or password_hash is required",
        )),
        (Some(_), None) if production => Err(problem(
            entry,
            "passwords in clear are refused in production; store password_hash (mosquitto_passwd)",
        )),
        (Some(clear), None) if clear.is_empty() || clear.contains('\n') => {
            Err(problem(entry, "password must be one non-empty line"))
        }
        (None, Some(hash)) if !hash.starts_with('$') => Err(problem(
            entry,
            "password_hash must be a mosquitto_passwd hash ($6$… or $7$…)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = "[bridge]\nusername = \"bridge\"\npassword = \"b\"\n";
    const TENANT: &str = "[[tenants]]\ntenant = \"lucheng\"\ningest_key = \"k\"\n";

    fn parse(devices: &str) -> Result<Registry, RegistryError> {
        Registry::parse(&format!("{BRIDGE}{TENANT}{devices}"), "f", false)
    }

    #[test]
    fn tenants_give_the_ingest_keys() {
        let registry = parse(
            "[[devices]]\ntenant = \"lucheng\"\ndevice_id = \"B1\"\nkinds = [\"bin_reading\"]\npassword = \"p\"\n",
        )
        .unwrap();
        assert_eq!(registry.ingest_keys["lucheng"], "k");
        assert_eq!(registry.devices, 1);
    }

    #[test]
    fn entries_that_would_widen_a_device_s_topics_are_refused() {
        for (device_id, kinds, says) in [
            ("B/1", "[\"bin_reading\"]", "may not contain"),
            ("B#", "[\"bin_reading\"]", "may not contain"),
            ("B:1", "[\"bin_reading\"]", "may not contain"),
            ("B1", "[\"teleport\"]", "unknown kind"),
            ("B1", "[]", "kinds is empty"),
            ("+", "[\"bin_reading\"]", "needs a username"),
        ] {
            let err = parse(&format!(
                "[[devices]]\ntenant = \"lucheng\"\ndevice_id = \"{device_id}\"\nkinds = {kinds}\npassword = \"p\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(says), "{device_id} {kinds}: {err}");
        }
        let err = parse(
            "[[devices]]\ntenant = \"elsewhere\"\ndevice_id = \"B1\"\nkinds = [\"bin_reading\"]\npassword = \"p\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no [[tenants]] entry"), "{err}");
        let twice = "[[devices]]\ntenant = \"lucheng\"\ndevice_id = \"B1\"\nkinds = [\"bin_reading\"]\npassword = \"p\"\n";
        let err = parse(&format!("{twice}{twice}")).unwrap_err().to_string();
        assert!(err.contains("used twice"), "{err}");
    }

    #[test]
    fn production_refuses_passwords_in_clear() {
        let err = Registry::parse(&format!("{BRIDGE}{TENANT}"), "f", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[bridge]") && err.contains("in clear"),
            "{err}"
        );
        let hashed = "[bridge]\nusername = \"bridge\"\npassword_hash = \"$7$101$abc\"\n";
        assert!(Registry::parse(&format!("{hashed}{TENANT}"), "f", true).is_ok());
    }
}
