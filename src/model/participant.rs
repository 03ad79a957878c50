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

/// Where a remote participant's voice plays between the speakers (positional audio): the left
/// and right gains this agent's mixer applies to it whenever the service forwards it. Insert or
/// change it to place the voice, remove it to put the voice back in the centre; a mono speaker
/// plays the gains' average. [`VoicePlacement::at`] places a voice at a point in the world.
#[derive(Component, Reflect, Clone, Copy, Debug, PartialEq)]
pub struct VoicePlacement {
    /// The left channel's gain (1: as received).
    pub left: f32,
    /// The right channel's gain.
    pub right: f32,
}

/// The angle off straight ahead at which a voice plays on one side only, in radians.
const FULL_PAN: f32 = 0.8;

impl VoicePlacement {
    /// A voice at `source` heard by a listener at `listener` (looking down its -Z, up +Y):
    /// constant-power panning by the angle to the listener's right or left, and attenuation by
    /// distance, 1 at `reference` (clamped to 0.25..1.5). Rounded to hundredths, so a voice that
    /// barely moves does not change.
    pub fn at(listener: &GlobalTransform, source: Vec3, reference: f32) -> Self {
        let local = listener.affine().inverse().transform_point3(source);
        // 0 straight ahead, ±0.8 rad (about 46°) or more fully to one side.
        let angle = local.x.atan2(-local.z).clamp(-FULL_PAN, FULL_PAN);
        let theta = (angle / FULL_PAN + 1.0) * std::f32::consts::FRAC_PI_4;
        let attenuation = (reference / local.length().max(0.1)).clamp(0.25, 1.5);
        let round = |g: f32| (g * 100.0).round() / 100.0;
        Self {
            left: round(theta.cos() * attenuation),
            right: round(theta.sin() * attenuation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_pan_with_where_they_are() {
        let listener = GlobalTransform::IDENTITY;
        let left = VoicePlacement::at(&listener, Vec3::new(-2.0, 0.0, -4.0), 4.0);
        assert!(left.left > 2.0 * left.right, "{left:?}");
        let ahead = VoicePlacement::at(&listener, Vec3::new(0.0, 0.0, -4.0), 4.0);
        assert_eq!(ahead.left, ahead.right);
        let near = VoicePlacement::at(&listener, Vec3::new(0.0, 0.0, -2.0), 4.0);
        assert!(near.left > ahead.left, "closer is louder");
        // The listener's own orientation counts: turned right, an ahead voice is on the left.
        let turned = GlobalTransform::from(Transform::from_rotation(Quat::from_rotation_y(-0.8)));
        let heard = VoicePlacement::at(&turned, Vec3::new(0.0, 0.0, -4.0), 4.0);
        assert!(heard.left > heard.right, "{heard:?}");
    }
}
