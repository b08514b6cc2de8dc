//! The ClickHouse schema of citybrain and the migrations that create it.
//!
//! - `raw_<kind>`: one table per event kind, typed columns, one row per
//!   event with its Kafka lineage (topic, partition, offset).
//! - `sink_log_lineage`: the highest offset each raw table holds per Kafka
//!   log (cluster id, topic, partition), kept by views in the same INSERT as
//!   the rows (the sink resumes from it).
//! - `<rollup>_5m` / `<rollup>_1h`: roll-ups kept by materialized views.
//! - `<thing>_latest`: the newest state of each connector, lot, vehicle, bin.
//!
//! [`migrate`] applies what is missing and records each applied version in
//! `<db>.schema_migrations`; running it again is a no-op. The SQL runs on
//! ClickHouse 18.16 (Debian, local and CI) and on current servers; features
//! only newer servers have (raw-data TTL) are in migrations with a
//! `min_server`, applied once the server reports that version.
//!
//! Clients talking to 18.16 must be built with `with_validation(false)`.

pub mod migrations;
mod version;

pub use migrations::{MIGRATIONS, Migration};
pub use version::ServerVersion;

use citybrain_proto::feed::Kind;
use clickhouse::Client;

/// The table of applied migration versions.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";
/// The table of stored offsets per raw table and Kafka log.
pub const LINEAGE_TABLE: &str = "sink_log_lineage";

/// The raw table of a kind: `raw_<kind>`, e.g. `raw_connector_status`.
pub fn raw_table(kind: Kind) -> String {
    format!("raw_{}", kind.as_str())
}

/// What the schema is created with.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// The database holding every table. Letters, digits and `_` only.
    pub database: String,
    /// Raw rows older than this many days (by `observed_at`) are dropped by
    /// TTL on servers that support it; 0 keeps them forever.
    pub raw_retention_days: u32,
}

impl SchemaOptions {
    /// Options for `database` with the default retention (400 days).
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            raw_retention_days: 400,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid database name {0:?}: use letters, digits and _ only")]
    DatabaseName(String),
    #[error("ClickHouse answered an unknown version {0:?}")]
    Version(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: u32,
        name: &'static str,
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse query failed: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub server: ServerVersion,
    /// Versions applied by this run.
    pub applied: Vec<u32>,
    /// Versions the server is too old for (applied after an upgrade).
    pub skipped: Vec<u32>,
}

/// The server's version, from `SELECT version()`.
pub async fn server_version(client: &Client) -> Result<ServerVersion, SchemaError> {
    let text: String = client.query_raw("SELECT version()").fetch_one().await?;
    text.parse().map_err(|_| SchemaError::Version(text))
}

/// Creates the database if needed and applies every migration not yet
/// recorded in it.
///
/// Several processes may run this at once (every sink instance migrates at
/// start-up): the statements are idempotent, and a version recorded twice is
/// still one version.
pub async fn migrate(
    client: &Client,
    options: &SchemaOptions,
) -> Result<MigrationReport, SchemaError> {
    check_database_name(&options.database)?;
    let db = &options.database;
    let server = server_version(client).await?;
    client
        .query_raw(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .execute()
        .await?;
    client
        .query_raw(&format!(
            "CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (
                version UInt32,
                name String,
                server_version String,
                applied_at DateTime DEFAULT now()
            ) ENGINE = MergeTree() ORDER BY version"
        ))
        .execute()
        .await?;
    let done = applied_versions(client, db).await?;

    let mut report = MigrationReport {
        server,
        applied: Vec::new(),
        skipped: Vec::new(),
    };
    for migration in MIGRATIONS {
        if done.contains(&migration.version) {
            continue;
        }
        if migration.min_server.is_some_and(|min| server < min) {
            report.skipped.push(migration.version);
            continue;
        }
        for statement in migration.statements(options) {
            match client.query_raw(&statement).execute().await {
                Ok(()) => {}
                Err(err) if is_repeated_add_column(&statement, &err) => {
                    tracing::info!(version = migration.version, %statement, "column already added by an earlier, interrupted run");
                }
                Err(source) => {
                    return Err(SchemaError::Migration {
                        version: migration.version,
                        name: migration.name,
                        source,
                    });
                }
            }
        }
        client
            .query_raw(&format!(
                "INSERT INTO {db}.{MIGRATIONS_TABLE} (version, name, server_version) VALUES ({}, '{}', '{server}')",
                migration.version, migration.name
            ))
            .execute()
            .await?;
        tracing::info!(database = %db, version = migration.version, name = migration.name, "migration applied");
        report.applied.push(migration.version);
    }
    Ok(report)
}

/// The versions recorded in `database`, ascending.
pub async fn applied_versions(client: &Client, database: &str) -> Result<Vec<u32>, SchemaError> {
    check_database_name(database)?;
    Ok(client
        .query_raw(&format!(
            "SELECT DISTINCT version FROM {database}.{MIGRATIONS_TABLE} ORDER BY version"
        ))
        .fetch_all::<u32>()
        .await?)
}

/// Drops `database` and everything in it (tests clean up with this).
pub async fn drop_database(client: &Client, database: &str) -> Result<(), SchemaError> {
    check_database_name(database)?;
    client
        .query_raw(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await?;
    Ok(())
}

/// An `ADD COLUMN` that failed because the column is there: the statement
/// ran before (18.16 has no `ADD COLUMN IF NOT EXISTS`), e.g. in a run that
/// was interrupted or raced by another instance migrating at the same time.
fn is_repeated_add_column(statement: &str, err: &clickhouse::error::Error) -> bool {
    // "Code: 44, e.displayText() = …" on 18.16, "Code: 44. DB::Exception: …" now.
    const DUPLICATE_COLUMN: &str = "Code: 44";
    statement.starts_with("ALTER TABLE")
        && statement.contains(" ADD COLUMN ")
        && matches!(err, clickhouse::error::Error::BadResponse(text)
            if text.contains(DUPLICATE_COLUMN) && text.contains("already exists"))
}

fn check_database_name(name: &str) -> Result<(), SchemaError> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SchemaError::DatabaseName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_cannot_inject_sql() {
        assert!(check_database_name("citybrain").is_ok());
        assert!(check_database_name("t_3f9a1c2e").is_ok());
        for bad in ["", "1abc", "a.b", "a; DROP TABLE x", "a-b", "名字"] {
            assert!(check_database_name(bad).is_err(), "{bad:?}");
        }
    }
}
