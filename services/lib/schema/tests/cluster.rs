//! The schema on a real replicated ClickHouse: ZooKeeper and two 18.16
//! servers as replicas of one shard, started by `deploy/local/cluster.sh up`
//! (idempotent). Ignored by the plain `cargo test`; `make test-cluster` (part
//! of `make test`) runs it with `--ignored`.

use citybrain_schema::{
    MIGRATIONS, SchemaOptions, applied_versions, cluster::local_table, drop_schema, migrate,
};
use clickhouse::Client;
use std::process::Command;
use std::time::{Duration, Instant};

const CLUSTER: &str = "citybrain";
const REPLICA_URLS: [&str; 2] = ["http://127.0.0.1:38123", "http://127.0.0.1:38124"];

fn start_cluster() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../deploy/local/cluster.sh"
    );
    let status = Command::new("bash")
        .args([script, "up"])
        .status()
        .expect("run cluster.sh");
    assert!(status.success(), "deploy/local/cluster.sh up failed");
}

fn client(url: &str) -> Client {
    citybrain_schema::client(&citybrain_config::ClickHouseConfig::new(url, "default"))
}

async fn number(client: &Client, sql: &str) -> u64 {
    client
        .query_raw(sql)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Polls until `sql` answers `expected` on `client` (replication is
/// asynchronous), or panics with the last answer.
async fn replicated(client: &Client, sql: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = number(client, sql).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {got}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "starts ZooKeeper and two ClickHouse servers: make test-cluster"]
async fn migrations_replicate_and_views_count_each_insert_once() {
    start_cluster();
    let [one, two] = REPLICA_URLS.map(client);
    let mut options = SchemaOptions::new(format!(
        "test_cluster_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    options.cluster = Some(CLUSTER.into());
    let db = options.database.clone();

    // Two migrators at once, one per server, as sinks starting together.
    let (first, second) = tokio::join!(migrate(&one, &options), migrate(&two, &options));
    let (first, second) = (first.expect("migrate on 1"), second.expect("migrate on 2"));
    let expected: Vec<u32> = MIGRATIONS
        .iter()
        .filter(|m| m.min_server.is_none_or(|min| first.server >= min))
        .map(|m| m.version)
        .collect();
    for client in [&one, &two] {
        // Both migrators record the last version; within one second the two
        // records are identical blocks, which replication deduplicates, so a
        // server may hold the other's record only once it has fetched it.
        citybrain_schema::cluster::await_replication(client, &db)
            .await
            .expect("replication caught up");
        assert_eq!(applied_versions(client, &db).await.unwrap(), expected);
        assert!(
            migrate(client, &options).await.unwrap().applied.is_empty(),
            "a third run is a no-op"
        );
    }
    eprintln!("applied {:?} and {:?}", first.applied, second.applied);

    // Every data table is Replicated* storage plus a Distributed table, on
    // both servers, and the views read and write the storage.
    for client in [&one, &two] {
        let engines: Vec<(String, String)> = client
            .query_raw(&format!(
                "SELECT name, engine FROM system.tables WHERE database = '{db}' ORDER BY name"
            ))
            .fetch_all()
            .await
            .unwrap();
        let engine = |name: &str| {
            engines
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e.as_str())
                .unwrap_or_else(|| panic!("{name} missing: {engines:?}"))
        };
        for table in [
            "raw_connector_status",
            "raw_bin_reading",
            "parking_occupancy_1h",
            "bin_latest",
            "schema_migrations",
            citybrain_schema::LINEAGE_TABLE,
        ] {
            assert_eq!(engine(table), "Distributed", "{table}");
            assert!(
                engine(&local_table(table)).starts_with("Replicated"),
                "{table}: {engines:?}"
            );
        }
        assert!(
            engines
                .iter()
                .all(|(_, e)| !e.ends_with("MergeTree") || e.starts_with("Replicated")),
            "unreplicated storage: {engines:?}"
        );
        // Columns added by a later migration reach the Distributed tables.
        let columns: Vec<(String, String)> = client
            .query_raw(&format!(
                "SELECT table, name FROM system.columns WHERE database = '{db}'"
            ))
            .fetch_all()
            .await
            .unwrap();
        let of = |table: &str| -> Vec<&str> {
            columns
                .iter()
                .filter(|(t, _)| t == table)
                .map(|(_, c)| c.as_str())
                .collect()
        };
        for (table, _) in engines.iter().filter(|(_, e)| e == "Distributed") {
            assert_eq!(of(table), of(&local_table(table)), "columns of {table}");
        }
    }

    // One INSERT through server 2's Distributed table: the row and what the
    // views derive from it are on both replicas once, and reading through
    // either server's Distributed table sees them once.
    two.query_raw(&format!(
        "INSERT INTO {db}.raw_connector_status
            (event_id, tenant_id, device_id, observed_at, received_at, kafka_topic, kafka_partition,
             kafka_offset, status, prev_status, prev_observed_at)
         VALUES ('0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21', 't', 'cp:1', toDateTime('2026-01-05 10:16:40'), now(), 'x', 0, 7,
                 'available', 'charging', toDateTime('2026-01-05 10:03:20'))"
    ))
    .execute()
    .await
    .unwrap();
    for client in [&one, &two] {
        replicated(
            client,
            &format!("SELECT count() FROM {db}.raw_connector_status_local"),
            1,
        )
        .await;
        replicated(
            client,
            &format!("SELECT count() FROM {db}.connector_status_latest_local"),
            1,
        )
        .await;
        replicated(
            client,
            &format!(
                "SELECT max(max_offset) FROM {db}.{}",
                local_table(citybrain_schema::LINEAGE_TABLE)
            ),
            7,
        )
        .await;
        assert_eq!(
            number(
                client,
                &format!("SELECT count() FROM {db}.raw_connector_status FINAL")
            )
            .await,
            1
        );
        assert_eq!(
            number(
                client,
                &format!("SELECT count() FROM {db}.connector_status_latest FINAL")
            )
            .await,
            1
        );
    }

    drop_schema(&one, &options).await.unwrap();
    for client in [&one, &two] {
        assert_eq!(
            number(
                client,
                &format!("SELECT count() FROM system.databases WHERE name = '{db}'")
            )
            .await,
            0
        );
    }
}
