//! The client side of signaling: one WebSocket to the service (tokio-tungstenite), versioned
//! JSON frames in both directions.
//!
//! Both directions are bounded. Incoming frames wait for the engine (back-pressure on the TCP
//! connection, nothing dropped); an outgoing queue that fills up means the connection is stuck,
//! and the link is then dropped as lost rather than losing a request silently.

use call_protocol::{ClientMessage, ServerMessage, decode, encode};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// An open signaling connection. Messages out go through [`SignalingLink::send`]; messages in
/// arrive on `incoming`, which closes when the connection is lost.
pub(crate) struct SignalingLink {
    out: mpsc::Sender<ClientMessage>,
    writer: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
    pub(crate) incoming: mpsc::Receiver<ServerMessage>,
    /// This side's address on the connection: the interface that reaches the service.
    pub(crate) local_ip: std::net::IpAddr,
}

/// Messages each direction holds.
const QUEUE: usize = 256;

impl SignalingLink {
    /// Connects to the service's WebSocket URL.
    pub(crate) async fn connect(url: &str) -> Result<Self, String> {
        // Signaling frames are small and latency-bound: disable Nagle.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|e| e.to_string())?;
        let local_ip = match ws.get_ref() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr(),
            _ => Err(std::io::Error::other("not a plain TCP stream")),
        }
        .map(|a| a.ip())
        .map_err(|e| format!("the signaling socket has no local address: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut outgoing) = mpsc::channel::<ClientMessage>(QUEUE);
        let (deliver, incoming) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink
                    .send(Message::Text(encode(&message).into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    Message::Text(text) => match decode::<ServerMessage>(text.as_str()) {
                        Ok(message) => {
                            if deliver.send(message).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::warn!("ignoring a signaling frame: {e}"),
                    },
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        });
        Ok(Self {
            out,
            writer,
            reader,
            incoming,
            local_ip,
        })
    }

    /// Queues a message for the service. After the connection is lost this does nothing; the
    /// loss shows as `incoming` closing. A full queue means the connection is stuck: the link is
    /// torn down, which shows the same way.
    pub(crate) fn send(&self, message: ClientMessage) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.out.try_send(message) {
            tracing::warn!("signaling is stuck ({QUEUE} messages unsent); dropping the link");
            self.writer.abort();
            self.reader.abort();
        }
    }

    /// Sends what is queued, then closes the WebSocket (waiting at most `limit`).
    pub(crate) async fn close(self, limit: std::time::Duration) {
        drop(self.out);
        let _ = tokio::time::timeout(limit, self.writer).await;
        self.reader.abort();
    }
}
