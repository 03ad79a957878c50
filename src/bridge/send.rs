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

    let mut to_engine =
        |call: Entity, make: &dyn Fn(&mut Call) -> Option<(AgentCommand, Option<CallState>)>| {
            let Ok((mut c, of)) = calls.get_mut(call) else {
                return;
            };
            let Some((command, next)) = make(&mut c) else {
                return;
            };
            if let Ok(link) = links.get(of.0) {
                link.0.send(command);
            }
            if let Some(state) = next
                && c.state != state
            {
                c.state = state;
                changed.write(CallStateChanged {
                    call,
                    state,
                    reason: None,
                });
            }
        };
    for r in requests.accept.read() {
        to_engine(r.call, &|c| {
            (c.state == CallState::Incoming).then(|| {
                (
                    AgentCommand::AcceptCall(c.id.clone()),
                    Some(CallState::Connecting),
                )
            })
        });
    }
    for r in requests.reject.read() {
        to_engine(r.call, &|c| {
            (c.state == CallState::Incoming).then(|| {
                (
                    AgentCommand::RejectCall(c.id.clone()),
                    Some(CallState::Disconnecting),
                )
            })
        });
    }
    for r in requests.hang_up.read() {
        to_engine(r.call, &|c| {
            (c.state != CallState::Disconnected).then(|| {
                (
                    AgentCommand::HangUp(c.id.clone()),
                    Some(CallState::Disconnecting),
                )
            })
        });
    }
    for (call, muted) in requests
        .mute
        .read()
        .map(|m| (m.call, true))
        .chain(requests.unmute.read().map(|u| (u.call, false)))
        .collect::<Vec<_>>()
    {
        to_engine(call, &|c| {
            c.is_muted = muted;
            (c.state != CallState::Disconnected).then(|| {
                (
                    AgentCommand::SetMuted {
                        call_id: c.id.clone(),
                        muted,
                    },
                    None,
                )
            })
        });
    }
}
