//! Who may connect: the terminal registry, a TOML file binding each
//! terminal number to a tenant and a vehicle.
//!
//! ```toml
//! [[terminals]]
//! number = "13912345678"        # the terminal's phone number (its header's BCD)
//! tenant = "lucheng"            # whose vehicle; CITYBRAIN_JT808_API_KEYS needs its key
//! vehicle_id = "VS-N-1"         # fleet number: VehiclePosition.vehicle_id
//! plate = "京A·D1234"           # checked against the registration's plate
//! role = "vaccine_shuttle"      # vaccine_shuttle, sanitation_truck, street_cleaner, patrol
//! ```
//!
//! Numbers match without their leading zeros, so `"13912345678"` is the
//! terminal that sends `013912345678` (2013) or `00000000013912345678`
//! (2019).

use citybrain_proto::events::v1::VehicleRole;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// One registered vehicle terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vehicle {
    /// The number as the registry writes it: the events' `device_id`.
    pub terminal: String,
    pub tenant: String,
    pub vehicle_id: String,
    pub plate: String,
    pub role: VehicleRole,
}

/// Why the registry cannot be used. Each names the entry and the problem.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the terminal registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("terminal registry {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("terminal registry {path}, terminal {number:?}: {problem}")]
    Entry {
        path: String,
        number: String,
        problem: String,
    },
    #[error("terminal registry {path} lists no terminals")]
    Empty { path: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    terminals: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    number: String,
    tenant: String,
    vehicle_id: String,
    plate: String,
    role: String,
}

/// The roles a registry may name, as the contract's `VehicleRole`.
pub const ROLES: &[(&str, VehicleRole)] = &[
    ("vaccine_shuttle", VehicleRole::VaccineShuttle),
    ("sanitation_truck", VehicleRole::SanitationTruck),
    ("street_cleaner", VehicleRole::StreetCleaner),
    ("patrol", VehicleRole::Patrol),
];

#[derive(Debug, Clone)]
pub struct Registry {
    by_number: Arc<HashMap<String, Arc<Vehicle>>>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|source| RegistryError::Parse {
            path: path.to_string(),
            source,
        })?;
        if file.terminals.is_empty() {
            return Err(RegistryError::Empty { path: path.into() });
        }
        let mut by_number = HashMap::new();
        let mut vehicles = HashSet::new();
        for entry in file.terminals {
            let problem = |problem: String| RegistryError::Entry {
                path: path.to_string(),
                number: entry.number.clone(),
                problem,
            };
            if entry.number.is_empty()
                || entry.number.len() > 20
                || !entry.number.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(problem("number must be 1 to 20 decimal digits".into()));
            }
            for (field, value) in [
                ("tenant", &entry.tenant),
                ("vehicle_id", &entry.vehicle_id),
                ("plate", &entry.plate),
            ] {
                if value.trim().is_empty() || value.trim() != value {
                    return Err(problem(format!(
                        "{field} is required, without surrounding white space"
                    )));
                }
            }
            if entry.vehicle_id.len() > 128 || entry.vehicle_id.chars().any(char::is_control) {
                return Err(problem(
                    "vehicle_id must be at most 128 bytes, no control characters".into(),
                ));
            }
            let role = ROLES
                .iter()
                .find(|(name, _)| *name == entry.role)
                .map(|(_, role)| *role)
                .ok_or_else(|| {
                    let names: Vec<_> = ROLES.iter().map(|(n, _)| *n).collect();
                    problem(format!(
                        "unknown role {:?}; known roles: {}",
                        entry.role,
                        names.join(", ")
                    ))
                })?;
            if !vehicles.insert((entry.tenant.clone(), entry.vehicle_id.clone())) {
                return Err(problem(format!(
                    "vehicle {:?} of tenant {:?} already has a terminal",
                    entry.vehicle_id, entry.tenant
                )));
            }
            let key = key(&entry.number).to_string();
            let vehicle = Vehicle {
                terminal: entry.number.clone(),
                tenant: entry.tenant,
                vehicle_id: entry.vehicle_id,
                plate: entry.plate,
                role,
            };
            if by_number.insert(key, Arc::new(vehicle)).is_some() {
                return Err(problem("the same terminal number is listed twice".into()));
            }
        }
        Ok(Self {
            by_number: Arc::new(by_number),
        })
    }

    /// The vehicle of a terminal number (any number of leading zeros).
    pub fn get(&self, number: &str) -> Option<&Arc<Vehicle>> {
        self.by_number.get(key(number))
    }

    /// Every registered vehicle.
    pub fn vehicles(&self) -> impl Iterator<Item = &Arc<Vehicle>> {
        self.by_number.values()
    }

    /// Every tenant with a terminal.
    pub fn tenants(&self) -> BTreeSet<&str> {
        self.by_number.values().map(|v| v.tenant.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.by_number.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }
}

fn key(number: &str) -> &str {
    let trimmed = number.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }
}

/// Whether a registration's plate names the registry's vehicle: compared
/// without spaces, separators (`·`, `-`) and ASCII case, because terminals
/// are configured by hand.
pub fn same_plate(registered: &str, sent: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '-' | '•' | '.'))
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    norm(registered) == norm(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(number: &str, vehicle: &str, role: &str) -> String {
        format!(
            "[[terminals]]\nnumber = \"{number}\"\ntenant = \"lucheng\"\nvehicle_id = \"{vehicle}\"\n\
             plate = \"京A12345\"\nrole = \"{role}\"\n"
        )
    }

    #[test]
    fn numbers_match_without_leading_zeros() {
        let text = entry("13912345678", "VS-N-1", "vaccine_shuttle")
            + &entry("013900000002", "ST-01", "sanitation_truck");
        let registry = Registry::parse(&text, "t.toml").unwrap();
        let shuttle = registry.get("013912345678").expect("2013 form");
        assert_eq!(shuttle.vehicle_id, "VS-N-1");
        assert_eq!(shuttle.role, VehicleRole::VaccineShuttle);
        assert_eq!(shuttle.terminal, "13912345678");
        assert!(registry.get("00000000013912345678").is_some(), "2019 form");
        assert!(registry.get("13900000002").is_some());
        assert!(registry.get("13900000003").is_none());
        assert_eq!(
            registry.tenants().into_iter().collect::<Vec<_>>(),
            ["lucheng"]
        );
    }

    #[test]
    fn bad_entries_name_the_terminal_and_the_problem() {
        let err = |text: &str| Registry::parse(text, "t.toml").unwrap_err().to_string();
        let e = err(&entry("13912345678", "VS-N-1", "bus"));
        assert!(
            e.contains("\"13912345678\"") && e.contains("unknown role \"bus\""),
            "{e}"
        );
        let e = err(&entry("1391234567A", "VS-N-1", "patrol"));
        assert!(e.contains("decimal digits"), "{e}");
        let e = err(&(entry("1", "A", "patrol") + &entry("01", "B", "patrol")));
        assert!(e.contains("listed twice"), "{e}");
        let e = err(&(entry("1", "A", "patrol") + &entry("2", "A", "patrol")));
        assert!(e.contains("already has a terminal"), "{e}");
        let e = err(&entry("1", " A", "patrol"));
        assert!(e.contains("vehicle_id is required"), "{e}");
        assert!(err("").contains("lists no terminals"));
        assert!(err("[[terminals]]\nnumber = 1").contains("not valid TOML"));
    }

    #[test]
    fn plates_compare_as_people_write_them() {
        assert!(same_plate("京A·D1234", "京AD1234"));
        assert!(same_plate("京A-d1234", "京A D1234"));
        assert!(!same_plate("京AD1234", "京AD1235"));
    }
}
