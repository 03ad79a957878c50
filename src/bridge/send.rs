//! Requests from the app to the engines.

use bevy::prelude::*;
use call_media::AgentCommand;
use call_protocol::{CallEndReason, CallId, MediaType};

use super::{AgentLink, CallIndex};
use crate::model::{
    AcceptCall, Call, CallDirection, CallOf, CallState, CallStateChanged, HangUp, Mute,
    ParticipantOf, RejectCall, RemoteParticipant, RemoteVideoStream, StartCall, StartScreenShare,
    StartVideo, StopScreenShare, StopVideo, StreamOf, SubscribeVideo, Unmute, UnsubscribeVideo,
};

/// The request messages, read together.
#[derive(bevy::ecs::system::SystemParam)]
pub(crate) struct Requests<'w, 's> {
    start: MessageReader<'w, 's, StartCall>,
    accept: MessageReader<'w, 's, AcceptCall>,
    reject: MessageReader<'w, 's, RejectCall>,
    hang_up: MessageReader<'w, 's, HangUp>,
    mute: MessageReader<'w, 's, Mute>,
    unmute: MessageReader<'w, 's, Unmute>,
    start_video: MessageReader<'w, 's, StartVideo>,
    stop_video: MessageReader<'w, 's, StopVideo>,
    start_screen: MessageReader<'w, 's, StartScreenShare>,
    stop_screen: MessageReader<'w, 's, StopScreenShare>,
    subscribe: MessageReader<'w, 's, SubscribeVideo>,
    unsubscribe: MessageReader<'w, 's, UnsubscribeVideo>,
}

/// What a stream subscription request needs to name the stream to the service.
type StreamPath<'a> = (&'a RemoteVideoStream, &'a StreamOf);

/// Turns this frame's requests into engine commands and the local state changes they imply.
#[allow(clippy::too_many_arguments)] // Bevy system parameters, one per thing it touches.
pub(crate) fn send(
    mut requests: Requests,
    links: Query<&AgentLink>,
    streams: Query<StreamPath>,
    participants: Query<(&RemoteParticipant, &ParticipantOf)>,
    mut calls: Query<(&mut Call, &CallOf)>,
    mut index: ResMut<CallIndex>,
    mut commands: Commands,
    mut changed: MessageWriter<CallStateChanged>,
) {
    for request in requests.start.read() {
        let call_id = CallId::random();
        let (state, reason) = match links.get(request.agent) {
            Ok(link) => {
                link.0.send(AgentCommand::StartCall {
                    call_id: call_id.clone(),
                    targets: request.targets.clone(),
                    camera: request.video.clone(),
                });
                (CallState::Connecting, None)
            }
            // No engine: the agent failed to start. The call ends at once, and says so.
            Err(_) => (
                CallState::Disconnected,
                Some(CallEndReason::SERVICE_CONNECTION_LOST),
            ),
        };
        let mut call = Call::new(call_id.clone(), CallDirection::Outgoing, state);
        call.end_reason = reason;
        let entity = commands.spawn((call, CallOf(request.agent))).id();
        index.0.insert((request.agent, call_id), entity);
        changed.write(CallStateChanged {
            call: entity,
            state,
            reason,
        });
    }

    let mut subscriptions: Vec<(Entity, bool)> = requests
        .subscribe
        .read()
        .map(|r| (r.stream, true))
        .collect();
    subscriptions.extend(requests.unsubscribe.read().map(|r| (r.stream, false)));
    for (stream, subscribe) in subscriptions {
        let Ok((info, of)) = streams.get(stream) else {
            continue;
        };
        let Ok((participant, call)) = participants.get(of.0) else {
            continue;
        };
        let Ok((c, agent)) = calls.get(call.0) else {
            continue;
        };
        let (call_id, participant, media_type) = (
            c.id.clone(),
            participant.identifier.clone(),
            info.media_type,
        );
        if let Ok(link) = links.get(agent.0) {
            link.0.send(match subscribe {
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
            });
        }
    }

    let mut call_requests: Vec<(Entity, CallRequest)> = Vec::new();
    call_requests.extend(
        requests
            .accept
            .read()
            .map(|r| (r.call, CallRequest::Accept)),
    );
    call_requests.extend(
        requests
            .reject
            .read()
            .map(|r| (r.call, CallRequest::Reject)),
    );
    call_requests.extend(
        requests
            .hang_up
            .read()
            .map(|r| (r.call, CallRequest::HangUp)),
    );
    call_requests.extend(
        requests
            .mute
            .read()
            .map(|r| (r.call, CallRequest::SetMuted(true))),
    );
    call_requests.extend(
        requests
            .unmute
            .read()
            .map(|r| (r.call, CallRequest::SetMuted(false))),
    );
    call_requests.extend(requests.start_video.read().map(|r| {
        (
            r.call,
            CallRequest::SetVideo(MediaType::Video, Some(r.camera.clone())),
        )
    }));
    call_requests.extend(requests.start_screen.read().map(|r| {
        (
            r.call,
            CallRequest::SetVideo(MediaType::ScreenSharing, Some(r.source.clone())),
        )
    }));
    call_requests.extend(requests.stop_screen.read().map(|r| {
        (
            r.call,
            CallRequest::SetVideo(MediaType::ScreenSharing, None),
        )
    }));
    call_requests.extend(
        requests
            .stop_video
            .read()
            .map(|r| (r.call, CallRequest::SetVideo(MediaType::Video, None))),
    );
    for (call, request) in call_requests {
        let Ok((mut c, of)) = calls.get_mut(call) else {
            continue;
        };
        let id = c.id.clone();
        let ending = matches!(c.state, CallState::Disconnecting | CallState::Disconnected);
        let (command, next) = match request {
            CallRequest::Accept if c.state == CallState::Incoming => {
                (AgentCommand::AcceptCall(id), Some(CallState::Connecting))
            }
            CallRequest::Reject if c.state == CallState::Incoming => {
                (AgentCommand::RejectCall(id), Some(CallState::Disconnecting))
            }
            CallRequest::HangUp if !ending => {
                (AgentCommand::HangUp(id), Some(CallState::Disconnecting))
            }
            CallRequest::SetVideo(media_type, source) if !ending => (
                AgentCommand::SetVideo {
                    call_id: id,
                    media_type,
                    source,
                },
                None,
            ),
            CallRequest::SetMuted(muted) if !ending => {
                c.is_muted = muted;
                (AgentCommand::SetMuted { call_id: id, muted }, None)
            }
            // A request that does not fit the call's state changes nothing.
            _ => continue,
        };
        if let Ok(link) = links.get(of.0) {
            link.0.send(command);
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
}

/// A request about an existing call.
enum CallRequest {
    Accept,
    Reject,
    HangUp,
    SetMuted(bool),
    SetVideo(MediaType, Option<call_media::device::DeviceId>),
}
