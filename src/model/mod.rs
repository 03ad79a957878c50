//! The ECS model: components for agents, calls and participants, the requests users send, and
//! the facts the plugin reports.
//!
//! Ownership uses relationships: a [`Call`] belongs to its [`CallAgent`] through [`CallOf`], a
//! [`RemoteParticipant`] to its call through [`ParticipantOf`]. Despawning a call despawns its
//! participants (and hangs up a call that is still live); despawning an agent hangs up its calls
//! and despawns them.
//!
//! Requests are events: trigger them (`commands.trigger(Mute { call })`, or
//! `world.trigger(..)`) and they are applied in the order they were triggered, whatever their
//! type. Facts are messages: read them with a `MessageReader`.

mod agent;
mod call;
mod device;
mod group;
mod participant;
mod phone;
mod stream;

pub use agent::{AgentCalls, CallAgent};
pub use call::{Call, CallDirection, CallOf, CallState, CallStats};
pub use device::{
    Device, DeviceAdded, DeviceRemoved, DeviceSwitchReason, DeviceSwitched, LevelMeter,
    SelectDevice, SetVoiceProcessing,
};
pub use group::{
    AddParticipants, AdmitParticipant, DominantSpeakers, HangUpForEveryone, JoinGroupCall,
    RejectParticipant, RemoveParticipant, SetLobby,
};
pub use participant::{ParticipantOf, Participants, RemoteParticipant, VoicePlacement};
pub use phone::{DtmfReceived, SendDtmf};
pub use stream::{
    LocalScreenShare, LocalVideoStream, RemoteVideoStream, StreamOf, Streams, VideoStopped,
    VideoView,
};

use bevy::prelude::*;
use call_media::device::{DeviceError, DeviceId, DeviceKind};
use call_media::{AgentConnection, CommandError};
use call_protocol::{CallEndReason, CommunicationIdentifier, ErrorCode, ParticipantState};

/// Request: call `targets` from `agent`. Place it with [`StartCallExt::start_call`], which
/// spawns the [`Call`] entity at once (state [`CallState::Connecting`], reported with
/// [`CallStateChanged`]) and returns it, so two calls started in one frame are told apart.
#[derive(Clone, Debug)]
pub struct StartCall {
    /// The [`CallAgent`] entity that calls.
    pub agent: Entity,
    /// Whom to call.
    pub targets: Vec<CommunicationIdentifier>,
    /// Start with video from this camera.
    pub video: Option<DeviceId>,
}

/// Placing calls from `Commands` or a `World`: the call entity is the request's handle.
pub trait StartCallExt {
    /// Spawns the outgoing [`Call`] entity for `request` and returns it; the call is placed
    /// when the spawn is applied, before any request triggered after it.
    fn start_call(&mut self, request: StartCall) -> Entity;

    /// Spawns the [`Call`] entity joining a group call and returns it; the join is sent when
    /// the spawn is applied, before any request triggered after it.
    fn join_group_call(&mut self, request: JoinGroupCall) -> Entity;
}

impl StartCallExt for Commands<'_, '_> {
    fn start_call(&mut self, request: StartCall) -> Entity {
        self.spawn(crate::bridge::outgoing_call(request)).id()
    }

    fn join_group_call(&mut self, request: JoinGroupCall) -> Entity {
        self.spawn(crate::bridge::group_call(request)).id()
    }
}

impl StartCallExt for World {
    fn start_call(&mut self, request: StartCall) -> Entity {
        let call = self.spawn(crate::bridge::outgoing_call(request)).id();
        self.flush();
        call
    }

    fn join_group_call(&mut self, request: JoinGroupCall) -> Entity {
        let call = self.spawn(crate::bridge::group_call(request)).id();
        self.flush();
        call
    }
}

/// Request: send video from `camera` in a call. Also switches the camera while video is on:
/// the stream stays the same, receivers see the new source at its next keyframe.
#[derive(Event, Clone, Debug)]
pub struct StartVideo {
    /// The [`Call`] entity.
    pub call: Entity,
    /// The camera.
    pub camera: DeviceId,
}

/// Request: share a screen in a call (ACS screen sharing, media type `ScreenSharing`), sent
/// beside the camera. `source` is a camera-kind device that delivers the screen's frames.
#[derive(Event, Clone, Debug)]
pub struct StartScreenShare {
    /// The [`Call`] entity.
    pub call: Entity,
    /// Where the frames come from.
    pub source: DeviceId,
}

/// Request: stop sharing the screen in a call.
#[derive(Event, Clone, Copy, Debug)]
pub struct StopScreenShare {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: stop sending video in a call.
#[derive(Event, Clone, Copy, Debug)]
pub struct StopVideo {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: render a remote stream (ACS `createView`). When the service routes it, the stream
/// gets a [`VideoView`] whose image updates as frames arrive; the service forwards the stream to
/// this client only while it is subscribed.
#[derive(Event, Clone, Copy, Debug)]
pub struct SubscribeVideo {
    /// The [`RemoteVideoStream`] entity.
    pub stream: Entity,
}

/// Request: stop rendering a remote stream; its [`VideoView`] goes and the service stops
/// forwarding it.
#[derive(Event, Clone, Copy, Debug)]
pub struct UnsubscribeVideo {
    /// The [`RemoteVideoStream`] entity.
    pub stream: Entity,
}

/// Request: accept an incoming call.
#[derive(Event, Clone, Copy, Debug)]
pub struct AcceptCall {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: reject an incoming call.
#[derive(Event, Clone, Copy, Debug)]
pub struct RejectCall {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: leave a call.
#[derive(Event, Clone, Copy, Debug)]
pub struct HangUp {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: mute the microphone in a call. Others see the participant muted, and hear silence.
#[derive(Event, Clone, Copy, Debug)]
pub struct Mute {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: unmute the microphone in a call.
#[derive(Event, Clone, Copy, Debug)]
pub struct Unmute {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: put a connected call on hold. Nothing is sent or played in it; the call becomes
/// [`CallState::LocalHold`], the others see this participant as [`ParticipantState::Hold`], and
/// in a 1:1 call the other side's call becomes [`CallState::RemoteHold`].
#[derive(Event, Clone, Copy, Debug)]
pub struct Hold {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Request: resume a call this side put on hold. Audio and video flow again both ways, video
/// from a fresh keyframe.
#[derive(Event, Clone, Copy, Debug)]
pub struct Resume {
    /// The [`Call`] entity.
    pub call: Entity,
}

/// Fact: an agent's connection to the service changed.
#[derive(Message, Clone, Debug)]
pub struct AgentConnectionChanged {
    /// The [`CallAgent`] entity.
    pub agent: Entity,
    /// Its new connection state.
    pub connection: AgentConnection,
}

/// Fact: somebody calls this agent. The [`Call`] entity is in state [`CallState::Incoming`].
#[derive(Message, Clone, Debug)]
pub struct IncomingCall {
    /// The [`CallAgent`] entity that is called.
    pub agent: Entity,
    /// The new [`Call`] entity.
    pub call: Entity,
    /// Who calls.
    pub caller: CommunicationIdentifier,
}

/// Fact: a call's state changed. When it is [`CallState::Disconnected`], `reason` says why.
#[derive(Message, Clone, Debug)]
pub struct CallStateChanged {
    /// The [`Call`] entity.
    pub call: Entity,
    /// Its new state.
    pub state: CallState,
    /// Why it ended, with [`CallState::Disconnected`].
    pub reason: Option<CallEndReason>,
}

/// Fact: a participant joined a call, or their state, mute or speaking flag changed.
#[derive(Message, Clone, Debug)]
pub struct ParticipantUpdated {
    /// The [`Call`] entity.
    pub call: Entity,
    /// The [`RemoteParticipant`] entity.
    pub participant: Entity,
    /// Their state now.
    pub state: ParticipantState,
}

/// Fact: a participant left a call.
#[derive(Message, Clone, Debug)]
pub struct ParticipantLeft {
    /// The [`Call`] entity.
    pub call: Entity,
    /// The [`RemoteParticipant`] entity, now [`ParticipantState::Disconnected`].
    pub participant: Entity,
    /// Why they left.
    pub reason: CallEndReason,
}

/// Fact: a device of an agent could not be opened; its calls go on without it.
#[derive(Message, Clone, Debug)]
pub struct DeviceFailed {
    /// The [`CallAgent`] entity.
    pub agent: Entity,
    /// Microphone or speaker.
    pub kind: DeviceKind,
    /// What failed.
    pub error: DeviceError,
}

/// Fact: one of an agent's requests was not carried out.
#[derive(Message, Clone, Debug)]
pub struct RequestFailed {
    /// The [`CallAgent`] entity.
    pub agent: Entity,
    /// Why.
    pub error: RequestError,
}

/// Why a request was not carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The service refused it.
    #[error("the call service refused the request ({code:?}): {message}")]
    Refused {
        /// The service's error code.
        code: ErrorCode,
        /// Its explanation.
        message: String,
    },
    /// The agent's engine could not take it (stopped, or too far behind).
    #[error(transparent)]
    NotQueued(#[from] CommandError),
    /// The agent has no engine (it failed to start).
    #[error("the agent has no media engine")]
    NoEngine,
    /// The device asked for is not listed, or not of the kind asked for.
    #[error(transparent)]
    Device(#[from] DeviceError),
}
