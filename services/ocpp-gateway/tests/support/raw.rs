//! Raw WebSocket frames built by hand, for what no correct client sends.

use super::RunningGateway;
use serde_json::Value;
use std::time::Duration;

pub use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `ws://…/ocpp/{id}` with HTTP Basic `id:password` (none: no
/// header) offering `protocols`; the HTTP status of a refused upgrade.
pub async fn connect_raw(
    gateway: &RunningGateway,
    id: &str,
    password: Option<&str>,
    protocols: &[&str],
) -> Result<Raw, u16> {
    use base64::Engine as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ocpp/{id}", gateway.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    if let Some(password) = password {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{password}"));
        headers.insert("authorization", format!("Basic {token}").parse().unwrap());
    }
    if !protocols.is_empty() {
        headers.insert(
            "sec-websocket-protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => Ok(Raw {
            socket,
            subprotocol: response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string()),
            next: 0,
        }),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(err) => panic!("connecting {id}: {err}"),
    }
}

/// A WebSocket speaking OCPP-J frames built by hand.
pub struct Raw {
    pub socket: Socket,
    pub subprotocol: Option<String>,
    next: u64,
}

impl Raw {
    /// Sends a CALL and returns the frame that answers it (a CALLRESULT or
    /// CALLERROR array).
    pub async fn call(&mut self, action: &str, payload: Value) -> Value {
        self.next += 1;
        let id = format!("t{}", self.next);
        self.text(&serde_json::json!([2, id, action, payload]).to_string())
            .await;
        self.answer_to(&id).await
    }

    /// Sends a text message as it is.
    pub async fn text(&mut self, text: &str) {
        use futures::SinkExt;
        self.socket
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// The next frame answering `id` (calls from the gateway are skipped).
    pub async fn answer_to(&mut self, id: &str) -> Value {
        loop {
            let frame = self.frame().await.expect("an answer");
            if frame[1] == id && (frame[0] == 3 || frame[0] == 4) {
                return frame;
            }
        }
    }

    /// The next OCPP-J frame from the gateway; None when the socket closed
    /// (with the close frame's code, if any, in `closed`).
    pub async fn frame(&mut self) -> Option<Value> {
        match self.next_message().await? {
            Message::Text(text) => Some(serde_json::from_str(text.as_str()).expect("JSON")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next message that is not a ping or pong; None at the end.
    pub async fn next_message(&mut self) -> Option<Message> {
        use futures::StreamExt;
        let read = async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(message)) => return Some(message),
                    Some(Err(_)) | None => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the gateway went silent")
    }

    /// Reads until the gateway closes the socket; the close code it sent.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_message().await {
                Some(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }
}
