//! Positional audio: a [`VoicePlacement`] on a remote participant becomes the engine's
//! `PlaceVoice` command for that participant's agent.

use bevy::prelude::*;
use call_media::AgentCommand;
use call_media::audio::Gains;

use super::AgentLink;
use crate::model::{CallOf, ParticipantOf, RemoteParticipant, VoicePlacement};

/// The agent a participant's call belongs to, and the participant's identity.
fn agent_of(
    participant: Entity,
    participants: &Query<(&RemoteParticipant, &ParticipantOf)>,
    calls: &Query<&CallOf>,
) -> Option<(Entity, call_protocol::CommunicationIdentifier)> {
    let (p, of) = participants.get(participant).ok()?;
    Some((calls.get(of.0).ok()?.0, p.identifier.clone()))
}

fn place(links: &Query<&AgentLink>, agent: Entity, command: AgentCommand) {
    // A full or stopped engine drops a placement; the next change places the voice again.
    if let Ok(link) = links.get(agent) {
        let _ = link.0.send(command);
    }
}

/// Sends each placement that was added or changed.
pub(crate) fn place_voices(
    changed: Query<(Entity, &VoicePlacement), Changed<VoicePlacement>>,
    participants: Query<(&RemoteParticipant, &ParticipantOf)>,
    calls: Query<&CallOf>,
    links: Query<&AgentLink>,
) {
    for (entity, placement) in &changed {
        if let Some((agent, participant)) = agent_of(entity, &participants, &calls) {
            let gains = Gains {
                left: placement.left,
                right: placement.right,
            };
            place(
                &links,
                agent,
                AgentCommand::PlaceVoice {
                    participant,
                    gains: Some(gains),
                },
            );
        }
    }
}

/// A removed placement puts the voice back in the centre.
pub(crate) fn unplace_voice(
    removed: On<Remove, VoicePlacement>,
    participants: Query<(&RemoteParticipant, &ParticipantOf)>,
    calls: Query<&CallOf>,
    links: Query<&AgentLink>,
) {
    if let Some((agent, participant)) = agent_of(removed.entity, &participants, &calls) {
        place(
            &links,
            agent,
            AgentCommand::PlaceVoice {
                participant,
                gains: None,
            },
        );
    }
}
