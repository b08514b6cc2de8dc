//! Phase 2: rows/s the sink writes from a backlog already in Kafka, against
//! the ceiling: the same rows inserted directly (RowBinary, one client, the
//! `clickhouse` crate) into a database with the same schema, so the
//! materialized views do the same work on both sides.

use crate::workload::Record;
use citybrain_proto::feed::{Kind, SCHEMA_VERSION};
use citybrain_sink::batch::TableRow;
use citybrain_sink::rows::{self, Lineage};
use clickhouse::Client;
use std::time::{Duration, Instant};

/// A ClickHouse client for `url` that 18.16 accepts.
pub fn clickhouse(url: &str) -> Client {
    citybrain_tests::clickhouse::client(url)
}

/// Rows in every raw table of `db`.
pub async fn raw_rows(client: &Client, db: &str) -> anyhow::Result<u64> {
    let parts: Vec<String> = Kind::ALL
        .iter()
        .map(|kind| format!("SELECT count() AS c FROM {db}.{}", kind.raw_table()))
        .collect();
    let sql = format!(
        "SELECT toUInt64(sum(c)) FROM ({})",
        parts.join(" UNION ALL ")
    );
    Ok(client.query_raw(&sql).fetch_one::<u64>().await?)
}

/// How a backlog drained: rows/s between the first rows landing and the
/// last, and from the sink's start (group join included).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Drain {
    pub rows: u64,
    pub first_rows_after_s: f64,
    pub seconds: f64,
    pub per_s: f64,
    pub per_s_from_start: f64,
}

/// Polls the raw tables every 200 ms until they hold `target` rows.
pub async fn wait_for_rows(
    client: &Client,
    db: &str,
    target: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Drain> {
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let rows = raw_rows(client, db).await.unwrap_or(0);
        let now = Instant::now();
        if rows > 0 && first.is_none() {
            first = Some((now, rows));
        }
        if rows >= target {
            let (t0, r0) = first.unwrap_or((started, 0));
            let steady = now.duration_since(t0).as_secs_f64();
            let total = now.duration_since(started).as_secs_f64();
            return Ok(Drain {
                rows,
                first_rows_after_s: t0.duration_since(started).as_secs_f64(),
                seconds: total,
                per_s: if steady > 0.0 {
                    (rows - r0) as f64 / steady
                } else {
                    rows as f64 / total
                },
                per_s_from_start: rows as f64 / total,
            });
        }
        if started.elapsed() > timeout {
            anyhow::bail!("only {rows} of {target} rows landed in {db} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ceiling: decodes `records` into the sink's own row types (not timed),
/// then inserts them in batches of `batch_rows` events, one INSERT per raw
/// table per batch as the sink does (tables concurrently, batches in turn).
pub async fn direct_insert(
    client: &Client,
    db: &str,
    records: &[Record],
    batch_rows: usize,
) -> anyhow::Result<crate::ingest::Throughput> {
    let mut batches = Vec::new();
    for (chunk_no, chunk) in records.chunks(batch_rows).enumerate() {
        let mut tables = citybrain_sink::batch::Tables::default();
        for (i, record) in chunk.iter().enumerate() {
            let lineage = Lineage {
                cluster: "bench-ceiling".into(),
                topic: format!("ceiling.{}", record.feed.topic()),
                partition: 0,
                offset: (chunk_no * batch_rows + i) as i64,
            };
            let row = rows::decode(&record.payload, Some(SCHEMA_VERSION), &lineage)
                .map_err(|poison| anyhow::anyhow!("a simulated event is poison: {poison}"))?;
            tables.push(row);
        }
        batches.push(tables);
    }
    let client = client.clone().with_database(db);
    let started = Instant::now();
    // Each batch's tables concurrently, as the sink writes them; batches one
    // after another.
    for t in &batches {
        let done = tokio::join!(
            insert(&client, Kind::ConnectorStatus, &t.connector_status),
            insert(&client, Kind::MeterSample, &t.meter_sample),
            insert(&client, Kind::ChargingSession, &t.charging_session),
            insert(&client, Kind::ParkingSiteCounts, &t.parking_site_counts),
            insert(&client, Kind::ParkingSpotStatus, &t.parking_spot_status),
            insert(&client, Kind::VehiclePosition, &t.vehicle_position),
            insert(&client, Kind::PatrolCheckIn, &t.patrol_check_in),
            insert(&client, Kind::BinReading, &t.bin_reading),
            insert(&client, Kind::WasteCollection, &t.waste_collection),
            insert(&client, Kind::ServiceRequest, &t.service_request),
        );
        for result in [
            done.0, done.1, done.2, done.3, done.4, done.5, done.6, done.7, done.8, done.9,
        ] {
            result?;
        }
    }
    let took = started.elapsed();
    Ok(crate::ingest::Throughput {
        events: records.len() as u64,
        not_accepted: 0,
        seconds: took.as_secs_f64(),
        per_s: records.len() as f64 / took.as_secs_f64().max(1e-6),
    })
}

async fn insert<R: TableRow>(client: &Client, kind: Kind, rows: &[R]) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<R>(kind.raw_table()).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}
