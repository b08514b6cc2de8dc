//! The ClickHouse schema of citybrain and the migrations that create it.
//!
//! - `raw_<kind>`: one table per event kind, typed columns, one row per
//!   event with its Kafka lineage (topic, partition, offset).
//! - `sink_log_lineage`: the highest offset each raw table holds per Kafka
//!   log (cluster id, topic, partition), kept by views in the same INSERT as
//!   the rows (the sink resumes from it).
//! - `<rollup>_5m` / `<rollup>_1h`: roll-ups kept by materialized views.
//!   Time in status is not one of them: it depends on the event-time order
//!   of a connector's events, which a view seeing one inserted block at a
//!   time cannot know when events arrive late; the query service computes
//!   it from `raw_connector_status` (migration 7 dropped the old roll-up).
//! - `<thing>_latest`: the newest state of each connector, lot, vehicle, bin.
//!
//! [`migrate`] applies what is missing and records each applied version in
//! `<db>.schema_migrations`; running it again is a no-op. The SQL runs on
//! ClickHouse 18.16 (Debian, local and CI) and on current servers; features
//! only newer servers have (raw-data TTL) are in migrations with a
//! `min_server`, applied once the server reports that version.
//!
//! Clients talking to 18.16 must be built with `with_validation(false)`.
//!
//! **On a cluster** ([`SchemaOptions::cluster`]) every statement is rendered
//! `ON CLUSTER`, data tables become `Replicated*` storage (`<table>_local`)
//! behind a `Distributed` table of the original name, and views feed the
//! local tables; see [`cluster`]. `schema_migrations` is replicated like any
//! data table, so every server sees one list of applied versions; the
//! migrator records into the replicated storage directly.

pub mod cluster;
pub mod migrations;
mod version;

pub use migrations::{MIGRATIONS, Migration};
pub use version::ServerVersion;

use citybrain_config::ClickHouseConfig;
use clickhouse::Client;

/// The table of applied migration versions.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";
/// The table of stored offsets per raw table and Kafka log.
pub const LINEAGE_TABLE: &str = "sink_log_lineage";

/// A client of the server `config` names (not bound to its database: the
/// schema's SQL names it). Validation is off because 18.16 rejects the
/// setting it sends (`describe_include_subcolumns`); the typed rows are
/// checked against the tables by the schema tests instead.
pub fn client(config: &ClickHouseConfig) -> Client {
    Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        .with_password(&config.password)
        .with_validation(false)
}

/// What the schema is created with.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// The database holding every table. Letters, digits and `_` only.
    pub database: String,
    /// Raw rows older than this many days (by `observed_at`) are dropped by
    /// TTL on servers that support it; 0 keeps them forever.
    pub raw_retention_days: u32,
    /// The ClickHouse cluster (a name in the servers' `<remote_servers>`) to
    /// create the schema on, replicated, or `None` for one server. Letters,
    /// digits and `_` only.
    pub cluster: Option<String>,
}

impl SchemaOptions {
    /// Options for `database` with the default retention (400 days).
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            raw_retention_days: 400,
            cluster: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid database name {0:?}: use letters, digits and _ only")]
    DatabaseName(String),
    #[error("invalid cluster name {0:?}: use letters, digits and _ only")]
    ClusterName(String),
    #[error(transparent)]
    ClusterRender(#[from] cluster::ClusterRenderError),
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
    if let Some(cluster) = &options.cluster {
        check_cluster_name(cluster)?;
    }
    let db = &options.database;
    let server = server_version(client).await?;
    for statement in bootstrap_statements(client, options).await? {
        client.query_raw(&statement).execute().await?;
    }
    let done = applied_versions(client, db).await?;
    // On a cluster, straight into the replicated storage: an INSERT into the
    // Distributed table may be sent on later.
    let record_into = match options.cluster {
        Some(_) => cluster::local_table(MIGRATIONS_TABLE),
        None => MIGRATIONS_TABLE.to_string(),
    };

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
        for statement in migration.statements_for(options)? {
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
                "INSERT INTO {db}.{record_into} (version, name, server_version) VALUES ({}, '{}', '{server}')",
                migration.version, migration.name
            ))
            .execute()
            .await?;
        tracing::info!(database = %db, version = migration.version, name = migration.name, "migration applied");
        report.applied.push(migration.version);
    }
    Ok(report)
}

/// The database and the migrations table, rendered for the cluster if one
/// is configured.
///
/// On a cluster they are only created while this server lacks them: `ON
/// CLUSTER` DDL waits for every server (`distributed_ddl_task_timeout`, 180 s
/// by default), and a sink restarting while a replica is down must not wait
/// for it when nothing is to be migrated.
async fn bootstrap_statements(
    client: &Client,
    options: &SchemaOptions,
) -> Result<Vec<String>, SchemaError> {
    let db = &options.database;
    let statements = vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (
                version UInt32,
                name String,
                server_version String,
                applied_at DateTime DEFAULT now()
            ) ENGINE = MergeTree() ORDER BY version"
        ),
    ];
    let Some(name) = &options.cluster else {
        return Ok(statements);
    };
    let present: u64 = client
        .query_raw(&format!(
            "SELECT count() FROM system.tables WHERE database = '{db}' AND name IN ('{MIGRATIONS_TABLE}', '{}')",
            cluster::local_table(MIGRATIONS_TABLE)
        ))
        .fetch_one()
        .await?;
    if present == 2 {
        return Ok(Vec::new());
    }
    Ok(cluster::render(&statements, options, name)?)
}

/// Drops the schema: `database` and everything in it, on every server of
/// the cluster if one is configured (tests clean up with this). Replicated
/// tables leave ZooKeeper as their last replica is dropped.
pub async fn drop_schema(client: &Client, options: &SchemaOptions) -> Result<(), SchemaError> {
    check_database_name(&options.database)?;
    let Some(cluster) = &options.cluster else {
        return drop_database(client, &options.database).await;
    };
    check_cluster_name(cluster)?;
    client
        .query_raw(&format!(
            "DROP DATABASE IF EXISTS {} ON CLUSTER {cluster}",
            options.database
        ))
        .execute()
        .await?;
    Ok(())
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

fn check_cluster_name(name: &str) -> Result<(), SchemaError> {
    check_database_name(name).map_err(|_| SchemaError::ClusterName(name.to_string()))
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
