//! The engine: one signed-in user's signaling link, media connection and devices, as a task on
//! a [`MediaRuntime`] that many agents share.
//!
//! Commands go in over a bounded tokio channel ([`Agent::send`] never blocks; a full queue is
//! refused, not waited on); facts come out over a bounded crossbeam channel ([`Agent::events`])
//! that a Bevy system drains once per frame. An app that stops draining it loses the agent with
//! [`AgentError::Overloaded`], never a silently dropped fact. The service's word decides call
//! states; the engine only holds a call's `Connected` back until its own media connection is up,
//! so a state never claims media that cannot flow.
//!
//! - `mod.rs`: the public types, the [`Agent`] handle and the [`MediaRuntime`].
//! - `session.rs`: signing in and the session loop (signaling, connection and command events).
//! - `calls.rs`: commands to signaling messages, and server messages to facts.
//! - `media.rs`: devices and video sources of a session, and sending microphone frames.

mod calls;
mod media;
mod report;
mod session;
mod voices;

use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, MediaType, ParticipantInfo,
    StreamStopReason,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;

use tokio::sync::mpsc;

use crate::audio::{VoiceFrame, VoiceProcessing};
use crate::device::{DeviceError, DeviceId, DeviceKind, DeviceManager};
use crate::video::FrameSlot;
use crate::wake::WakeHook;

/// Facts an engine may have waiting for the app. The app drains them every frame; a full queue
/// means it stopped doing so, and the engine then hangs up and stops ([`AgentError::Overloaded`]).
pub const EVENT_QUEUE: usize = 4096;
/// Requests waiting for the engine; beyond this [`Agent::send`] refuses with
/// [`CommandError::Busy`].
pub const COMMAND_QUEUE: usize = 1024;

/// How an agent signs in and which devices it uses.
#[derive(Clone, Debug, Default)]
pub struct AgentConfig {
    /// The service's signaling URL, e.g. `ws://127.0.0.1:8470/ws`, or `wss://` for a service
    /// behind TLS.
    pub service_url: String,
    /// PEM certificates to trust for a `wss://` service besides the system's roots: a private
    /// CA, or the service's own self-signed certificate. Empty trusts the system's roots only.
    pub trusted_certificates: Vec<u8>,
    /// An access token from the service.
    pub token: String,
    /// The name other participants see.
    pub display_name: String,
    /// The microphone to capture in calls; `None` sends nothing.
    pub microphone: Option<DeviceId>,
    /// The speaker to play calls on; `None` plays nothing.
    pub speaker: Option<DeviceId>,
    /// Echo cancellation, noise suppression and gain on the microphone path.
    pub voice_processing: VoiceProcessing,
    /// 20 ms voice frames, or 10 ms for the lowest latency.
    pub voice_frame: VoiceFrame,
}

/// A request to the engine.
#[derive(Clone, Debug, PartialEq)]
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
    /// Join (or start) the group call with this id, a GUID.
    JoinGroup {
        /// The group call's id.
        call_id: CallId,
        /// Start with video from this camera.
        camera: Option<DeviceId>,
    },
    /// Invite more people into a call (a 1:1 call becomes a group call).
    AddParticipants {
        /// Which call.
        call_id: CallId,
        /// Whom to invite.
        targets: Vec<CommunicationIdentifier>,
    },
    /// Take a participant out of a call (organizers only).
    RemoveParticipant {
        /// Which call.
        call_id: CallId,
        /// Whom.
        participant: CommunicationIdentifier,
    },
    /// Leave a call.
    HangUp(CallId),
    /// End a call for every participant (organizers only).
    EndForEveryone(CallId),
    /// Send DTMF digits to the phones in a call.
    SendDtmf {
        /// Which call.
        call_id: CallId,
        /// The digits.
        tones: String,
    },
    /// Turn a call's lobby on or off (organizers only).
    SetLobby {
        /// Which call.
        call_id: CallId,
        /// On or off.
        enabled: bool,
    },
    /// Admit a participant waiting in a call's lobby, or reject them (organizers only).
    Admit {
        /// Which call.
        call_id: CallId,
        /// Who waits.
        participant: CommunicationIdentifier,
        /// Admit (`true`) or reject.
        admit: bool,
    },
    /// Mute or unmute the microphone in a call.
    SetMuted {
        /// Which call.
        call_id: CallId,
        /// The new state.
        muted: bool,
    },
    /// Send a video stream in a call from this source (start or switch), or stop (`None`). The
    /// source is a camera or a screen source, for either stream.
    SetVideo {
        /// Which call.
        call_id: CallId,
        /// Camera or screen share.
        media_type: MediaType,
        /// The source, or none.
        source: Option<DeviceId>,
    },
    /// Use this microphone, speaker or camera from now on (`None`: none of that kind). An open
    /// device is switched at once, keeping calls, streams, mute and hold as they are; a camera
    /// switch applies to every call sending camera video.
    SetDevice {
        /// Which kind of device.
        kind: DeviceKind,
        /// The device, or none.
        device: Option<DeviceId>,
    },
    /// Turn echo cancellation, noise suppression and gain on or off (or back to automatic).
    SetVoiceProcessing(VoiceProcessing),
    /// Place a participant's voice between the speakers (positional audio); `None` puts it
    /// back in the centre. Applies whenever the service forwards their voice.
    PlaceVoice {
        /// Whose voice.
        participant: CommunicationIdentifier,
        /// Its left and right gains.
        gains: Option<crate::audio::Gains>,
    },
    /// Put a connected call on hold (`held`) or resume it. While held nothing is sent or
    /// played in it.
    SetHold {
        /// Which call.
        call_id: CallId,
        /// Hold or resume.
        held: bool,
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
    /// The service's TLS certificate is not trusted (see
    /// [`AgentConfig::trusted_certificates`]).
    #[error("the call service at {url} is not trusted: {reason}")]
    Untrusted {
        /// Where it was looked for.
        url: String,
        /// What the certificate check said.
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
    /// The app stopped draining the engine's facts ([`EVENT_QUEUE`] were waiting), so the
    /// engine hung up and stopped rather than drop one.
    #[error("the app did not drain the engine's events; the agent stopped")]
    Overloaded,
    /// The engine stopped without saying why (its task ended unexpectedly).
    #[error("the media engine stopped")]
    EngineStopped,
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
    /// A phone's carrier plays ringback or an announcement before the call is answered.
    CallEarlyMedia(CallId),
    /// Somebody in a call sent DTMF digits.
    DtmfReceived {
        /// The call.
        call_id: CallId,
        /// Who sent them.
        from: CommunicationIdentifier,
        /// The digits.
        tones: String,
    },
    /// This agent waits in the call's lobby until an organizer admits or rejects it.
    CallInLobby(CallId),
    /// The call's dominant speakers changed: whose voices the service forwards, the one who
    /// became the loudest most recently first.
    DominantSpeakers {
        /// The call.
        call_id: CallId,
        /// Who, in that order.
        speakers: Vec<CommunicationIdentifier>,
    },
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
    /// This agent put a call on hold or resumed it.
    HoldChanged {
        /// The call.
        call_id: CallId,
        /// Whether it is held now.
        held: bool,
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
        /// Why it stopped by itself (the shared window closed), when it did.
        stopped: Option<StreamStopReason>,
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
    /// The media figures, every [`crate::stats::STATS_INTERVAL`] while a call is connected.
    Stats(crate::stats::MediaStats),
    /// The service refused a request.
    RequestFailed {
        /// The service's error code.
        code: ErrorCode,
        /// The service's explanation.
        message: String,
    },
}

/// Why [`Agent::send`] did not queue a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// [`COMMAND_QUEUE`] commands are already waiting: the engine is not keeping up.
    #[error("the media engine has {COMMAND_QUEUE} requests waiting; this one was not queued")]
    Busy,
    /// The engine has stopped.
    #[error("the media engine has stopped")]
    Stopped,
}

/// The tokio runtime that engines run on: one for any number of agents (an app with fifty agents
/// has one runtime, not fifty). Dropping it stops every engine on it without waiting for them.
pub struct MediaRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl MediaRuntime {
    /// A multi-threaded runtime with `worker_threads` workers (at least one).
    pub fn new(worker_threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("call-media")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        // Only Drop takes the runtime out.
        self.runtime
            .as_ref()
            .expect("the runtime lives until MediaRuntime is dropped")
            .handle()
    }
}

impl std::fmt::Debug for MediaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRuntime").finish_non_exhaustive()
    }
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        // Never block the dropping thread (an app's main thread) on engines winding down.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A running engine for one user. Dropping it returns at once: the engine then hangs up, closes
/// media and ends on its runtime by itself.
pub struct Agent {
    commands: mpsc::Sender<AgentCommand>,
    events: crossbeam_channel::Receiver<AgentEvent>,
    failure: Arc<OnceLock<AgentError>>,
    level: Arc<MicLevel>,
    wake: WakeHook,
}

/// The level of the last microphone frame, shared between the engine and the app.
#[derive(Default)]
pub(crate) struct MicLevel(AtomicU32);

impl MicLevel {
    /// Records a frame's RMS (0 when the microphone closes).
    pub(crate) fn set(&self, rms: f32) {
        self.0.store(rms.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Agent {
    /// Starts the engine on `runtime`; it signs in right away.
    pub fn spawn(config: AgentConfig, devices: DeviceManager, runtime: &MediaRuntime) -> Self {
        let (commands, inputs) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let sink = Events::new(events_tx);
        let failure = sink.failure.clone();
        let wake = sink.wake.clone();
        let level = Arc::new(MicLevel::default());
        runtime
            .handle()
            .spawn(session::run(config, devices, inputs, sink, level.clone()));
        Self {
            commands,
            events,
            failure,
            level,
            wake,
        }
    }

    /// Wakes `waker` after each fact queued from now on: an app that sleeps until something
    /// changes (renders on demand) takes the fact at once instead of at its next frame.
    pub fn wake_on_events(&self, waker: Waker) {
        self.wake.set(waker);
    }

    /// The RMS (0..1) of the microphone's latest 20 ms, before mute: what a "you are speaking"
    /// meter shows. 0 while no microphone is open (outside calls, or with none chosen).
    pub fn microphone_level(&self) -> f32 {
        self.level.get()
    }

    /// Queues a command; never blocks.
    pub fn send(&self, command: AgentCommand) -> Result<(), CommandError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::Busy,
            mpsc::error::TrySendError::Closed(_) => CommandError::Stopped,
        })
    }

    /// The engine's facts, in order. Once the engine has ended and every fact was read, the
    /// channel reports itself disconnected.
    pub fn events(&self) -> &crossbeam_channel::Receiver<AgentEvent> {
        &self.events
    }

    /// Why the engine went offline, once it has: the same error as its last
    /// [`AgentConnection::Disconnected`] fact, available even if that fact could not be queued.
    pub fn failure(&self) -> Option<AgentError> {
        self.failure.get().cloned()
    }
}

/// The sending side of an engine's facts.
#[derive(Clone)]
struct Events {
    tx: crossbeam_channel::Sender<AgentEvent>,
    overflowed: Arc<AtomicBool>,
    /// Why the engine went offline, readable even when that fact could not be queued.
    failure: Arc<OnceLock<AgentError>>,
    /// The app's waker, woken after each fact queued.
    wake: WakeHook,
}

impl Events {
    fn new(tx: crossbeam_channel::Sender<AgentEvent>) -> Self {
        Self {
            tx,
            overflowed: Default::default(),
            failure: Default::default(),
            wake: Default::default(),
        }
    }

    /// Records why the engine went offline (the first reason counts).
    fn fail(&self, error: AgentError) {
        let _ = self.failure.set(error);
    }

    /// Queues a fact. A full queue is remembered ([`Events::overflowed`]); the session then
    /// stops, since a lost fact would leave the app's state lying.
    fn emit(&self, event: AgentEvent) {
        match self.tx.try_send(event) {
            Ok(()) => self.wake.wake(),
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Relaxed)
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
        }
    }

    fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}
