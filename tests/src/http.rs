//! The kit's one HTTP client: enough HTTP/1.1 for the services' admin ports,
//! the query API (JSON and chunked CSV) and plain endpoints, with nothing
//! between the test and the bytes on the wire (status, headers, whether a
//! chunked body ended properly).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer as it came off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The header lines, as sent.
    pub headers: String,
    pub body: String,
    /// False when a chunked body ended without its final chunk (aborted).
    pub complete: bool,
}

impl Reply {
    /// The body as JSON; panics (naming the body) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// GET `path` from `addr` with extra `headers`, one connection per request.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, &[]).await
}

/// GET with the API key in `x-api-key` (none when `key` is `None`).
pub async fn get_with_key(addr: SocketAddr, path: &str, key: Option<&str>) -> Reply {
    match key {
        Some(key) => get(addr, path, &[("x-api-key", key)]).await,
        None => get(addr, path, &[]).await,
    }
}

/// POST `body` to `path`.
pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    request(addr, "POST", path, headers, body).await
}

/// Any request; `Connection: close`, the answer read to its end.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send request");
    // A server may answer (413) and close before it read the whole body:
    // the rest then cannot be sent, and the answer is still there to read.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    // A server that aborts a streamed answer resets the connection: keep
    // what arrived (the body is then incomplete).
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    // A connection closed before a whole head arrived: status 0, incomplete.
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply {
            status: 0,
            headers: String::new(),
            body: String::new(),
            complete: false,
        };
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let rest = raw.get(split + 4..).unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = head.split_once("\r\n").map_or("", |(_, h)| h).to_string();
    let chunked = headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        (rest.to_vec(), true)
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        complete,
    }
}

/// A chunked body's content, and whether its final chunk arrived.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            return (body, false);
        };
        data = &data[eol + 2..];
        if size == 0 {
            return (body, true);
        }
        if data.len() < size + 2 {
            body.extend_from_slice(&data[..size.min(data.len())]);
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query-string value.
pub fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_and_aborts() {
        let reply = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(
            (reply.status, reply.body.as_str(), reply.complete),
            (200, "abcde", true)
        );
        assert_eq!(reply.header("x-a"), Some("b"));
        let cut = parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n");
        assert_eq!((cut.body.as_str(), cut.complete), ("abc", false));
        let plain = parse(b"HTTP/1.0 503 Service Unavailable\r\n\r\nkafka: not ready\n");
        assert_eq!(
            (plain.status, plain.body.as_str()),
            (503, "kafka: not ready\n")
        );
        assert_eq!(enc("后 a&b"), "%E5%90%8E%20a%26b");
        let reset = parse(b"HTTP/1.1 200 OK\r\nContent-Ty");
        assert_eq!((reset.status, reset.complete), (0, false));
    }
}
