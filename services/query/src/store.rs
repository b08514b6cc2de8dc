//! Runs queries on ClickHouse with a deadline and turns its answers (and its
//! failures) into tables, CSV streams and [`QueryError`]s.

use crate::{
    error::QueryError,
    sql::{Arg, Sql},
    table::Table,
};
use axum::body::Bytes;
use citybrain_config::ClickHouseConfig;
use clickhouse::Client;
use futures::Stream;
use std::time::Duration;
use tokio::time::Instant;

/// The client side waits this much longer than ClickHouse's own limit, so
/// that a busy server answers with its timeout error first.
pub const CLIENT_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Store {
    client: Client,
    timeout: Duration,
}

impl Store {
    pub fn new(config: &ClickHouseConfig, timeout: Duration) -> Self {
        let client = citybrain_schema::client(config)
            // Whole seconds: ClickHouse 18.16 reads this as an integer.
            .with_setting("max_execution_time", timeout.as_secs().max(1).to_string())
            .with_setting("timeout_overflow_mode", "throw")
            // Reads only, whatever the account may do.
            .with_setting("readonly", "2");
        Self { client, timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn query(&self, sql: &Sql) -> clickhouse::query::Query {
        let mut query = self.client.query(sql.text());
        for arg in sql.args() {
            query = match arg {
                Arg::Str(v) => query.bind(v.as_str()),
                Arg::Int(v) => query.bind(*v),
                Arg::Float(v) => query.bind(*v),
            };
        }
        query
    }

    fn error(&self, err: clickhouse::error::Error) -> QueryError {
        QueryError::from_clickhouse(err, self.timeout)
    }

    /// Runs `sql` and returns the whole result.
    pub async fn table(&self, sql: &Sql) -> Result<Table, QueryError> {
        let work = async {
            let mut cursor = self
                .query(sql)
                .fetch_bytes("JSONCompact")
                .map_err(|e| self.error(e))?;
            let body = cursor.collect().await.map_err(|e| self.error(e))?;
            Table::from_json_compact(&body)
                .map_err(|e| QueryError::Store(format!("unreadable answer: {e}")))
        };
        tokio::time::timeout(self.timeout + CLIENT_GRACE, work)
            .await
            .map_err(|_| QueryError::Timeout(self.timeout))?
    }

    /// Runs `sql` as CSV with a header row. Errors before the first bytes
    /// are returned here; later ones (the deadline, or more than `max_rows`
    /// rows) end the stream with an error, which aborts the HTTP response
    /// so the client cannot mistake a cut-off file for a complete one.
    pub async fn csv(
        &self,
        sql: &Sql,
        max_rows: usize,
    ) -> Result<impl Stream<Item = Result<Bytes, QueryError>> + Send + use<>, QueryError> {
        let deadline = Instant::now() + self.timeout + CLIENT_GRACE;
        let mut cursor = self
            .query(sql)
            .fetch_bytes("CSVWithNames")
            .map_err(|e| self.error(e))?;
        let timeout = self.timeout;
        let first = tokio::time::timeout_at(deadline, cursor.next())
            .await
            .map_err(|_| QueryError::Timeout(timeout))?
            .map_err(|e| QueryError::from_clickhouse(e, timeout))?;
        let mut rows = RowCounter::new(max_rows);
        Ok(async_stream(
            first,
            cursor,
            deadline,
            timeout,
            move |chunk| rows.feed(chunk),
        ))
    }

    /// Whether ClickHouse answers `SELECT 1` within `within`.
    pub async fn ping(&self, within: Duration) -> bool {
        let probe = self.client.query("SELECT 1").fetch_bytes("TSV");
        let Ok(mut cursor) = probe else { return false };
        matches!(
            tokio::time::timeout(within, cursor.collect()).await,
            Ok(Ok(_))
        )
    }
}

/// The CSV body: the first chunk, then the rest, each checked by `check`
/// (which may cut a chunk at the row limit and fail).
fn async_stream<F>(
    first: Option<Bytes>,
    cursor: clickhouse::query::BytesCursor,
    deadline: Instant,
    timeout: Duration,
    check: F,
) -> impl Stream<Item = Result<Bytes, QueryError>> + Send + 'static
where
    F: FnMut(Bytes) -> Result<Bytes, (Bytes, QueryError)> + Send + 'static,
{
    struct State<F> {
        pending: Option<Bytes>,
        cursor: clickhouse::query::BytesCursor,
        failed: Option<QueryError>,
        done: bool,
        check: F,
    }
    let state = State {
        pending: first,
        cursor,
        failed: None,
        done: false,
        check,
    };
    futures::stream::unfold(state, move |mut state| async move {
        loop {
            if state.done {
                return None;
            }
            if let Some(err) = state.failed.take() {
                state.done = true;
                return Some((Err(err), state));
            }
            let chunk = match state.pending.take() {
                Some(chunk) => chunk,
                None => match tokio::time::timeout_at(deadline, state.cursor.next()).await {
                    Err(_) => {
                        state.done = true;
                        return Some((Err(QueryError::Timeout(timeout)), state));
                    }
                    Ok(Err(e)) => {
                        state.done = true;
                        return Some((Err(QueryError::from_clickhouse(e, timeout)), state));
                    }
                    Ok(Ok(None)) => return None,
                    Ok(Ok(Some(chunk))) => chunk,
                },
            };
            match (state.check)(chunk) {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Some((Ok(chunk), state)),
                Err((head, err)) => {
                    state.failed = Some(err);
                    if !head.is_empty() {
                        return Some((Ok(head), state));
                    }
                }
            }
        }
    })
}

/// Counts CSV records (header + rows) across chunks, honouring quotes, and
/// cuts the stream after `max_rows` data rows.
struct RowCounter {
    max_rows: usize,
    records: usize,
    in_quotes: bool,
}

impl RowCounter {
    fn new(max_rows: usize) -> Self {
        Self {
            max_rows,
            records: 0,
            in_quotes: false,
        }
    }

    fn feed(&mut self, chunk: Bytes) -> Result<Bytes, (Bytes, QueryError)> {
        if self.records > self.max_rows && !chunk.is_empty() {
            return Err((Bytes::new(), self.over()));
        }
        for (i, byte) in chunk.iter().enumerate() {
            match byte {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    self.records += 1;
                    // header + max_rows rows complete: anything more is over.
                    if self.records == self.max_rows + 1 && i + 1 < chunk.len() {
                        return Err((chunk.slice(..=i), self.over()));
                    }
                }
                _ => {}
            }
        }
        Ok(chunk)
    }

    fn over(&self) -> QueryError {
        QueryError::Limit {
            limit: "CITYBRAIN_QUERY_MAX_EXPORT_ROWS",
            message: format!(
                "the export has more than {} rows; narrow the range or filters",
                self.max_rows
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_counted_across_chunks_and_quotes() {
        let mut counter = RowCounter::new(2);
        assert!(
            counter
                .feed(Bytes::from_static(b"a,b\n\"x\ny\",1\n"))
                .is_ok()
        );
        // The third row is cut off: only "2 rows" worth is passed on.
        let (head, err) = counter
            .feed(Bytes::from_static(b"\"q\"\"\",2\nz,3\n"))
            .unwrap_err();
        assert_eq!(&head[..], b"\"q\"\"\",2\n");
        assert!(err.to_string().contains("CITYBRAIN_QUERY_MAX_EXPORT_ROWS"));
    }
}
