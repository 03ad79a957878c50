//! The other people in a call.

use bevy::prelude::*;
use call_protocol::{
    CallEndReason, CommunicationIdentifier, ParticipantInfo, ParticipantState, Role,
};

/// Somebody else in a call. Participants who left stay, [`ParticipantState::Disconnected`] with
/// their reason, until their call is despawned.
#[derive(Component, Reflect, Debug, Clone, PartialEq, Eq)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct RemoteParticipant {
    /// Who they are.
    #[reflect(ignore)]
    pub identifier: CommunicationIdentifier,
    /// The name they signed in with.
    pub display_name: String,
    /// Where they are in the call.
    #[reflect(ignore)]
    pub state: ParticipantState,
    /// Whether their microphone is muted.
    pub is_muted: bool,
    /// Whether they are speaking now.
    pub is_speaking: bool,
    /// What they may do in the call.
    #[reflect(ignore)]
    pub role: Role,
    /// Why they left; set exactly when `state` is [`ParticipantState::Disconnected`].
    #[reflect(ignore)]
    pub end_reason: Option<CallEndReason>,
}

impl From<ParticipantInfo> for RemoteParticipant {
    fn from(info: ParticipantInfo) -> Self {
        Self {
            identifier: info.id,
            display_name: info.display_name,
            state: info.state,
            is_muted: info.is_muted,
            is_speaking: info.is_speaking,
            role: info.role,
            end_reason: None,
        }
    }
}

/// The call a participant belongs to.
#[derive(Component, Reflect, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = Participants)]
pub struct ParticipantOf(pub Entity);

/// The participants of a call (the other side of [`ParticipantOf`]).
#[derive(Component, Reflect, Debug, Default)]
#[relationship_target(relationship = ParticipantOf, linked_spawn)]
pub struct Participants(Vec<Entity>);

impl Participants {
    /// The participant entities.
    pub fn entities(&self) -> &[Entity] {
        &self.0
    }
}
