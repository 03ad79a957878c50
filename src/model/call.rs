//! Calls and their states.

use bevy::prelude::*;
use call_media::stats::MediaStats;
use call_protocol::{CallEndReason, CallId};

use super::AgentCalls;

/// Which way a call was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Reflect)]
pub enum CallDirection {
    /// This agent called.
    Outgoing,
    /// This agent was called.
    Incoming,
}

/// A call's state, as the seed SDK names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Reflect)]
pub enum CallState {
    /// Not yet started. Not produced by this plugin: a call entity exists from the moment it
    /// is placed ([`CallState::Connecting`]) or offered ([`CallState::Incoming`]).
    None,
    /// Media flows before the call is answered: a call to a phone number whose carrier plays
    /// ringback or an announcement (SIP 183) before the phone answers.
    EarlyMedia,
    /// Somebody calls; accept or reject it.
    Incoming,
    /// Being set up.
    Connecting,
    /// The callee is being alerted.
    Ringing,
    /// Waiting in a group call's lobby until an organizer admits it ([`CallState::Connected`])
    /// or rejects it ([`CallState::Disconnected`], with the reason).
    InLobby,
    /// In the call; media flows.
    Connected,
    /// This side put the call on hold ([`super::Hold`]): nothing is sent or played.
    LocalHold,
    /// The other participant of a 1:1 call put it on hold: nothing arrives until it resumes.
    RemoteHold,
    /// Hanging up.
    Disconnecting,
    /// Over; [`Call::end_reason`] says why.
    Disconnected,
}

impl CallState {
    /// Whether the call is up: connected, or on hold on either side (its media resumes
    /// without setting it up again).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Connected | Self::LocalHold | Self::RemoteHold)
    }
}

/// A call of a [`super::CallAgent`]. Ended calls stay (state [`CallState::Disconnected`], with
/// their reason) until the app despawns them.
#[derive(Component, Reflect, Debug, Clone)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct Call {
    /// The call's id on the service.
    #[reflect(ignore)]
    pub id: CallId,
    /// Who placed it.
    pub direction: CallDirection,
    /// Where it is now.
    pub state: CallState,
    /// Why it ended; set exactly when `state` is [`CallState::Disconnected`].
    #[reflect(ignore)]
    pub end_reason: Option<CallEndReason>,
    /// Whether this side's microphone is muted in this call.
    pub is_muted: bool,
}

impl Call {
    pub(crate) fn new(id: CallId, direction: CallDirection, state: CallState) -> Self {
        Self {
            id,
            direction,
            state,
            end_reason: None,
            is_muted: false,
        }
    }
}

/// The agent a call belongs to.
#[derive(Component, Reflect, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = AgentCalls)]
pub struct CallOf(pub Entity);

/// A call's media statistics (ACS media stats): bitrate, packet loss, jitter, round-trip time,
/// and each video stream's size and frame rate, sent and received. Added to a [`Call`] entity
/// once it is connected and replaced every [`call_media::stats::STATS_INTERVAL`] (one second);
/// it keeps the last figures after the call ends. `incoming_video` holds this call's streams
/// only; the audio and the round trip are those of the agent's one connection.
#[derive(Component, Debug, Clone, Default, PartialEq, Deref)]
pub struct CallStats(pub MediaStats);
