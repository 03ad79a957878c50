//! The SFU: one task owns the UDP socket and every client's str0m [`Rtc`].
//!
//! Signaling talks to it over a bounded command channel ([`MediaCommand`], [`MEDIA_COMMANDS`])
//! and a table of pending route changes ([`PendingRoutes`]), and hears back over a bounded fact
//! channel ([`MediaFact`], [`MEDIA_FACTS`]); `bridge.rs` holds those types. Each datagram is
//! routed to its peer (a source-address map, with `Rtc::accepts` for a peer's first packet);
//! each received packet goes out as the copies the [`Forwarder`] decides, plain data that names
//! each leg's receiver, slot, sequence number and timestamp.

mod bots;
mod bridge;
mod forwarding;
mod phones;
mod sender;
mod speaking;

pub use bridge::{MEDIA_COMMANDS, MEDIA_FACTS, MediaCommand, MediaFact, PeerTraffic, Traffic};
use forwarding::Media;
pub use phones::{PHONE_QUEUE, PhoneFrame, SlotAudio};
pub use sender::{Outbox, SEND_QUEUE};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use call_protocol::{AUDIO_SLOTS, CallId, MediaType, VIDEO_SLOTS};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, RtpPacket};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::echo::EchoBot;
use crate::forward::{Forwarder, Source};
use crate::router::PendingRoutes;
use crate::switchboard::SessionId;

/// The least time between two keyframe requests to one publisher.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);
/// The longest the loop sleeps when no peer asks for an earlier wake-up.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// How many more waiting datagrams one wake-up of the loop takes from the socket.
const RECEIVE_BATCH: usize = 64;

/// One kind of media of a peer: the m-lines it sends on, and its receive slots.
#[derive(Default)]
struct Lane {
    /// The client's send-only lines, in offer order: audio has the microphone; video has the
    /// camera, then the screen share ([`VIDEO_SENDS`]).
    send: Vec<Mid>,
    recv: Vec<Mid>,
}

/// What a client's video send lines carry, in offer order.
const VIDEO_SENDS: [MediaType; 2] = [MediaType::Video, MediaType::ScreenSharing];

impl Lane {
    fn add(&mut self, direction: Direction, mid: Mid, max_slots: usize) {
        match direction {
            // str0m's view is the reverse of the client's: the client's send-only line is ours to receive.
            Direction::RecvOnly if self.send.len() < VIDEO_SENDS.len() => self.send.push(mid),
            Direction::SendOnly if self.recv.len() < max_slots => self.recv.push(mid),
            _ => {}
        }
    }
}

struct Peer {
    rtc: Rtc,
    audio: Lane,
    video: Lane,
    last_speech: Option<Instant>,
    /// Whether signaling was last told this peer speaks.
    reported_speaking: bool,
    /// When each of its video streams was last asked for a keyframe.
    last_keyframe_request: [Option<Instant>; VIDEO_SENDS.len()],
    /// When its entry in the loop's timer queue wakes it, if it has one.
    wake: Option<Instant>,
    /// Packets were written to it that [`Sfu::flush`] has not sent yet.
    written: bool,
}

/// The media loop's state. Runs on one task; nothing in it is shared but the sending thread's
/// queue.
pub struct Sfu {
    /// Receives; datagrams leave through `outbox`, on a clone of it.
    socket: UdpSocket,
    outbox: Outbox,
    /// The address clients reach the socket at: the host candidate, and so the destination of
    /// every received datagram as str0m sees it.
    advertised: SocketAddr,
    peers: HashMap<SessionId, Peer>,
    /// When each peer must be driven next, earliest first ([`Sfu::schedule`]).
    timers: BinaryHeap<Reverse<(Instant, SessionId)>>,
    /// Receivers with packets written this turn, for [`Sfu::flush`].
    written: Vec<SessionId>,
    by_addr: HashMap<SocketAddr, SessionId>,
    forwarder: Forwarder,
    routes: Arc<PendingRoutes>,
    facts: mpsc::Sender<MediaFact>,
    /// One DTLS certificate for every peer, made once: generating one per peer cost ~30 ms of
    /// each client's sign-in.
    cert: Option<DtlsCert>,
    /// The peer whose `Rtc` is being driven, so a str0m panic drops that peer alone.
    current: Option<SessionId>,
    traffic: Traffic,
    /// The echo bots, which have no peer ([`bots`]).
    bots: HashMap<SessionId, EchoBot>,
    /// The phones' legs, which have no peer ([`phones`]): where their forwarded voices go.
    phones: HashMap<SessionId, mpsc::Sender<SlotAudio>>,
    /// The bots' spoken prompt, encoded once.
    prompt: Arc<[Bytes]>,
    /// Each call's dominant speakers and voice slots as signaling last heard them.
    dominant: HashMap<CallId, (Vec<SessionId>, Vec<Option<SessionId>>)>,
    /// Calls whose dominant speakers changed while the fact channel was full.
    dominant_unreported: HashSet<CallId>,
}

impl Sfu {
    /// A loop receiving on `socket` and sending through `outbox` (a sending thread on a clone of
    /// it), reached by clients at `advertised`, a concrete address. str0m matches STUN requests
    /// against the host candidate it advertises, so that address is both the candidate and the
    /// destination of every datagram received, wherever the socket is bound (`0.0.0.0`, or a
    /// container address behind NAT).
    pub fn new(
        socket: UdpSocket,
        outbox: Outbox,
        advertised: SocketAddr,
        routes: Arc<PendingRoutes>,
        facts: mpsc::Sender<MediaFact>,
        traffic: Traffic,
    ) -> Self {
        Self {
            socket,
            outbox,
            advertised,
            peers: HashMap::new(),
            timers: BinaryHeap::new(),
            written: Vec::new(),
            by_addr: HashMap::new(),
            forwarder: Forwarder::default(),
            routes,
            facts,
            cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
            current: None,
            traffic,
            bots: HashMap::new(),
            phones: HashMap::new(),
            prompt: crate::echo::encode_prompt().unwrap_or_else(|e| {
                tracing::error!("the echo bot's prompt did not encode ({e}); bots start silent");
                Arc::from([])
            }),
            dominant: HashMap::new(),
            dominant_unreported: HashSet::new(),
        }
    }

    /// Runs one step of the loop. str0m panics on its own internal bugs by design (its README
    /// suggests catching them); such a panic drops the peer being driven, not the media loop.
    fn guarded<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.current = None;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self))) {
            Ok(value) => Some(value),
            Err(_) => {
                match self.current.take() {
                    Some(session) => {
                        tracing::error!(
                            "str0m panicked driving session {session}'s peer; dropping it"
                        );
                        self.forget(session);
                    }
                    None => tracing::error!("str0m panicked outside any one peer"),
                }
                None
            }
        }
    }

    /// Runs until the command channel closes.
    pub async fn run(mut self, mut commands: mpsc::Receiver<MediaCommand>) {
        let mut buf = vec![0u8; 2000];
        let routes = self.routes.clone();
        loop {
            let deadline = self.guarded(Self::drive_due).unwrap_or_else(Instant::now);
            let deadline = self.bots_wake().map_or(deadline, |wake| wake.min(deadline));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => {
                        self.guarded(|sfu| sfu.receive(source, &buf[..n]));
                        // Take what else waits on the socket before the timers and channels.
                        for _ in 0..RECEIVE_BATCH {
                            let Ok((n, source)) = self.socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            self.guarded(|sfu| sfu.receive(source, &buf[..n]));
                        }
                    }
                    Err(e) => tracing::debug!("media socket receive failed: {e}"),
                },
                command = commands.recv() => match command {
                    Some(c) => {
                        // Routes decided before this command was sent apply first.
                        self.guarded(Self::apply_routes);
                        self.guarded(|sfu| sfu.command(c));
                    }
                    None => break,
                },
                _ = routes.changed() => {
                    self.guarded(Self::apply_routes);
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            self.guarded(Self::tick_bots);
            // Until flushed, nothing a receiver is owed leaves; a panic mid-way drops that peer
            // and the next call goes on with the rest.
            while !self.written.is_empty() {
                self.guarded(Self::flush);
            }
            self.guarded(Self::report_unreported);
        }
        tracing::info!("media loop stopped");
    }

    fn command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::AddPeer {
                session,
                offer,
                reply,
            } => {
                let result = self.add_peer(session, &offer);
                // The signaling task may have gone; then nobody waits for the answer.
                let _ = reply.send(result);
            }
            MediaCommand::RemoteCandidate { session, candidate } => {
                self.current = Some(session);
                let line = candidate.trim_start_matches("a=");
                match (
                    self.peers.get_mut(&session),
                    Candidate::from_sdp_string(line),
                ) {
                    (Some(peer), Ok(c)) => peer.rtc.add_remote_candidate(c),
                    (_, Err(e)) => tracing::debug!("ignoring candidate `{line}`: {e}"),
                    (None, _) => {}
                }
            }
            MediaCommand::AddPhone { session, audio } => self.add_phone(session, audio),
            MediaCommand::PhoneAudio { session, frame } => self.phone_audio(session, frame),
            MediaCommand::RemovePeer { session } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.rtc.disconnect();
                }
                self.forget(session);
            }
        }
    }

    /// Applies the route changes signaling made since the last call.
    fn apply_routes(&mut self) {
        let updates = self.routes.take();
        for (session, present) in updates.bots {
            self.set_bot(session, present);
        }
        for (call_id, members) in updates.calls {
            // One who joins or resumes from hold can only start decoding at keyframes, and the
            // others' decoders of its streams too.
            for session in self
                .forwarder
                .router_mut()
                .set_route(call_id.clone(), members)
            {
                for stream in self.forwarder.router().video_streams_of(session) {
                    self.request_keyframe(stream);
                }
            }
            self.report_dominant(call_id);
        }
        for ((to, slot), from) in updates.video {
            self.forwarder.set_video(to, slot, from);
            // A new subscriber can only start decoding at a keyframe.
            if let Some(from) = from {
                self.request_keyframe(from);
            }
        }
    }

    fn add_peer(&mut self, session: SessionId, offer: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| format!("bad offer SDP: {e}"))?;
        // ICE-lite, as a server with a known address: the client (full ICE, controlling) checks
        // and nominates. A full agent here would send its first check before the client has the
        // answer; the client drops it, and the retransmission ~250 ms later gates DTLS.
        // Header extensions: audio levels (who speaks) and the ones that name streams. No
        // transport-wide sequence numbers: the SFU estimates no bandwidth, and with them every
        // receiver would send feedback for every packet it gets, for nothing.
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(4, Extension::RtpMid)
            .set_extension(10, Extension::RtpStreamId)
            .set_extension(11, Extension::RepairedRtpStreamId);
        // One H.264: Constrained Baseline, packetization-mode 1 (str0m's numbers for it). With
        // str0m's whole H.264 list a browser offering its own order (Baseline 42001f, Main,
        // High first) got one of those in the answer, which the Rust clients neither offer nor
        // decode (openh264); now every offer lands on the one all clients decode.
        config
            .codec_config()
            .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
        if let Some(cert) = &self.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let mut rtc = config.build(Instant::now());
        let host = Candidate::host(self.advertised, "udp")
            .map_err(|e| format!("bad host candidate: {e}"))?;
        rtc.add_local_candidate(host);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("offer not accepted: {e}"))?;
        // Owning the Rtc before the answer leaves means the client's first STUN finds its peer.
        if let Some(mut old) = self.peers.insert(
            session,
            Peer {
                rtc,
                audio: Lane::default(),
                video: Lane::default(),
                last_speech: None,
                reported_speaking: false,
                last_keyframe_request: [None; VIDEO_SENDS.len()],
                wake: None,
                written: false,
            },
        ) {
            old.rtc.disconnect();
        }
        // A new peer has new streams: its legs start afresh once it connects.
        self.forwarder.close(session);
        self.by_addr.retain(|_, s| *s != session);
        self.schedule(session, Instant::now());
        Ok(answer.to_sdp_string())
    }

    fn receive(&mut self, source: SocketAddr, datagram: &[u8]) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.advertised, datagram) else {
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        let session = match self.by_addr.get(&source) {
            Some(&s) => Some(s),
            None => {
                let found = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(&s, _)| s);
                if let Some(s) = found {
                    self.by_addr.insert(source, s);
                }
                found
            }
        };
        let Some(session) = session else {
            tracing::trace!("no peer accepts a datagram from {source}");
            return;
        };
        self.current = Some(session);
        if let Some(peer) = self.peers.get_mut(&session)
            && let Err(e) = peer.rtc.handle_input(input)
        {
            tracing::warn!("peer of session {session} failed: {e}");
            peer.rtc.disconnect();
        }
        // str0m holds one received RTP packet at a time: drain before the next datagram.
        self.drive(session);
    }

    /// Drives the peers whose timers are due (each peer only when its own deadline comes) and
    /// drops the ones that died; returns when the loop must wake next.
    fn drive_due(&mut self) -> Instant {
        let now = Instant::now();
        while let Some(&Reverse((at, session))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&session) else {
                continue;
            };
            if peer.wake != Some(at) {
                // An entry replaced by an earlier one, already driven.
                continue;
            }
            peer.wake = None;
            self.current = Some(session);
            let _ = peer.rtc.handle_input(Input::Timeout(now));
            self.update_speaking(session, now);
            self.drive(session);
            if self.peers.get(&session).is_some_and(|p| !p.rtc.is_alive()) {
                self.forget(session);
            }
        }
        let next = self.timers.peek().map(|r| r.0.0);
        next.map_or(now + IDLE_TICK, |at| at.min(now + IDLE_TICK))
    }

    /// Wakes `session`'s peer at `at`, or sooner if it is due sooner already. At most
    /// [`IDLE_TICK`] ahead, so its speaking state is looked at that often.
    fn schedule(&mut self, session: SessionId, at: Instant) {
        let Some(peer) = self.peers.get_mut(&session) else {
            return;
        };
        let at = at.min(Instant::now() + IDLE_TICK);
        if peer.wake.is_none_or(|wake| at < wake) {
            peer.wake = Some(at);
            self.timers.push(Reverse((at, session)));
        }
    }

    /// Drops a session's peer with everything the loop keeps about it: its addresses, its video
    /// routes (to it, and from it to others) and its traffic counters.
    fn forget(&mut self, session: SessionId) {
        self.peers.remove(&session);
        self.bots.remove(&session);
        self.phones.remove(&session);
        self.by_addr.retain(|_, s| *s != session);
        self.forwarder.forget(session);
        self.traffic.forget(session);
    }

    /// Polls one peer until it only waits for time, sending what it transmits and forwarding
    /// the media it received, and schedules it for its next timeout.
    fn drive(&mut self, session: SessionId) {
        let timeout = self.poll(session);
        self.schedule(session, timeout);
    }

    /// Polls one peer until it only waits for time, sending what it transmits and forwarding
    /// the media it received. Returns its next timeout.
    fn poll(&mut self, session: SessionId) -> Instant {
        self.current = Some(session);
        let mut received = Vec::new();
        let mut keyframe_wanted = Vec::new();
        let timeout = {
            let Some(peer) = self.peers.get_mut(&session) else {
                return Instant::now() + IDLE_TICK;
            };
            loop {
                if !peer.rtc.is_alive() {
                    break Instant::now() + IDLE_TICK;
                }
                match peer.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => self.outbox.send(t.destination, t.contents.into()),
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => self.forwarder.open(
                            session,
                            peer.audio.recv.len(),
                            peer.video.recv.len(),
                        ),
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            peer.rtc.disconnect();
                        }
                        Event::MediaAdded(added) => {
                            match added.kind {
                                MediaKind::Audio => {
                                    peer.audio.add(added.direction, added.mid, AUDIO_SLOTS)
                                }
                                MediaKind::Video => {
                                    peer.video.add(added.direction, added.mid, VIDEO_SLOTS)
                                }
                            }
                            // Lines added after connecting (none today) widen the receiver.
                            if self.forwarder.is_open(session) {
                                self.forwarder.open(
                                    session,
                                    peer.audio.recv.len(),
                                    peer.video.recv.len(),
                                );
                            }
                        }
                        Event::RtpPacket(packet) => {
                            if let Some(mid) = packet_mid(peer, &packet) {
                                if peer.audio.send.contains(&mid) {
                                    received.push((Source::Audio, packet));
                                } else if let Some(i) =
                                    peer.video.send.iter().position(|m| *m == mid)
                                {
                                    received.push((Source::Video(VIDEO_SENDS[i]), packet));
                                }
                            }
                        }
                        Event::KeyframeRequest(request) => {
                            if let Some(slot) =
                                peer.video.recv.iter().position(|m| *m == request.mid)
                            {
                                keyframe_wanted.push(slot);
                            }
                        }
                        _ => {}
                    },
                    Err(e) => {
                        tracing::warn!("peer of session {session} failed: {e}");
                        peer.rtc.disconnect();
                    }
                }
            }
        };
        for (source, packet) in received {
            if source == Source::Audio {
                self.note_level(session, &packet);
            }
            self.forward(session, source, &packet);
        }
        for slot in keyframe_wanted {
            if let Some(from) = self.forwarder.router().video_source(session, slot) {
                self.request_keyframe(from);
            }
        }
        timeout
    }
}

/// The mid a received packet belongs to. str0m maps webrtc-rs audio by its `a=ssrc` lines, so
/// the packet's SSRC finds the receive stream.
fn packet_mid(peer: &mut Peer, packet: &RtpPacket) -> Option<Mid> {
    peer.rtc
        .direct_api()
        .stream_rx(&packet.header.ssrc)
        .map(|rx| rx.mid())
}
