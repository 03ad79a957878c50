//! WebSocket signaling and the development token endpoint, on axum.
//!
//! Each connection is one task: it signs the client in with its token, turns frames into
//! [`Switchboard`] requests or [`MediaCommand`]s, and writes the resulting messages back. Bad
//! frames get an [`ServerMessage::Error`] and the connection stays; only token failures close it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use call_protocol::{
    ClientMessage, CommunicationIdentifier, ErrorCode, MAX_MESSAGE_BYTES, ServerMessage, decode,
    encode,
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::sfu::{MediaCommand, MediaFact};
use crate::switchboard::{Outbound, SessionId, Switchboard};
use crate::token::{DEFAULT_TOKEN_TTL, TokenIssuer};

/// The WebSocket layer refuses frames beyond this; frames between [`MAX_MESSAGE_BYTES`] and this
/// get a typed error reply instead, so an oversized message never costs the connection.
const TRANSPORT_FRAME_LIMIT: usize = 16 * MAX_MESSAGE_BYTES;

/// State shared by every connection task.
pub(crate) struct Shared {
    board: Mutex<Switchboard>,
    outboxes: Mutex<HashMap<SessionId, mpsc::UnboundedSender<ServerMessage>>>,
    media: mpsc::UnboundedSender<MediaCommand>,
    issuer: TokenIssuer,
    next_session: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        media: mpsc::UnboundedSender<MediaCommand>,
        issuer: TokenIssuer,
    ) -> Arc<Self> {
        Arc::new(Self {
            board: Mutex::new(Switchboard::default()),
            outboxes: Mutex::new(HashMap::new()),
            media,
            issuer,
            next_session: AtomicU64::new(1),
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
    /// every client sees messages in the order the switchboard decided them.
    fn with_board<T>(&self, f: impl FnOnce(&mut Switchboard) -> (T, Vec<Outbound>)) -> T {
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        let (result, effects) = f(&mut board);
        let outboxes = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
        for effect in effects {
            match effect {
                Outbound::Send(session, message) => {
                    if let Some(outbox) = outboxes.get(&session) {
                        // A closed outbox is a connection that is going away; it signs out next.
                        let _ = outbox.send(message);
                    }
                }
                Outbound::Route { call_id, members } => {
                    let _ = self.media.send(MediaCommand::SetRoute { call_id, members });
                }
                Outbound::VideoRoute { to, slot, from } => {
                    let _ = self
                        .media
                        .send(MediaCommand::SetVideoRoute { to, slot, from });
                }
            }
        }
        result
    }

    /// Applies the media loop's facts until it stops.
    pub(crate) async fn relay_facts(
        self: Arc<Self>,
        mut facts: mpsc::UnboundedReceiver<MediaFact>,
    ) {
        while let Some(fact) = facts.recv().await {
            match fact {
                MediaFact::Speaking { session, speaking } => {
                    self.with_board(|b| ((), b.set_speaking(session, speaking)));
                }
            }
        }
    }
}

/// The HTTP routes: `/ws` for signaling, and `/dev/token` when development tokens are on.
pub(crate) fn router(shared: Arc<Shared>, dev_tokens: bool) -> axum::Router {
    let router = axum::Router::new().route("/ws", get(upgrade));
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
}

/// `GET /dev/token?user=8:acs:alice`: a fresh token for that user, as JSON.
async fn dev_token(State(shared): State<Arc<Shared>>, Query(q): Query<TokenQuery>) -> Response {
    match q.user.parse::<CommunicationIdentifier>() {
        Ok(user @ CommunicationIdentifier::CommunicationUser(_)) => {
            Json(shared.issuer.issue(&user, DEFAULT_TOKEN_TTL)).into_response()
        }
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

async fn connection(socket: WebSocket, shared: Arc<Shared>) {
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut pending) = mpsc::unbounded_channel::<ServerMessage>();
    let writer = tokio::spawn(async move {
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
    });
    let mut session = None;
    while let Some(Ok(frame)) = stream.next().await {
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let _ = outbox.send(error(
                    ErrorCode::MalformedMessage,
                    "binary frames are not signaling",
                ));
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let message = match decode::<ClientMessage>(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                let _ = outbox.send(error(e.code(), e.to_string()));
                continue;
            }
        };
        match (session, message) {
            (
                None,
                ClientMessage::Hello {
                    token,
                    display_name,
                },
            ) => match sign_in(&shared, &outbox, &token, display_name) {
                Ok(s) => session = Some(s),
                Err(refusal) => {
                    let _ = outbox.send(refusal);
                    break;
                }
            },
            (Some(_), ClientMessage::Hello { .. }) => {
                let _ = outbox.send(error(ErrorCode::BadRequest, "already signed in"));
            }
            (None, _) => {
                let _ = outbox.send(error(
                    ErrorCode::NotSignedIn,
                    "send `hello` with a token first",
                ));
            }
            (Some(s), ClientMessage::Offer { sdp }) => {
                let (reply, answer) = oneshot::channel();
                let _ = shared.media.send(MediaCommand::AddPeer {
                    session: s,
                    offer: sdp,
                    reply,
                });
                let message = match answer.await {
                    Ok(Ok(sdp)) => ServerMessage::Answer { sdp },
                    Ok(Err(why)) => error(ErrorCode::BadRequest, why),
                    Err(_) => error(ErrorCode::BadRequest, "the media service is shutting down"),
                };
                let _ = outbox.send(message);
            }
            (Some(s), ClientMessage::IceCandidate { candidate }) => {
                let _ = shared.media.send(MediaCommand::RemoteCandidate {
                    session: s,
                    candidate,
                });
            }
            (Some(s), request) => {
                if let Err(refusal) = shared.with_board(|b| match b.handle(s, request) {
                    Ok(effects) => (Ok(()), effects),
                    Err(refusal) => (Err(refusal), Vec::new()),
                }) {
                    let _ = outbox.send(error(refusal.code, refusal.message));
                }
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
        let _ = shared.media.send(MediaCommand::RemovePeer { session: s });
        tracing::debug!("session {s} signed out");
    }
    drop(outbox);
    let _ = writer.await;
}

fn sign_in(
    shared: &Shared,
    outbox: &mpsc::UnboundedSender<ServerMessage>,
    token: &str,
    display_name: String,
) -> Result<SessionId, ServerMessage> {
    if token.is_empty() {
        return Err(error(ErrorCode::MissingToken, "no access token was given"));
    }
    let user = shared
        .issuer
        .verify(token)
        .map_err(|e| error(e.code(), e.to_string()))?;
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    shared
        .outboxes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(session, outbox.clone());
    let _ = outbox.send(ServerMessage::Welcome { user: user.clone() });
    tracing::debug!("session {session} signed in as {user}");
    shared.with_board(|b| (b.sign_in(session, user, display_name), Vec::new()));
    Ok(session)
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
    }
}
