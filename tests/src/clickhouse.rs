//! ClickHouse for tests: a client, a database of the test's own (dropped
//! when the test ends, however it ends) and the counting queries the suites
//! check stored rows with.

use crate::eventually;
/// The ClickHouse client type (re-exported: suites that glob-import the kit
/// still name it `clickhouse::Client`).
pub use ::clickhouse::Client;
use citybrain_config::ClickHouseConfig;
use citybrain_proto::feed::Kind;
use std::io::{Read, Write};
use std::time::Duration;

/// A client of the server at `url` (validation off: 18.16).
pub fn client(url: &str) -> Client {
    citybrain_schema::client(&ClickHouseConfig::new(url, "default"))
}

/// A database name of the test's own, `<label>_<random>`.
pub fn fresh_name(label: &str) -> String {
    format!(
        "{label}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A database of the test's own on the server at `url`; dropped on Drop.
/// Created empty by the service under test (the sink migrates it), or with
/// the schema applied ([`TestDatabase::migrated`]).
#[must_use = "the database is dropped when this guard is dropped"]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A fresh name; nothing is created yet.
    pub fn named(url: &str, label: &str) -> Self {
        Self {
            name: fresh_name(label),
            url: url.to_string(),
        }
    }

    /// A fresh database with the schema applied.
    pub async fn migrated(url: &str, label: &str) -> Self {
        let db = Self::named(url, label);
        citybrain_schema::migrate(
            &client(url),
            &citybrain_schema::SchemaOptions::new(&db.name),
        )
        .await
        .expect("migrate the test database");
        db
    }

    pub fn client(&self) -> Client {
        client(&self.url)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await: one plain blocking HTTP request.
        // A service still creating its tables when the test ends makes
        // ClickHouse answer "New table appeared in database being dropped.
        // Try dropping it again": so it does, a few times.
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        for attempt in 1..=5 {
            match post_sql(&self.url, &sql) {
                Ok(()) => return,
                Err(err) if attempt < 5 && err.to_string().contains("Try dropping it again") => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => {
                    eprintln!("could not drop test database {}: {err}", self.name);
                    return;
                }
            }
        }
    }
}

/// Sends one statement over a blocking connection (for Drop).
fn post_sql(url: &str, sql: &str) -> std::io::Result<()> {
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(answer))
    }
}

/// `SELECT <sql>` as a number (absent or NULL: 0).
pub async fn number(client: &Client, sql: &str) -> f64 {
    client
        .query_raw(&format!("SELECT toFloat64(ifNull(({sql}), 0))"))
        .fetch_one::<f64>()
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Rows in `database.table`, counted plainly (no FINAL: what a roll-up sees).
pub async fn rows(client: &Client, database: &str, table: &str) -> u64 {
    number(client, &format!("SELECT count() FROM {database}.{table}")).await as u64
}

/// Waits until `SELECT <sql>` answers `want`. For tables the views write: a
/// raw part is visible before the views fed by the same INSERT have written,
/// so right after the raw counts are reached a roll-up may still lag.
pub async fn settles_to(client: &Client, what: &str, sql: &str, want: f64) {
    eventually(Duration::from_secs(30), what, || async move {
        number(client, sql).await == want
    })
    .await;
}

/// Waits until `SELECT <a>` and `SELECT <b>` answer the same.
pub async fn settles_equal(client: &Client, what: &str, a: &str, b: &str) {
    eventually(Duration::from_secs(30), what, || async move {
        number(client, a).await == number(client, b).await
    })
    .await;
}

/// Waits until every raw table of `expected` holds its count, then checks
/// no table holds more and no event id is there twice.
pub async fn assert_exact_rows(
    client: &Client,
    database: &str,
    expected: &[(Kind, u64)],
    timeout: Duration,
) {
    for (kind, n) in expected {
        let table = kind.raw_table();
        let what = format!("{n} rows in {table}");
        eventually(timeout, &what, || async move {
            // The database appears with the sink's migration.
            let sql = format!("SELECT count() FROM {database}.{table}");
            client
                .query_raw(&sql)
                .fetch_one::<u64>()
                .await
                .is_ok_and(|rows| rows >= *n)
        })
        .await;
    }
    for (kind, n) in expected {
        let table = kind.raw_table();
        assert_eq!(rows(client, database, table).await, *n, "rows in {table}");
        let distinct = number(
            client,
            &format!("SELECT uniqExact(event_id) FROM {database}.{table}"),
        )
        .await as u64;
        assert_eq!(distinct, *n, "distinct event ids in {table}");
    }
}
