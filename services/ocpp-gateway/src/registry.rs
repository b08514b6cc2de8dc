//! The station registry: which charge points may connect, and what they are.
//!
//! A TOML file (`CITYBRAIN_OCPP_STATIONS`) binds each charge point id to a
//! tenant, a site, its connectors and a credential for OCPP security profile
//! 1 (HTTP Basic, user = the charge point id):
//!
//! ```toml
//! [[stations]]
//! id = "HBY-CP-01"
//! tenant = "lucheng"
//! site = "后北营家园"
//! connectors = 2                 # 1.6 connectors / 2.0.1 EVSEs, numbered from 1
//! sha256 = "<printf %s 'HBY-CP-01:PASSWORD' | sha256sum>"
//! latitude = 39.9012             # optional: the envelope's location
//! longitude = 116.7498
//! ```
//!
//! The digest covers `id:password`, the very string the charger sends base64
//! encoded, so two stations with the same password still have different
//! digests. `password = "…"` (in clear) is for development only: with
//! `CITYBRAIN_ENV=production` the registry refuses it, and refuses the
//! public development password.

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::{collections::HashMap, path::Path, sync::Arc};

/// The password of the development registry (`deploy/local/dev-ocpp-stations.toml`).
/// Public; refused in production.
pub const DEVELOPMENT_PASSWORD: &str = "cb_dev_ocpp_station_password";
/// OCPP 2.0.1 bounds the identity at 48 characters.
const MAX_ID_CHARS: usize = 48;

/// A registered charge point.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    pub tenant: String,
    pub site: String,
    /// Connectors (1.6) or EVSEs (2.0.1), numbered 1..=connectors.
    pub connectors: u32,
    /// Where it stands (WGS-84), when the registry says.
    pub location: Option<(f64, f64)>,
    digest: [u8; 32],
}

/// Why an upgrade was refused: each is a metric label and a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownStation,
    NoCredentials,
    MalformedCredentials,
    /// The Basic user is not the charge point id of the URL.
    WrongUser,
    WrongPassword,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownStation => "unknown_station",
            Refusal::NoCredentials => "no_credentials",
            Refusal::MalformedCredentials => "malformed_credentials",
            Refusal::WrongUser => "wrong_user",
            Refusal::WrongPassword => "wrong_password",
        }
    }
}

/// Why the registry file cannot be used. Each names the entry and the problem.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the station registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("station registry {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("station {id:?}: {problem}")]
    Entry { id: String, problem: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    stations: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    tenant: String,
    site: String,
    connectors: u32,
    #[serde(default)]
    sha256: Option<String>,
    /// Clear-text password: development only.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

/// Every registered station, by charge point id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_id: HashMap<String, Arc<Station>>,
}

impl Registry {
    /// Loads the registry file. With `production`, clear-text passwords and
    /// the development password are refused.
    pub fn load(path: &Path, production: bool) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), production)
    }

    pub fn parse(text: &str, path: &str, production: bool) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|source| RegistryError::Parse {
            path: path.to_string(),
            source,
        })?;
        let mut by_id = HashMap::new();
        for entry in file.stations {
            let station = station(entry, production)?;
            let id = station.id.clone();
            if by_id.insert(id.clone(), Arc::new(station)).is_some() {
                return Err(RegistryError::Entry {
                    id,
                    problem: "is listed twice".into(),
                });
            }
        }
        Ok(Self { by_id })
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Station>> {
        self.by_id.get(id)
    }

    /// The tenants the registry's stations belong to.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        let mut tenants: Vec<&str> = self.by_id.values().map(|s| s.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants.into_iter()
    }

    /// Checks an upgrade request for charge point `id` with the request's
    /// `Authorization` header.
    pub fn authenticate(
        &self,
        id: &str,
        authorization: Option<&str>,
    ) -> Result<Arc<Station>, Refusal> {
        let station = self.by_id.get(id).ok_or(Refusal::UnknownStation)?;
        let header = authorization.ok_or(Refusal::NoCredentials)?;
        let (scheme, encoded) = header
            .trim()
            .split_once(' ')
            .ok_or(Refusal::MalformedCredentials)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Refusal::MalformedCredentials);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Refusal::MalformedCredentials)?;
        let user = decoded
            .split(|b| *b == b':')
            .next()
            .ok_or(Refusal::MalformedCredentials)?;
        if user != id.as_bytes() {
            return Err(Refusal::WrongUser);
        }
        let presented: [u8; 32] = Sha256::digest(&decoded).into();
        if constant_time_eq(&presented, &station.digest) {
            Ok(station.clone())
        } else {
            Err(Refusal::WrongPassword)
        }
    }
}

fn station(entry: Entry, production: bool) -> Result<Station, RegistryError> {
    let problem = |problem: String| RegistryError::Entry {
        id: entry.id.clone(),
        problem,
    };
    let id = &entry.id;
    if id.is_empty()
        || id.chars().count() > MAX_ID_CHARS
        || !id
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ':' && c != '/')
    {
        return Err(problem(format!(
            "the id must be 1..{MAX_ID_CHARS} printable ASCII characters without ':' or '/'"
        )));
    }
    for (name, value) in [("tenant", &entry.tenant), ("site", &entry.site)] {
        if value.trim().is_empty() {
            return Err(problem(format!("{name} is required")));
        }
    }
    if !(1..=64).contains(&entry.connectors) {
        return Err(problem("connectors must be 1..=64".into()));
    }
    let digest = match (&entry.sha256, &entry.password) {
        (Some(_), Some(_)) => {
            return Err(problem("set either sha256 or password, not both".into()));
        }
        (None, None) => {
            return Err(problem(
                "sha256 (or, in development, password) is required".into(),
            ));
        }
        (None, Some(_)) if production => {
            return Err(problem(format!(
                "passwords in clear are refused in production; store sha256 = \"<printf %s '{id}:PASSWORD' | sha256sum>\" instead"
            )));
        }
        (None, Some(password)) => digest(id, password),
        (Some(hex_digest), None) => parse_digest(hex_digest).map_err(problem)?,
    };
    if production && digest == self::digest(id, DEVELOPMENT_PASSWORD) {
        return Err(problem(
            "uses the public development password; it is refused in production".into(),
        ));
    }
    let location = match (entry.latitude, entry.longitude) {
        (None, None) => None,
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Some((lat, lon))
        }
        _ => {
            return Err(problem(
                "latitude and longitude go together, in -90..90 and -180..180".into(),
            ));
        }
    };
    Ok(Station {
        id: entry.id.clone(),
        tenant: entry.tenant.clone(),
        site: entry.site.clone(),
        connectors: entry.connectors,
        location,
        digest,
    })
}

/// SHA-256 of `id:password`, as stored in the registry.
pub fn digest(id: &str, password: &str) -> [u8; 32] {
    Sha256::digest(format!("{id}:{password}").as_bytes()).into()
}

fn parse_digest(hex_digest: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_digest.trim())
        .map_err(|err| format!("sha256 is not hexadecimal: {err}"))?;
    bytes
        .try_into()
        .map_err(|_| "sha256 must be 64 hexadecimal digits".to_string())
}

/// Compares digests without an early exit on the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    fn entry(extra: &str) -> String {
        format!(
            "[[stations]]\nid = \"CP-1\"\ntenant = \"lucheng\"\nsite = \"后北营家园\"\nconnectors = 2\n{extra}\n"
        )
    }

    #[test]
    fn digested_passwords_authenticate_their_station() {
        let text = entry(&format!(
            "sha256 = \"{}\"\nlatitude = 39.9\nlongitude = 116.7",
            hex::encode(digest("CP-1", "s3cret-s3cret-16"))
        ));
        let registry = Registry::parse(&text, "stations.toml", true).unwrap();
        let station = registry
            .authenticate("CP-1", Some(&basic("CP-1:s3cret-s3cret-16")))
            .unwrap();
        assert_eq!(
            (
                station.tenant.as_str(),
                station.site.as_str(),
                station.connectors
            ),
            ("lucheng", "后北营家园", 2)
        );
        assert_eq!(station.location, Some((39.9, 116.7)));
        let refused = |id, header: Option<&str>| registry.authenticate(id, header).unwrap_err();
        assert_eq!(
            refused("CP-9", Some(&basic("CP-9:x"))),
            Refusal::UnknownStation
        );
        assert_eq!(refused("CP-1", None), Refusal::NoCredentials);
        assert_eq!(
            refused("CP-1", Some("Bearer abc")),
            Refusal::MalformedCredentials
        );
        assert_eq!(
            refused("CP-1", Some("Basic !!!")),
            Refusal::MalformedCredentials
        );
        assert_eq!(
            refused("CP-1", Some(&basic("CP-2:s3cret-s3cret-16"))),
            Refusal::WrongUser
        );
        assert_eq!(
            refused("CP-1", Some(&basic("CP-1:guess"))),
            Refusal::WrongPassword
        );
        assert_eq!(
            refused("CP-1", Some(&basic("CP-1"))),
            Refusal::WrongPassword
        );
    }

    #[test]
    fn production_refuses_clear_and_development_passwords() {
        let clear = entry("password = \"s3cret-s3cret-16\"");
        let err = Registry::parse(&clear, "f", true).unwrap_err().to_string();
        assert!(
            err.contains("\"CP-1\"") && err.contains("in clear"),
            "{err}"
        );
        let registry = Registry::parse(&clear, "f", false).unwrap();
        assert!(
            registry
                .authenticate("CP-1", Some(&basic("CP-1:s3cret-s3cret-16")))
                .is_ok()
        );

        let dev = entry(&format!(
            "sha256 = \"{}\"",
            hex::encode(digest("CP-1", DEVELOPMENT_PASSWORD))
        ));
        let err = Registry::parse(&dev, "f", true).unwrap_err().to_string();
        assert!(err.contains("development password"), "{err}");
        assert!(Registry::parse(&dev, "f", false).is_ok());
    }

    #[test]
    fn bad_entries_name_the_station_and_the_problem() {
        let cases = [
            (entry("sha256 = \"abc\""), "sha256"),
            (entry(""), "required"),
            (entry("password = \"a\"\nsha256 = \"b\""), "not both"),
            (entry("password = \"a\"\nlatitude = 39.9"), "latitude"),
            (entry("password = \"a\"\nvoltage = 230"), "unknown field"),
            (entry("password = \"a\"").replace("CP-1", "CP:1"), "':'"),
            (
                entry("password = \"a\"").replace("connectors = 2", "connectors = 0"),
                "1..=64",
            ),
            (format!("{0}{0}", entry("password = \"a\"")), "twice"),
        ];
        for (text, says) in cases {
            let err = Registry::parse(&text, "f", false).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_development_registry_loads_in_development_only() {
        let text = include_str!("../../../deploy/local/dev-ocpp-stations.toml");
        let registry = Registry::parse(text, "dev-ocpp-stations.toml", false).unwrap();
        assert_eq!(registry.len(), 15);
        assert_eq!(registry.tenants().collect::<Vec<_>>(), vec!["lucheng"]);
        assert!(
            registry
                .authenticate(
                    "HBY-CP-01",
                    Some(&basic(&format!("HBY-CP-01:{DEVELOPMENT_PASSWORD}")))
                )
                .is_ok()
        );
        let err = Registry::parse(text, "dev-ocpp-stations.toml", true).unwrap_err();
        assert!(err.to_string().contains("development password"), "{err}");
    }
}
