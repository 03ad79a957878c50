//! Helpers shared by the service's tests that speak the signaling protocol over a raw WebSocket.
#![allow(dead_code)] // Each test file uses a different part.

use std::time::Duration;

use call_protocol::{ServerMessage, decode};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// A raw signaling WebSocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next server message on `ws`; panics on a close or after 10 s.
pub async fn next(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply in time");
        match frame {
            Some(Ok(Message::Text(t))) => return decode(t.as_str()).expect("server frames decode"),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => panic!("connection closed"),
            Some(Ok(_)) => continue,
        }
    }
}
