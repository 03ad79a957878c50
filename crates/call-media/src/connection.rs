//! The client's one WebRTC connection to the service, on webrtc-rs 0.21.
//!
//! It offers one send-only Opus m-line (the microphone, with the RFC 6464 audio-level extension)
//! and [`AUDIO_SLOTS`] receive-only ones that the SFU fills. Received packets go straight into
//! the [`Playout`] jitter buffers. The webrtc-rs types stay inside this module.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use call_protocol::AUDIO_SLOTS;
use rtc::interceptor::{NackGeneratorBuilder, Registry, Slot};
use rtc::media::Sample;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::audio::Playout;

/// The audio-level header extension (RFC 6464).
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Opus's payload type in our offer (the service keeps the offer's numbers).
const OPUS_PT: u8 = 111;
/// ICE connectivity-check interval. webrtc-rs sends the DTLS ClientHello only on the ICE agent's
/// next tick (200 ms by default), so a short interval is what makes the agent connect quickly.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// Binding requests before a pair fails, scaled so the give-up time stays near the default's.
const ICE_MAX_BINDING_REQUESTS: u16 = 140;

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
}

impl MediaConnection {
    /// Builds the connection and its transceivers, and returns it with its offer SDP.
    /// Must run inside a tokio runtime (webrtc-rs spawns its driver there).
    pub(crate) async fn create(
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
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(err)?;
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(err)?
            // webrtc-rs keeps NACKing repaired packets without a cap (see interop notes).
            .with(
                Slot::NackGenerator,
                NackGeneratorBuilder::new()
                    .with_max_nacks_per_packet(1)
                    .build(),
            );
        let settings = SettingEngineBuilder::new()
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
            .build();
        let slot_ids = Arc::new(OnceLock::new());
        let handler = Arc::new(Handler {
            events,
            playout,
            slot_ids: slot_ids.clone(),
        });
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(media)
                .with_setting_engine(settings)
                .with_interceptor_registry(registry)
                .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
                .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
                .build()
                .await
                .map_err(err)?,
        );
        let ssrc = rand::random::<u32>();
        let mic = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "bevy-calling".to_owned(),
                    "microphone".to_owned(),
                    "microphone".to_owned(),
                    RtpCodecKind::Audio,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec: opus,
                        ..Default::default()
                    }],
                ),
            )
            .map_err(err)?,
        );
        pc.add_transceiver_from_track(
            mic.clone() as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .map_err(err)?;
        let mut ids = Vec::with_capacity(AUDIO_SLOTS);
        for _ in 0..AUDIO_SLOTS {
            let t = pc
                .add_transceiver_from_kind(
                    RtpCodecKind::Audio,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .await
                .map_err(err)?;
            ids.push(t.id());
        }
        // Set once, right after the transceivers exist and before any track can arrive.
        let _ = slot_ids.set(ids);
        let offer = pc.create_offer(None).await.map_err(err)?;
        let sdp = offer.sdp.clone();
        pc.set_local_description(offer).await.map_err(err)?;
        Ok((Self { pc, mic, ssrc }, sdp))
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

    /// Sends one 20 ms Opus frame with its audio level.
    pub(crate) async fn send_audio(
        &self,
        opus: &[u8],
        level: u8,
        voice: bool,
    ) -> Result<(), ConnectionError> {
        let sample = Sample {
            data: Bytes::copy_from_slice(opus),
            duration: Duration::from_millis(20),
            ..Sample::new(Instant::now())
        };
        self.mic
            .sample_writer(self.ssrc, OPUS_PT)
            .with_audio_level(AudioLevelExtension { level, voice })
            .write_sample(&sample)
            .await
            .map_err(err)
    }

    /// Closes the connection and stops its driver.
    pub(crate) async fn close(&self) {
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing the media connection: {e}");
        }
    }
}

struct Handler {
    events: mpsc::UnboundedSender<ConnectionEvent>,
    playout: Arc<Playout>,
    slot_ids: Arc<OnceLock<Vec<usize>>>,
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
        let playout = self.playout.clone();
        let slot_ids = self.slot_ids.clone();
        tokio::spawn(async move {
            let mut slot = None;
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnOpen(init) => {
                        let id: usize = init.receiver_id.into();
                        slot = slot_ids
                            .get()
                            .and_then(|ids| ids.iter().position(|&i| i == id));
                    }
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        if let Some(slot) = slot {
                            playout.push(slot, packet.header.sequence_number, packet.payload);
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}
