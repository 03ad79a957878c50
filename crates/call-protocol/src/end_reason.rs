//! Why a call, or one participant's part in it, ended.

use serde::{Deserialize, Serialize};

/// Why a call or a participant ended, as a `code` and a `subcode` in the manner of the calling SDK.
///
/// The code says the class (0 is a normal end, 4xx/6xx were refused, 5xx failed); the subcode
/// says which case. [`CallEndReason::description`] gives the text for each known pair:
///
/// | code | subcode | meaning |
/// |---|---|---|
/// | 0 | 0 | the local user hung up |
/// | 0 | 1 | a remote participant hung up |
/// | 0 | 2 | an organizer ended the call for everyone |
/// | 0 | 3 | an organizer removed the participant from the call |
/// | 400 | 0 | the request was invalid (no valid target) |
/// | 403 | 0 | an organizer did not admit the participant from the lobby |
/// | 404 | 0 | no user with that identity is signed in to the service |
/// | 404 | 1 | the phone network knows no such number |
/// | 408 | 0 | the callee did not answer in time |
/// | 480 | 0 | the phone is unavailable (switched off, out of reach) |
/// | 486 | 0 | the phone is busy |
/// | 487 | 0 | the caller hung up before the call was answered |
/// | 603 | 0 | the callee declined the call |
/// | 603 | 1 | the local user rejected the incoming call |
/// | 503 | 0 | the connection to the call service was lost |
/// | 503 | 1 | the media connection to the call service failed |
/// | 503 | 2 | a remote participant lost their connection to the service |
/// | 503 | 3 | the phone network failed the call |
/// | 4xx–6xx | 5 | the phone network ended the call with this SIP status (one not named above) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallEndReason {
    /// The class of the end: 0 normal, 4xx and 6xx refused, 5xx failed.
    pub code: u16,
    /// Which case within the class.
    pub subcode: u32,
}

impl CallEndReason {
    /// The local user hung up.
    pub const LOCAL_HANG_UP: Self = Self::new(0, 0);
    /// A remote participant hung up.
    pub const REMOTE_HANG_UP: Self = Self::new(0, 1);
    /// An organizer ended the call for everyone.
    pub const ENDED_FOR_EVERYONE: Self = Self::new(0, 2);
    /// An organizer removed the participant from the call.
    pub const REMOVED: Self = Self::new(0, 3);
    /// An organizer did not admit the participant from the lobby.
    pub const LOBBY_REJECTED: Self = Self::new(403, 0);
    /// The callee did not answer before the service stopped ringing.
    pub const NO_ANSWER: Self = Self::new(408, 0);
    /// The request was invalid, e.g. it named no valid target.
    pub const BAD_REQUEST: Self = Self::new(400, 0);
    /// No user with that identity is signed in to the service.
    pub const USER_NOT_FOUND: Self = Self::new(404, 0);
    /// The phone network knows no such number.
    pub const NUMBER_NOT_FOUND: Self = Self::new(404, 1);
    /// The phone is unavailable (switched off, out of reach).
    pub const PHONE_UNAVAILABLE: Self = Self::new(480, 0);
    /// The phone is busy.
    pub const BUSY: Self = Self::new(486, 0);
    /// The phone network failed the call (an error from the carrier, or no media).
    pub const PHONE_NETWORK_FAILED: Self = Self::new(503, 3);
    /// The subcode of a phone network's SIP status that has no reason of its own: the code is
    /// the status (403 when the carrier refuses our credentials, say).
    pub const PHONE_STATUS_SUBCODE: u32 = 5;
    /// The caller hung up before the call was answered.
    pub const CANCELLED: Self = Self::new(487, 0);
    /// The callee declined the call.
    pub const DECLINED: Self = Self::new(603, 0);
    /// The local user rejected the incoming call.
    pub const REJECTED_LOCALLY: Self = Self::new(603, 1);
    /// The connection to the call service was lost.
    pub const SERVICE_CONNECTION_LOST: Self = Self::new(503, 0);
    /// The media connection to the call service failed.
    pub const MEDIA_FAILED: Self = Self::new(503, 1);
    /// A remote participant lost their connection to the service.
    pub const REMOTE_CONNECTION_LOST: Self = Self::new(503, 2);

    /// A reason from its code and subcode.
    pub const fn new(code: u16, subcode: u32) -> Self {
        Self { code, subcode }
    }

    /// True for the normal ends (code 0): somebody hung up.
    pub fn is_normal(&self) -> bool {
        self.code == 0
    }

    /// A sentence describing the reason, or a generic one for an unknown pair.
    pub fn description(&self) -> &'static str {
        match *self {
            Self::LOCAL_HANG_UP => "the local user hung up",
            Self::REMOTE_HANG_UP => "a remote participant hung up",
            Self::ENDED_FOR_EVERYONE => "an organizer ended the call for everyone",
            Self::REMOVED => "an organizer removed the participant from the call",
            Self::LOBBY_REJECTED => "an organizer did not admit the participant from the lobby",
            Self::NO_ANSWER => "the callee did not answer in time",
            Self::BAD_REQUEST => "the request was invalid",
            Self::USER_NOT_FOUND => "no user with that identity is signed in to the service",
            Self::NUMBER_NOT_FOUND => "the phone network knows no such number",
            Self::PHONE_UNAVAILABLE => "the phone is unavailable",
            Self::BUSY => "the phone is busy",
            Self::PHONE_NETWORK_FAILED => "the phone network failed the call",
            Self::CANCELLED => "the caller hung up before the call was answered",
            Self::DECLINED => "the callee declined the call",
            Self::REJECTED_LOCALLY => "the local user rejected the incoming call",
            Self::SERVICE_CONNECTION_LOST => "the connection to the call service was lost",
            Self::MEDIA_FAILED => "the media connection to the call service failed",
            Self::REMOTE_CONNECTION_LOST => {
                "a remote participant lost their connection to the service"
            }
            Self {
                subcode: Self::PHONE_STATUS_SUBCODE,
                ..
            } => "the phone network ended the call",
            _ => "the call ended for a reason this version does not know",
        }
    }
}

impl std::fmt::Display for CallEndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}: {}", self.code, self.subcode, self.description())
    }
}
