//! One bot: a real WebRTC peer (str0m) that signs in over the signaling protocol, joins the
//! group call, and either speaks (20 ms Opus-sized frames with RFC 6464 levels, as a client's
//! microphone sends them) or only listens, counting every audio frame that arrives.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use call_protocol::{
    CallId, ClientMessage, CommunicationIdentifier, MediaType, ParticipantState, ServerMessage,
    decode, encode,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::peer::Peer;

/// How often a speaker sends.
const FRAME: Duration = Duration::from_millis(20);
/// How often a camera sends (15 frames per second).
const VIDEO_FRAME: Duration = Duration::from_micros(66_667);

/// What one bot did, shared with the tool's report.
#[derive(Debug, Default)]
pub struct BotStats {
    /// Audio frames sent (speakers only).
    pub sent: AtomicU64,
    /// Audio frames received, on any receive slot.
    pub received: AtomicU64,
    /// Video frames sent (cameras only).
    pub video_sent: AtomicU64,
    /// Video frames received, from every camera it watches.
    pub video_received: AtomicU64,
    /// Microseconds from the bot's start to being in the call with media up; 0 until then.
    pub joined_us: AtomicU64,
}

impl BotStats {
    /// When the bot joined, if it has.
    pub fn joined(&self) -> Option<Duration> {
        match self.joined_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

/// How a bot signs in and what it does.
#[derive(Clone, Debug)]
pub struct BotPlan {
    /// The signaling URL.
    pub url: String,
    /// Its access token.
    pub token: String,
    /// Its display name.
    pub name: String,
    /// The group call to join.
    pub group: CallId,
    /// Whether it speaks.
    pub speaks: bool,
    /// Whether it sends camera video.
    pub sends_video: bool,
    /// Whose cameras it watches (subscribes to once they are in the call).
    pub watches: Vec<CommunicationIdentifier>,
    /// The local address its media socket binds.
    pub local_ip: IpAddr,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type WsSink = futures_util::stream::SplitSink<Ws, Message>;

/// Reads the signaling socket on a task of its own and hands the messages over: polling a
/// WebSocket stream inside the media loop's `select!` costs a read attempt (and a zeroed read
/// buffer) on every turn, which was a quarter of a bot's CPU.
fn read_signaling(ws: Ws) -> (WsSink, mpsc::Receiver<Result<ServerMessage, String>>) {
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let message = match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    decode(text.as_str()).map_err(|e| format!("bad server frame: {e}"))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => Err(format!("signaling: {e}")),
                None => Err("signaling closed".into()),
            };
            let last = message.is_err();
            if tx.send(message).await.is_err() || last {
                return;
            }
        }
    });
    (sink, rx)
}

/// Runs a bot until `stop` turns true; an error says why it gave up. `permit` is held until
/// the bot is in the call, so only so many bots sign in at once.
pub async fn run(
    plan: BotPlan,
    stats: Arc<BotStats>,
    mut stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) -> Result<(), String> {
    let mut permit = Some(permit);
    let start = Instant::now();
    let (ws, _) = tokio_tungstenite::connect_async(plan.url.as_str())
        .await
        .map_err(|e| format!("signaling connect: {e}"))?;
    let (mut ws, mut incoming) = read_signaling(ws);
    send(
        &mut ws,
        &ClientMessage::Hello {
            token: plan.token.clone(),
            display_name: plan.name.clone(),
        },
    )
    .await?;
    match next(&mut incoming).await? {
        ServerMessage::Welcome { .. } => {}
        other => return Err(format!("sign-in answered with {other:?}")),
    }
    let mut peer = Peer::offer(plan.local_ip, plan.sends_video, plan.watches.len()).await?;
    send(
        &mut ws,
        &ClientMessage::Offer {
            sdp: peer.offer.clone(),
        },
    )
    .await?;
    let (mut media_up, mut in_call) = (false, false);
    let mut audio = plan.speaks.then(|| Ticker::new(FRAME));
    let mut video = plan.sends_video.then(|| Ticker::new(VIDEO_FRAME));
    let mut watching = Vec::new();
    let mut buf = vec![0u8; 2000];
    loop {
        if media_up && in_call && stats.joined_us.load(Ordering::Relaxed) == 0 {
            let us = start.elapsed().as_micros().max(1) as u64;
            stats.joined_us.store(us, Ordering::Relaxed);
            permit.take();
        }
        let wake = peer.drain(&stats, &mut media_up)?;
        if media_up && !peer.joining {
            peer.joining = true;
            let call_id = plan.group.clone();
            send(&mut ws, &ClientMessage::JoinGroup { call_id }).await?;
        }
        let sending = in_call && media_up;
        let wake = [&audio, &video]
            .into_iter()
            .flatten()
            .filter(|_| sending)
            .fold(wake, |wake, t| wake.min(t.next));
        tokio::select! {
            received = peer.udp.recv_from(&mut buf) => {
                let (n, source) = received.map_err(|e| format!("media socket: {e}"))?;
                peer.receive(source, &buf[..n])?;
            }
            message = next(&mut incoming) => match message? {
                ServerMessage::Answer { sdp } => peer.answer(&sdp)?,
                ServerMessage::CallConnected { call_id } => {
                    in_call = true;
                    if plan.sends_video {
                        let media_type = MediaType::Video;
                        let on = ClientMessage::SetVideo { call_id, media_type, on: true, stopped: None };
                        send(&mut ws, &on).await?;
                    }
                }
                ServerMessage::ParticipantUpdated { call_id, participant }
                    if participant.state == ParticipantState::Connected
                        && plan.watches.contains(&participant.id)
                        && !watching.contains(&participant.id) =>
                {
                    watching.push(participant.id.clone());
                    let subscribe = ClientMessage::Subscribe {
                        call_id,
                        participant: participant.id,
                        media_type: MediaType::Video,
                    };
                    send(&mut ws, &subscribe).await?;
                }
                ServerMessage::CallEnded { reason, .. } => {
                    return Err(format!("the call ended: {reason}"));
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => return Ok(()),
        }
        if !sending {
            continue;
        }
        if let Some(frame) = audio.as_mut().and_then(Ticker::due) {
            peer.speak(frame)?;
            stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(frame) = video.as_mut().and_then(Ticker::due) {
            peer.show(frame)?;
            stats.video_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A sender's clock: when its next frame is due, and how many it sent.
struct Ticker {
    period: Duration,
    next: Instant,
    frames: u64,
}

impl Ticker {
    fn new(period: Duration) -> Self {
        Self {
            period,
            next: Instant::now(),
            frames: 0,
        }
    }

    /// The number of the frame to send now, if one is due.
    fn due(&mut self) -> Option<u64> {
        if Instant::now() < self.next {
            return None;
        }
        self.next += self.period;
        self.frames += 1;
        Some(self.frames - 1)
    }
}

async fn send(ws: &mut WsSink, message: &ClientMessage) -> Result<(), String> {
    ws.send(Message::Text(encode(message).into()))
        .await
        .map_err(|e| format!("signaling send: {e}"))
}

async fn next(
    incoming: &mut mpsc::Receiver<Result<ServerMessage, String>>,
) -> Result<ServerMessage, String> {
    incoming
        .recv()
        .await
        .unwrap_or_else(|| Err("signaling closed".into()))
}
