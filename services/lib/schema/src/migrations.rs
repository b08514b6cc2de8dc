//! The migrations, in order, and the SQL each one runs.
//!
//! The SQL lives in `migrations/*.sql` with `{placeholders}` filled in here.
//! Every statement is idempotent (`IF NOT EXISTS`, `MODIFY TTL`), so a
//! migration interrupted half-way simply runs again. A migration is never
//! edited once released: changes are a new migration with a higher version.

use crate::{SchemaOptions, ServerVersion};
use citybrain_proto::feed::Kind;

/// One step of the schema.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// Servers older than this skip the migration without recording it, so
    /// it applies once the server is upgraded.
    pub min_server: Option<ServerVersion>,
    render: fn(&SchemaOptions) -> Vec<String>,
}

impl Migration {
    /// The statements, with the database and options filled in, as written:
    /// for one server.
    pub fn statements(&self, options: &SchemaOptions) -> Vec<String> {
        (self.render)(options)
    }

    /// What [`migrate`](crate::migrate) runs: [`Self::statements`], rendered
    /// for the cluster when `options` name one (see [`crate::cluster`]).
    pub fn statements_for(
        &self,
        options: &SchemaOptions,
    ) -> Result<Vec<String>, crate::cluster::ClusterRenderError> {
        let statements = self.statements(options);
        match &options.cluster {
            None => Ok(statements),
            Some(cluster) => crate::cluster::render(&statements, options, cluster),
        }
    }
}

/// Every migration, by ascending version.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "raw_tables",
        min_server: None,
        render: raw_tables,
    },
    Migration {
        version: 2,
        name: "sink_lineage",
        min_server: None,
        render: lineage,
    },
    Migration {
        version: 3,
        name: "rollups_5m_1h",
        min_server: None,
        render: rollups,
    },
    Migration {
        version: 4,
        name: "latest_state",
        min_server: None,
        render: latest_state,
    },
    Migration {
        version: 5,
        name: "raw_retention_ttl",
        min_server: Some(ServerVersion::TTL),
        render: raw_ttl,
    },
    Migration {
        version: 6,
        name: "log_lineage",
        min_server: None,
        render: log_lineage,
    },
    Migration {
        version: 7,
        name: "time_in_status_at_query_time",
        min_server: None,
        render: time_in_status_at_query_time,
    },
    Migration {
        version: 8,
        name: "charger_registers",
        min_server: None,
        render: charger_registers,
    },
];

/// Columns every raw table starts with.
const ENVELOPE: &str = "event_id UUID,
    tenant_id String,
    source_id String,
    device_id String,
    observed_at DateTime,
    observed_ms UInt16,
    seq_no Nullable(UInt64),
    latitude Nullable(Float64),
    longitude Nullable(Float64),
    altitude_m Nullable(Float64),
    accuracy_m Nullable(Float64),
    received_at DateTime,
    kafka_topic String,
    kafka_partition Int32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()";

const RAW_ENGINE: &str = "ReplacingMergeTree()
PARTITION BY toYYYYMM(observed_at)
ORDER BY (tenant_id, device_id, observed_at, event_id)";

/// Bucket resolutions of the roll-ups: (suffix, bucket function, seconds).
const RESOLUTIONS: [(&str, &str, u32); 2] = [
    ("5m", "toStartOfFiveMinute", 300),
    ("1h", "toStartOfHour", 3600),
];

/// The longest status interval migration 3's charger roll-up attributed (7
/// days); a connector silent for longer was not counted for the rest. The
/// roll-up is gone (migration 7); the query service keeps the same limit.
const MAX_STATUS_INTERVAL_S: u32 = 7 * 24 * 3600;

fn raw_tables(options: &SchemaOptions) -> Vec<String> {
    split(
        include_str!("../migrations/0001_raw_tables.sql"),
        options,
        &[("{envelope}", ENVELOPE), ("{raw_engine}", RAW_ENGINE)],
    )
}

fn lineage(options: &SchemaOptions) -> Vec<String> {
    per_raw_table(include_str!("../migrations/0002_lineage.sql"), options)
}

fn log_lineage(options: &SchemaOptions) -> Vec<String> {
    per_raw_table(include_str!("../migrations/0006_log_lineage.sql"), options)
}

fn charger_registers(options: &SchemaOptions) -> Vec<String> {
    split(
        include_str!("../migrations/0008_charger_registers.sql"),
        options,
        &[],
    )
}

/// `sql` with each statement that mentions `{raw}` instantiated for every raw
/// table, statement by statement: every table gets a step before any table
/// gets the next (a migration that moves the views to a new target creates
/// all of the new ones before dropping any of the old).
fn per_raw_table(sql: &str, options: &SchemaOptions) -> Vec<String> {
    split(sql, options, &[])
        .into_iter()
        .flat_map(|statement| {
            if statement.contains("{raw}") {
                Kind::ALL
                    .iter()
                    .map(|kind| statement.replace("{raw}", kind.raw_table()))
                    .collect()
            } else {
                vec![statement]
            }
        })
        .collect()
}

fn rollups(options: &SchemaOptions) -> Vec<String> {
    let sql = include_str!("../migrations/0003_rollups.sql");
    RESOLUTIONS
        .iter()
        .flat_map(|(res, bucket, step)| {
            split(
                sql,
                options,
                &[
                    ("{res}", res),
                    ("{bucket}", bucket),
                    ("{step}", &step.to_string()),
                    ("{max_steps}", &(MAX_STATUS_INTERVAL_S / step).to_string()),
                ],
            )
        })
        .collect()
}

/// Drops the time-in-status roll-up of migration 3, both resolutions.
fn time_in_status_at_query_time(options: &SchemaOptions) -> Vec<String> {
    let sql = include_str!("../migrations/0007_time_in_status_at_query_time.sql");
    RESOLUTIONS
        .iter()
        .flat_map(|(res, _, _)| split(sql, options, &[("{res}", res)]))
        .collect()
}

fn latest_state(options: &SchemaOptions) -> Vec<String> {
    split(
        include_str!("../migrations/0004_latest_state.sql"),
        options,
        &[],
    )
}

fn raw_ttl(options: &SchemaOptions) -> Vec<String> {
    if options.raw_retention_days == 0 {
        return Vec::new();
    }
    Kind::ALL
        .iter()
        .map(|kind| {
            format!(
                "ALTER TABLE {}.{} MODIFY TTL observed_at + INTERVAL {} DAY",
                options.database,
                kind.raw_table(),
                options.raw_retention_days
            )
        })
        .collect()
}

/// Fills in `{db}` and `vars`, drops `--` comment lines and splits the file
/// into statements at each `;` that ends a line.
fn split(sql: &str, options: &SchemaOptions, vars: &[(&str, &str)]) -> Vec<String> {
    let mut text = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, value) in vars {
        text = text.replace(name, value);
    }
    text = text.replace("{db}", &options.database);
    text.split(";\n")
        .map(|statement| statement.trim().trim_end_matches(';').trim().to_string())
        .filter(|statement| !statement.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SchemaOptions {
        SchemaOptions::new("citybrain_x")
    }

    #[test]
    fn versions_ascend_and_every_placeholder_is_filled() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for migration in MIGRATIONS {
            for statement in migration.statements(&options()) {
                assert!(
                    !statement.contains('{'),
                    "unfilled placeholder in {statement}"
                );
                assert!(
                    statement.contains("citybrain_x."),
                    "no database in {statement}"
                );
            }
        }
    }

    #[test]
    fn every_kind_has_a_raw_table_and_a_lineage_view() {
        let raw = MIGRATIONS[0].statements(&options()).join("\n");
        let lineage = MIGRATIONS[1].statements(&options()).join("\n");
        for kind in Kind::ALL {
            let table = kind.raw_table();
            assert!(raw.contains(&format!("citybrain_x.{table} (")), "{table}");
            assert!(
                lineage.contains(&format!("citybrain_x.{table}_lineage_mv")),
                "{table}"
            );
        }
        assert_eq!(lineage.matches("CREATE TABLE").count(), 1);
    }

    #[test]
    fn log_lineage_creates_every_new_view_before_dropping_an_old_one() {
        let statements = MIGRATIONS[5].statements(&options());
        let position = |needle: &str| {
            statements
                .iter()
                .position(|s| s.contains(needle))
                .unwrap_or_else(|| panic!("no statement with {needle}"))
        };
        let last_new_view = statements
            .iter()
            .rposition(|s| s.contains("_log_lineage_mv TO"))
            .unwrap();
        let first_drop = position("DROP TABLE");
        assert!(last_new_view < first_drop, "{statements:#?}");
        for kind in Kind::ALL {
            let table = kind.raw_table();
            position(&format!(
                "ALTER TABLE citybrain_x.{table} ADD COLUMN kafka_cluster"
            ));
            position(&format!("citybrain_x.{table}_log_lineage_mv TO"));
            position(&format!(
                "DROP TABLE IF EXISTS citybrain_x.{table}_lineage_mv"
            ));
        }
        assert_eq!(
            statements.last().unwrap(),
            "DROP TABLE IF EXISTS citybrain_x.sink_lineage"
        );
    }

    #[test]
    fn rollups_exist_in_both_resolutions() {
        let sql = MIGRATIONS[2].statements(&options()).join("\n");
        for table in [
            "charger_status",
            "charging_energy",
            "parking_occupancy",
            "vehicle_movement",
            "patrol_compliance",
            "service_requests",
        ] {
            for res in ["5m", "1h"] {
                assert!(
                    sql.contains(&format!("citybrain_x.{table}_{res}_mv TO")),
                    "{table}_{res}"
                );
            }
        }
        assert!(sql.contains("toStartOfFiveMinute(observed_at)"));
        assert!(sql.contains("2016)"), "7 days of 5-minute slots");
    }

    #[test]
    fn time_in_status_rollups_are_dropped_view_first() {
        let statements = MIGRATIONS[6].statements(&options());
        assert_eq!(
            statements,
            [
                "DROP TABLE IF EXISTS citybrain_x.charger_status_5m_mv",
                "DROP TABLE IF EXISTS citybrain_x.charger_status_5m",
                "DROP TABLE IF EXISTS citybrain_x.charger_status_1h_mv",
                "DROP TABLE IF EXISTS citybrain_x.charger_status_1h",
            ]
        );
    }

    #[test]
    fn retention_zero_means_no_ttl() {
        let mut options = options();
        options.raw_retention_days = 0;
        assert!(MIGRATIONS[4].statements(&options).is_empty());
    }
}
