//! Loads the known data set the way production data arrives: each tenant's
//! devices send their events to a real ingest service (with that tenant's
//! API key), ingest writes them to real Kafka topics, a real sink stores
//! them in ClickHouse. Once per test binary: the tests only read the data,
//! and the pipeline takes seconds where direct inserts took milliseconds.

use super::{admin_client, dataset};
use citybrain_tests::{
    OTHER_TENANT_KEY, RunningIngest, RunningSink, TestTopics, eventually, ingest_all,
    ingest_config, scratch_dir, sink_config, stack_brokers, stack_clickhouse_url, unique_prefix,
    write_key_file,
};
use futures::FutureExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// Shared databases are named `qt_shared_<unix seconds>_<random>`.
const SHARED_PREFIX: &str = "qt_shared_";
/// A shared database this old is left over from an earlier run: no test
/// binary runs this long, and none can drop its own (no test runs last).
const LEFT_OVER_AFTER: Duration = Duration::from_secs(3_600);
/// How long the sink may take to store every event.
const STORED_WITHIN: Duration = Duration::from_secs(90);

/// The database holding the data set of both tenants, loaded through the
/// pipeline by the first test that asks. A failed load fails every test
/// that asks, with the first failure's message, rather than loading again.
pub async fn shared_database() -> &'static str {
    static SHARED: OnceCell<Result<String, String>> = OnceCell::const_new();
    let loaded = SHARED
        .get_or_init(|| async {
            std::panic::AssertUnwindSafe(load())
                .catch_unwind()
                .await
                .map_err(|panic| {
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into())
                })
        })
        .await;
    match loaded {
        Ok(database) => database,
        Err(message) => panic!("loading the data set through the pipeline failed: {message}"),
    }
}

async fn load() -> String {
    let started = Instant::now();
    drop_left_over_databases().await;
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let database = format!(
        "{SHARED_PREFIX}{unix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (brokers, url, prefix) = (stack_brokers(), stack_clickhouse_url(), unique_prefix());
    // Removed once the data set is stored (the sink has stopped by then).
    let _topics = TestTopics::pipeline(&brokers, &prefix, 2).await;
    let keys = write_key_file(&scratch_dir("query-ingest"));
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, keys)).await;
    // The sink creates the database (it migrates on start).
    let sink = RunningSink::start(sink_config(&brokers, &url, &prefix, &database)).await;

    let (events_a, events_b) = (dataset::DATA_A.events(), dataset::DATA_B.events());
    let mut expected = dataset::rows_per_kind(&events_a);
    for (kind, n) in dataset::rows_per_kind(&events_b) {
        *expected.entry(kind).or_insert(0) += n;
    }
    // Tenant A sends with its key, tenant B with its own: ingest sets the
    // tenant from the key, so each tenant's rows carry only its own id.
    ingest_all(&ingest, super::KEY_A, events_a).await;
    ingest_all(&ingest, OTHER_TENANT_KEY, events_b).await;

    let client = admin_client();
    for (kind, n) in &expected {
        let table = kind.raw_table();
        let sql = format!("SELECT count() FROM {database}.{table}");
        eventually(
            STORED_WITHIN,
            &format!("the sink to store {n} rows in {table}"),
            || async {
                // Fails until the sink has created the database.
                client
                    .query(&sql)
                    .fetch_one::<u64>()
                    .await
                    .is_ok_and(|rows| rows >= *n)
            },
        )
        .await;
    }
    sink.shutdown().await.expect("sink stops cleanly");
    ingest.shutdown().await.expect("ingest stops cleanly");
    // Exactly once: nothing more arrived while waiting for the rest.
    for (kind, n) in &expected {
        let table = kind.raw_table();
        let rows: u64 = client
            .query(&format!("SELECT count() FROM {database}.{table}"))
            .fetch_one()
            .await
            .expect("count rows");
        assert_eq!(rows, *n, "rows in {table}");
    }
    eprintln!(
        "data set of {} events stored through ingest, Kafka and the sink in {:?}",
        expected.values().sum::<u64>(),
        started.elapsed()
    );
    database
}

/// Drops shared databases that earlier runs of this binary left behind.
async fn drop_left_over_databases() {
    let client = admin_client();
    let names: Vec<String> = client
        .query("SELECT name FROM system.databases WHERE startsWith(name, ?)")
        .bind(SHARED_PREFIX)
        .fetch_all()
        .await
        .expect("list databases");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for name in names {
        let created = name[SHARED_PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|at| now.saturating_sub(at) > LEFT_OVER_AFTER.as_secs()) {
            citybrain_schema::drop_database(&client, &name)
                .await
                .expect("drop a left-over database");
        }
    }
}
