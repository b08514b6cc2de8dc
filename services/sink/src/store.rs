//! The ClickHouse side: inserts, the lineage lookup and the connector-state
//! lookup, each bounded by the insert timeout.

use crate::batch::TableRow;
use crate::config::SinkConfig;
use citybrain_proto::feed::Kind;
use citybrain_schema::{LINEAGE_TABLE, MigrationReport, SchemaError, SchemaOptions};
use clickhouse::Client;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Why a write or lookup did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// ClickHouse is down, slow, or refuses for a reason that is not the data
    /// (unknown table, out of memory, ...): retry the same rows later.
    #[error("ClickHouse unavailable: {0}")]
    Unavailable(String),
    /// ClickHouse refused the data itself: retrying the same rows cannot help.
    #[error("ClickHouse rejected the rows: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// ClickHouse exception codes that blame the inserted data.
/// Event-id lookups of one table in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 4;

const DATA_ERROR_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    190, // SIZES_OF_ARRAYS_DOESNT_MATCH
];

/// Sorts a client error into retry-later and never-retry.
pub fn classify(err: &clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error;
    let text = err.to_string();
    if let Error::BadResponse(message) = err
        && let Some(code) = exception_code(message)
        && DATA_ERROR_CODES.contains(&code)
    {
        return StoreError::Rejected(text);
    }
    StoreError::Unavailable(text)
}

/// The `NN` of `Code: NN, ...` in a ClickHouse exception message.
fn exception_code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The highest stored offset per (raw table's kind, topic, partition).
pub type StoredOffsets = HashMap<(Kind, String, i32), u64>;

/// The sink's handle on ClickHouse.
#[derive(Clone)]
pub struct Store {
    /// For DDL and lookups, which name the database themselves.
    client: Client,
    /// For inserts: the same, bound to the database (the client escapes a
    /// table name as one identifier, so `db.table` cannot be passed).
    inserts: Client,
    database: String,
    timeout: Duration,
    /// The ClickHouse cluster the schema is replicated on, if any.
    cluster: Option<String>,
}

impl Store {
    pub fn new(config: &SinkConfig) -> Self {
        let client = citybrain_schema::client(&config.clickhouse);
        Self {
            inserts: client.clone().with_database(&config.clickhouse.database),
            client,
            database: config.clickhouse.database.clone(),
            timeout: config.store.insert_timeout,
            cluster: config.store.cluster.clone(),
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub async fn migrate(&self, raw_retention_days: u32) -> Result<MigrationReport, SchemaError> {
        let mut options = SchemaOptions::new(&self.database);
        options.raw_retention_days = raw_retention_days;
        options.cluster = self.cluster.clone();
        citybrain_schema::migrate(&self.client, &options).await
    }

    /// On a cluster, waits (within the insert timeout) until the replica this
    /// instance reads holds every part already written through any replica,
    /// so that what it reads next about stored rows is complete; on one
    /// server, returns at once.
    pub async fn await_replication(&self) -> Result<(), StoreError> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let wait = citybrain_schema::cluster::await_replication(&self.client, &self.database);
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(result) => result.map_err(|err| classify(&err)),
            // Usually a replica that is down holds parts this one lacks.
            Err(_) => Err(StoreError::Unavailable(format!(
                "this replica has not fetched every part written through the others within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Whether ClickHouse answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.bounded(self.client.query_raw("SELECT 1").fetch_one::<u8>())
            .await
            .is_ok()
    }

    /// Inserts `rows` into `table` as one INSERT (one block, so all or none).
    pub async fn insert<R: TableRow>(&self, table: &str, rows: &[R]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let write = async {
            let mut insert = self
                .inserts
                .insert::<R>(table)
                .await?
                .with_timeouts(Some(self.timeout), Some(self.timeout));
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        };
        self.bounded(write).await
    }

    /// Which of `rows`' event ids `table` already holds (sent twice by a
    /// vendor, so two Kafka messages). The lookup narrows by the table's
    /// sorting key (tenant, device, time), so it reads little.
    pub async fn stored_event_ids<R: TableRow>(
        &self,
        table: &str,
        rows: &[R],
    ) -> Result<HashSet<Uuid>, StoreError> {
        // Bounded query size (max_query_size is 256 KiB by default); a few
        // lookups in flight, since each waits mostly on the round trip.
        let lookups = rows.chunks(1000).map(|chunk| {
            let tenants: BTreeSet<&str> = chunk.iter().map(|r| r.device().0).collect();
            let devices: BTreeSet<&str> = chunk.iter().map(|r| r.device().1).collect();
            let from = chunk
                .iter()
                .map(TableRow::observed_at)
                .min()
                .unwrap_or_default();
            let to = chunk
                .iter()
                .map(TableRow::observed_at)
                .max()
                .unwrap_or_default();
            let ids: Vec<String> = chunk
                .iter()
                .map(|r| quote(&r.event_id().to_string()))
                .collect();
            let sql = format!(
                "SELECT toString(event_id) FROM {db}.{table}
                 WHERE tenant_id IN ({tenants}) AND device_id IN ({devices})
                   AND observed_at >= toDateTime({from}) AND observed_at <= toDateTime({to})
                   AND toString(event_id) IN ({ids})",
                db = self.database,
                tenants = list(tenants),
                devices = list(devices),
                ids = ids.join(", "),
            );
            async move {
                self.bounded(self.client.query_raw(&sql).fetch_all::<String>())
                    .await
            }
        });
        // Collected first: a stream over the lazy iterator is not `Send`
        // (its closure's borrows trip rustc's higher-ranked lifetime check).
        let lookups: Vec<_> = lookups.collect();
        let answers: Vec<Vec<String>> = futures::stream::iter(lookups)
            .buffer_unordered(LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(answers
            .iter()
            .flatten()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    /// What the lineage table says is stored of `topics` in the logs of the
    /// Kafka cluster `cluster`.
    pub async fn stored_offsets(
        &self,
        cluster: &str,
        topics: &[String],
    ) -> Result<StoredOffsets, StoreError> {
        let list = topics
            .iter()
            .map(|t| quote(t))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT raw_table, kafka_topic, kafka_partition, max(max_offset)
             FROM {}.{LINEAGE_TABLE}
             WHERE kafka_cluster = {cluster} AND kafka_topic IN ({list})
             GROUP BY raw_table, kafka_topic, kafka_partition",
            self.database,
            cluster = quote(cluster),
        );
        let rows: Vec<(String, String, i32, u64)> = self
            .bounded(self.client.query_raw(&sql).fetch_all())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(table, topic, partition, offset)| {
                let kind = Kind::ALL
                    .into_iter()
                    .find(|kind| kind.raw_table() == table)?;
                Some(((kind, topic, partition), offset))
            })
            .collect())
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, clickhouse::error::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(classify(&err)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

fn list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(quote).collect::<Vec<_>>().join(", ")
}

/// A ClickHouse string literal.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_errors_are_rejections() {
        let data = clickhouse::error::Error::BadResponse(
            "Code: 53, e.displayText() = DB::Exception: Type mismatch".into(),
        );
        assert!(matches!(classify(&data), StoreError::Rejected(_)));
        let missing_table = clickhouse::error::Error::BadResponse(
            "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist".into(),
        );
        assert!(classify(&missing_table).is_retryable());
        assert!(classify(&clickhouse::error::Error::TimedOut).is_retryable());
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(exception_code("Code: 241, e.displayText()"), Some(241));
        assert_eq!(exception_code("no code"), None);
    }
}
