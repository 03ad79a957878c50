//! Who is in a call: participants, their states and roles, and the video streams they offer.

use serde::{Deserialize, Serialize};

use crate::CommunicationIdentifier;

/// What a video stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    /// A camera.
    Video,
    /// A shared screen or window.
    ScreenSharing,
}

/// A video stream a participant offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// What it carries.
    pub media_type: MediaType,
    /// Whether it is sending now (video on).
    pub is_available: bool,
    /// Why it stopped by itself, while it is off for that reason (not when turned off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StreamStopReason>,
}

/// Why a video stream stopped by itself rather than being turned off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStopReason {
    /// What it showed went away: the shared window was closed.
    SourceClosed,
    /// Capturing failed (the display or device was lost).
    SourceFailed,
}

impl std::fmt::Display for StreamStopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SourceClosed => "the shared window was closed",
            Self::SourceFailed => "capturing failed",
        })
    }
}

/// A remote participant's state, as the seed SDK names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantState {
    /// Known to the call but not yet invited or alerted. Not sent: every participant the
    /// service names is already being alerted ([`ParticipantState::Connecting`]).
    Idle,
    /// Media flows before the participant answered: a phone whose carrier plays ringback or
    /// an announcement (SIP 183).
    EarlyMedia,
    /// Being alerted or joining.
    Connecting,
    /// In the call.
    Connected,
    /// Put the call on hold.
    Hold,
    /// Waiting in the call's lobby until an organizer admits or rejects them.
    InLobby,
    /// Left the call; the reason comes with it (the client sets it on `participant_left`).
    Disconnected,
}

/// What the service tells about one participant of a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Who it is.
    pub id: CommunicationIdentifier,
    /// The name they gave when they signed in.
    pub display_name: String,
    /// Where they are in the call.
    pub state: ParticipantState,
    /// Whether their microphone is muted.
    pub is_muted: bool,
    /// Whether the service hears them speaking now.
    pub is_speaking: bool,
    /// The video streams they offer.
    #[serde(default)]
    pub streams: Vec<StreamInfo>,
    /// What they may do in the call, from their access token.
    #[serde(default)]
    pub role: Role,
}

/// What a participant may do in calls, as ACS Rooms name the roles. It comes from the access
/// token; a token that names none grants [`Role::Presenter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the call: may also remove participants, admit or reject them from the lobby, turn
    /// the lobby on and off, and end the call for everyone. Never waits in a lobby.
    Organizer,
    /// Speaks, shares and invites others.
    #[default]
    Presenter,
    /// Speaks and shares, but cannot invite anybody.
    Attendee,
}

impl Role {
    /// Whether this role may remove participants, run the lobby and end the call for everyone.
    pub fn moderates(self) -> bool {
        self == Self::Organizer
    }

    /// Whether this role may invite others into a call.
    pub fn invites(self) -> bool {
        self != Self::Attendee
    }

    /// The role's name as tokens and URLs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organizer => "organizer",
            Self::Presenter => "presenter",
            Self::Attendee => "attendee",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Organizer, Self::Presenter, Self::Attendee]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is no role (organizer, presenter or attendee)"))
    }
}
