//! Starting and stopping a whole service: signaling, tokens and the SFU, on threads of its own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use call_protocol::{CommunicationIdentifier, Role};
use tokio::sync::{mpsc, oneshot};

use crate::pstn::{GATEWAY_COMMANDS, Gateway, PstnConfig};
use crate::router::PendingRoutes;
use crate::sfu::{MEDIA_COMMANDS, MEDIA_FACTS, Outbox, PeerTraffic, Sfu, Traffic};
use crate::signaling::{Shared, router};
use crate::tls::{TlsIdentity, TlsListener};
use crate::token::{IssuedToken, TokenIssuer};

/// The media socket's receive buffer, in bytes: about 0.5 s of a 1,000-member call's inbound
/// traffic.
const MEDIA_RECEIVE_BUFFER: usize = 4 << 20;

/// How long starting waits for the SIP gateway to bind.
const SIP_START: Duration = Duration::from_secs(5);

/// How long a callee rings by default before the call gives up on them.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run a service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The address signaling and media bind to. An unspecified one (`0.0.0.0`, `::`) binds
    /// every interface and then needs [`advertise_ip`](Self::advertise_ip): media must advertise
    /// a concrete address (str0m matches STUN against its host candidate).
    pub ip: IpAddr,
    /// The address clients reach the media socket at, when it is not the bound `ip`: behind
    /// NAT, or in a container whose address differs from the host's. It becomes the SFU's host
    /// candidate and [`CallService::media_addr`], with the bound port. `None` advertises `ip`.
    pub advertise_ip: Option<IpAddr>,
    /// The signaling (HTTP/WebSocket) port; 0 picks a free one.
    pub http_port: u16,
    /// The media (UDP) port; 0 picks a free one.
    pub media_port: u16,
    /// The token signing secret; `None` makes a random one (tokens then only come from this
    /// process: [`CallService::issue_token`] or the dev endpoint).
    pub secret: Option<Vec<u8>>,
    /// Serve `GET /dev/token?user=...`, which hands any user a token. For development only.
    pub dev_tokens: bool,
    /// How long a callee rings before the call gives up on them
    /// ([`CallEndReason::NO_ANSWER`](call_protocol::CallEndReason::NO_ANSWER)).
    pub ring_timeout: Duration,
    /// Serve HTTPS and WSS with this certificate instead of plain HTTP and WS. Browsers grant
    /// camera and microphone only to secure origins, so the web client needs it anywhere but
    /// on localhost; Rust clients then connect to `wss://` (see [`CallService::ws_url`]).
    pub tls: Option<TlsIdentity>,
    /// A carrier trunk for calls to and from phone numbers ([`crate::pstn`]); without one, a
    /// phone number is not found.
    pub pstn: Option<PstnConfig>,
}

impl Default for ServiceConfig {
    /// The embedded default: loopback, free ports, a random secret, dev tokens on.
    fn default() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_ip: None,
            http_port: 0,
            media_port: 0,
            secret: None,
            dev_tokens: true,
            ring_timeout: DEFAULT_RING_TIMEOUT,
            tls: None,
            pstn: None,
        }
    }
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The address to advertise was unspecified (`0.0.0.0` or `::`): `ip` without an
    /// `advertise_ip`, or `advertise_ip` itself.
    #[error(
        "the service needs a concrete IP address to advertise for media, not {0} \
         (binding {0} needs an advertised address: advertise_ip, --advertise-ip)"
    )]
    UnspecifiedIp(IpAddr),
    /// A socket could not be bound.
    #[error("could not bind {what} on {addr}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate chain or key could not be used.
    #[error("could not use the TLS certificate: {0}")]
    Tls(String),
    /// The SIP gateway could not start (its port could not be bound).
    #[error("SIP gateway: {0}")]
    Sip(String),
    /// The runtime or a thread could not start.
    #[error("could not start the service runtime: {0}")]
    Runtime(std::io::Error),
}

/// A running call service. Dropping it stops the service and waits for its threads.
pub struct CallService {
    http_addr: SocketAddr,
    /// Whether signaling and the web client are served over TLS.
    secure: bool,
    advertised_ip: IpAddr,
    media_addr: SocketAddr,
    issuer: TokenIssuer,
    shared: Arc<Shared>,
    traffic: Traffic,
    /// Where the SIP gateway takes calls, when one is configured.
    sip_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CallService {
    /// Binds the sockets and starts the service on a thread of its own.
    pub fn start(config: ServiceConfig) -> Result<Self, ServiceError> {
        let advertised_ip = config.advertise_ip.unwrap_or(config.ip);
        if advertised_ip.is_unspecified() {
            return Err(ServiceError::UnspecifiedIp(advertised_ip));
        }
        let acceptor = config
            .tls
            .as_ref()
            .map(TlsIdentity::acceptor)
            .transpose()
            .map_err(ServiceError::Tls)?;
        let secure = acceptor.is_some();
        let issuer = config
            .secret
            .as_deref()
            .map(TokenIssuer::new)
            .unwrap_or_else(TokenIssuer::random);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("call-service")
            .enable_all()
            .build()
            .map_err(ServiceError::Runtime)?;
        let http_want = SocketAddr::new(config.ip, config.http_port);
        let media_want = SocketAddr::new(config.ip, config.media_port);
        let bind_error = |what, addr| move |source| ServiceError::Bind { what, addr, source };
        // Bound here with std sockets so that start() works inside or outside any runtime.
        let listener =
            std::net::TcpListener::bind(http_want).map_err(bind_error("signaling", http_want))?;
        let udp = std::net::UdpSocket::bind(media_want).map_err(bind_error("media", media_want))?;
        let http_addr = listener
            .local_addr()
            .map_err(bind_error("signaling", http_want))?;
        let media_bound = udp.local_addr().map_err(bind_error("media", media_want))?;
        listener
            .set_nonblocking(true)
            .map_err(bind_error("signaling", http_addr))?;
        udp.set_nonblocking(true)
            .map_err(bind_error("media", media_bound))?;
        // One lost datagram from a speaker is lost to every listener: give bursts room while
        // the loop is busy (the kernel caps this at net.core.rmem_max, 4 MiB here).
        if let Err(e) = socket2::SockRef::from(&udp).set_recv_buffer_size(MEDIA_RECEIVE_BUFFER) {
            tracing::warn!("could not enlarge the media socket's receive buffer: {e}");
        }
        let outbox = udp
            .try_clone()
            .and_then(Outbox::start)
            .map_err(ServiceError::Runtime)?;
        // Clients reach the socket at the advertised address, on the port it was bound to.
        let media_addr = SocketAddr::new(advertised_ip, media_bound.port());

        let dev_tokens = config.dev_tokens;
        let (media_tx, media_rx) = mpsc::channel(MEDIA_COMMANDS);
        let (facts_tx, facts_rx) = mpsc::channel(MEDIA_FACTS);
        let routes = Arc::new(PendingRoutes::default());
        let (gateway_tx, gateway_rx) = mpsc::channel(GATEWAY_COMMANDS);
        let (progress_tx, progress_rx) = mpsc::channel(GATEWAY_COMMANDS);
        let gateway = config
            .pstn
            .clone()
            .map(|pstn| (pstn, gateway_rx, progress_tx));
        let shared = Shared::new(
            media_tx.clone(),
            routes.clone(),
            issuer.clone(),
            config.ring_timeout,
            gateway.is_some().then_some(gateway_tx),
        );
        // The gateway binds inside the runtime; its address (or why it has none) comes back.
        let (sip_tx, sip_rx) = std::sync::mpsc::channel();
        let traffic = Traffic::default();
        let (sfu_traffic, handle) = (traffic.clone(), shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("call-service".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (listener, udp) = match (
                        tokio::net::TcpListener::from_std(listener),
                        tokio::net::UdpSocket::from_std(udp),
                    ) {
                        (Ok(l), Ok(u)) => (l, u),
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::error!("call service sockets: {e}");
                            return;
                        }
                    };
                    let sfu = Sfu::new(udp, outbox, media_addr, routes, facts_tx, sfu_traffic);
                    let app = router(shared.clone(), dev_tokens);
                    let media = tokio::spawn(sfu.run(media_rx));
                    tokio::spawn(shared.clone().relay_facts(facts_rx));
                    if let Some((pstn, commands, progress)) = gateway {
                        match Gateway::bind(pstn, advertised_ip, media_tx, progress).await {
                            Ok(gateway) => {
                                let _ = sip_tx.send(Ok(gateway.local_addr()));
                                tokio::spawn(gateway.run(commands));
                                tokio::spawn(shared.relay_phones(progress_rx));
                            }
                            Err(e) => {
                                let _ = sip_tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    let served = match acceptor {
                        Some(acceptor) => match TlsListener::new(listener, acceptor, no_delay) {
                            Ok(tls) => serve(tls, app, shutdown).await,
                            Err(e) => Err(e),
                        },
                        None => serve(listener.tap_io(|tcp| no_delay(tcp)), app, shutdown).await,
                    };
                    if let Err(e) = served {
                        tracing::error!("signaling server failed: {e}");
                    }
                    media.abort();
                });
                // Connection tasks may still hold sockets; give them a moment, then drop them.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(ServiceError::Runtime)?;
        let sip_addr = match config.pstn.is_some() {
            true => match sip_rx.recv_timeout(SIP_START) {
                Ok(Ok(addr)) => Some(addr),
                Ok(Err(reason)) => return Err(ServiceError::Sip(reason)),
                Err(_) => return Err(ServiceError::Sip("the gateway did not start".into())),
            },
            false => None,
        };
        tracing::info!(
            "call service: signaling on {http_addr}, media on {media_bound} advertised as {media_addr}"
        );
        Ok(Self {
            http_addr,
            secure,
            advertised_ip,
            media_addr,
            issuer,
            shared: handle,
            traffic,
            sip_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where the SIP gateway takes calls from the trunk, when [`ServiceConfig::pstn`] is set.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip_addr
    }

    /// The signaling WebSocket URL at the advertised address (see
    /// [`ServiceConfig::advertise_ip`]) and the bound port, e.g. `ws://127.0.0.1:40123/ws`
    /// (`wss://` with [`ServiceConfig::tls`]).
    pub fn ws_url(&self) -> String {
        self.url("ws", "ws")
    }

    /// The web client's URL (see [`ServiceConfig::advertise_ip`]), e.g.
    /// `http://127.0.0.1:40123/` (`https://` with [`ServiceConfig::tls`]): a browser joins
    /// calls there.
    pub fn web_url(&self) -> String {
        self.url("http", "")
    }

    /// `scheme` (made secure with TLS) at the advertised address and the bound port, then `path`.
    fn url(&self, scheme: &str, path: &str) -> String {
        let secure = if self.secure { "s" } else { "" };
        let host = SocketAddr::new(self.advertised_ip, self.http_addr.port());
        format!("{scheme}{secure}://{host}/{path}")
    }

    /// The address the signaling HTTP server is bound to (`0.0.0.0:port` when bound to every
    /// interface).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The media UDP address clients reach: the advertised address (see
    /// [`ServiceConfig::advertise_ip`], else the bound `ip`) with the port the socket was
    /// actually bound to. The SFU's host candidate in every answer is this address.
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// Signs a token for `user`, a [`Role::Presenter`], with this service's secret.
    pub fn issue_token(&self, user: &CommunicationIdentifier, ttl: Duration) -> IssuedToken {
        self.issuer.issue(user, ttl)
    }

    /// Signs a token for `user` with a call role, with this service's secret.
    pub fn issue_token_with_role(
        &self,
        user: &CommunicationIdentifier,
        role: Role,
        ttl: Duration,
    ) -> IssuedToken {
        self.issuer.issue_with_role(user, role, ttl)
    }

    /// The media the SFU has sent to a signed-in user so far (payload bytes per kind), or `None`
    /// when the user is not signed in.
    pub fn traffic_to(&self, user: &CommunicationIdentifier) -> Option<PeerTraffic> {
        let session = self.shared.session_of(user)?;
        Some(self.traffic.of(session))
    }

    /// The issuer, for tokens with explicit times (tests of expiry).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Blocks until the service stops (it stops only when dropped, or on a fatal error).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Signaling frames are small and latency-bound: no Nagle delay.
fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
}

/// Serves `app` on `listener` until `shutdown` completes.
async fn serve<L>(
    listener: L,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

impl Drop for CallService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
