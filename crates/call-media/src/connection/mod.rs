//! The client's one WebRTC connection to the service, on webrtc-rs 0.21.
//!
//! It offers one send-only Opus m-line (the microphone, with the RFC 6464 audio-level extension),
//! [`AUDIO_SLOTS`] receive-only audio lines, two send-only H.264 lines (camera, then screen share,
//! each with RTX) and
//! [`VIDEO_SLOTS`] receive-only video lines, all at sign-in, so calls and subscriptions never
//! renegotiate. Received audio goes into the [`Playout`] jitter buffers; received video is
//! decoded into one [`FrameSlot`] per receive slot. The webrtc-rs types stay inside this module.

mod keyframes;
mod receive;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use call_protocol::{AUDIO_SLOTS, MediaType, VIDEO_SLOTS};
use rtc::interceptor::{NackResponderBuilder, Registry, Slot};
use rtc::media::Sample;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RTCRtpRtxParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder, configure_rtcp_reports,
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::audio::Playout;
use crate::stats::{Counted, ReceiveCounters};
use crate::video::FrameSlot;
use receive::Slot as ReceiveSlot;

/// The audio-level header extension (RFC 6464).
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Opus's payload type in our offer (the service keeps the offer's numbers).
const OPUS_PT: u8 = 111;
/// H.264 Constrained Baseline, packetization-mode 1: str0m's own numbers for it, so both ends
/// agree without mapping.
const H264_PT: u8 = 108;
/// Retransmissions of [`H264_PT`].
const RTX_PT: u8 = 109;
/// The fmtp browsers decode: Constrained Baseline level 3.1, packetization-mode 1.
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// ICE connectivity-check interval. webrtc-rs sends the DTLS ClientHello only on the ICE agent's
/// next tick (200 ms by default), so a short interval is what makes the agent connect quickly.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// Binding requests before a pair fails: about 8 s of checks at [`ICE_CHECK_INTERVAL`]. The
/// default's 1.4 s failed sign-ins when many agents connected at once on a loaded machine (50
/// agents on 2 busy cores: half of them `Failed`), since a service busy with other handshakes
/// answers late; checks stop as soon as a pair is nominated, so the longer limit only costs
/// time when the service is really unreachable.
const ICE_MAX_BINDING_REQUESTS: u16 = 800;

/// What the connection reports to the engine.
#[derive(Debug)]
pub(crate) enum ConnectionEvent {
    /// A local ICE candidate to trickle to the service.
    LocalCandidate(String),
    /// The connection state changed.
    State(RTCPeerConnectionState),
}

/// Errors from webrtc-rs, as text: its error type stays inside this module.
#[derive(Debug, thiserror::Error)]
#[error("webrtc: {0}")]
pub struct ConnectionError(String);

fn err(e: impl std::fmt::Display) -> ConnectionError {
    ConnectionError(e.to_string())
}

/// The client's media connection to the service.
pub(crate) struct MediaConnection {
    pc: Arc<dyn PeerConnection>,
    mic: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    /// The camera's and the screen share's send tracks with their SSRCs, in [`video_index`] order.
    video: [(Arc<TrackLocalStaticSample>, u32); 2],
    video_frames: Vec<FrameSlot>,
    /// Each receive slot's packet counts: the audio slots, then the video ones.
    received: Vec<ReceiveCounters>,
    /// Frames and payload bytes written: the microphone, the camera, the screen share.
    sent: [SentCount; 3],
    closed: Arc<AtomicBool>,
}

/// Frames and payload bytes one send track has written.
#[derive(Debug, Default)]
struct SentCount {
    frames: AtomicU64,
    bytes: AtomicU64,
}

impl SentCount {
    fn add(&self, bytes: usize) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn read(&self) -> Counted {
        let frames = self.frames.load(Ordering::Relaxed);
        Counted {
            packets: frames,
            bytes: self.bytes.load(Ordering::Relaxed),
            expected: frames,
            jitter: 0.0,
        }
    }
}

/// Where a stream's send line is in [`MediaConnection`]'s order: camera first, screen second.
pub(crate) fn video_index(media_type: MediaType) -> usize {
    match media_type {
        MediaType::Video => 0,
        MediaType::ScreenSharing => 1,
    }
}

/// A send-only track with an SSRC of its own (and an RTX SSRC for video).
fn local_track(
    kind: RtpCodecKind,
    name: &str,
    codec: RTCRtpCodec,
    ssrc: u32,
    rtx: Option<u32>,
) -> Result<Arc<TrackLocalStaticSample>, ConnectionError> {
    let track = MediaStreamTrack::new(
        "bevy-calling".to_owned(),
        name.to_owned(),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                // The NACK responder takes the RTX SSRC from here, the SDP from the sender:
                // set it here so both agree.
                rtx: rtx.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    Ok(Arc::new(
        TrackLocalStaticSample::new(Instant::now(), track).map_err(err)?,
    ))
}

impl MediaConnection {
    /// Builds the connection and its transceivers, and returns it with its offer SDP.
    /// Must run inside a tokio runtime (webrtc-rs spawns its driver there).
    ///
    /// The media socket binds `local_ip`, the address of the interface the signaling connection
    /// to the service goes out on: whatever host the service is on, that is the interface that
    /// reaches it (loopback for a service on this machine). Binding every interface instead
    /// made ICE check pairs that can never work (a loopback socket towards another host), each
    /// failing send logged every check interval.
    pub(crate) async fn create(
        local_ip: std::net::IpAddr,
        playout: Arc<Playout>,
        events: mpsc::UnboundedSender<ConnectionEvent>,
    ) -> Result<(Self, String), ConnectionError> {
        let opus = RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus.clone(),
                    payload_type: OPUS_PT,
                },
                RtpCodecKind::Audio,
            )
            .map_err(err)?;
        let h264 = RTCRtpCodec {
            mime_type: "video/H264".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: H264_FMTP.to_owned(),
            rtcp_feedback: [("ccm", "fir"), ("nack", ""), ("nack", "pli")]
                .into_iter()
                .map(|(typ, parameter)| RTCPFeedback {
                    typ: typ.to_owned(),
                    parameter: parameter.to_owned(),
                })
                .collect(),
        };
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: h264.clone(),
                    payload_type: H264_PT,
                },
                RtpCodecKind::Video,
            )
            .map_err(err)?;
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: "video/rtx".to_owned(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: format!("apt={H264_PT}"),
                        rtcp_feedback: vec![],
                    },
                    payload_type: RTX_PT,
                },
                RtpCodecKind::Video,
            )
            .map_err(err)?;
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(err)?;
        // webrtc-rs's default interceptors less its NACK generator: the receive loop NACKs lost
        // video itself (receive/losses.rs), since the generator never sees RTX repairs arrive
        // and so either NACK-storms or cannot ask twice (see interop notes). The responder
        // stays: it answers the service's NACKs for what we send.
        configure_simulcast_extension_headers(&mut media).map_err(err)?;
        let registry =
            configure_twcc_receiver_only(configure_rtcp_reports(Registry::new()), &mut media)
                .map_err(err)?
                .with(Slot::NackResponder, NackResponderBuilder::new().build())
                .with(Slot::from(14_000), keyframes::KeyframeRequests::default());
        let settings = SettingEngineBuilder::new()
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
            // Our candidates are plain host addresses; an mDNS socket also needs a multicast
            // route, which a host with only a direct link to the service may not have (ENODEV).
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let slot_ids = Arc::new(OnceLock::new());
        let video_frames: Vec<FrameSlot> = (0..VIDEO_SLOTS).map(|_| FrameSlot::new()).collect();
        let received: Vec<ReceiveCounters> = (0..AUDIO_SLOTS + VIDEO_SLOTS)
            .map(|_| ReceiveCounters::default())
            .collect();
        let handler = Arc::new(Handler {
            events,
            playout,
            slot_ids: slot_ids.clone(),
            video_frames: video_frames.clone(),
            received: received.clone(),
        });
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(media)
                .with_setting_engine(settings)
                .with_interceptor_registry(registry)
                .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
                .with_udp_addrs(vec![std::net::SocketAddr::new(local_ip, 0)])
                .build()
                .await
                .map_err(err)?,
        );
        let ssrc = rand::random::<u32>();
        let mic = local_track(RtpCodecKind::Audio, "microphone", opus, ssrc, None)?;
        let video_track = |name: &str| -> Result<_, ConnectionError> {
            let ssrc = rand::random::<u32>();
            let track = local_track(
                RtpCodecKind::Video,
                name,
                h264.clone(),
                ssrc,
                Some(rand::random()),
            )?;
            Ok((track, ssrc))
        };
        let video = [video_track("camera")?, video_track("screen")?];
        send_only(&pc, &mic).await?;
        let mut ids = Vec::with_capacity(AUDIO_SLOTS + VIDEO_SLOTS);
        for _ in 0..AUDIO_SLOTS {
            ids.push(recv_only(&pc, RtpCodecKind::Audio).await?);
        }
        // The SFU takes the first send-only video line as the camera, the second as the screen.
        for (track, _) in &video {
            send_only(&pc, track).await?;
        }
        for _ in 0..VIDEO_SLOTS {
            ids.push(recv_only(&pc, RtpCodecKind::Video).await?);
        }
        // Set once, right after the transceivers exist and before any track can arrive.
        let _ = slot_ids.set(ids);
        let offer = pc.create_offer(None).await.map_err(err)?;
        let sdp = offer.sdp.clone();
        pc.set_local_description(offer).await.map_err(err)?;
        Ok((
            Self {
                pc,
                mic,
                ssrc,
                video,
                video_frames,
                received,
                sent: Default::default(),
                closed: Arc::new(AtomicBool::new(false)),
            },
            sdp,
        ))
    }

    /// Applies the service's answer.
    pub(crate) async fn apply_answer(&self, sdp: String) -> Result<(), ConnectionError> {
        let answer = RTCSessionDescription::answer(sdp).map_err(err)?;
        self.pc.set_remote_description(answer).await.map_err(err)
    }

    /// Adds a trickled candidate of the service.
    pub(crate) async fn add_remote_candidate(
        &self,
        candidate: String,
    ) -> Result<(), ConnectionError> {
        let init = RTCIceCandidateInit {
            candidate,
            sdp_mid: Some(String::new()),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        self.pc.add_ice_candidate(init).await.map_err(err)
    }

    /// Sends one Opus frame lasting `duration`, with its audio level.
    pub(crate) async fn send_audio(
        &self,
        opus: &[u8],
        duration: Duration,
        level: u8,
        voice: bool,
    ) -> Result<(), ConnectionError> {
        self.sent[0].add(opus.len());
        let sample = Sample {
            data: Bytes::copy_from_slice(opus),
            duration,
            ..Sample::new(Instant::now())
        };
        self.mic
            .sample_writer(self.ssrc, OPUS_PT)
            .with_audio_level(AudioLevelExtension { level, voice })
            .write_sample(&sample)
            .await
            .map_err(err)
    }

    /// Sends one H.264 access unit (Annex-B) of a stream, lasting `duration`.
    pub(crate) async fn send_video(
        &self,
        media_type: MediaType,
        access_unit: Vec<u8>,
        duration: Duration,
    ) -> Result<(), ConnectionError> {
        let (track, ssrc) = &self.video[video_index(media_type)];
        self.sent[1 + video_index(media_type)].add(access_unit.len());
        let sample = Sample {
            data: Bytes::from(access_unit),
            duration,
            ..Sample::new(Instant::now())
        };
        track
            .sample_writer(*ssrc, H264_PT)
            .write_sample(&sample)
            .await
            .map_err(err)
    }

    /// The latest-frame slot each video receive slot decodes into.
    pub(crate) fn video_frames(&self, slot: usize) -> Option<FrameSlot> {
        self.video_frames.get(slot).cloned()
    }

    /// What the audio receive slot `slot` counted.
    pub(crate) fn audio_received(&self, slot: usize) -> Counted {
        self.received[slot].read()
    }

    /// What the video receive slot `slot` counted.
    pub(crate) fn video_received(&self, slot: usize) -> Counted {
        self.received[AUDIO_SLOTS + slot].read()
    }

    /// Frames and bytes the microphone (`None`) or a video stream has sent.
    pub(crate) fn sent(&self, media_type: Option<MediaType>) -> Counted {
        self.sent[media_type.map_or(0, |m| 1 + video_index(m))].read()
    }

    /// The latest round trip measured on the nominated ICE pair (STUN checks), if any yet.
    pub(crate) async fn round_trip_time(&self) -> Option<Duration> {
        let report = self
            .pc
            .get_stats(Instant::now(), webrtc::peer_connection::StatsSelector::None)
            .await;
        report
            .candidate_pairs()
            .filter(|p| p.nominated && p.current_round_trip_time > 0.0)
            .map(|p| Duration::from_secs_f64(p.current_round_trip_time))
            .next()
    }

    /// Watches a stream's send track for keyframe requests (PLI/FIR from the SFU) and raises
    /// `flag` for each. Starts polling once the track is bound, stops when the connection closes.
    pub(crate) fn watch_keyframe_requests(&self, media_type: MediaType, flag: Arc<AtomicBool>) {
        let camera = self.video[video_index(media_type)].0.clone();
        let closed = self.closed.clone();
        tokio::spawn(async move {
            while !closed.load(Ordering::Relaxed) {
                match camera.poll().await {
                    Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                        if packets
                            .iter()
                            .any(|p| keyframes::is_keyframe_request(p.as_ref()))
                        {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    Some(_) => {}
                    // Not bound yet (or unbound): look again shortly.
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }

    /// Closes the connection and stops its driver.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing the media connection: {e}");
        }
    }
}

/// Adds a send-only transceiver for a local track.
async fn send_only(
    pc: &Arc<dyn PeerConnection>,
    track: &Arc<TrackLocalStaticSample>,
) -> Result<(), ConnectionError> {
    pc.add_transceiver_from_track(
        track.clone() as Arc<dyn TrackLocal>,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![],
            send_encodings: vec![],
        }),
    )
    .await
    .map_err(err)?;
    Ok(())
}

/// Adds a receive-only transceiver; returns its id, which its remote track reports on open.
async fn recv_only(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
) -> Result<usize, ConnectionError> {
    let t = pc
        .add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(err)?;
    Ok(t.id())
}

struct Handler {
    events: mpsc::UnboundedSender<ConnectionEvent>,
    playout: Arc<Playout>,
    /// Transceiver ids: the audio receive slots, then the video ones.
    slot_ids: Arc<OnceLock<Vec<usize>>>,
    video_frames: Vec<FrameSlot>,
    received: Vec<ReceiveCounters>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    // These run inline on the webrtc-rs driver: never block or await app work here.
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self
                .events
                .send(ConnectionEvent::LocalCandidate(init.candidate));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(ConnectionEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let slot_ids = self.slot_ids.clone();
        let find_slot = move |id: usize| {
            let position = slot_ids.get()?.iter().position(|&i| i == id)?;
            Some(if position < AUDIO_SLOTS {
                ReceiveSlot::Audio(position)
            } else {
                ReceiveSlot::Video(position - AUDIO_SLOTS)
            })
        };
        tokio::spawn(receive::run(
            track,
            find_slot,
            self.playout.clone(),
            self.video_frames.clone(),
            self.received.clone(),
        ));
    }
}
