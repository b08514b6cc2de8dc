//! Migrations against the real ClickHouse (`CITYBRAIN_CLICKHOUSE_URL`, default
//! the local stack's): they apply, re-running is a no-op, and the tables take
//! the rows the platform writes.

use citybrain_schema::{MIGRATIONS, SchemaOptions, applied_versions, drop_database, migrate};
use clickhouse::Client;

fn client() -> Client {
    let url = std::env::var("CITYBRAIN_CLICKHOUSE_URL")
        .unwrap_or_else(|_| citybrain_config::ClickHouseConfig::DEFAULT_URL.into());
    citybrain_schema::client(&citybrain_config::ClickHouseConfig::new(
        url.as_str(),
        "default",
    ))
}

fn fresh_database() -> String {
    format!(
        "test_schema_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[tokio::test]
async fn migrations_apply_once_and_record_their_versions() {
    let client = client();
    let options = SchemaOptions::new(fresh_database());

    let first = migrate(&client, &options).await.expect("first run");
    let expected: Vec<u32> = MIGRATIONS
        .iter()
        .filter(|m| m.min_server.is_none_or(|min| first.server >= min))
        .map(|m| m.version)
        .collect();
    assert_eq!(first.applied, expected);
    assert_eq!(
        applied_versions(&client, &options.database).await.unwrap(),
        expected
    );

    let second = migrate(&client, &options).await.expect("second run");
    assert!(
        second.applied.is_empty(),
        "re-running applied {:?}",
        second.applied
    );
    assert_eq!(second.skipped, first.skipped);
    assert_eq!(
        applied_versions(&client, &options.database).await.unwrap(),
        expected
    );

    let tables: Vec<String> = client
        .query_raw(&format!(
            "SELECT name FROM system.tables WHERE database = '{}' ORDER BY name",
            options.database
        ))
        .fetch_all()
        .await
        .unwrap();
    for name in [
        "raw_connector_status",
        "raw_service_request",
        "sink_log_lineage",
        "parking_occupancy_1h",
        "connector_status_latest",
        "bin_latest",
    ] {
        assert!(
            tables.iter().any(|t| t == name),
            "{name} missing from {tables:?}"
        );
    }
    // Time in status is computed at query time (migration 7).
    for gone in [
        "charger_status_5m",
        "charger_status_1h",
        "charger_status_5m_mv",
        "charger_status_1h_mv",
    ] {
        assert!(!tables.iter().any(|t| t == gone), "{gone} still exists");
    }

    drop_database(&client, &options.database).await.unwrap();
}

#[tokio::test]
async fn connector_statuses_insert_with_and_without_the_old_chaining_columns() {
    let client = client();
    let options = SchemaOptions::new(fresh_database());
    migrate(&client, &options).await.expect("migrate");
    let db = &options.database;
    // The previous release's sink names prev_status / prev_observed_at (a
    // rolling upgrade runs both); this one leaves them to their defaults.
    for (offset, extra_columns, extra_values) in [
        (
            7,
            ", prev_status, prev_observed_at",
            ", 'charging', toDateTime('2026-01-05 10:03:20')",
        ),
        (8, "", ""),
    ] {
        client
            .query_raw(&format!(
                "INSERT INTO {db}.raw_connector_status
                    (event_id, tenant_id, device_id, observed_at, received_at, kafka_topic, kafka_partition,
                     kafka_offset, status{extra_columns})
                 VALUES ('0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d2{offset}', 't', 'cp:1', toDateTime('2026-01-05 10:16:40') + {offset}, now(), 'x', 0,
                         {offset}, 'available'{extra_values})"
            ))
            .execute()
            .await
            .unwrap_or_else(|err| panic!("insert at offset {offset}: {err}"));
    }
    let rows: u64 = client
        .query_raw(&format!("SELECT count() FROM {db}.raw_connector_status"))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let lineage: u64 = client
        .query_raw(&format!(
            "SELECT max(max_offset) FROM {db}.sink_log_lineage WHERE raw_table = 'raw_connector_status'"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(lineage, 8);
    drop_database(&client, db).await.unwrap();
}

#[tokio::test]
async fn lineage_is_kept_per_kafka_log_and_its_migration_survives_a_rerun() {
    let client = client();
    let options = SchemaOptions::new(fresh_database());
    migrate(&client, &options).await.expect("migrate");
    let db = &options.database;

    // A run interrupted after the ALTERs: the version is not recorded, so
    // the next run repeats them (18.16 has no ADD COLUMN IF NOT EXISTS).
    client
        .query_raw(&format!(
            "ALTER TABLE {db}.schema_migrations DELETE WHERE version = 6"
        ))
        .execute()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while applied_versions(&client, db).await.unwrap().contains(&6) {
        assert!(std::time::Instant::now() < deadline, "mutation did not run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rerun = migrate(&client, &options).await.expect("re-run");
    assert_eq!(rerun.applied, vec![6]);

    // The same topic and partition in two brokers' logs (say a memory broker
    // before and after a restart) are two lineages.
    for (cluster, offset, id) in [
        ("broker-a", 900, "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21"),
        ("broker-b", 3, "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d22"),
    ] {
        client
            .query_raw(&format!(
                "INSERT INTO {db}.raw_bin_reading
                    (event_id, tenant_id, device_id, observed_at, received_at, kafka_topic,
                     kafka_partition, kafka_offset, kafka_cluster)
                 VALUES ('{id}', 't', 'bin:1', now(), now(), 'citybrain.sanitation.v1', 2, {offset}, '{cluster}')"
            ))
            .execute()
            .await
            .unwrap();
    }
    let lineage: Vec<(String, u64)> = client
        .query_raw(&format!(
            "SELECT kafka_cluster, max(max_offset) FROM {db}.sink_log_lineage
             WHERE raw_table = 'raw_bin_reading' AND kafka_partition = 2
             GROUP BY kafka_cluster ORDER BY kafka_cluster"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        lineage,
        vec![("broker-a".to_string(), 900), ("broker-b".to_string(), 3)]
    );
    drop_database(&client, db).await.unwrap();
}

#[tokio::test]
async fn charger_registers_may_be_null_and_their_migration_survives_a_rerun() {
    let client = client();
    let options = SchemaOptions::new(fresh_database());
    migrate(&client, &options).await.expect("migrate");
    let db = &options.database;
    // Interrupted after its ALTERs: the rerun repeats ADD COLUMN.
    client
        .query_raw(&format!(
            "ALTER TABLE {db}.schema_migrations DELETE WHERE version = 8"
        ))
        .execute()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while applied_versions(&client, db).await.unwrap().contains(&8) {
        assert!(std::time::Instant::now() < deadline, "mutation did not run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rerun = migrate(&client, &options).await.expect("re-run");
    assert_eq!(rerun.applied, vec![8]);

    // A sample with only power, recorded offline; a session started without
    // a register.
    for sql in [
        format!(
            "INSERT INTO {db}.raw_meter_sample
                (event_id, tenant_id, device_id, observed_at, received_at, kafka_topic, kafka_partition,
                 kafka_offset, energy_active_import_wh, power_active_import_w, offline)
             VALUES ('0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d31', 't', 'cp:1', now(), now(), 'x', 0, 1, NULL, 7200, 1)"
        ),
        format!(
            "INSERT INTO {db}.raw_charging_session
                (event_id, tenant_id, device_id, observed_at, received_at, kafka_topic, kafka_partition,
                 kafka_offset, phase, meter_start_wh)
             VALUES ('0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d32', 't', 'cp:1', now(), now(), 'x', 0, 2, 'started', NULL)"
        ),
    ] {
        client.query_raw(&sql).execute().await.unwrap();
    }
    let sample: (Option<f64>, Option<f64>, u8) = client
        .query_raw(&format!(
            "SELECT energy_active_import_wh, power_active_import_w, offline FROM {db}.raw_meter_sample"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(sample, (None, Some(7200.0), 1));
    let session: (Option<f64>, u8) = client
        .query_raw(&format!(
            "SELECT meter_start_wh, offline FROM {db}.raw_charging_session"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(session, (None, 0));
    drop_database(&client, db).await.unwrap();
}
