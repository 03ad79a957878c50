//! Facts from the engines into the ECS: one exclusive system drains every agent's channel and
//! applies each fact in order, so a fact about an entity spawned earlier in the same batch finds it.
//! A fact about an entity that no longer exists is dropped; an engine that ended without saying
//! why is reported as stopped, with its calls ended.

use bevy::prelude::*;
use call_media::stats::MediaStats;
use call_media::{AgentConnection, AgentError, AgentEvent};
use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, MediaType, ParticipantInfo, ParticipantState,
    Role, StreamInfo,
};
use crossbeam_channel::TryRecvError;

use super::{AgentLink, CallIndex};
use crate::model::{
    AgentCalls, AgentConnectionChanged, Call, CallAgent, CallDirection, CallOf, CallState,
    CallStateChanged, CallStats, DeviceFailed, DominantSpeakers, DtmfReceived, IncomingCall,
    LocalScreenShare, LocalVideoStream, ParticipantLeft, ParticipantOf, ParticipantUpdated,
    Participants, RemoteParticipant, RemoteVideoStream, RequestError, RequestFailed, StreamOf,
    Streams, VideoStopped, VideoView,
};
use crate::video::FrameFeed;

/// Drains every agent's engine events and applies them.
pub(crate) fn receive(world: &mut World) {
    let mut batch = Vec::new();
    let mut stopped = Vec::new();
    let mut links = world.query::<(Entity, &AgentLink)>();
    for (agent, link) in links.iter(world) {
        loop {
            match link.0.events().try_recv() {
                Ok(event) => batch.push((agent, event)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    stopped.push((agent, link.0.failure()));
                    break;
                }
            }
        }
    }
    for (agent, event) in batch {
        // A fact's agent may have gone while earlier facts were applied (user observers).
        if world.get::<CallAgent>(agent).is_some() {
            apply(world, agent, event);
        }
    }
    for (agent, failure) in stopped {
        engine_stopped(world, agent, failure.unwrap_or(AgentError::EngineStopped));
    }
}

/// An engine that ended: its agent is disconnected with the reason and its live calls end.
fn engine_stopped(world: &mut World, agent: Entity, error: AgentError) {
    let Ok(mut entity) = world.get_entity_mut(agent) else {
        return;
    };
    entity.remove::<AgentLink>();
    let reason = match error {
        AgentError::Media(_) => CallEndReason::MEDIA_FAILED,
        _ => CallEndReason::SERVICE_CONNECTION_LOST,
    };
    let call_ids: Vec<CallId> = world
        .resource::<CallIndex>()
        .0
        .keys()
        .filter(|(a, _)| *a == agent)
        .map(|(_, id)| id.clone())
        .collect();
    for call_id in call_ids {
        apply(world, agent, AgentEvent::CallEnded { call_id, reason });
    }
    let connection = AgentConnection::Disconnected(error);
    if world.get::<CallAgent>(agent).map(|a| &a.connection) != Some(&connection) {
        apply(world, agent, AgentEvent::Connection(connection));
    }
}

fn apply(world: &mut World, agent: Entity, event: AgentEvent) {
    match event {
        AgentEvent::Connection(connection) => {
            if let Some(mut a) = world.get_mut::<CallAgent>(agent) {
                a.connection = connection.clone();
            }
            world.write_message(AgentConnectionChanged { agent, connection });
        }
        AgentEvent::IncomingCall { call_id, caller } => {
            let call = world
                .spawn((
                    Call::new(
                        call_id.clone(),
                        CallDirection::Incoming,
                        CallState::Incoming,
                    ),
                    CallOf(agent),
                ))
                .id();
            world
                .resource_mut::<CallIndex>()
                .0
                .insert((agent, call_id), call);
            let identifier = caller.id.clone();
            upsert_participant(world, call, caller);
            world.write_message(IncomingCall {
                agent,
                call,
                caller: identifier,
            });
            world.write_message(CallStateChanged {
                call,
                state: CallState::Incoming,
                reason: None,
            });
        }
        AgentEvent::CallRinging(call_id) => {
            set_state(world, agent, &call_id, CallState::Ringing, None)
        }
        AgentEvent::CallEarlyMedia(call_id) => {
            set_state(world, agent, &call_id, CallState::EarlyMedia, None)
        }
        AgentEvent::CallInLobby(call_id) => {
            set_state(world, agent, &call_id, CallState::InLobby, None)
        }
        AgentEvent::DtmfReceived {
            call_id,
            from,
            tones,
        } => {
            if let Some(call) = find_call(world, agent, &call_id) {
                world.write_message(DtmfReceived { call, from, tones });
            }
        }
        AgentEvent::DominantSpeakers { call_id, speakers } => {
            if let Some(call) = find_call(world, agent, &call_id) {
                world.entity_mut(call).insert(DominantSpeakers { speakers });
            }
        }
        AgentEvent::CallConnected(call_id) => {
            set_state(world, agent, &call_id, CallState::Connected, None)
        }
        AgentEvent::CallEnded { call_id, reason } => {
            // Nothing is sent or received in an ended call: no video state may say otherwise.
            if let Some(call) = find_call(world, agent, &call_id) {
                if let Ok(mut entity) = world.get_entity_mut(call) {
                    entity.remove::<(LocalVideoStream, LocalScreenShare, FrameFeed)>();
                }
                let participants = world
                    .get::<Participants>(call)
                    .map(|p| p.entities().to_vec())
                    .unwrap_or_default();
                for participant in participants {
                    end_streams(world, participant);
                }
            }
            set_state(
                world,
                agent,
                &call_id,
                CallState::Disconnected,
                Some(reason),
            );
            world
                .resource_mut::<CallIndex>()
                .0
                .remove(&(agent, call_id));
        }
        AgentEvent::ParticipantUpdated {
            call_id,
            participant,
        } => {
            if let Some(call) = find_call(world, agent, &call_id) {
                upsert_participant(world, call, participant);
                follow_remote_hold(world, agent, &call_id, call);
            }
        }
        AgentEvent::ParticipantLeft {
            call_id,
            id,
            reason,
        } => {
            if let Some(call) = find_call(world, agent, &call_id) {
                participant_left(world, call, id, reason);
                follow_remote_hold(world, agent, &call_id, call);
            }
        }
        AgentEvent::HoldChanged { call_id, held } => {
            if let Some(call) = find_call(world, agent, &call_id) {
                let state = match held {
                    true => CallState::LocalHold,
                    false => remote_hold_state(world, call),
                };
                set_state(world, agent, &call_id, state, None);
            }
        }
        AgentEvent::DeviceFailed { kind, error } => {
            world.write_message(DeviceFailed { agent, kind, error });
        }
        AgentEvent::LocalVideo {
            call_id,
            media_type,
            source,
            stopped,
            preview,
        } => {
            let Some(call) = find_call(world, agent, &call_id) else {
                return;
            };
            if let Some(reason) = stopped {
                world.write_message(VideoStopped {
                    call,
                    media_type,
                    reason,
                });
            }
            let sending_camera = media_type == MediaType::Video && source.is_some();
            let feed = sending_camera
                .then(|| FrameFeed::new(preview, world))
                .flatten();
            let Ok(mut entity) = world.get_entity_mut(call) else {
                return;
            };
            match (media_type, source, feed) {
                (MediaType::Video, Some(camera), Some(feed)) => {
                    let preview = feed.image();
                    entity.insert((LocalVideoStream { camera, preview }, feed));
                }
                (MediaType::Video, _, _) => {
                    entity.remove::<(LocalVideoStream, FrameFeed)>();
                }
                (MediaType::ScreenSharing, Some(source), _) => {
                    entity.insert(LocalScreenShare { source });
                }
                (MediaType::ScreenSharing, None, _) => {
                    entity.remove::<LocalScreenShare>();
                }
            }
        }
        AgentEvent::VideoRouted {
            call_id,
            participant,
            media_type,
            frames,
        } => {
            if let Some(stream) = find_stream(world, agent, &call_id, &participant, media_type)
                && let Some(feed) = FrameFeed::new(frames, world)
                && let Ok(mut entity) = world.get_entity_mut(stream)
            {
                let image = feed.image();
                entity.insert((VideoView { image, pictures: 0 }, feed));
            }
        }
        AgentEvent::VideoUnrouted {
            call_id,
            participant,
            media_type,
        } => {
            if let Some(stream) = find_stream(world, agent, &call_id, &participant, media_type)
                && let Ok(mut entity) = world.get_entity_mut(stream)
            {
                entity.remove::<(VideoView, FrameFeed)>();
            }
        }
        AgentEvent::Stats(stats) => set_stats(world, agent, stats),
        AgentEvent::RequestFailed { code, message } => {
            world.write_message(RequestFailed {
                agent,
                error: RequestError::Refused { code, message },
            });
        }
    }
}

/// Gives each call of `agent` that media flows in its share of the agent's figures.
fn set_stats(world: &mut World, agent: Entity, stats: MediaStats) {
    let Some(calls) = world.get::<AgentCalls>(agent) else {
        return;
    };
    let calls: Vec<Entity> = calls.iter().collect();
    for call in calls {
        let Some(id) = world
            .get::<Call>(call)
            .filter(|c| matches!(c.state, CallState::Connected | CallState::RemoteHold))
            .map(|c| c.id.clone())
        else {
            continue;
        };
        let mut own = stats.clone();
        own.incoming_video.retain(|v| v.call_id == id);
        world.entity_mut(call).insert(CallStats(own));
    }
}

fn find_call(world: &World, agent: Entity, call_id: &CallId) -> Option<Entity> {
    world
        .resource::<CallIndex>()
        .0
        .get(&(agent, call_id.clone()))
        .copied()
}

fn set_state(
    world: &mut World,
    agent: Entity,
    call_id: &CallId,
    state: CallState,
    reason: Option<CallEndReason>,
) {
    let Some(call) = find_call(world, agent, call_id) else {
        return;
    };
    let Some(mut c) = world.get_mut::<Call>(call) else {
        return;
    };
    if c.state == state && c.end_reason == reason {
        return;
    }
    c.state = state;
    c.end_reason = reason;
    world.write_message(CallStateChanged {
        call,
        state,
        reason,
    });
}

/// `RemoteHold` when the only other participant of the call holds it, else `Connected`.
fn remote_hold_state(world: &World, call: Entity) -> CallState {
    let states: Vec<ParticipantState> = world
        .get::<Participants>(call)
        .map(|p| p.entities())
        .unwrap_or_default()
        .iter()
        .filter_map(|&p| world.get::<RemoteParticipant>(p).map(|rp| rp.state))
        .filter(|&state| state != ParticipantState::Disconnected)
        .collect();
    match states[..] {
        [ParticipantState::Hold] => CallState::RemoteHold,
        _ => CallState::Connected,
    }
}

/// Moves a connected call in and out of `RemoteHold` as its other participant holds and resumes.
fn follow_remote_hold(world: &mut World, agent: Entity, call_id: &CallId, call: Entity) {
    let connected = world
        .get::<Call>(call)
        .is_some_and(|c| matches!(c.state, CallState::Connected | CallState::RemoteHold));
    if connected {
        let state = remote_hold_state(world, call);
        set_state(world, agent, call_id, state, None);
    }
}

fn find_participant(world: &World, call: Entity, id: &CommunicationIdentifier) -> Option<Entity> {
    let participants = world.get::<Participants>(call)?;
    participants.entities().iter().copied().find(|&p| {
        world
            .get::<RemoteParticipant>(p)
            .is_some_and(|rp| &rp.identifier == id)
    })
}

fn find_stream(
    world: &World,
    agent: Entity,
    call_id: &CallId,
    participant: &CommunicationIdentifier,
    media_type: MediaType,
) -> Option<Entity> {
    let call = find_call(world, agent, call_id)?;
    let participant = find_participant(world, call, participant)?;
    world
        .get::<Streams>(participant)?
        .entities()
        .iter()
        .copied()
        .find(|&s| {
            world
                .get::<RemoteVideoStream>(s)
                .is_some_and(|rs| rs.media_type == media_type)
        })
}

/// A participant who is gone sends nothing: its streams become unavailable and lose their views.
fn end_streams(world: &mut World, participant: Entity) {
    let streams = world
        .get::<Streams>(participant)
        .map(|s| s.entities().to_vec())
        .unwrap_or_default();
    for stream in streams {
        let Ok(mut entity) = world.get_entity_mut(stream) else {
            continue;
        };
        entity.remove::<(VideoView, FrameFeed)>();
        if let Some(mut s) = entity.get_mut::<RemoteVideoStream>()
            && s.is_available
        {
            s.is_available = false;
        }
    }
}

/// Makes a participant's stream entities match what the service says it offers.
fn sync_streams(world: &mut World, participant: Entity, offered: &[StreamInfo]) {
    for info in offered {
        let existing = world.get::<Streams>(participant).and_then(|streams| {
            streams.entities().iter().copied().find(|&s| {
                world
                    .get::<RemoteVideoStream>(s)
                    .is_some_and(|rs| rs.media_type == info.media_type)
            })
        });
        let stream = RemoteVideoStream {
            media_type: info.media_type,
            is_available: info.is_available,
            stopped: info.stopped,
        };
        match existing {
            Some(entity) => {
                if let Some(mut current) = world.get_mut::<RemoteVideoStream>(entity)
                    && *current != stream
                {
                    *current = stream;
                }
            }
            None => {
                world.spawn((stream, StreamOf(participant)));
            }
        }
    }
}

fn upsert_participant(world: &mut World, call: Entity, info: ParticipantInfo) {
    let state = info.state;
    let streams = info.streams.clone();
    let (participant, changed) = match find_participant(world, call, &info.id) {
        Some(p) => {
            let next = RemoteParticipant::from(info);
            let changed = world
                .get::<RemoteParticipant>(p)
                .is_some_and(|rp| *rp != next);
            if changed && let Some(mut rp) = world.get_mut::<RemoteParticipant>(p) {
                *rp = next;
            }
            (p, changed)
        }
        None => {
            let spawned = world
                .spawn((RemoteParticipant::from(info), ParticipantOf(call)))
                .id();
            (spawned, true)
        }
    };
    sync_streams(world, participant, &streams);
    if changed {
        world.write_message(ParticipantUpdated {
            call,
            participant,
            state,
        });
    }
}

fn participant_left(
    world: &mut World,
    call: Entity,
    id: CommunicationIdentifier,
    reason: CallEndReason,
) {
    let participant = match find_participant(world, call, &id) {
        Some(p) => p,
        // Never joined (e.g. unreachable): it still gets an entity that says why.
        None => world
            .spawn((
                RemoteParticipant::from(ParticipantInfo {
                    display_name: id.raw_id(),
                    id,
                    state: ParticipantState::Disconnected,
                    is_muted: false,
                    is_speaking: false,
                    streams: Vec::new(),
                    role: Role::default(),
                }),
                ParticipantOf(call),
            ))
            .id(),
    };
    if let Some(mut rp) = world.get_mut::<RemoteParticipant>(participant) {
        rp.state = ParticipantState::Disconnected;
        rp.is_speaking = false;
        rp.end_reason = Some(reason);
    }
    end_streams(world, participant);
    world.write_message(ParticipantLeft {
        call,
        participant,
        reason,
    });
}
