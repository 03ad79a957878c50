//! HTTPS and WSS: the service's HTTP server behind TLS with a given certificate (rustls through
//! tokio-rustls). Browsers grant camera and microphone only to secure origins, so a web client
//! served anywhere but localhost needs this.
//!
//! Handshakes run in tasks of their own, each with a deadline, so a slow or silent client never
//! holds up the others; finished connections wait for the server in a bounded queue.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections through their handshake, waiting for the HTTP server.
const READY_QUEUE: usize = 64;
/// Handshakes under way at once; past this, accepting waits for one to finish.
const HANDSHAKES: usize = 256;

/// A certificate chain and its private key, in PEM, for serving HTTPS and WSS.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks).
    pub certificate_chain_pem: Vec<u8>,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: Vec<u8>,
}

impl TlsIdentity {
    /// Reads a PEM certificate chain and a PEM private key from files.
    pub fn from_files(
        certificate_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            certificate_chain_pem: std::fs::read(certificate_chain)?,
            private_key_pem: std::fs::read(private_key)?,
        })
    }

    /// The rustls acceptor for this identity, or why the PEM does not make one.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let chain = CertificateDer::pem_slice_iter(&self.certificate_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the certificate chain: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate chain holds no CERTIFICATE block".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&self.private_key_pem)
            .map_err(|e| format!("the private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A listener that hands the HTTP server connections through their TLS handshake.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp` and runs each connection's handshake with `acceptor`; `tap` sees each
    /// TCP connection first (socket options).
    pub(crate) fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        tap: fn(&TcpStream),
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(READY_QUEUE);
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: pause rather than spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                tap(&stream);
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
