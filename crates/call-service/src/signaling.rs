//! WebSocket signaling and the development token endpoint, on axum.
//!
//! Each connection is one task: it signs the client in with its token, turns frames into
//! [`Switchboard`] requests or [`MediaCommand`]s, and writes the resulting messages back. Bad
//! frames get an [`ServerMessage::Error`] and the connection stays; only token failures close it,
//! and a client too slow to read its bounded outbox ([`ErrorCode::TooSlow`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use call_protocol::{
    CallId, ClientMessage, CommunicationIdentifier, ErrorCode, MAX_MESSAGE_BYTES, Role,
    ServerMessage, decode, encode,
};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::pstn::{GatewayCommand, GatewayEvent};
use crate::router::PendingRoutes;
use crate::sfu::{MediaCommand, MediaFact};
use crate::switchboard::{Outbound, SessionId, Switchboard, is_phone};
use crate::token::{DEFAULT_TOKEN_TTL, Grant, TokenIssuer};

/// The WebSocket layer refuses frames beyond this; frames between [`MAX_MESSAGE_BYTES`] and this
/// get a typed error reply instead, so an oversized message never costs the connection.
const TRANSPORT_FRAME_LIMIT: usize = 16 * MAX_MESSAGE_BYTES;

/// How many messages may wait for one client's socket. Control messages never drop: a message
/// from another session that finds this many waiting (or a reply that waits past
/// [`REPLY_PATIENCE`]) makes the client too slow, so it gets [`ErrorCode::TooSlow`], its
/// connection closes and it is signed out (its calls see it leave as a lost connection). Only
/// the messages still queued for that closing connection are dropped. Joining a call queues its
/// whole roster at once, one message per participant, so this leaves room for calls of
/// thousands.
const OUTBOX_CAPACITY: usize = 4096;

/// How long a reply to a client's own frame waits for room in its outbox before the client
/// counts as too slow. Replies never find a full outbox "too slow" at once: a client that sends
/// many requests in a burst is read more slowly instead.
const REPLY_PATIENCE: Duration = Duration::from_secs(10);

/// How long a too-slow client gets to take its last frames (the error, then the close) before
/// its socket is dropped.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(10);

/// One signed-in connection's way out: its bounded queue, and the alarm that it fell behind.
struct Outbox {
    messages: mpsc::Sender<ServerMessage>,
    too_slow: Arc<Notify>,
}

/// State shared by every connection task.
pub(crate) struct Shared {
    board: Mutex<Switchboard>,
    outboxes: Mutex<HashMap<SessionId, Outbox>>,
    media: mpsc::Sender<MediaCommand>,
    routes: Arc<PendingRoutes>,
    issuer: TokenIssuer,
    next_session: AtomicU64,
    /// How long a callee rings before the call gives up on it.
    ring_timeout: Duration,
    /// The SIP gateway, when one is configured: it dials phones and hears what the
    /// switchboard tells phone sessions.
    gateway: Option<mpsc::Sender<GatewayCommand>>,
    /// This, for the ring timers it starts.
    me: Weak<Shared>,
}

impl Shared {
    pub(crate) fn new(
        media: mpsc::Sender<MediaCommand>,
        routes: Arc<PendingRoutes>,
        issuer: TokenIssuer,
        ring_timeout: Duration,
        gateway: Option<mpsc::Sender<GatewayCommand>>,
    ) -> Arc<Self> {
        let mut board = Switchboard::default();
        if gateway.is_some() {
            board.enable_phones();
        }
        Arc::new_cyclic(|me| Self {
            board: Mutex::new(board),
            outboxes: Mutex::new(HashMap::new()),
            media,
            routes,
            issuer,
            next_session: AtomicU64::new(1),
            ring_timeout,
            gateway,
            me: me.clone(),
        })
    }

    /// The session a user is signed in on.
    pub(crate) fn session_of(&self, user: &CommunicationIdentifier) -> Option<SessionId> {
        self.board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .session_of(user)
    }

    /// Runs `f` on the switchboard and applies its effects while still holding the lock, so
    /// every client sees messages in the order the switchboard decided them. Nothing here
    /// waits: messages go to bounded outboxes with `try_send`, routes to [`PendingRoutes`].
    fn with_board<T>(&self, f: impl FnOnce(&mut Switchboard) -> (T, Vec<Outbound>)) -> T {
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        let (result, effects) = f(&mut board);
        let mut outboxes = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        for effect in effects {
            match effect {
                Outbound::Send(session, message) if is_phone(session) => {
                    self.to_gateway(GatewayCommand::Message { session, message });
                }
                Outbound::Dial {
                    call_id,
                    session,
                    number,
                } => self.to_gateway(GatewayCommand::Dial {
                    call_id,
                    session,
                    number,
                }),
                Outbound::Send(session, message) => {
                    // A closed outbox is a connection that is going away; it signs out next.
                    let full = outboxes.get(&session).is_some_and(|outbox| {
                        matches!(
                            outbox.messages.try_send(message),
                            Err(TrySendError::Full(_))
                        )
                    });
                    // The connection task hears the alarm, then closes and signs out; with its
                    // outbox gone, nothing more is queued for it meanwhile.
                    if full && let Some(outbox) = outboxes.remove(&session) {
                        tracing::warn!("session {session} does not read its messages; closing it");
                        outbox.too_slow.notify_one();
                    }
                }
                Outbound::Route { call_id, members } => self.routes.set_route(call_id, members),
                Outbound::VideoRoute { to, slot, from } => self.routes.set_video(to, slot, from),
                Outbound::Bot { session, present } => self.routes.set_bot(session, present),
                Outbound::RingTimer { call_id, session } => self.ring_timer(call_id, session),
            }
        }
        result
    }

    /// Hands the gateway a command. Its queue is read by one task that never waits on the
    /// network, so a full one means the gateway is stuck: said loudly, and the command dropped.
    fn to_gateway(&self, command: GatewayCommand) {
        if let Some(gateway) = &self.gateway
            && let Err(e) = gateway.try_send(command)
        {
            tracing::error!("the SIP gateway does not take commands ({e}); one is dropped");
        }
    }

    /// Applies what the gateway hears from phones until it stops.
    pub(crate) async fn relay_phones(self: Arc<Self>, mut events: mpsc::Receiver<GatewayEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                GatewayEvent::Progress(session, progress) => {
                    self.with_board(|b| ((), b.phone_progress(session, progress)));
                }
                GatewayEvent::DialIn {
                    caller,
                    display_name,
                    target,
                    commands,
                    reply,
                } => {
                    let result = self.with_board(|b| {
                        let (result, out) = b.phone_dials_in(caller, display_name, target);
                        // Registered before the effects below reach the gateway.
                        if let Ok(session) = result {
                            self.to_gateway(GatewayCommand::Register { session, commands });
                        }
                        (result, out)
                    });
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Gives up on `session` ringing in the call after the ring timeout. One sleeping task per
    /// ringing callee; a callee that answered meanwhile makes it a no-op.
    fn ring_timer(&self, call_id: CallId, session: SessionId) {
        let (Some(me), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(me.ring_timeout).await;
            me.with_board(|b| ((), b.ring_timeout(&call_id, session)));
        });
    }

    /// Applies the media loop's facts until it stops.
    pub(crate) async fn relay_facts(self: Arc<Self>, mut facts: mpsc::Receiver<MediaFact>) {
        while let Some(fact) = facts.recv().await {
            match fact {
                MediaFact::Speaking { session, speaking } => {
                    self.with_board(|b| ((), b.set_speaking(session, speaking)));
                }
                MediaFact::DominantSpeakers {
                    call_id,
                    speakers,
                    slots,
                } => {
                    self.with_board(|b| ((), b.set_dominant(&call_id, speakers, slots)));
                }
            }
        }
    }
}

/// The HTTP routes: `/ws` for signaling, the web client at `/` ([`crate::web`]), and
/// `/dev/token` when development tokens are on.
pub(crate) fn router(shared: Arc<Shared>, dev_tokens: bool) -> axum::Router {
    let router = crate::web::routes(axum::Router::new().route("/ws", get(upgrade)));
    let router = if dev_tokens {
        router.route("/dev/token", get(dev_token))
    } else {
        router
    };
    router.with_state(shared)
}

#[derive(Deserialize)]
struct TokenQuery {
    user: String,
    role: Option<String>,
}

/// `GET /dev/token?user=8:acs:alice[&role=organizer]`: a fresh token for that user, as JSON.
async fn dev_token(State(shared): State<Arc<Shared>>, Query(q): Query<TokenQuery>) -> Response {
    let role = match q.role.as_deref().map(str::parse::<Role>).transpose() {
        Ok(role) => role.unwrap_or_default(),
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    match q.user.parse::<CommunicationIdentifier>() {
        Ok(user @ CommunicationIdentifier::CommunicationUser(_)) => Json(
            shared
                .issuer
                .issue_with_role(&user, role, DEFAULT_TOKEN_TTL),
        )
        .into_response(),
        Ok(other) => (
            StatusCode::BAD_REQUEST,
            format!("`{other}` cannot sign in: tokens are for communication users (8:acs:<id>)"),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(TRANSPORT_FRAME_LIMIT)
        .on_upgrade(move |socket| connection(socket, shared))
}

/// The client fell behind: its outbox was full.
struct TooSlow;

/// What the read loop does after a frame.
enum Next {
    Read,
    Close,
}

/// Queues a reply to the client's own frame. A full outbox is backpressure: the client's frames
/// are not read until it makes room, for up to [`REPLY_PATIENCE`]; then, or when another
/// session's message found its outbox full meanwhile, it is too slow.
async fn reply(
    outbox: &mpsc::Sender<ServerMessage>,
    too_slow: &Notify,
    message: ServerMessage,
) -> Result<(), TooSlow> {
    tokio::select! {
        // An error means the writer saw the socket fail; the read side ends next.
        _ = outbox.send(message) => Ok(()),
        _ = too_slow.notified() => Err(TooSlow),
        _ = tokio::time::sleep(REPLY_PATIENCE) => Err(TooSlow),
    }
}

async fn connection(socket: WebSocket, shared: Arc<Shared>) {
    let (sink, mut stream) = socket.split();
    let (outbox, pending) = mpsc::channel::<ServerMessage>(OUTBOX_CAPACITY);
    let (farewell, last_words) = oneshot::channel::<ServerMessage>();
    let writer = tokio::spawn(write(sink, pending, last_words));
    let too_slow = Arc::new(Notify::new());
    let mut session = None;
    let mut slow = false;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = too_slow.notified() => {
                slow = true;
                break;
            }
        };
        let Some(Ok(frame)) = frame else { break };
        match on_frame(&shared, &outbox, &too_slow, &mut session, frame).await {
            // Writers get their turn between frames: a burst of requests from one client must
            // not fill the outboxes of others before their writers run.
            Ok(Next::Read) => tokio::task::yield_now().await,
            Ok(Next::Close) => break,
            Err(TooSlow) => {
                slow = true;
                break;
            }
        }
    }
    if let Some(s) = session {
        shared.with_board(|b| ((), b.sign_out(s)));
        shared
            .outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&s);
        // Fails only when the media loop has stopped, and then there is no peer to remove.
        let _ = shared
            .media
            .send(MediaCommand::RemovePeer { session: s })
            .await;
        tracing::debug!("session {s} signed out");
    }
    if slow {
        let _ = farewell.send(error(
            ErrorCode::TooSlow,
            format!("more than {OUTBOX_CAPACITY} messages waited for this client to read them"),
        ));
    }
    drop(outbox);
    let _ = writer.await;
}

/// Writes queued messages to the socket until every sender is gone or a fatal error went out.
/// A farewell message jumps the queue: it is written (after any frame already on its way) with
/// a close, then the writer stops.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut pending: mpsc::Receiver<ServerMessage>,
    farewell: oneshot::Receiver<ServerMessage>,
) {
    let drain = async {
        while let Some(message) = pending.recv().await {
            let fatal = matches!(&message, ServerMessage::Error { code, .. } if code.is_fatal());
            if sink
                .send(Message::Text(encode(&message).into()))
                .await
                .is_err()
            {
                break;
            }
            if fatal {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    };
    let last = tokio::select! {
        biased;
        // A dropped farewell sender disables this branch; the queue then drains as usual.
        Ok(last) = farewell => Some(last),
        () = drain => None,
    };
    if let Some(last) = last {
        let goodbye = async {
            sink.send(Message::Text(encode(&last).into())).await?;
            sink.send(Message::Close(None)).await
        };
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, goodbye).await;
    }
}

/// Handles one frame of a connection.
async fn on_frame(
    shared: &Shared,
    outbox: &mpsc::Sender<ServerMessage>,
    too_slow: &Arc<Notify>,
    session: &mut Option<SessionId>,
    frame: Message,
) -> Result<Next, TooSlow> {
    let text = match frame {
        Message::Text(text) => text,
        Message::Binary(_) => {
            reply(
                outbox,
                too_slow,
                error(
                    ErrorCode::MalformedMessage,
                    "binary frames are not signaling",
                ),
            )
            .await?;
            return Ok(Next::Read);
        }
        Message::Close(_) => return Ok(Next::Close),
        Message::Ping(_) | Message::Pong(_) => return Ok(Next::Read),
    };
    let message = match decode::<ClientMessage>(text.as_str()) {
        Ok(m) => m,
        Err(e) => {
            reply(outbox, too_slow, error(e.code(), e.to_string())).await?;
            return Ok(Next::Read);
        }
    };
    match (*session, message) {
        (
            None,
            ClientMessage::Hello {
                token,
                display_name,
            },
        ) => match sign_in(shared, outbox, too_slow, &token, display_name) {
            Ok(s) => *session = Some(s),
            Err(refusal) => {
                reply(outbox, too_slow, refusal).await?;
                return Ok(Next::Close);
            }
        },
        (Some(_), ClientMessage::Hello { .. }) => {
            reply(
                outbox,
                too_slow,
                error(ErrorCode::BadRequest, "already signed in"),
            )
            .await?;
        }
        (None, _) => {
            reply(
                outbox,
                too_slow,
                error(ErrorCode::NotSignedIn, "send `hello` with a token first"),
            )
            .await?;
        }
        (Some(s), ClientMessage::Offer { sdp }) => {
            let (reply_to, answer) = oneshot::channel();
            // Waiting for room in the media loop's queue reads this client more slowly.
            let _ = shared
                .media
                .send(MediaCommand::AddPeer {
                    session: s,
                    offer: sdp,
                    reply: reply_to,
                })
                .await;
            let message = match answer.await {
                Ok(Ok(sdp)) => ServerMessage::Answer { sdp },
                Ok(Err(why)) => error(ErrorCode::BadRequest, why),
                Err(_) => error(ErrorCode::BadRequest, "the media service is shutting down"),
            };
            reply(outbox, too_slow, message).await?;
        }
        (Some(s), ClientMessage::IceCandidate { candidate }) => {
            let _ = shared
                .media
                .send(MediaCommand::RemoteCandidate {
                    session: s,
                    candidate,
                })
                .await;
        }
        (Some(s), request) => {
            if let Err(refusal) = shared.with_board(|b| match b.handle(s, request) {
                Ok(effects) => (Ok(()), effects),
                Err(refusal) => (Err(refusal), Vec::new()),
            }) {
                reply(outbox, too_slow, error(refusal.code, refusal.message)).await?;
            }
        }
    }
    Ok(Next::Read)
}

fn sign_in(
    shared: &Shared,
    outbox: &mpsc::Sender<ServerMessage>,
    too_slow: &Arc<Notify>,
    token: &str,
    display_name: String,
) -> Result<SessionId, ServerMessage> {
    if token.is_empty() {
        return Err(error(ErrorCode::MissingToken, "no access token was given"));
    }
    let Grant { user, role } = shared
        .issuer
        .verify(token)
        .map_err(|e| error(e.code(), e.to_string()))?;
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    // The first message of a fresh connection: its outbox has room.
    let _ = outbox.try_send(ServerMessage::Welcome { user: user.clone() });
    shared
        .outboxes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            session,
            Outbox {
                messages: outbox.clone(),
                too_slow: too_slow.clone(),
            },
        );
    tracing::debug!("session {session} signed in as {user} ({role})");
    shared.with_board(|b| (b.sign_in(session, user, role, display_name), Vec::new()));
    Ok(session)
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
    }
}
