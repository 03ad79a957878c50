//! The client side of signaling: one WebSocket to the service (tokio-tungstenite), versioned
//! JSON frames in both directions.

use call_protocol::{ClientMessage, ServerMessage, decode, encode};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// An open signaling connection. Messages out go through [`SignalingLink::send`]; messages in
/// arrive on `incoming`, which closes when the connection is lost.
pub(crate) struct SignalingLink {
    out: mpsc::UnboundedSender<ClientMessage>,
    writer: tokio::task::JoinHandle<()>,
    pub(crate) incoming: mpsc::UnboundedReceiver<ServerMessage>,
}

impl SignalingLink {
    /// Connects to the service's WebSocket URL.
    pub(crate) async fn connect(url: &str) -> Result<Self, String> {
        // Signaling frames are small and latency-bound: disable Nagle.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<ClientMessage>();
        let (deliver, incoming) = mpsc::unbounded_channel();
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
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    Message::Text(text) => match decode::<ServerMessage>(text.as_str()) {
                        Ok(message) => {
                            if deliver.send(message).is_err() {
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
            incoming,
        })
    }

    /// Queues a message for the service. After the connection is lost this does nothing; the
    /// loss shows as `incoming` closing.
    pub(crate) fn send(&self, message: ClientMessage) {
        let _ = self.out.send(message);
    }

    /// Sends what is queued, then closes the WebSocket (waiting at most `limit`).
    pub(crate) async fn close(self, limit: std::time::Duration) {
        drop(self.out);
        let _ = tokio::time::timeout(limit, self.writer).await;
    }
}
