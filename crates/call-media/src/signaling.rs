//! The client side of signaling: one WebSocket to the service (tokio-tungstenite), versioned
//! JSON frames in both directions; `wss://` through rustls, trusting the system's roots and any
//! certificates the agent was given.
//!
//! Both directions are bounded. Incoming frames wait for the engine (back-pressure on the TCP
//! connection, nothing dropped); an outgoing queue that fills up means the connection is stuck,
//! and the link is then dropped as lost rather than losing a request silently.

use call_protocol::{ClientMessage, ServerMessage, decode, encode};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream};

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

/// Why a signaling connection did not open.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The service could not be reached, or did not speak WebSocket.
    Unreachable(String),
    /// The service's TLS certificate is not trusted (or the trusted certificates given are not
    /// PEM).
    Untrusted(String),
}

impl SignalingLink {
    /// Connects to the service's WebSocket URL; a `wss://` one trusts the system's roots and
    /// the PEM certificates in `trusted`.
    pub(crate) async fn connect(url: &str, trusted: &[u8]) -> Result<Self, ConnectError> {
        let tls = if url.starts_with("wss://") {
            Some(Connector::Rustls(client_tls(trusted)?))
        } else {
            None
        };
        // Signaling frames are small and latency-bound: disable Nagle.
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, tls)
            .await
            .map_err(|e| match untrusted_certificate(&e) {
                Some(reason) => ConnectError::Untrusted(reason),
                None => ConnectError::Unreachable(e.to_string()),
            })?;
        let local_ip = match ws.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp.local_addr(),
            MaybeTlsStream::Rustls(tls) => tls.get_ref().0.local_addr(),
            _ => Err(std::io::Error::other("an unknown kind of stream")),
        }
        .map(|a| a.ip())
        .map_err(|e| {
            ConnectError::Unreachable(format!("the signaling socket has no local address: {e}"))
        })?;
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

/// A rustls client configuration trusting the system's roots and the PEM certificates in
/// `trusted`. The provider is named (ring, which webrtc-rs builds anyway), so an application
/// that also builds rustls's other provider does not make this ambiguous.
fn client_tls(trusted: &[u8]) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = system_roots().clone();
    for certificate in CertificateDer::pem_slice_iter(trusted) {
        let certificate = certificate
            .map_err(|e| ConnectError::Untrusted(format!("the trusted certificates: {e}")))?;
        roots.add(certificate).map_err(|e| {
            ConnectError::Untrusted(format!("a trusted certificate cannot be a root: {e}"))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Untrusted(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's root certificates, read once per process: every agent signing in at a `wss://`
/// service needs them, and a load tool signs in hundreds.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::debug!(
                "loading the system's root certificates: {:?}",
                native.errors
            );
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(native.certs);
        roots
    })
}

/// The certificate problem behind a failed connection, if that is what failed.
fn untrusted_certificate(error: &tokio_tungstenite::tungstenite::Error) -> Option<String> {
    let tokio_tungstenite::tungstenite::Error::Io(io) = error else {
        return None;
    };
    match io.get_ref()?.downcast_ref::<rustls::Error>()? {
        e @ rustls::Error::InvalidCertificate(_) => Some(e.to_string()),
        _ => None,
    }
}
