//! One bot: a real WebRTC peer (str0m) that signs in over the signaling protocol, joins the
//! group call, and either speaks (20 ms Opus-sized frames with RFC 6464 levels, as a client's
//! microphone sends them) or only listens, counting every audio frame that arrives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use call_protocol::{AUDIO_SLOTS, CallId, ClientMessage, ServerMessage, decode, encode};
use futures_util::{SinkExt, StreamExt};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

/// A speaker's frame: an Opus TOC byte (CELT, fullband, 20 ms) and 79 bytes, the size of 32 kbit/s
/// voice. The SFU forwards payloads without decoding them.
const FRAME_BYTES: usize = 80;
/// A speaker's level: -20 dBov, voice.
const SPEAKING_LEVEL: i8 = -20;
/// How often a speaker sends.
const FRAME: Duration = Duration::from_millis(20);

/// What one bot did, shared with the tool's report.
#[derive(Debug, Default)]
pub struct BotStats {
    /// Audio frames sent (speakers only).
    pub sent: AtomicU64,
    /// Audio frames received, on any receive slot.
    pub received: AtomicU64,
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
    let mut peer = Peer::offer(plan.local_ip).await?;
    send(
        &mut ws,
        &ClientMessage::Offer {
            sdp: peer.offer.clone(),
        },
    )
    .await?;
    let (mut media_up, mut in_call, mut frame) = (false, false, 0u64);
    let mut next_frame = tokio::time::Instant::now();
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
        let speaking = plan.speaks && in_call && media_up;
        let wake = if speaking {
            wake.min(next_frame.into())
        } else {
            wake
        };
        tokio::select! {
            received = peer.udp.recv_from(&mut buf) => {
                let (n, source) = received.map_err(|e| format!("media socket: {e}"))?;
                peer.receive(source, &buf[..n])?;
            }
            message = next(&mut incoming) => match message? {
                ServerMessage::Answer { sdp } => peer.answer(&sdp)?,
                ServerMessage::CallConnected { .. } => in_call = true,
                ServerMessage::CallEnded { reason, .. } => {
                    return Err(format!("the call ended: {reason}"));
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => return Ok(()),
        }
        if speaking && tokio::time::Instant::now() >= next_frame {
            peer.speak(frame)?;
            stats.sent.fetch_add(1, Ordering::Relaxed);
            frame += 1;
            next_frame += FRAME;
        }
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

/// The bot's str0m peer: one microphone line and [`AUDIO_SLOTS`] receive lines, like a client.
struct Peer {
    rtc: Rtc,
    udp: UdpSocket,
    local: SocketAddr,
    mic: Mid,
    offer: String,
    pending: Option<str0m::change::SdpPendingOffer>,
    joining: bool,
    /// When the peer next wants a timeout input; it gets none before (each costs all of its
    /// timers, far more than the packet that woke the bot).
    wake: Instant,
}

impl Peer {
    async fn offer(ip: IpAddr) -> Result<Self, String> {
        let udp = UdpSocket::bind((ip, 0))
            .await
            .map_err(|e| format!("media socket: {e}"))?;
        let local = udp.local_addr().map_err(|e| e.to_string())?;
        let mut rtc = Rtc::builder().build(Instant::now());
        let host = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(host);
        let mut change = rtc.sdp_api();
        let mic = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        for _ in 0..AUDIO_SLOTS {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().ok_or("no offer")?;
        Ok(Self {
            rtc,
            udp,
            local,
            mic,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
            joining: false,
            wake: Instant::now(),
        })
    }

    fn answer(&mut self, sdp: &str) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("answer: {e}"))?;
        let pending = self.pending.take().ok_or("a second answer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("answer not accepted: {e}"))?;
        // ICE starts checking on the next timeout input.
        self.wake = Instant::now();
        Ok(())
    }

    fn receive(&mut self, source: SocketAddr, datagram: &[u8]) -> Result<(), String> {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, datagram) else {
            return Ok(());
        };
        self.rtc
            .handle_input(Input::Receive(Instant::now(), receive))
            .map_err(|e| format!("peer: {e}"))
    }

    /// Does everything the peer wants done now; returns when it wants to be woken.
    fn drain(&mut self, stats: &BotStats, media_up: &mut bool) -> Result<Instant, String> {
        let now = Instant::now();
        if now >= self.wake {
            self.rtc
                .handle_input(Input::Timeout(now))
                .map_err(|e| format!("peer: {e}"))?;
        }
        loop {
            match self.rtc.poll_output().map_err(|e| format!("peer: {e}"))? {
                Output::Timeout(at) => {
                    self.wake = at;
                    return Ok(at);
                }
                Output::Transmit(t) => {
                    let _ = self.udp.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => *media_up = true,
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => return Err("media disconnected".into()),
                Output::Event(Event::MediaData(_)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Sends one 20 ms frame at the speaking level.
    fn speak(&mut self, frame: u64) -> Result<(), String> {
        let writer = self.rtc.writer(self.mic).ok_or("no microphone line")?;
        let pt = writer
            .payload_params()
            .next()
            .map(|p| p.pt())
            .ok_or("no audio codec")?;
        let time = MediaTime::new(frame * 960, Frequency::FORTY_EIGHT_KHZ);
        let mut payload = vec![0u8; FRAME_BYTES];
        payload[0] = 0xF8;
        writer
            .audio_level(SPEAKING_LEVEL, true)
            .write(pt, Instant::now(), time, payload)
            .map_err(|e| format!("write: {e}"))?;
        // The frame is packetized and sent on the next timeout input.
        self.wake = Instant::now();
        Ok(())
    }
}
