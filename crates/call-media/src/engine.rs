//! The engine: one signed-in user's signaling link, media connection, and devices, on a thread
//! with its own tokio runtime.
//!
//! Commands go in over a tokio channel ([`Agent::send`] never blocks); facts come out over a
//! crossbeam channel ([`Agent::events`]) that a Bevy system drains once per frame. The service's
//! word decides call states; the engine only holds a call's `Connected` back until its own media
//! connection is up, so a state never claims media that cannot flow.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use call_protocol::{
    CallEndReason, CallId, ClientMessage, CommunicationIdentifier, ErrorCode, MediaType,
    ParticipantInfo, ServerMessage,
};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::audio::{Playout, VOICE_LEVEL, VoiceEncoder, audio_level};
use crate::connection::{ConnectionEvent, MediaConnection, video_index};
use crate::device::{
    DeviceError, DeviceId, DeviceKind, DeviceManager, FRAME_SAMPLES, Microphone, Speaker,
};
use crate::signaling::SignalingLink;
use crate::video::{EncodedUnit, FrameSlot, VideoSender};

/// How long signing in may take before it counts as unreachable.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(10);

/// How an agent signs in and which devices it uses.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The service's signaling URL, e.g. `ws://127.0.0.1:8470/ws`.
    pub service_url: String,
    /// An access token from the service.
    pub token: String,
    /// The name other participants see.
    pub display_name: String,
    /// The microphone to capture in calls; `None` sends nothing.
    pub microphone: Option<DeviceId>,
    /// The speaker to play calls on; `None` plays nothing.
    pub speaker: Option<DeviceId>,
}

/// A request to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentCommand {
    /// Call the targets under this (caller-chosen) id.
    StartCall {
        /// The new call's id.
        call_id: CallId,
        /// Whom to call.
        targets: Vec<CommunicationIdentifier>,
        /// Start with video from this camera.
        camera: Option<DeviceId>,
    },
    /// Accept an incoming call.
    AcceptCall(CallId),
    /// Reject an incoming call.
    RejectCall(CallId),
    /// Leave a call.
    HangUp(CallId),
    /// Mute or unmute the microphone in a call.
    SetMuted {
        /// Which call.
        call_id: CallId,
        /// The new state.
        muted: bool,
    },
    /// Send a video stream in a call from this source (start or switch), or stop (`None`). The
    /// source is a camera-kind device, for the screen share too.
    SetVideo {
        /// Which call.
        call_id: CallId,
        /// Camera or screen share.
        media_type: MediaType,
        /// The source, or none.
        source: Option<DeviceId>,
    },
    /// Receive a participant's video stream.
    Subscribe {
        /// Which call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
    },
    /// Stop receiving a participant's video stream.
    Unsubscribe {
        /// Which call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
    },
}

/// Why the agent is not (or no longer) connected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The service could not be reached.
    #[error("could not reach the call service at {url}: {reason}")]
    Unreachable {
        /// Where it was looked for.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The service refused to sign the user in (bad, forged or expired token).
    #[error("the call service refused the sign-in ({code:?}): {message}")]
    Refused {
        /// The service's error code.
        code: ErrorCode,
        /// The service's explanation.
        message: String,
    },
    /// The signaling connection was lost.
    #[error("the connection to the call service was lost")]
    ConnectionLost,
    /// The media connection failed.
    #[error("the media connection to the call service failed: {0}")]
    Media(String),
}

/// The agent's connection to the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentConnection {
    /// Signing in and setting up media.
    Connecting,
    /// Signed in, media connection up.
    Connected {
        /// Who the service says we are.
        user: CommunicationIdentifier,
    },
    /// Not connected; the error says why.
    Disconnected(AgentError),
}

/// A fact from the engine.
#[derive(Clone, Debug)]
pub enum AgentEvent {
    /// The agent's connection changed.
    Connection(AgentConnection),
    /// Somebody calls.
    IncomingCall {
        /// The call.
        call_id: CallId,
        /// Who calls.
        caller: ParticipantInfo,
    },
    /// The callees of an outgoing call are being alerted.
    CallRinging(CallId),
    /// The call is connected and its media can flow.
    CallConnected(CallId),
    /// The call ended.
    CallEnded {
        /// The call.
        call_id: CallId,
        /// Why.
        reason: CallEndReason,
    },
    /// A participant joined or changed.
    ParticipantUpdated {
        /// The call.
        call_id: CallId,
        /// Their state.
        participant: ParticipantInfo,
    },
    /// A participant left.
    ParticipantLeft {
        /// The call.
        call_id: CallId,
        /// Who.
        id: CommunicationIdentifier,
        /// Why.
        reason: CallEndReason,
    },
    /// A device could not be opened; calls go on without it.
    DeviceFailed {
        /// Microphone or speaker.
        kind: DeviceKind,
        /// What failed.
        error: DeviceError,
    },
    /// This agent's camera or screen share in a call started, switched source, or stopped
    /// (`source: None`).
    LocalVideo {
        /// The call.
        call_id: CallId,
        /// Camera or screen share.
        media_type: MediaType,
        /// The source sending now, if any.
        source: Option<DeviceId>,
        /// What is being sent, as RGBA.
        preview: FrameSlot,
    },
    /// A subscribed video stream now arrives; its decoded pictures appear in `frames`.
    VideoRouted {
        /// The call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
        /// The latest-frame slot it decodes into.
        frames: FrameSlot,
    },
    /// A video stream no longer arrives (unsubscribed, or its sender left).
    VideoUnrouted {
        /// The call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
    },
    /// The service refused a request.
    RequestFailed {
        /// The service's error code.
        code: ErrorCode,
        /// The service's explanation.
        message: String,
    },
}

enum Input {
    Command(AgentCommand),
    Shutdown,
}

/// A running engine for one user. Dropping it hangs up, closes media and stops the thread.
pub struct Agent {
    commands: mpsc::UnboundedSender<Input>,
    events: crossbeam_channel::Receiver<AgentEvent>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agent {
    /// Starts the engine thread, which signs in right away.
    pub fn spawn(config: AgentConfig, devices: DeviceManager) -> std::io::Result<Self> {
        let (commands, inputs) = mpsc::unbounded_channel();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("call-media")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("call-agent".into())
            .spawn(move || {
                runtime.block_on(run(config, devices, inputs, events_tx));
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(Self {
            commands,
            events,
            thread: Some(thread),
        })
    }

    /// Queues a command; never blocks.
    pub fn send(&self, command: AgentCommand) {
        // The engine thread outlives every sender but this one; it only ends after Shutdown.
        let _ = self.commands.send(Input::Command(command));
    }

    /// The engine's facts, in order.
    pub fn events(&self) -> &crossbeam_channel::Receiver<AgentEvent> {
        &self.events
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.commands.send(Input::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Events = crossbeam_channel::Sender<AgentEvent>;

fn emit(events: &Events, event: AgentEvent) {
    // The receiver lives in the Agent, which joins this thread before it drops.
    let _ = events.send(event);
}

async fn run(
    config: AgentConfig,
    devices: DeviceManager,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    events: Events,
) {
    emit(&events, AgentEvent::Connection(AgentConnection::Connecting));
    let error = match tokio::time::timeout(SIGN_IN_TIMEOUT, sign_in(&config)).await {
        Ok(Ok((link, user))) => {
            match Session::start(config, devices, link, user, events.clone()).await {
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
    emit(
        &events,
        AgentEvent::Connection(AgentConnection::Disconnected(error)),
    );
    // Offline: calls cannot start, but every request still gets a truthful answer.
    while let Some(Input::Command(command)) = inputs.recv().await {
        if let AgentCommand::StartCall { call_id, .. } = command {
            emit(
                &events,
                AgentEvent::CallEnded {
                    call_id,
                    reason: CallEndReason::SERVICE_CONNECTION_LOST,
                },
            );
        }
    }
}

async fn sign_in(
    config: &AgentConfig,
) -> Result<(SignalingLink, CommunicationIdentifier), AgentError> {
    let mut link = SignalingLink::connect(&config.service_url)
        .await
        .map_err(|reason| AgentError::Unreachable {
            url: config.service_url.clone(),
            reason,
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
struct CallEntry {
    /// The service said the call is connected.
    connected: bool,
    /// `CallConnected` went out to the app.
    announced: bool,
    muted: bool,
    /// Where this call's camera and screen share come from, while on (by [`video_index`]).
    video: [Option<DeviceId>; 2],
}

struct Session {
    config: AgentConfig,
    devices: DeviceManager,
    events: Events,
    user: CommunicationIdentifier,
    link: SignalingLink,
    connection: MediaConnection,
    connection_events: mpsc::UnboundedReceiver<ConnectionEvent>,
    playout: Arc<Playout>,
    encoder: VoiceEncoder,
    silence: Vec<f32>,
    media_up: bool,
    calls: HashMap<CallId, CallEntry>,
    microphone: Option<Microphone>,
    speaker: Option<Speaker>,
    devices_failed: bool,
    /// The camera's and the screen share's encoder threads (by [`video_index`]).
    senders: [VideoSender; 2],
    video_units: mpsc::Receiver<EncodedUnit>,
    /// The sources the senders have now.
    sources: [Option<DeviceId>; 2],
}

impl Session {
    async fn start(
        config: AgentConfig,
        devices: DeviceManager,
        link: SignalingLink,
        user: CommunicationIdentifier,
        events: Events,
    ) -> Result<Self, AgentError> {
        let media = |e: String| AgentError::Media(e);
        let playout = Arc::new(Playout::new().map_err(|e| media(e.to_string()))?);
        let encoder = VoiceEncoder::new().map_err(|e| media(e.to_string()))?;
        let (tx, connection_events) = mpsc::unbounded_channel();
        let (connection, offer) = MediaConnection::create(playout.clone(), tx)
            .await
            .map_err(|e| media(e.to_string()))?;
        link.send(ClientMessage::Offer { sdp: offer });
        let (units, video_units) = mpsc::channel(crate::video::ENCODED_QUEUE);
        let sender = |media_type| {
            let keyframe = Arc::new(AtomicBool::new(false));
            connection.watch_keyframe_requests(media_type, keyframe.clone());
            VideoSender::start(media_type, units.clone(), keyframe)
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
            senders,
            video_units,
            sources: [None, None],
        })
    }

    fn emit(&self, event: AgentEvent) {
        emit(&self.events, event);
    }

    /// Runs until shutdown (`None`) or a failure (the error).
    async fn run(mut self, inputs: &mut mpsc::UnboundedReceiver<Input>) -> Option<AgentError> {
        let outcome = loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(Input::Command(c)) => self.command(c),
                    Some(Input::Shutdown) | None => break None,
                },
                message = self.link.incoming.recv() => match message {
                    Some(m) => if let Err(e) = self.server_message(m).await { break Some(e) },
                    None => break Some(AgentError::ConnectionLost),
                },
                event = self.connection_events.recv() => match event {
                    Some(e) => if let Err(e) = self.connection_event(e) { break Some(e) },
                    None => break Some(AgentError::Media("the connection's driver stopped".into())),
                },
                unit = self.video_units.recv() => if let Some((media_type, unit, duration)) = unit
                    && let Err(e) = self.connection.send_video(media_type, unit, duration).await
                {
                    tracing::debug!("sending video failed: {e}");
                },
                frame = next_frame(&mut self.microphone) => match frame {
                    Some(f) => self.send_frame(&f.samples).await,
                    None => self.microphone = None,
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
                emit(&self.events, AgentEvent::CallEnded { call_id, reason });
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

    fn command(&mut self, command: AgentCommand) {
        let message = match command {
            AgentCommand::StartCall {
                call_id,
                targets,
                camera,
            } => {
                self.calls.insert(call_id.clone(), CallEntry::default());
                self.link.send(ClientMessage::StartCall {
                    call_id: call_id.clone(),
                    targets,
                });
                if camera.is_some() {
                    self.set_video(call_id, MediaType::Video, camera);
                }
                return;
            }
            AgentCommand::SetVideo {
                call_id,
                media_type,
                source,
            } => {
                self.set_video(call_id, media_type, source);
                return;
            }
            AgentCommand::Subscribe {
                call_id,
                participant,
                media_type,
            } => ClientMessage::Subscribe {
                call_id,
                participant,
                media_type,
            },
            AgentCommand::Unsubscribe {
                call_id,
                participant,
                media_type,
            } => ClientMessage::Unsubscribe {
                call_id,
                participant,
                media_type,
            },
            AgentCommand::AcceptCall(call_id) => ClientMessage::AcceptCall { call_id },
            AgentCommand::RejectCall(call_id) => ClientMessage::RejectCall { call_id },
            AgentCommand::HangUp(call_id) => ClientMessage::HangUp { call_id },
            AgentCommand::SetMuted { call_id, muted } => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.muted = muted;
                }
                ClientMessage::SetMuted { call_id, muted }
            }
        };
        self.link.send(message);
    }

    async fn server_message(&mut self, message: ServerMessage) -> Result<(), AgentError> {
        match message {
            ServerMessage::Answer { sdp } => {
                self.connection
                    .apply_answer(sdp)
                    .await
                    .map_err(|e| AgentError::Media(e.to_string()))?;
            }
            ServerMessage::IceCandidate { candidate } => {
                if let Err(e) = self.connection.add_remote_candidate(candidate).await {
                    tracing::debug!("ignoring the service's candidate: {e}");
                }
            }
            ServerMessage::IncomingCall { call_id, caller } => {
                self.calls.insert(call_id.clone(), CallEntry::default());
                self.emit(AgentEvent::IncomingCall { call_id, caller });
            }
            ServerMessage::CallRinging { call_id } => self.emit(AgentEvent::CallRinging(call_id)),
            ServerMessage::CallConnected { call_id } => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.connected = true;
                }
                self.announce_connected();
            }
            ServerMessage::CallEnded { call_id, reason } => {
                if self
                    .calls
                    .remove(&call_id)
                    .is_some_and(|c| c.video.iter().any(Option::is_some))
                {
                    self.update_sources();
                }
                self.emit(AgentEvent::CallEnded { call_id, reason });
                self.update_devices();
            }
            ServerMessage::ParticipantUpdated {
                call_id,
                participant,
            } => {
                self.emit(AgentEvent::ParticipantUpdated {
                    call_id,
                    participant,
                });
            }
            ServerMessage::ParticipantLeft {
                call_id,
                id,
                reason,
            } => {
                self.emit(AgentEvent::ParticipantLeft {
                    call_id,
                    id,
                    reason,
                });
            }
            ServerMessage::Error { code, message } => {
                self.emit(AgentEvent::RequestFailed { code, message })
            }
            ServerMessage::Welcome { .. } => {}
            ServerMessage::VideoRouted {
                call_id,
                participant,
                media_type,
                slot,
            } => {
                if let Some(frames) = self.connection.video_frames(slot as usize) {
                    self.emit(AgentEvent::VideoRouted {
                        call_id,
                        participant,
                        media_type,
                        frames,
                    });
                }
            }
            ServerMessage::VideoUnrouted {
                call_id,
                participant,
                media_type,
            } => self.emit(AgentEvent::VideoUnrouted {
                call_id,
                participant,
                media_type,
            }),
        }
        Ok(())
    }

    fn connection_event(&mut self, event: ConnectionEvent) -> Result<(), AgentError> {
        match event {
            ConnectionEvent::LocalCandidate(candidate) => {
                self.link.send(ClientMessage::IceCandidate { candidate })
            }
            ConnectionEvent::State(RTCPeerConnectionState::Connected) if !self.media_up => {
                self.media_up = true;
                self.emit(AgentEvent::Connection(AgentConnection::Connected {
                    user: self.user.clone(),
                }));
                self.announce_connected();
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

    /// Tells the app about calls the service connected, once media can flow.
    fn announce_connected(&mut self) {
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
        self.update_devices();
    }

    /// Starts, switches or stops a call's camera or screen share, and tells the service and the app.
    fn set_video(&mut self, call_id: CallId, media_type: MediaType, source: Option<DeviceId>) {
        let i = video_index(media_type);
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.video[i] = source;
        self.update_sources();
        let source = self.calls.get(&call_id).and_then(|c| c.video[i].clone());
        self.link.send(ClientMessage::SetVideo {
            call_id: call_id.clone(),
            media_type,
            on: source.is_some(),
        });
        self.emit(AgentEvent::LocalVideo {
            call_id,
            media_type,
            source,
            preview: self.senders[i].preview(),
        });
    }

    /// Points each video sender at the source some call wants (one camera and one screen share
    /// are sent at a time), opening it if it changed. A source that fails to open is reported and
    /// that stream goes off in its calls, so no state claims video that is not sent.
    fn update_sources(&mut self) {
        for i in 0..self.senders.len() {
            let wanted = self.calls.values().find_map(|c| c.video[i].clone());
            if wanted == self.sources[i] {
                continue;
            }
            let opened = match &wanted {
                Some(id) => match self.devices.open_camera(id) {
                    Ok(camera) => Some(camera),
                    Err(error) => {
                        for call in self
                            .calls
                            .values_mut()
                            .filter(|c| c.video[i].as_ref() == Some(id))
                        {
                            call.video[i] = None;
                        }
                        self.emit(AgentEvent::DeviceFailed {
                            kind: DeviceKind::Camera,
                            error,
                        });
                        None
                    }
                },
                None => None,
            };
            self.sources[i] = opened.as_ref().map(|c| c.id.clone());
            self.senders[i].set_camera(opened);
        }
    }

    /// Opens the devices while a call is connected and closes them when none is.
    fn update_devices(&mut self) {
        let active = self.media_up && self.calls.values().any(|c| c.announced);
        if !active {
            self.microphone = None;
            self.speaker = None;
            self.devices_failed = false;
            return;
        }
        if self.devices_failed {
            return;
        }
        if self.microphone.is_none()
            && let Some(id) = &self.config.microphone
        {
            match self.devices.open_microphone(id) {
                Ok(m) => self.microphone = Some(m),
                Err(error) => {
                    self.devices_failed = true;
                    self.emit(AgentEvent::DeviceFailed {
                        kind: DeviceKind::Microphone,
                        error,
                    });
                }
            }
        }
        if self.speaker.is_none()
            && let Some(id) = &self.config.speaker
        {
            match self.devices.open_speaker(id, self.playout.clone()) {
                Ok(s) => self.speaker = Some(s),
                Err(error) => {
                    self.devices_failed = true;
                    self.emit(AgentEvent::DeviceFailed {
                        kind: DeviceKind::Speaker,
                        error,
                    });
                }
            }
        }
    }

    /// Encodes and sends one microphone frame, or silence while every connected call is muted.
    async fn send_frame(&mut self, samples: &[f32]) {
        let muted = self.calls.values().filter(|c| c.announced).all(|c| c.muted);
        let samples = if muted { &self.silence[..] } else { samples };
        let level = audio_level(samples);
        let voice = level <= VOICE_LEVEL;
        match self.encoder.encode(samples) {
            Ok(packet) => {
                if let Err(e) = self.connection.send_audio(packet, level, voice).await {
                    tracing::debug!("sending audio failed: {e}");
                }
            }
            Err(e) => tracing::warn!("opus encode failed: {e}"),
        }
    }
}

/// The next microphone frame, or never when no microphone is open.
async fn next_frame(microphone: &mut Option<Microphone>) -> Option<crate::device::AudioFrame> {
    match microphone {
        Some(m) => m.frames.recv().await,
        None => std::future::pending().await,
    }
}
