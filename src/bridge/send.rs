//! Requests from the app to the engines.

use bevy::prelude::*;
use call_media::AgentCommand;
use call_protocol::{CallEndReason, CallId};

use super::{AgentLink, CallIndex};
use crate::model::{
    AcceptCall, Call, CallDirection, CallOf, CallState, CallStateChanged, HangUp, Mute, RejectCall,
    StartCall, Unmute,
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
}

/// Turns this frame's requests into engine commands and the local state changes they imply.
pub(crate) fn send(
    mut requests: Requests,
    links: Query<&AgentLink>,
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

    let requests: Vec<(Entity, CallRequest)> = requests
        .accept
        .read()
        .map(|r| (r.call, CallRequest::Accept))
        .chain(
            requests
                .reject
                .read()
                .map(|r| (r.call, CallRequest::Reject)),
        )
        .chain(
            requests
                .hang_up
                .read()
                .map(|r| (r.call, CallRequest::HangUp)),
        )
        .chain(
            requests
                .mute
                .read()
                .map(|r| (r.call, CallRequest::SetMuted(true))),
        )
        .chain(
            requests
                .unmute
                .read()
                .map(|r| (r.call, CallRequest::SetMuted(false))),
        )
        .collect();
    for (call, request) in requests {
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
}
