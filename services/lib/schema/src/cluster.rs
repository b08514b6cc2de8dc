//! The schema on a ClickHouse cluster: every migration statement, rendered
//! for `ON CLUSTER`, replicated storage and `Distributed` tables.
//!
//! Migrations are written once, for a single server. When
//! [`SchemaOptions::cluster`](crate::SchemaOptions) names a cluster, each
//! statement is rewritten here, so a migration added later is converted
//! without knowing about clusters:
//!
//! - a table with a MergeTree-family engine (a *data table*) `T` becomes
//!   `T_local` with the `Replicated*` engine, stored in ZooKeeper under
//!   `/clickhouse/tables/{shard}/<db>/T_local` with replica `{replica}` (the
//!   server's macros), plus `T` itself as a `Distributed` table over
//!   `T_local`. Clients keep using `T`: the sink inserts into it and the query
//!   service reads it, unchanged.
//! - a materialized view reads the *local* table and writes the *local*
//!   target (`FROM db.raw_x` → `db.raw_x_local`, `TO db.t` → `db.t_local`):
//!   a view fires on the replica that took the INSERT, and replication copies
//!   its output like any other part, so nothing is counted twice.
//! - `ALTER TABLE` of a data table alters `T_local`; after a column change
//!   the `Distributed` `T` is created again over it (it must show the same
//!   columns, and 18.16 refuses `ALTER … ON CLUSTER` of a Distributed table
//!   over internally replicated shards). `DROP TABLE` of a data table drops
//!   both.
//! - every `CREATE`/`ALTER`/`DROP` carries `ON CLUSTER <name>`, so it runs
//!   on every server of the cluster (through ClickHouse's distributed DDL
//!   queue in ZooKeeper, which needs `<distributed_ddl>` in the servers'
//!   config).
//!
//! Replicated engines on 18.16 take the ZooKeeper path and replica name
//! first, then the engine's own arguments:
//! `ReplacingMergeTree(ver)` → `ReplicatedReplacingMergeTree('path', '{replica}', ver)`.

use crate::{MIGRATIONS, MIGRATIONS_TABLE, SchemaOptions};

/// The suffix of a data table's replicated storage.
pub const LOCAL_SUFFIX: &str = "_local";

/// Engines that have a `Replicated*` twin taking the same arguments after
/// the ZooKeeper path and the replica name.
const MERGE_TREE_ENGINES: &[&str] = &[
    "MergeTree",
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
    "GraphiteMergeTree",
];

/// Statement heads after which the object's name follows; `ON CLUSTER` goes
/// right after that name.
const HEADS: &[(&str, Object)] = &[
    ("CREATE DATABASE IF NOT EXISTS ", Object::Database),
    ("CREATE DATABASE ", Object::Database),
    ("DROP DATABASE IF EXISTS ", Object::Database),
    ("DROP DATABASE ", Object::Database),
    ("CREATE TABLE IF NOT EXISTS ", Object::CreateTable),
    ("CREATE TABLE ", Object::CreateTable),
    ("CREATE MATERIALIZED VIEW IF NOT EXISTS ", Object::View),
    ("CREATE MATERIALIZED VIEW ", Object::View),
    ("CREATE VIEW IF NOT EXISTS ", Object::View),
    ("CREATE VIEW ", Object::View),
    ("ALTER TABLE ", Object::AlterTable),
    ("DROP TABLE IF EXISTS ", Object::DropTable),
    ("DROP TABLE ", Object::DropTable),
];

/// `ALTER` operations that change columns, which a `Distributed` table must
/// follow; every other operation (TTL, partitions, mutations) concerns the
/// stored data only.
const COLUMN_OPERATIONS: &[&str] = &[
    "ADD COLUMN",
    "DROP COLUMN",
    "MODIFY COLUMN",
    "COMMENT COLUMN",
    "RENAME COLUMN",
    "CLEAR COLUMN",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Database,
    CreateTable,
    View,
    AlterTable,
    DropTable,
}

/// A statement this module cannot place `ON CLUSTER` in. Migrations only
/// hold DDL; the unit tests render every migration, so this names a new
/// kind of statement the renderer must learn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render for a cluster: {0}")]
pub struct ClusterRenderError(pub String);

/// Renders single-server `statements` for `cluster`.
pub fn render(
    statements: &[String],
    options: &SchemaOptions,
    cluster: &str,
) -> Result<Vec<String>, ClusterRenderError> {
    let data_tables = data_tables(options);
    let mut out = Vec::new();
    for statement in statements {
        out.extend(render_statement(
            statement,
            &options.database,
            cluster,
            &data_tables,
        )?);
    }
    Ok(out)
}

/// Every data table any migration creates (plus the migrations table), so a
/// view or `ALTER` in a later migration is rewritten to the local table
/// even though the table came from an earlier one.
pub fn data_tables(options: &SchemaOptions) -> Vec<String> {
    let mut tables = vec![MIGRATIONS_TABLE.to_string()];
    for migration in MIGRATIONS {
        for statement in migration.statements(options) {
            let Some((Object::CreateTable, rest)) = head(&statement) else {
                continue;
            };
            let (name, _) = object_name(rest);
            if engine(&statement).is_some_and(|(engine, _, _)| is_merge_tree(engine)) {
                let table = unqualified(name).to_string();
                if !tables.contains(&table) {
                    tables.push(table);
                }
            }
        }
    }
    tables
}

/// The name of a data table's replicated storage on each server (`db.t` →
/// `db.t_local`, `t` → `t_local`).
pub fn local_table(table: &str) -> String {
    format!("{table}{LOCAL_SUFFIX}")
}

fn render_statement(
    statement: &str,
    db: &str,
    cluster: &str,
    data_tables: &[String],
) -> Result<Vec<String>, ClusterRenderError> {
    let (object, rest) =
        head(statement).ok_or_else(|| ClusterRenderError(statement.to_string()))?;
    let prefix = &statement[..statement.len() - rest.len()];
    let (name, tail) = object_name(rest);
    let on_cluster = format!("ON CLUSTER {cluster}");
    let is_data_table = data_tables.iter().any(|t| t == unqualified(name));
    let local = local_table(name);
    Ok(match object {
        Object::Database => vec![format!("{prefix}{name} {on_cluster}{tail}")],
        Object::CreateTable => match engine(statement) {
            Some((engine_name, _, _)) if is_merge_tree(engine_name) => {
                let table = unqualified(&local);
                let replicated = replicate_engine(statement, db, table);
                let replicated = &replicated[prefix.len() + name.len()..];
                vec![
                    format!("{prefix}{local} {on_cluster}{replicated}"),
                    distributed_table(name, &local, db, cluster),
                ]
            }
            _ => vec![format!("{prefix}{name} {on_cluster}{tail}")],
        },
        Object::View => {
            // A view without TO keeps its own storage: replicate it too.
            let statement = match engine(statement) {
                Some((engine_name, _, _)) if is_merge_tree(engine_name) => {
                    replicate_engine(statement, db, &format!(".inner.{}", unqualified(name)))
                }
                _ => statement.to_string(),
            };
            let tail = &statement[prefix.len() + name.len()..];
            let tail = if statement.starts_with("CREATE MATERIALIZED VIEW") {
                localize_references(tail, db, data_tables)
            } else {
                // A plain view reads the Distributed tables, like a client.
                tail.to_string()
            };
            vec![format!("{prefix}{name} {on_cluster}{tail}")]
        }
        Object::AlterTable if is_data_table => {
            let mut out = vec![format!("{prefix}{local} {on_cluster}{tail}")];
            let operations = tail.to_ascii_uppercase();
            if COLUMN_OPERATIONS.iter().any(|op| operations.contains(op)) {
                // 18.16 refuses `ALTER … ON CLUSTER` of a Distributed table
                // when the shard replicates internally, so it is created
                // again with the new columns. It holds no rows: inserts
                // through it land in the local replica synchronously.
                out.push(format!("DROP TABLE IF EXISTS {name} {on_cluster}"));
                out.push(distributed_table(name, &local, db, cluster));
            }
            out
        }
        Object::DropTable if is_data_table => vec![
            format!("{prefix}{name} {on_cluster}{tail}"),
            format!("{prefix}{local} {on_cluster}{tail}"),
        ],
        Object::AlterTable | Object::DropTable => {
            vec![format!("{prefix}{name} {on_cluster}{tail}")]
        }
    })
}

/// The `Distributed` table `name` over the replicated storage `local`.
/// (`rand()` spreads rows over shards; with one shard it never matters.)
fn distributed_table(name: &str, local: &str, db: &str, cluster: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} ON CLUSTER {cluster} AS {local} ENGINE = Distributed({cluster}, {db}, {}, rand())",
        unqualified(local)
    )
}

fn head(statement: &str) -> Option<(Object, &str)> {
    HEADS.iter().find_map(|(head, object)| {
        statement
            .strip_prefix(head)
            .map(|rest| (*object, rest.trim_start()))
    })
}

/// The `db.name` at the start of `rest`, and what follows it.
fn object_name(rest: &str) -> (&str, &str) {
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    rest.split_at(end)
}

fn unqualified(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn is_merge_tree(engine: &str) -> bool {
    MERGE_TREE_ENGINES.contains(&engine)
}

/// The engine's name, its arguments (between the parentheses) and the byte
/// range of `Name(arguments)` in `statement`.
fn engine(statement: &str) -> Option<(&str, &str, std::ops::Range<usize>)> {
    let at = statement.find("ENGINE = ")? + "ENGINE = ".len();
    let rest = &statement[at..];
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    let after = &rest[name_len..];
    if !after.starts_with('(') {
        return Some((name, "", at..at + name_len));
    }
    let mut depth = 0usize;
    for (i, c) in after.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let args = &after[1..i];
                    return Some((name, args, at..at + name_len + i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// `statement` with its MergeTree-family engine replaced by the replicated
/// one, storing `table` of `db` in ZooKeeper.
fn replicate_engine(statement: &str, db: &str, table: &str) -> String {
    let Some((name, args, range)) = engine(statement) else {
        return statement.to_string();
    };
    let path = format!("'/clickhouse/tables/{{shard}}/{db}/{table}', '{{replica}}'");
    let args = args.trim();
    let replicated = if args.is_empty() {
        format!("Replicated{name}({path})")
    } else {
        format!("Replicated{name}({path}, {args})")
    };
    format!(
        "{}{replicated}{}",
        &statement[..range.start],
        &statement[range.end..]
    )
}

/// Every `db.<data table>` in `text` (whole identifiers only) becomes
/// `db.<data table>_local`.
fn localize_references(text: &str, db: &str, data_tables: &[String]) -> String {
    let marker = format!("{db}.");
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find(&marker) {
        let starts_identifier = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = &rest[at + marker.len()..];
        let (name, _) = object_name(after);
        out.push_str(&rest[..at + marker.len()]);
        if !starts_identifier && data_tables.iter().any(|t| t == name) {
            out.push_str(&local_table(name));
        } else {
            out.push_str(name);
        }
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    out
}

/// Waits until this server's replicas of `database` hold every part that
/// was committed to ZooKeeper before the call, wherever it was inserted.
///
/// Replication is asynchronous: a part inserted on one replica reaches the
/// others a moment later, or only once its replica is back if that replica
/// stopped first. The sink reads what is stored (lineage, event ids) from
/// the replica it is connected to, and that read must see everything the
/// partition's previous owner wrote, possibly through the other replica: so
/// a sink that takes over a partition calls this first. It returns once, for every replicated table, the replica has
/// pulled the replication log up to the entries present at the call and
/// fetched every part those entries name; merges and later inserts do not
/// delay it. It waits as long as needed (the caller bounds it): a part that
/// only a stopped replica holds is fetched once that replica is back.
///
/// `SYSTEM SYNC REPLICA` is not used: on 18.16 it ignores `receive_timeout`,
/// and a call the client abandons keeps waiting inside the server.
pub async fn await_replication(
    client: &clickhouse::Client,
    database: &str,
) -> Result<(), clickhouse::error::Error> {
    const POLL: std::time::Duration = std::time::Duration::from_millis(100);
    // The log's last entry per table (read from ZooKeeper) and the server's
    // clock, at the start.
    let started: u32 = client
        .query_raw("SELECT toUInt32(now())")
        .fetch_one()
        .await?;
    let replicas: Vec<(String, String, u64)> = client
        .query_raw(&format!(
            "SELECT table, zookeeper_path, toUInt64(log_max_index) FROM system.replicas WHERE database = '{database}'"
        ))
        .fetch_all()
        .await?;
    let mut heads = Vec::with_capacity(replicas.len());
    for (table, path, head) in replicas {
        // Index 0 is both "no entry yet" and "one entry": only an empty log
        // needs nothing pulled.
        if head == 0 {
            let entries: u64 = client
                .query_raw(&format!(
                    "SELECT count() FROM system.zookeeper WHERE path = '{path}/log'"
                ))
                .fetch_one()
                .await?;
            if entries == 0 {
                continue;
            }
        }
        heads.push((table, head));
    }
    loop {
        let pointers: Vec<(String, u64)> = client
            .query_raw(&format!(
                "SELECT table, toUInt64(log_pointer) FROM system.replicas WHERE database = '{database}'"
            ))
            .fetch_all()
            .await?;
        // log_pointer is the next entry to pull: past the head means pulled.
        let pulled = heads.iter().all(|(table, head)| {
            pointers
                .iter()
                .find(|(t, _)| t == table)
                .is_none_or(|(_, pointer)| pointer > head)
        });
        if pulled {
            let missing: u64 = client
                .query_raw(&format!(
                    "SELECT count() FROM system.replication_queue
                     WHERE database = '{database}' AND type = 'GET_PART'
                       AND toUInt32(create_time) <= {started}"
                ))
                .fetch_one()
                .await?;
            if missing == 0 {
                return Ok(());
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SchemaOptions {
        let mut options = SchemaOptions::new("cb");
        options.cluster = Some("town".into());
        options
    }

    fn rendered(sql: &str) -> Vec<String> {
        render(&[sql.to_string()], &options(), "town").unwrap()
    }

    #[test]
    fn a_data_table_becomes_replicated_storage_and_a_distributed_table() {
        let out = rendered(
            "CREATE TABLE IF NOT EXISTS cb.sink_lineage (\n    max_offset UInt64\n) ENGINE = ReplacingMergeTree(max_offset)\nORDER BY (raw_table)",
        );
        assert_eq!(
            out,
            vec![
                "CREATE TABLE IF NOT EXISTS cb.sink_lineage_local ON CLUSTER town (\n    max_offset UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cb/sink_lineage_local', '{replica}', max_offset)\nORDER BY (raw_table)",
                "CREATE TABLE IF NOT EXISTS cb.sink_lineage ON CLUSTER town AS cb.sink_lineage_local ENGINE = Distributed(town, cb, sink_lineage_local, rand())",
            ]
        );
    }

    #[test]
    fn engine_arguments_keep_their_form() {
        let summing = &rendered(
            "CREATE TABLE IF NOT EXISTS cb.charger_status_5m (s UInt64) ENGINE = SummingMergeTree((seconds, intervals))\nORDER BY s",
        )[0];
        assert!(
            summing.contains("ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/cb/charger_status_5m_local', '{replica}', (seconds, intervals))\nORDER BY s"),
            "{summing}"
        );
        let aggregating = &rendered(
            "CREATE TABLE IF NOT EXISTS cb.parking_occupancy_1h (s UInt64) ENGINE = AggregatingMergeTree()\nORDER BY s",
        )[0];
        assert!(
            aggregating.contains("ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/cb/parking_occupancy_1h_local', '{replica}')\nORDER BY s"),
            "{aggregating}"
        );
    }

    #[test]
    fn views_read_and_write_local_tables() {
        let out = rendered(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS cb.raw_bin_reading_log_lineage_mv TO cb.sink_log_lineage AS\nSELECT 'raw_bin_reading' AS raw_table, max(kafka_offset) AS max_offset\nFROM cb.raw_bin_reading\nGROUP BY kafka_topic",
        );
        assert_eq!(
            out,
            vec![
                "CREATE MATERIALIZED VIEW IF NOT EXISTS cb.raw_bin_reading_log_lineage_mv ON CLUSTER town TO cb.sink_log_lineage_local AS\nSELECT 'raw_bin_reading' AS raw_table, max(kafka_offset) AS max_offset\nFROM cb.raw_bin_reading_local\nGROUP BY kafka_topic"
            ]
        );
    }

    #[test]
    fn column_changes_alter_both_tables_and_other_changes_the_storage_only() {
        assert_eq!(
            rendered(
                "ALTER TABLE cb.raw_bin_reading ADD COLUMN kafka_cluster String DEFAULT '' AFTER kafka_offset"
            ),
            vec![
                "ALTER TABLE cb.raw_bin_reading_local ON CLUSTER town ADD COLUMN kafka_cluster String DEFAULT '' AFTER kafka_offset",
                "DROP TABLE IF EXISTS cb.raw_bin_reading ON CLUSTER town",
                "CREATE TABLE IF NOT EXISTS cb.raw_bin_reading ON CLUSTER town AS cb.raw_bin_reading_local ENGINE = Distributed(town, cb, raw_bin_reading_local, rand())",
            ]
        );
        assert_eq!(
            rendered("ALTER TABLE cb.raw_bin_reading MODIFY TTL observed_at + INTERVAL 400 DAY"),
            vec![
                "ALTER TABLE cb.raw_bin_reading_local ON CLUSTER town MODIFY TTL observed_at + INTERVAL 400 DAY"
            ]
        );
    }

    #[test]
    fn drops_remove_views_once_and_data_tables_twice() {
        assert_eq!(
            rendered("DROP TABLE IF EXISTS cb.raw_bin_reading_lineage_mv"),
            vec!["DROP TABLE IF EXISTS cb.raw_bin_reading_lineage_mv ON CLUSTER town"]
        );
        assert_eq!(
            rendered("DROP TABLE IF EXISTS cb.sink_lineage"),
            vec![
                "DROP TABLE IF EXISTS cb.sink_lineage ON CLUSTER town",
                "DROP TABLE IF EXISTS cb.sink_lineage_local ON CLUSTER town",
            ]
        );
    }

    #[test]
    fn references_are_rewritten_as_whole_identifiers_only() {
        let tables = vec!["raw_x".to_string()];
        assert_eq!(
            localize_references(" FROM cb.raw_x JOIN cb.raw_x_mv, xcb.raw_x", "cb", &tables),
            " FROM cb.raw_x_local JOIN cb.raw_x_mv, xcb.raw_x"
        );
    }

    #[test]
    fn unknown_statements_are_refused() {
        assert!(render(&["INSERT INTO cb.t VALUES (1)".into()], &options(), "town").is_err());
    }

    #[test]
    fn every_migration_renders_with_on_cluster_and_only_replicated_storage() {
        let options = options();
        let tables = data_tables(&options);
        for table in [
            "raw_connector_status",
            "sink_lineage",
            "charger_status_5m",
            "bin_latest",
        ] {
            assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
        }
        for migration in MIGRATIONS {
            for statement in migration.statements_for(&options).unwrap() {
                assert!(statement.contains(" ON CLUSTER town"), "{statement}");
                if let Some((engine, _, _)) = engine(&statement) {
                    assert!(
                        engine.starts_with("Replicated") || engine == "Distributed",
                        "{statement}"
                    );
                }
                if statement.starts_with("CREATE MATERIALIZED VIEW") {
                    let target = statement.split(" TO ").nth(1).unwrap_or("");
                    assert!(
                        target.starts_with("cb.")
                            && target.split(' ').next().unwrap().ends_with("_local"),
                        "{statement}"
                    );
                    let source = statement.split("FROM cb.").nth(1).unwrap_or("");
                    assert!(
                        source
                            .split(|c: char| c.is_whitespace())
                            .next()
                            .unwrap()
                            .ends_with("_local"),
                        "{statement}"
                    );
                }
            }
        }
    }
}
