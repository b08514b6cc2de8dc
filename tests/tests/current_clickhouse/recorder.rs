//! An HTTP pass-through in front of the real ClickHouse that records every
//! request's SQL, settings and answer status.
//!
//! The services build their SQL inside their own code (the sink's lookups,
//! the query service's requests, the schema's `migrate`). Pointing them at
//! this recorder captures exactly the text they send, so the test replays
//! that text on current ClickHouse instead of a copy that could drift.
//!
//! One request per connection: the recorder asks ClickHouse to close after
//! answering (`Connection: close`), which ClickHouse repeats in its answer,
//! so the client opens a new connection for its next request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// URL parameters that frame the HTTP exchange rather than change what the
/// statement means; the rest are query-level settings.
const TRANSPORT_PARAMS: &[&str] = &[
    "query",
    "default_format",
    "database",
    "compress",
    "decompress",
    "enable_http_compression",
    "http_zlib_compression_level",
    "user",
    "password",
    "query_id",
    "session_id",
    "wait_end_of_query",
];

/// Longest error text kept from an answer.
const MAX_ERROR_BYTES: usize = 4096;

/// One request as ClickHouse received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The statement: the `query` URL parameter (INSERTs, whose body is
    /// data), else the body.
    pub sql: String,
    /// `default_format`, the format the client asked the answer in.
    pub format: Option<String>,
    /// `database`, the client's default database.
    pub database: Option<String>,
    /// Query-level settings from the URL.
    pub settings: Vec<(String, String)>,
    /// The answer's HTTP status (200: the statement ran).
    pub status: u16,
    /// The answer's body when the status is not 200 (ClickHouse's message).
    pub error: Option<String>,
}

pub struct Recorder {
    address: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    accept: JoinHandle<()>,
}

impl Recorder {
    /// Listens on a free loopback port and forwards to `clickhouse_url`.
    pub async fn start(clickhouse_url: &str) -> Self {
        let authority = clickhouse_url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let upstream = tokio::net::lookup_host(authority)
            .await
            .unwrap_or_else(|err| panic!("resolve {clickhouse_url}: {err}"))
            .next()
            .expect("an address for ClickHouse");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let accept_log = log.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = accept_log.clone();
                tokio::spawn(async move {
                    if let Err(err) = forward(client, upstream, log).await {
                        eprintln!("recorder: {err}");
                    }
                });
            }
        });
        Self {
            address,
            log,
            accept,
        }
    }

    /// The URL clients use instead of ClickHouse's.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Everything recorded since the last call.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
) -> std::io::Result<()> {
    let (mut from_client, mut to_client) = client.into_split();
    let (head, mut pending) = read_head(&mut from_client).await?;
    let Some(head) = head else { return Ok(()) };
    let head_text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head_text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let content_length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok());

    // A body with a length is read whole (it is the SQL of a query); a
    // chunked one (INSERT data) is passed on as it streams.
    let mut body = Vec::new();
    if let Some(length) = content_length {
        while pending.len() < length {
            let mut chunk = [0u8; 8192];
            let read = from_client.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            pending.extend_from_slice(&chunk[..read]);
        }
        body = pending.split_off(0);
    }

    let mut forwarded = format!("{request_line}\r\n");
    for (name, value) in &headers {
        if !name.eq_ignore_ascii_case("connection") {
            forwarded.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");

    let server = TcpStream::connect(upstream).await?;
    let (mut from_server, mut to_server) = server.into_split();
    to_server.write_all(forwarded.as_bytes()).await?;
    to_server.write_all(&body).await?;
    to_server.write_all(&pending).await?;
    let rest_of_request = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
    });

    // The whole answer is read (ClickHouse closes after it) and recorded
    // before the client sees any of it, so a client that has its answer
    // finds the request already recorded.
    let (answer_head, mut answer) = read_head(&mut from_server).await?;
    rest_of_request.abort();
    let answer_head = answer_head.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "ClickHouse sent no answer",
        )
    })?;
    from_server.read_to_end(&mut answer).await?;
    let status = String::from_utf8_lossy(&answer_head)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or(0);

    let params = query_params(&target);
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let sql = param("query").unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    log.lock().unwrap().push(Recorded {
        sql,
        format: param("default_format"),
        database: param("database"),
        settings: params
            .iter()
            .filter(|(key, _)| !TRANSPORT_PARAMS.contains(&key.as_str()))
            .filter(|(key, _)| !key.starts_with("param_"))
            .cloned()
            .collect(),
        status,
        error: (status != 200).then(|| dechunk(&answer[..answer.len().min(MAX_ERROR_BYTES)])),
    });

    to_client.write_all(&answer_head).await?;
    to_client.write_all(&answer).await?;
    to_client.shutdown().await?;
    Ok(())
}

/// Reads up to the blank line that ends an HTTP head: (head, bytes after
/// it). No head when the peer closed before sending one.
async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<(Option<Vec<u8>>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((Some(buffer), rest));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok((None, buffer));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The text of a chunked body (ClickHouse streams its errors chunked).
fn dechunk(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut rest = text.as_ref();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return text.into_owned();
        };
        if size == 0 || after.len() < size {
            out.push_str(&after[..size.min(after.len())]);
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out.trim().to_string()
}

fn query_params(target: &str) -> Vec<(String, String)> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn urls_and_chunked_errors_decode() {
    assert_eq!(
        query_params("/?query=INSERT+INTO+a%2Eb+FORMAT+RowBinary&readonly=2"),
        vec![
            (
                "query".to_string(),
                "INSERT INTO a.b FORMAT RowBinary".to_string()
            ),
            ("readonly".to_string(), "2".to_string()),
        ]
    );
    assert_eq!(percent_decode("%E5%8C%97%"), "北%");
    assert_eq!(dechunk(b"5\r\nCode:\r\n3\r\n 62\r\n0\r\n\r\n"), "Code: 62");
}
