//! Signing in and the session loop: one task per agent that owns the signaling link, the media
//! connection and the devices, and reacts to commands, server messages (`calls.rs`) and
//! connection events.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use call_protocol::{
    CallEndReason, CallId, ClientMessage, CommunicationIdentifier, ErrorCode, MediaType,
    ServerMessage,
};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCPeerConnectionState;

use super::{AgentCommand, AgentConfig, AgentConnection, AgentError, AgentEvent, Events};
use crate::audio::{Playout, VoiceEncoder, VoiceProcessor};
use crate::connection::{ConnectionEvent, MediaConnection};
use crate::device::{DeviceId, DeviceManager, FRAME_SAMPLES, Microphone, Speaker};
use crate::signaling::{ConnectError, SignalingLink};
use crate::video::{EncodedUnit, SourceEnded, VideoSender};

/// How long signing in may take before it counts as unreachable.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the media connection may take to come up after signing in. Past it the agent is
/// disconnected with a media error rather than left `Connecting` for ever.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// How long after the answer the first media connection may stay down before it is built again
/// and re-offered; each later attempt waits twice as long as the one before (backoff, so a
/// service busy with many handshakes is not offered more of them). On a loaded machine a DTLS
/// handshake sometimes stalls for good after ICE completed (the SFU saw the pair nominated and
/// never a finished handshake); a fresh connection recovers where waiting does not.
const MEDIA_RETRY: Duration = Duration::from_secs(3);
/// Fresh connections tried before [`MEDIA_TIMEOUT`] decides.
const MEDIA_ATTEMPTS: u32 = 3;

/// The engine task: signs in, runs the session, and answers truthfully once offline.
pub(super) async fn run(
    config: AgentConfig,
    devices: DeviceManager,
    mut inputs: mpsc::Receiver<AgentCommand>,
    events: Events,
    level: Arc<super::MicLevel>,
) {
    events.emit(AgentEvent::Connection(AgentConnection::Connecting));
    let error = match tokio::time::timeout(SIGN_IN_TIMEOUT, sign_in(&config)).await {
        Ok(Ok((link, user))) => {
            match Session::start(config, devices, link, user, events.clone(), level).await {
                Ok(session) => session.run(&mut inputs).await,
                Err(e) => Some(e),
            }
        }
        Ok(Err(e)) => Some(e),
        Err(_) => Some(AgentError::Unreachable {
            url: config.service_url.clone(),
            reason: "timed out".into(),
        }),
    };
    let Some(error) = error else { return };
    events.fail(error.clone());
    events.emit(AgentEvent::Connection(AgentConnection::Disconnected(error)));
    if events.overflowed() {
        // The app is not reading: end now, so the channel reports the engine gone and the app
        // reads the reason from `Agent::failure` once it drains what is queued.
        return;
    }
    // Offline: calls cannot start, but every request still gets a truthful answer.
    while let Some(command) = inputs.recv().await {
        if events.overflowed() {
            return;
        }
        if let AgentCommand::StartCall { call_id, .. } | AgentCommand::JoinGroup { call_id, .. } =
            command
        {
            events.emit(AgentEvent::CallEnded {
                call_id,
                reason: CallEndReason::SERVICE_CONNECTION_LOST,
            });
        }
    }
}

async fn sign_in(
    config: &AgentConfig,
) -> Result<(SignalingLink, CommunicationIdentifier), AgentError> {
    let url = config.service_url.clone();
    let mut link = SignalingLink::connect(&url, &config.trusted_certificates)
        .await
        .map_err(|e| match e {
            ConnectError::Unreachable(reason) => AgentError::Unreachable { url, reason },
            ConnectError::Untrusted(reason) => AgentError::Untrusted { url, reason },
        })?;
    link.send(ClientMessage::Hello {
        token: config.token.clone(),
        display_name: config.display_name.clone(),
    });
    match link.incoming.recv().await {
        Some(ServerMessage::Welcome { user }) => Ok((link, user)),
        Some(ServerMessage::Error { code, message }) => Err(AgentError::Refused { code, message }),
        Some(other) => Err(AgentError::Refused {
            code: ErrorCode::BadRequest,
            message: format!("unexpected first message {other:?}"),
        }),
        None => Err(AgentError::ConnectionLost),
    }
}

#[derive(Default)]
pub(super) struct CallEntry {
    /// The service said the call is connected.
    pub(super) connected: bool,
    /// `CallConnected` went out to the app.
    pub(super) announced: bool,
    pub(super) muted: bool,
    /// On hold here: nothing is sent or played in it.
    pub(super) held: bool,
    /// Where this call's camera and screen share come from, while on (by [`crate::connection::video_index`]).
    pub(super) video: [Option<DeviceId>; 2],
}

pub(super) struct Session {
    pub(super) config: AgentConfig,
    pub(super) devices: DeviceManager,
    pub(super) events: Events,
    pub(super) user: CommunicationIdentifier,
    pub(super) link: SignalingLink,
    pub(super) connection: MediaConnection,
    pub(super) connection_events: mpsc::UnboundedReceiver<ConnectionEvent>,
    pub(super) playout: Arc<Playout>,
    pub(super) encoder: VoiceEncoder,
    pub(super) silence: Vec<f32>,
    pub(super) media_up: bool,
    pub(super) calls: HashMap<CallId, CallEntry>,
    pub(super) microphone: Option<Microphone>,
    pub(super) speaker: Option<Speaker>,
    pub(super) devices_failed: bool,
    /// The microphone's level, for the app's meter.
    pub(super) level: Arc<super::MicLevel>,
    /// What the speaker played: the echo canceller's far end.
    pub(super) reference: rtrb::Consumer<f32>,
    /// The microphone path's echo canceller, noise suppressor and gain, while they apply to
    /// the open microphone.
    pub(super) processor: Option<VoiceProcessor>,
    /// The camera's and the screen share's encoder threads (by [`crate::connection::video_index`]).
    pub(super) senders: [VideoSender; 2],
    pub(super) video_units: mpsc::Receiver<EncodedUnit>,
    /// Sources that ended by themselves (a shared window closed).
    source_ends: mpsc::UnboundedReceiver<SourceEnded>,
    /// The sources the senders have now.
    pub(super) sources: [Option<DeviceId>; 2],
    /// The senders' keyframe flags, which each media connection's RTCP raises.
    keyframes: [Arc<AtomicBool>; 2],
    /// When the current connection got its answer, while media is not up yet.
    pub(super) answered_at: Option<tokio::time::Instant>,
    /// Media connections built so far.
    attempts: u32,
    pub(super) stats: super::report::StatsTracker,
    pub(super) voices: super::voices::Voices,
}

/// Builds a media connection with its own event channel (so a replaced connection's late
/// events go nowhere), watching its send tracks for keyframe requests; returns its offer.
async fn connect(
    local_ip: std::net::IpAddr,
    playout: &Arc<Playout>,
    keyframes: &[Arc<AtomicBool>; 2],
) -> Result<
    (
        MediaConnection,
        mpsc::UnboundedReceiver<ConnectionEvent>,
        String,
    ),
    AgentError,
> {
    // Unbounded by type, bounded by what it carries: a few local candidates and state changes
    // per connection, written from webrtc-rs callbacks that must not wait.
    let (tx, events) = mpsc::unbounded_channel();
    let (connection, offer) = MediaConnection::create(local_ip, playout.clone(), tx)
        .await
        .map_err(|e| AgentError::Media(e.to_string()))?;
    for (media_type, flag) in [MediaType::Video, MediaType::ScreenSharing]
        .iter()
        .zip(keyframes)
    {
        connection.watch_keyframe_requests(*media_type, flag.clone());
    }
    Ok((connection, events, offer))
}

impl Session {
    async fn start(
        config: AgentConfig,
        devices: DeviceManager,
        link: SignalingLink,
        user: CommunicationIdentifier,
        events: Events,
        level: Arc<super::MicLevel>,
    ) -> Result<Self, AgentError> {
        let media = |e: String| AgentError::Media(e);
        let playout = Arc::new(Playout::new().map_err(|e| media(e.to_string()))?);
        let reference = playout
            .take_reference()
            .ok_or_else(|| media("the playout's reference was taken".into()))?;
        let encoder = VoiceEncoder::new(config.voice_frame).map_err(|e| media(e.to_string()))?;
        let keyframes = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        let (connection, connection_events, offer) =
            connect(link.local_ip, &playout, &keyframes).await?;
        link.send(ClientMessage::Offer { sdp: offer });
        let (units, video_units) = mpsc::channel(crate::video::ENCODED_QUEUE);
        let (ends, source_ends) = mpsc::unbounded_channel();
        let sender = |media_type| {
            let keyframe = keyframes[crate::connection::video_index(media_type)].clone();
            VideoSender::start(media_type, units.clone(), keyframe, ends.clone())
                .map_err(|e| media(e.to_string()))
        };
        let senders = [sender(MediaType::Video)?, sender(MediaType::ScreenSharing)?];
        Ok(Self {
            config,
            devices,
            events,
            user,
            link,
            connection,
            connection_events,
            playout,
            encoder,
            silence: vec![0.0; FRAME_SAMPLES],
            media_up: false,
            calls: HashMap::new(),
            microphone: None,
            speaker: None,
            devices_failed: false,
            level,
            reference,
            processor: None,
            senders,
            video_units,
            source_ends,
            sources: [None, None],
            keyframes,
            answered_at: None,
            attempts: 1,
            stats: Default::default(),
            voices: Default::default(),
        })
    }

    pub(super) fn emit(&self, event: AgentEvent) {
        self.events.emit(event);
    }

    /// Runs until shutdown (`None`) or a failure (the error).
    async fn run(mut self, inputs: &mut mpsc::Receiver<AgentCommand>) -> Option<AgentError> {
        let media_deadline = tokio::time::Instant::now() + MEDIA_TIMEOUT;
        let mut stats_tick = tokio::time::interval(crate::stats::STATS_INTERVAL);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            if self.events.overflowed() {
                break Some(AgentError::Overloaded);
            }
            tokio::select! {
                _ = retry_at(self.answered_at, self.attempts), if !self.media_up && self.attempts < MEDIA_ATTEMPTS => {
                    if let Err(e) = self.reconnect().await {
                        break Some(e);
                    }
                },
                _ = tokio::time::sleep_until(media_deadline), if !self.media_up => {
                    break Some(AgentError::Media(format!(
                        "the media connection did not come up within {MEDIA_TIMEOUT:?} ({} attempts)",
                        self.attempts
                    )));
                },
                input = inputs.recv() => match input {
                    Some(c) => self.command(c).await,
                    // The Agent was dropped: shut down.
                    None => break None,
                },
                message = self.link.incoming.recv() => match message {
                    Some(m) => if let Err(e) = self.server_message(m).await { break Some(e) },
                    None => break Some(AgentError::ConnectionLost),
                },
                event = self.connection_events.recv() => match event {
                    Some(e) => if let Err(e) = self.connection_event(e).await { break Some(e) },
                    None => break Some(AgentError::Media("the connection's driver stopped".into())),
                },
                unit = self.video_units.recv() => if let Some((media_type, unit, duration)) = unit
                    && let Err(e) = self.connection.send_video(media_type, unit, duration).await
                {
                    tracing::debug!("sending video failed: {e}");
                },
                Some((media_type, source, end)) = self.source_ends.recv() => {
                    self.source_ended(media_type, source, end).await;
                },
                _ = stats_tick.tick() => self.report_stats().await,
                frame = super::media::next_frame(&mut self.microphone) => match frame {
                    Some(f) => self.send_frame(f.samples).await,
                    None => {
                        self.microphone = None;
                        self.level.set(0.0);
                    }
                },
            }
        };
        if outcome.is_none() {
            // Shutting down is hanging up: the others hear a normal end, not a lost connection.
            for call_id in self.calls.keys() {
                self.link.send(ClientMessage::HangUp {
                    call_id: call_id.clone(),
                });
            }
        }
        if let Some(error) = &outcome {
            let reason = match error {
                AgentError::Media(_) => CallEndReason::MEDIA_FAILED,
                _ => CallEndReason::SERVICE_CONNECTION_LOST,
            };
            for (call_id, _) in self.calls.drain() {
                self.link.send(ClientMessage::HangUp {
                    call_id: call_id.clone(),
                });
                self.events.emit(AgentEvent::CallEnded { call_id, reason });
            }
        }
        self.microphone = None;
        self.speaker = None;
        for sender in &self.senders {
            sender.set_camera(None);
        }
        self.connection.close().await;
        self.link.close(Duration::from_millis(500)).await;
        outcome
    }

    async fn connection_event(&mut self, event: ConnectionEvent) -> Result<(), AgentError> {
        match event {
            ConnectionEvent::LocalCandidate(candidate) => {
                self.link.send(ClientMessage::IceCandidate { candidate })
            }
            ConnectionEvent::State(RTCPeerConnectionState::Connected) if !self.media_up => {
                self.media_up = true;
                self.emit(AgentEvent::Connection(AgentConnection::Connected {
                    user: self.user.clone(),
                }));
                self.announce_connected().await;
            }
            ConnectionEvent::State(
                state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed),
            ) => {
                return Err(AgentError::Media(format!("connection {state}")));
            }
            ConnectionEvent::State(state) => tracing::debug!("media connection {state}"),
        }
        Ok(())
    }

    /// Replaces a media connection that did not come up with a fresh one, offered anew (the
    /// service replaces the session's peer).
    async fn reconnect(&mut self) -> Result<(), AgentError> {
        tracing::warn!(
            "media connection not up {:?} after the answer; building it again (attempt {})",
            retry_after(self.attempts),
            self.attempts + 1
        );
        let (connection, events, offer) =
            connect(self.link.local_ip, &self.playout, &self.keyframes).await?;
        let old = std::mem::replace(&mut self.connection, connection);
        self.connection_events = events;
        self.answered_at = None;
        self.attempts += 1;
        old.close().await;
        self.link.send(ClientMessage::Offer { sdp: offer });
        Ok(())
    }

    /// Tells the app about calls the service connected, once media can flow.
    pub(super) async fn announce_connected(&mut self) {
        if !self.media_up {
            return;
        }
        let mut newly = Vec::new();
        for (call_id, call) in &mut self.calls {
            if call.connected && !call.announced {
                call.announced = true;
                newly.push(call_id.clone());
            }
        }
        for call_id in newly {
            self.emit(AgentEvent::CallConnected(call_id));
        }
        self.update_devices().await;
    }
}

/// How long attempt `attempt` (counting from 1) waits after its answer: [`MEDIA_RETRY`], then
/// twice as long each time.
fn retry_after(attempt: u32) -> Duration {
    MEDIA_RETRY * 2u32.saturating_pow(attempt.saturating_sub(1))
}

/// When connection attempt `attempt`, answered at `answered`, is given up for a fresh one;
/// never before an answer.
async fn retry_at(answered: Option<tokio::time::Instant>, attempt: u32) {
    match answered {
        Some(at) => tokio::time::sleep_until(at + retry_after(attempt)).await,
        None => std::future::pending().await,
    }
}
