//! Requests from the app to the engines. Each request is an event with an observer that turns it
//! into an engine command the moment it is triggered, so requests reach the engine in the order
//! they were written, whatever their type: `Unmute` then `Mute` ends muted.

use bevy::prelude::*;
use call_media::AgentCommand;
use call_media::device::DeviceId;
use call_protocol::{CallEndReason, CallId, CommunicationIdentifier, MediaType};

use super::{AgentLink, CallIndex};
use crate::model::{
    AcceptCall, AddParticipants, AdmitParticipant, Call, CallDirection, CallOf, CallState,
    CallStateChanged, HangUp, HangUpForEveryone, Hold, JoinGroupCall, Mute, ParticipantOf,
    RejectCall, RejectParticipant, RemoteParticipant, RemoteVideoStream, RemoveParticipant,
    RequestError, RequestFailed, Resume, SendDtmf, SetLobby, StartCall, StartScreenShare,
    StartVideo, StopScreenShare, StopVideo, StreamOf, SubscribeVideo, Unmute, UnsubscribeVideo,
};

/// The part of a [`StartCall`] or [`JoinGroupCall`] that waits on a new call entity until the
/// call is placed.
#[derive(Component)]
pub(crate) struct PlaceCall {
    /// Whom to call; `None` joins the group call by the call's id.
    targets: Option<Vec<CommunicationIdentifier>>,
    video: Option<DeviceId>,
}

/// The components of a new outgoing call entity.
pub(crate) fn outgoing_call(request: StartCall) -> impl Bundle {
    placed_call(
        CallId::random(),
        request.agent,
        Some(request.targets),
        request.video,
    )
}

/// The components of a call entity joining a group call.
pub(crate) fn group_call(request: JoinGroupCall) -> impl Bundle {
    placed_call(request.group_id, request.agent, None, request.video)
}

fn placed_call(
    id: CallId,
    agent: Entity,
    targets: Option<Vec<CommunicationIdentifier>>,
    video: Option<DeviceId>,
) -> impl Bundle {
    (
        Call::new(id, CallDirection::Outgoing, CallState::Connecting),
        CallOf(agent),
        PlaceCall { targets, video },
    )
}

/// Registers the observers of every request.
pub(crate) fn add_request_observers(app: &mut App) {
    app.add_observer(place_call)
        .add_observer(call_request::<AcceptCall>)
        .add_observer(call_request::<RejectCall>)
        .add_observer(call_request::<HangUp>)
        .add_observer(call_request::<Mute>)
        .add_observer(call_request::<Unmute>)
        .add_observer(call_request::<Hold>)
        .add_observer(call_request::<Resume>)
        .add_observer(call_request::<StartVideo>)
        .add_observer(call_request::<StopVideo>)
        .add_observer(call_request::<StartScreenShare>)
        .add_observer(call_request::<StopScreenShare>)
        .add_observer(call_request::<AddParticipants>)
        .add_observer(call_request::<RemoveParticipant>)
        .add_observer(call_request::<HangUpForEveryone>)
        .add_observer(call_request::<SendDtmf>)
        .add_observer(call_request::<SetLobby>)
        .add_observer(call_request::<AdmitParticipant>)
        .add_observer(call_request::<RejectParticipant>)
        .add_observer(subscription::<SubscribeVideo>)
        .add_observer(subscription::<UnsubscribeVideo>);
}

/// Queues a command on an agent's engine.
fn send(
    links: &Query<&AgentLink>,
    agent: Entity,
    command: AgentCommand,
) -> Result<(), RequestError> {
    let link = links.get(agent).map_err(|_| RequestError::NoEngine)?;
    Ok(link.0.send(command)?)
}

/// Places a call spawned by [`crate::StartCallExt::start_call`].
fn place_call(
    added: On<Add, PlaceCall>,
    mut calls: Query<(&mut Call, &CallOf, &PlaceCall)>,
    links: Query<&AgentLink>,
    mut index: ResMut<CallIndex>,
    mut commands: Commands,
    mut changed: MessageWriter<CallStateChanged>,
    mut failed: MessageWriter<RequestFailed>,
) {
    let call = added.entity;
    commands.entity(call).remove::<PlaceCall>();
    let Ok((mut c, of, place)) = calls.get_mut(call) else {
        return;
    };
    let (call_id, camera) = (c.id.clone(), place.video.clone());
    let command = match place.targets.clone() {
        Some(targets) => AgentCommand::StartCall {
            call_id,
            targets,
            camera,
        },
        None => AgentCommand::JoinGroup { call_id, camera },
    };
    match send(&links, of.0, command) {
        Ok(()) => {
            index.0.insert((of.0, c.id.clone()), call);
            changed.write(CallStateChanged {
                call,
                state: CallState::Connecting,
                reason: None,
            });
        }
        // The call cannot be placed: it ends at once, and says so.
        Err(error) => {
            c.state = CallState::Disconnected;
            c.end_reason = Some(CallEndReason::SERVICE_CONNECTION_LOST);
            changed.write(CallStateChanged {
                call,
                state: CallState::Disconnected,
                reason: c.end_reason,
            });
            failed.write(RequestFailed { agent: of.0, error });
        }
    }
}

/// A request about an existing call.
pub(crate) enum CallRequest {
    Accept,
    Reject,
    HangUp,
    SetMuted(bool),
    SetHold(bool),
    SetVideo(MediaType, Option<DeviceId>),
    Invite(Vec<CommunicationIdentifier>),
    Remove(CommunicationIdentifier),
    EndForEveryone,
    SetLobby(bool),
    Admit(CommunicationIdentifier, bool),
    SendDtmf(String),
}

/// A request event about one call.
pub(crate) trait ForCall: Event + Clone {
    /// The call and what to do with it.
    fn request(&self) -> (Entity, CallRequest);
}

impl ForCall for AcceptCall {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::Accept)
    }
}

impl ForCall for RejectCall {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::Reject)
    }
}

impl ForCall for HangUp {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::HangUp)
    }
}

impl ForCall for Mute {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SetMuted(true))
    }
}

impl ForCall for Unmute {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SetMuted(false))
    }
}

impl ForCall for Hold {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SetHold(true))
    }
}

impl ForCall for Resume {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SetHold(false))
    }
}

impl ForCall for StartVideo {
    fn request(&self) -> (Entity, CallRequest) {
        let source = Some(self.camera.clone());
        (self.call, CallRequest::SetVideo(MediaType::Video, source))
    }
}

impl ForCall for StopVideo {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SetVideo(MediaType::Video, None))
    }
}

impl ForCall for StartScreenShare {
    fn request(&self) -> (Entity, CallRequest) {
        let source = Some(self.source.clone());
        (
            self.call,
            CallRequest::SetVideo(MediaType::ScreenSharing, source),
        )
    }
}

impl ForCall for StopScreenShare {
    fn request(&self) -> (Entity, CallRequest) {
        (
            self.call,
            CallRequest::SetVideo(MediaType::ScreenSharing, None),
        )
    }
}

impl ForCall for AddParticipants {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::Invite(self.targets.clone()))
    }
}

impl ForCall for RemoveParticipant {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::Remove(self.participant.clone()))
    }
}

impl ForCall for HangUpForEveryone {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::EndForEveryone)
    }
}

impl ForCall for SendDtmf {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SendDtmf(self.tones.clone()))
    }
}

impl ForCall for SetLobby {
    fn request(&self) -> (Entity, CallRequest) {
        (self.call, CallRequest::SetLobby(self.enabled))
    }
}

impl ForCall for AdmitParticipant {
    fn request(&self) -> (Entity, CallRequest) {
        (
            self.call,
            CallRequest::Admit(self.participant.clone(), true),
        )
    }
}

impl ForCall for RejectParticipant {
    fn request(&self) -> (Entity, CallRequest) {
        (
            self.call,
            CallRequest::Admit(self.participant.clone(), false),
        )
    }
}

/// Applies one call request: the engine command, and the local state change it implies.
fn call_request<R: ForCall>(
    request: On<R>,
    links: Query<&AgentLink>,
    mut calls: Query<(&mut Call, &CallOf)>,
    mut changed: MessageWriter<CallStateChanged>,
    mut failed: MessageWriter<RequestFailed>,
) {
    let (call, request) = request.event().request();
    let Ok((mut c, of)) = calls.get_mut(call) else {
        return;
    };
    let id = c.id.clone();
    let ending = matches!(c.state, CallState::Disconnecting | CallState::Disconnected);
    let (command, next, muted) = match request {
        CallRequest::Accept if c.state == CallState::Incoming => (
            AgentCommand::AcceptCall(id),
            Some(CallState::Connecting),
            None,
        ),
        CallRequest::Reject if c.state == CallState::Incoming => (
            AgentCommand::RejectCall(id),
            Some(CallState::Disconnecting),
            None,
        ),
        CallRequest::HangUp if !ending => (
            AgentCommand::HangUp(id),
            Some(CallState::Disconnecting),
            None,
        ),
        CallRequest::SetVideo(media_type, source) if !ending => (
            AgentCommand::SetVideo {
                call_id: id,
                media_type,
                source,
            },
            None,
            None,
        ),
        // The engine says when the hold took effect (`CallState::LocalHold`).
        CallRequest::SetHold(held) if !ending => {
            (AgentCommand::SetHold { call_id: id, held }, None, None)
        }
        CallRequest::SetMuted(muted) if !ending => (
            AgentCommand::SetMuted { call_id: id, muted },
            None,
            Some(muted),
        ),
        CallRequest::EndForEveryone if !ending => (
            AgentCommand::EndForEveryone(id),
            Some(CallState::Disconnecting),
            None,
        ),
        // The service answers these with facts (roster changes) or a refusal.
        CallRequest::Invite(targets) if !ending => (
            AgentCommand::AddParticipants {
                call_id: id,
                targets,
            },
            None,
            None,
        ),
        CallRequest::SendDtmf(tones) if !ending => {
            (AgentCommand::SendDtmf { call_id: id, tones }, None, None)
        }
        CallRequest::Remove(participant) if !ending => (
            AgentCommand::RemoveParticipant {
                call_id: id,
                participant,
            },
            None,
            None,
        ),
        CallRequest::SetLobby(enabled) if !ending => (
            AgentCommand::SetLobby {
                call_id: id,
                enabled,
            },
            None,
            None,
        ),
        CallRequest::Admit(participant, admit) if !ending => (
            AgentCommand::Admit {
                call_id: id,
                participant,
                admit,
            },
            None,
            None,
        ),
        // A request that does not fit the call's state changes nothing.
        _ => return,
    };
    if let Err(error) = send(&links, of.0, command) {
        failed.write(RequestFailed { agent: of.0, error });
        return;
    }
    if let Some(muted) = muted {
        c.is_muted = muted;
    }
    if let Some(state) = next {
        c.state = state;
        changed.write(CallStateChanged {
            call,
            state,
            reason: None,
        });
    }
}

/// A request event about one remote stream: subscribe (`true`) or unsubscribe.
pub(crate) trait ForStream: Event + Clone {
    /// The stream, and whether to subscribe.
    fn request(&self) -> (Entity, bool);
}

impl ForStream for SubscribeVideo {
    fn request(&self) -> (Entity, bool) {
        (self.stream, true)
    }
}

impl ForStream for UnsubscribeVideo {
    fn request(&self) -> (Entity, bool) {
        (self.stream, false)
    }
}

/// Applies a subscription request: names the stream to the service by call, participant and
/// media type.
fn subscription<R: ForStream>(
    request: On<R>,
    links: Query<&AgentLink>,
    streams: Query<(&RemoteVideoStream, &StreamOf)>,
    participants: Query<(&RemoteParticipant, &ParticipantOf)>,
    calls: Query<(&Call, &CallOf)>,
    mut failed: MessageWriter<RequestFailed>,
) {
    let (stream, subscribe) = request.event().request();
    let Ok((info, of)) = streams.get(stream) else {
        return;
    };
    let Ok((participant, call)) = participants.get(of.0) else {
        return;
    };
    let Ok((c, agent)) = calls.get(call.0) else {
        return;
    };
    let (call_id, participant, media_type) = (
        c.id.clone(),
        participant.identifier.clone(),
        info.media_type,
    );
    let command = match subscribe {
        true => AgentCommand::Subscribe {
            call_id,
            participant,
            media_type,
        },
        false => AgentCommand::Unsubscribe {
            call_id,
            participant,
            media_type,
        },
    };
    if let Err(error) = send(&links, agent.0, command) {
        failed.write(RequestFailed {
            agent: agent.0,
            error,
        });
    }
}
