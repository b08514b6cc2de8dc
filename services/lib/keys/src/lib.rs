//! API keys: who is calling, for which tenant, allowed to send which kinds.
//! Shared by ingest (vendors) and the query service (planners, dashboards:
//! their kinds are irrelevant, `["*"]` is customary).
//!
//! Keys are loaded from a TOML file and stored as SHA-256 digests. API keys
//! are long random strings, not passwords, so a plain digest is enough to make
//! a leaked file useless; lookups compare digests, never the key itself.
//!
//! ```toml
//! [[keys]]
//! name = "hby-charging-operator"   # shown in logs, never the key
//! tenant = "lucheng"
//! source = "hby-cpo"
//! kinds = ["connector_status", "meter_sample", "charging_session"]  # or ["*"]
//! sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
//! ```
//!
//! `key = "…"` (in clear) is accepted for development only; a production
//! configuration refuses it, and refuses the well-known development key.

use citybrain_proto::feed::Kind;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::{collections::HashMap, collections::HashSet, path::Path, sync::Arc};

/// The development key `make run` prints. Never valid in production.
pub const DEVELOPMENT_KEY: &str = "cb_dev_lucheng_simulator_key_0001";

/// gRPC metadata entry that carries the key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Name of the key entry, for logs.
    pub key_name: String,
    pub tenant: String,
    pub source: String,
    allowed: Allowed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    All,
    Only(HashSet<Kind>),
}

impl Principal {
    pub fn may_send(&self, kind: Kind) -> bool {
        match &self.allowed {
            Allowed::All => true,
            Allowed::Only(kinds) => kinds.contains(&kind),
        }
    }
}

/// Why the key file cannot be used. Each names the entry and the problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read API key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("API key file {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("API key {name:?}: {problem}")]
    Entry { name: String, problem: String },
    #[error("API key file {path} defines no keys")]
    Empty { path: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    tenant: String,
    source: String,
    kinds: Vec<String>,
    #[serde(default)]
    sha256: Option<String>,
    /// Clear-text key: development only.
    #[serde(default)]
    key: Option<String>,
}

/// All known keys, by digest.
#[derive(Debug, Clone)]
pub struct KeyStore {
    by_digest: Arc<HashMap<[u8; 32], Principal>>,
}

impl KeyStore {
    /// Loads the key file. With `production`, keys in clear and the
    /// development key are refused.
    pub fn load(path: &Path, production: bool) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), production)
    }

    pub fn parse(text: &str, path: &str, production: bool) -> Result<Self, KeyFileError> {
        let file: KeyFile = toml::from_str(text).map_err(|source| KeyFileError::Parse {
            path: path.to_string(),
            source,
        })?;
        if file.keys.is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_string(),
            });
        }
        let development_digest = digest(DEVELOPMENT_KEY);
        let mut by_digest = HashMap::new();
        for entry in file.keys {
            let problem = |problem: String| KeyFileError::Entry {
                name: entry.name.clone(),
                problem,
            };
            let key_digest = match (&entry.sha256, &entry.key) {
                (Some(_), Some(_)) => {
                    return Err(problem("set either sha256 or key, not both".into()));
                }
                (None, None) => {
                    return Err(problem(
                        "sha256 (or, in development, key) is required".into(),
                    ));
                }
                (None, Some(_)) if production => {
                    return Err(problem(
                        "keys in clear are refused in production; store sha256 = \"<hex digest>\" instead".into(),
                    ));
                }
                (None, Some(clear)) => digest(clear),
                (Some(hex_digest), None) => parse_digest(hex_digest).map_err(problem)?,
            };
            if production && key_digest == development_digest {
                return Err(problem(
                    "this is the public development key; it is refused in production".into(),
                ));
            }
            for field in [("tenant", &entry.tenant), ("source", &entry.source)] {
                if field.1.trim().is_empty() {
                    return Err(problem(format!("{} is required", field.0)));
                }
            }
            let allowed = allowed_kinds(&entry.kinds).map_err(problem)?;
            let principal = Principal {
                key_name: entry.name.clone(),
                tenant: entry.tenant.clone(),
                source: entry.source.clone(),
                allowed,
            };
            if by_digest.insert(key_digest, principal).is_some() {
                return Err(problem("the same key is listed twice".into()));
            }
        }
        Ok(Self {
            by_digest: Arc::new(by_digest),
        })
    }

    /// The principal for a presented key, if it is known.
    pub fn authenticate(&self, presented: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(presented))
    }
}

fn allowed_kinds(names: &[String]) -> Result<Allowed, String> {
    if names.iter().any(|name| name == "*") {
        return Ok(Allowed::All);
    }
    if names.is_empty() {
        return Err("kinds is empty: list the kinds this source may send, or \"*\"".into());
    }
    names
        .iter()
        .map(|name| {
            Kind::parse(name).ok_or_else(|| {
                let known: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {name:?}; known kinds: {}", known.join(", "))
            })
        })
        .collect::<Result<HashSet<_>, _>>()
        .map(Allowed::Only)
}

fn parse_digest(hex_digest: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_digest.trim())
        .map_err(|err| format!("sha256 is not hexadecimal: {err}"))?;
    bytes
        .try_into()
        .map_err(|_| "sha256 must be 64 hexadecimal digits".to_string())
}

/// SHA-256 of a key, as stored in the key file.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(extra: &str) -> String {
        format!("[[keys]]\nname = \"cpo\"\ntenant = \"lucheng\"\nsource = \"hby-cpo\"\n{extra}\n")
    }

    #[test]
    fn hashed_keys_authenticate_with_their_kinds() {
        let text = entry(&format!(
            "kinds = [\"connector_status\"]\nsha256 = \"{}\"",
            hex::encode(digest("secret-1"))
        ));
        let store = KeyStore::parse(&text, "keys.toml", true).unwrap();
        let who = store.authenticate("secret-1").expect("known key");
        assert_eq!(
            (who.tenant.as_str(), who.source.as_str()),
            ("lucheng", "hby-cpo")
        );
        assert!(who.may_send(Kind::ConnectorStatus));
        assert!(!who.may_send(Kind::BinReading));
        assert!(store.authenticate("secret-2").is_none());
        assert!(store.authenticate("").is_none());
    }

    #[test]
    fn star_allows_every_kind() {
        let store = KeyStore::parse(&entry("kinds = [\"*\"]\nkey = \"k\""), "f", false).unwrap();
        let who = store.authenticate("k").unwrap();
        assert!(Kind::ALL.iter().all(|kind| who.may_send(*kind)));
    }

    #[test]
    fn production_refuses_clear_keys_and_the_development_key() {
        let clear = entry("kinds = [\"*\"]\nkey = \"k\"");
        let err = KeyStore::parse(&clear, "f", true).unwrap_err().to_string();
        assert!(err.contains("\"cpo\"") && err.contains("in clear"), "{err}");

        let dev = entry(&format!(
            "kinds = [\"*\"]\nsha256 = \"{}\"",
            hex::encode(digest(DEVELOPMENT_KEY))
        ));
        let err = KeyStore::parse(&dev, "f", true).unwrap_err().to_string();
        assert!(err.contains("development key"), "{err}");
        assert!(
            KeyStore::parse(&dev, "f", false).is_ok(),
            "fine in development"
        );
    }

    #[test]
    fn bad_entries_name_the_problem() {
        let err = KeyStore::parse(&entry("kinds = [\"teleport\"]\nkey = \"k\""), "f", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown kind \"teleport\""), "{err}");
        let err = KeyStore::parse(&entry("kinds = [\"*\"]\nsha256 = \"abc\""), "f", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sha256"), "{err}");
        let err = KeyStore::parse(&entry("kinds = [\"*\"]"), "f", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("required"), "{err}");
        assert!(KeyStore::parse("", "f", false).is_err());
    }
}
