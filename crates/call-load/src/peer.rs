//! A bot's WebRTC side: a str0m peer in RTP mode (it counts packets and sends ready frames, so
//! it needs no depacketizer or jitter buffer) on a socket of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use call_protocol::{AUDIO_SLOTS, VIDEO_SLOTS};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::bot::BotStats;

/// A speaker's frame: an Opus TOC byte (CELT, fullband, 20 ms) and 79 bytes, the size of 32 kbit/s
/// voice. The SFU forwards payloads without decoding them.
const FRAME_BYTES: usize = 80;
/// A video frame's size.
const VIDEO_FRAME_BYTES: usize = 1200;
/// A speaker's level: -20 dBov, voice.
const SPEAKING_LEVEL: i8 = -20;
/// Each bot's socket receive buffer, in bytes.
const RECEIVE_BUFFER: usize = 256 << 10;

/// The bot's str0m peer: one microphone line and [`AUDIO_SLOTS`] receive lines, like a client,
/// and a camera line and video receive lines when it sends or watches video.
pub struct Peer {
    rtc: Rtc,
    /// Its media socket.
    pub udp: UdpSocket,
    local: SocketAddr,
    mic: Mid,
    camera: Option<Mid>,
    /// The offer SDP.
    pub offer: String,
    pending: Option<str0m::change::SdpPendingOffer>,
    /// It asked to join the call.
    pub joining: bool,
    /// When the peer next wants a timeout input; it gets none before (each costs all of its
    /// timers, far more than the packet that woke the bot).
    wake: Instant,
    /// The SFU asked for a keyframe (or nothing was sent yet): the next video frame is one.
    keyframe_wanted: bool,
}

impl Peer {
    /// A peer on `ip` with its offer: a camera line if it `sends_video`, and `watches` video
    /// receive lines.
    pub async fn offer(ip: IpAddr, sends_video: bool, watches: usize) -> Result<Self, String> {
        let udp = UdpSocket::bind((ip, 0))
            .await
            .map_err(|e| format!("media socket: {e}"))?;
        // Room for a second of audio while the bots' thread waits for a core the service uses:
        // what the tool measures is the service's loss, not its own scheduling.
        socket2::SockRef::from(&udp)
            .set_recv_buffer_size(RECEIVE_BUFFER)
            .map_err(|e| format!("media socket buffer: {e}"))?;
        let local = udp.local_addr().map_err(|e| e.to_string())?;
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false);
        // The one H.264 the service forwards: Constrained Baseline, packetization-mode 1.
        config
            .codec_config()
            .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
        let mut rtc = config.build(Instant::now());
        let host = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(host);
        let mut change = rtc.sdp_api();
        let mic = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        for _ in 0..AUDIO_SLOTS {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let camera = sends_video
            .then(|| change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        for _ in 0..watches.min(VIDEO_SLOTS) {
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().ok_or("no offer")?;
        Ok(Self {
            rtc,
            udp,
            local,
            mic,
            camera,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
            joining: false,
            wake: Instant::now(),
            keyframe_wanted: true,
        })
    }

    /// Takes the service's answer.
    pub fn answer(&mut self, sdp: &str) -> Result<(), String> {
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

    /// Takes a datagram.
    pub fn receive(&mut self, source: SocketAddr, datagram: &[u8]) -> Result<(), String> {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, datagram) else {
            return Ok(());
        };
        self.rtc
            .handle_input(Input::Receive(Instant::now(), receive))
            .map_err(|e| format!("peer: {e}"))
    }

    /// Does everything the peer wants done now; returns when it wants to be woken.
    pub fn drain(&mut self, stats: &BotStats, media_up: &mut bool) -> Result<Instant, String> {
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
                Output::Event(Event::RtpPacket(packet)) => {
                    let video = self
                        .rtc
                        .codec_config()
                        .find(|c| c.pt() == packet.header.payload_type)
                        .is_some_and(|c| c.spec().codec == Codec::H264);
                    let counter = if video {
                        &stats.video_received
                    } else {
                        &stats.received
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_wanted = true,
                Output::Event(_) => {}
            }
        }
    }

    /// Sends one 20 ms audio frame at the speaking level.
    pub fn speak(&mut self, frame: u64) -> Result<(), String> {
        let mut payload = vec![0u8; FRAME_BYTES];
        payload[0] = 0xF8;
        let ext = ExtensionValues {
            audio_level: Some(SPEAKING_LEVEL),
            voice_activity: Some(true),
            ..Default::default()
        };
        self.write(
            self.mic,
            Codec::Opus,
            frame,
            (frame * 960) as u32,
            payload,
            ext,
        )
    }

    /// Sends one video frame: a single H.264 NAL unit the size of a 360p frame at 150 kbit/s
    /// and 15 frames per second. A slice, or when a keyframe is wanted a unit that begins with
    /// an SPS header, which is all the SFU looks at to start a watcher's slot on it.
    pub fn show(&mut self, frame: u64) -> Result<(), String> {
        let camera = self.camera.ok_or("no camera line")?;
        let mut payload = vec![0u8; VIDEO_FRAME_BYTES];
        payload[0] = if std::mem::take(&mut self.keyframe_wanted) {
            0x67
        } else {
            0x41
        };
        let ts = (frame * 6000) as u32;
        self.write(camera, Codec::H264, frame, ts, payload, Default::default())
    }

    fn write(
        &mut self,
        mid: Mid,
        codec: Codec,
        seq: u64,
        ts: u32,
        payload: Vec<u8>,
        ext: ExtensionValues,
    ) -> Result<(), String> {
        let pt = self
            .rtc
            .codec_config()
            .find(|c| c.spec().codec == codec)
            .map(|c| c.pt())
            .ok_or("codec not negotiated")?;
        let mut api = self.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).ok_or("no send stream")?;
        tx.write_rtp(
            RtpWrite::new(pt, SeqNo::from(seq), ts, Instant::now(), payload)
                .marker(codec == Codec::H264)
                .ext_vals(ext),
        );
        // The packet is sent on the next timeout input.
        self.wake = Instant::now();
        Ok(())
    }
}
