//! Group calls: joining by id, inviting, removing, the lobby, ending a call for everyone, and
//! who is heard ([`DominantSpeakers`]).

use bevy::prelude::*;
use call_media::device::DeviceId;
use call_protocol::{CallId, CommunicationIdentifier};

/// Request: join the group call `group_id` (a GUID, [`CallId::new_group`]) from `agent`,
/// starting it as its first member. Place it with [`super::StartCallExt::join_group_call`],
/// which spawns the [`super::Call`] entity at once ([`super::CallState::Connecting`]); with the
/// call's lobby on it waits as [`super::CallState::InLobby`] until an organizer admits it.
#[derive(Clone, Debug)]
pub struct JoinGroupCall {
    /// The [`super::CallAgent`] entity that joins.
    pub agent: Entity,
    /// The group call's id.
    pub group_id: CallId,
    /// Start with video from this camera.
    pub video: Option<DeviceId>,
}

/// Request: invite people into a call this agent is connected in. Each one's client rings;
/// the inviter sees them as [`super::RemoteParticipant`]s, `Connecting` until they accept
/// (`Connected`) or leave (declined, or no answer, with the reason). A 1:1 call becomes a
/// group call. Attendees may not invite ([`super::RequestFailed`]).
#[derive(Event, Clone, Debug)]
pub struct AddParticipants {
    /// The call.
    pub call: Entity,
    /// Whom to invite.
    pub targets: Vec<CommunicationIdentifier>,
}

/// Request: take a participant out of a call (organizers only). They, and everyone else, see
/// it with [`call_protocol::CallEndReason::REMOVED`].
#[derive(Event, Clone, Debug)]
pub struct RemoveParticipant {
    /// The call.
    pub call: Entity,
    /// Whom.
    pub participant: CommunicationIdentifier,
}

/// Request: end a call for every participant (organizers only); the others see
/// [`call_protocol::CallEndReason::ENDED_FOR_EVERYONE`].
#[derive(Event, Clone, Debug)]
pub struct HangUpForEveryone {
    /// The call.
    pub call: Entity,
}

/// Request: turn a call's lobby on or off (organizers only). While on, people who join wait as
/// [`call_protocol::ParticipantState::InLobby`] until admitted or rejected.
#[derive(Event, Clone, Debug)]
pub struct SetLobby {
    /// The call.
    pub call: Entity,
    /// On or off.
    pub enabled: bool,
}

/// Request: admit a participant waiting in a call's lobby (organizers only).
#[derive(Event, Clone, Debug)]
pub struct AdmitParticipant {
    /// The call.
    pub call: Entity,
    /// Who waits.
    pub participant: CommunicationIdentifier,
}

/// Request: reject a participant waiting in a call's lobby (organizers only); they leave with
/// [`call_protocol::CallEndReason::LOBBY_REJECTED`].
#[derive(Event, Clone, Debug)]
pub struct RejectParticipant {
    /// The call.
    pub call: Entity,
    /// Who waits.
    pub participant: CommunicationIdentifier,
}

/// A call's dominant speakers: the voices the service forwards to this agent (at most
/// [`call_protocol::AUDIO_SLOTS`]), the one who most recently became the loudest first. It may
/// name this agent's own user, whose voice the others hear. Added to the [`super::Call`] entity
/// when the service first names them.
#[derive(Component, Reflect, Debug, Clone, Default, PartialEq, Eq)]
#[reflect(from_reflect = false)]
pub struct DominantSpeakers {
    /// Who, in that order.
    #[reflect(ignore)]
    pub speakers: Vec<CommunicationIdentifier>,
}
