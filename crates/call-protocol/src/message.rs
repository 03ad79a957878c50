//! The signaling messages, and their versioned JSON encoding.
//!
//! Every frame is one JSON object `{"v": 1, "type": "...", ...}`. A frame larger than
//! [`MAX_MESSAGE_BYTES`], with another version, or that is not one of the messages below, decodes
//! to a [`ProtocolError`]; the service answers it with [`ServerMessage::Error`] and keeps the
//! connection.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CallEndReason, CommunicationIdentifier, MediaType, ParticipantInfo, StreamStopReason};

/// The most DTMF digits one [`ClientMessage::SendDtmf`] carries.
pub const MAX_DTMF_DIGITS: usize = 32;

/// Whether `tones` is a valid [`ClientMessage::SendDtmf`]: 1 to [`MAX_DTMF_DIGITS`] of
/// `0-9`, `*`, `#`, `A-D`.
pub fn valid_dtmf(tones: &str) -> bool {
    (1..=MAX_DTMF_DIGITS).contains(&tones.len())
        && tones
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
}

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts, in bytes. A browser's offer for the 16 media lines
/// with every codec it has is about 66 KB (Chromium 156), our clients' about 20 KB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// How many audio streams the service sends to each client at once, one receive slot each: the
/// call's dominant speakers.
pub const AUDIO_SLOTS: usize = 3;

/// How many video streams a client can receive at once (9 camera + 1 screen sharing, or any
/// mix): one receive slot each.
pub const VIDEO_SLOTS: usize = 10;

/// A call's id, chosen by the caller and unique on the service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl CallId {
    /// A fresh random id (128 bits, hex), for a caller to name a new call.
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// A fresh random group call id: a GUID (`8-4-4-4-12` hex digits), as group calls have.
    pub fn new_group() -> Self {
        let hex = format!("{:032x}", rand::random::<u128>());
        Self(format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ))
    }

    /// Whether the id is a GUID (`8-4-4-4-12` hex digits, either case): what group calls are
    /// named by.
    pub fn is_guid(&self) -> bool {
        let groups: Vec<&str> = self.0.split('-').collect();
        groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a client sends to the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message: sign in with an access token.
    Hello {
        /// The access token from the service.
        token: String,
        /// The name other participants see.
        display_name: String,
    },
    /// The SDP offer of the client's one media connection to the service.
    Offer {
        /// The offer SDP.
        sdp: String,
    },
    /// A trickled local ICE candidate (`candidate:...` attribute value).
    IceCandidate {
        /// The candidate line.
        candidate: String,
    },
    /// Call the targets.
    StartCall {
        /// The id the caller chose for the call.
        call_id: CallId,
        /// Whom to call.
        targets: Vec<CommunicationIdentifier>,
    },
    /// Accept an incoming call.
    AcceptCall {
        /// Which call.
        call_id: CallId,
    },
    /// Reject an incoming call.
    RejectCall {
        /// Which call.
        call_id: CallId,
    },
    /// Join the group call with this id (a GUID, [`CallId::new_group`]), starting it as its
    /// first member. With the call's lobby on, anyone but an organizer waits there
    /// ([`ServerMessage::InLobby`]) until admitted.
    JoinGroup {
        /// The group call's id.
        call_id: CallId,
    },
    /// Invite more people into a call the sender is connected in; each one's client rings
    /// with that call. A 1:1 call becomes a group call. Attendees may not invite.
    AddParticipants {
        /// Which call.
        call_id: CallId,
        /// Whom to invite.
        targets: Vec<CommunicationIdentifier>,
    },
    /// Take a participant out of the call (organizers only): they and everyone else see it
    /// with [`CallEndReason::REMOVED`].
    RemoveParticipant {
        /// Which call.
        call_id: CallId,
        /// Whom.
        participant: CommunicationIdentifier,
    },
    /// Leave a call.
    HangUp {
        /// Which call.
        call_id: CallId,
    },
    /// Send DTMF digits (`0-9`, `*`, `#`, `A-D`, at most [`MAX_DTMF_DIGITS`]) to the phones
    /// in the call, as RFC 4733 telephone events.
    SendDtmf {
        /// Which call.
        call_id: CallId,
        /// The digits, in order.
        tones: String,
    },
    /// End the call for every participant (organizers only), with
    /// [`CallEndReason::ENDED_FOR_EVERYONE`].
    EndForEveryone {
        /// Which call.
        call_id: CallId,
    },
    /// Turn the call's lobby on or off (organizers only). While on, people who join wait as
    /// [`ParticipantState::InLobby`] until an organizer admits or rejects them; turning it off
    /// leaves those already waiting there.
    SetLobby {
        /// Which call.
        call_id: CallId,
        /// On or off.
        enabled: bool,
    },
    /// Admit a participant waiting in the lobby into the call, or reject them (organizers
    /// only); a rejected one leaves with [`CallEndReason::LOBBY_REJECTED`].
    Admit {
        /// Which call.
        call_id: CallId,
        /// Who waits.
        participant: CommunicationIdentifier,
        /// Admit (`true`) or reject.
        admit: bool,
    },
    /// Mute or unmute the microphone in a call.
    SetMuted {
        /// Which call.
        call_id: CallId,
        /// The new state.
        muted: bool,
    },
    /// Start or stop sending a video stream in a call.
    SetVideo {
        /// Which call.
        call_id: CallId,
        /// Which stream.
        media_type: MediaType,
        /// Whether it is sending.
        on: bool,
        /// Why it stopped by itself, when it did (off only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<StreamStopReason>,
    },
    /// Put a connected call on hold (`held`) or resume it. While held, the service forwards
    /// nothing to or from this participant; the others see it as [`ParticipantState::Hold`].
    SetHold {
        /// Which call.
        call_id: CallId,
        /// Hold (`true`) or resume.
        held: bool,
    },
    /// Receive a participant's video stream (the service forwards it only while subscribed).
    Subscribe {
        /// Which call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
    },
    /// Stop receiving a participant's video stream.
    Unsubscribe {
        /// Which call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
    },
}

/// What the service sends to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The token was accepted: the client is signed in as `user`.
    Welcome {
        /// The identity from the token.
        user: CommunicationIdentifier,
    },
    /// The SDP answer to the client's offer.
    Answer {
        /// The answer SDP.
        sdp: String,
    },
    /// A trickled ICE candidate of the service.
    IceCandidate {
        /// The candidate line.
        candidate: String,
    },
    /// Somebody calls this client.
    IncomingCall {
        /// The call's id.
        call_id: CallId,
        /// Who calls.
        caller: ParticipantInfo,
    },
    /// The callees of an outgoing call are being alerted.
    CallRinging {
        /// Which call.
        call_id: CallId,
    },
    /// Before anyone answered, media flows from a phone's carrier: ringback or an
    /// announcement (a SIP 183 with a description).
    CallEarlyMedia {
        /// Which call.
        call_id: CallId,
    },
    /// Somebody in the call sent DTMF digits: a phone, or (to a phone) a client.
    DtmfReceived {
        /// Which call.
        call_id: CallId,
        /// Who sent them.
        from: CommunicationIdentifier,
        /// The digits, in order.
        tones: String,
    },
    /// The call is connected: media is routed between its participants.
    CallConnected {
        /// Which call.
        call_id: CallId,
    },
    /// This client waits in the call's lobby until an organizer admits it
    /// ([`ServerMessage::CallConnected`]) or rejects it ([`ServerMessage::CallEnded`]).
    InLobby {
        /// Which call.
        call_id: CallId,
    },
    /// The call's dominant speakers: whose voices the service forwards, the one who became
    /// the loudest most recently first, at most [`AUDIO_SLOTS`].
    DominantSpeakers {
        /// Which call.
        call_id: CallId,
        /// Who, in that order.
        speakers: Vec<CommunicationIdentifier>,
        /// Whose voice each of the client's audio receive slots carries (slot order, at most
        /// [`AUDIO_SLOTS`]), so a client can place each voice (positional audio). Absent from
        /// older services: empty.
        #[serde(default)]
        slots: Vec<Option<CommunicationIdentifier>>,
    },
    /// The call ended for this client.
    CallEnded {
        /// Which call.
        call_id: CallId,
        /// Why.
        reason: CallEndReason,
    },
    /// A participant of the call joined or changed.
    ParticipantUpdated {
        /// Which call.
        call_id: CallId,
        /// Their current state.
        participant: ParticipantInfo,
    },
    /// A participant left the call.
    ParticipantLeft {
        /// Which call.
        call_id: CallId,
        /// Who left.
        id: CommunicationIdentifier,
        /// Why.
        reason: CallEndReason,
    },
    /// A subscribed video stream now arrives in this receive slot.
    VideoRouted {
        /// Which call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
        /// The receive slot, `0..VIDEO_SLOTS`.
        slot: u8,
    },
    /// A video stream no longer arrives (unsubscribed, or its participant left).
    VideoUnrouted {
        /// Which call.
        call_id: CallId,
        /// Whose stream.
        participant: CommunicationIdentifier,
        /// Which stream.
        media_type: MediaType,
    },
    /// A request failed; the connection stays open unless the code says otherwise.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
    },
}

/// The kinds of failure the service reports in [`ServerMessage::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No token was given; the connection closes.
    MissingToken,
    /// The token is forged, malformed or lacks the `voip` scope; the connection closes.
    InvalidToken,
    /// The token has expired; the connection closes.
    TokenExpired,
    /// The frame has another protocol version.
    UnsupportedVersion,
    /// The frame is not valid JSON or no known message.
    MalformedMessage,
    /// The frame is larger than [`MAX_MESSAGE_BYTES`].
    MessageTooLarge,
    /// The request needs a signed-in session (send `hello` first).
    NotSignedIn,
    /// The request names a call this client is not in.
    UnknownCall,
    /// The request is well-formed but not allowed now.
    BadRequest,
    /// The sender's role does not allow this request (for example, removing a participant
    /// takes an organizer).
    Forbidden,
    /// The client did not read its messages: so many waited for it that the service stopped
    /// queueing more. Nothing is dropped silently: the connection closes after this error and
    /// the session is signed out, so the client's calls see it leave as a lost connection.
    TooSlow,
}

impl ErrorCode {
    /// True when the service closes the connection after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::MissingToken | Self::InvalidToken | Self::TokenExpired | Self::TooSlow
        )
    }
}

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is larger than the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// The frame has another protocol version.
    #[error("protocol version {0} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u32),
    /// The frame is not valid JSON or no known message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl ProtocolError {
    /// The error code the service replies with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge(_) => ErrorCode::MessageTooLarge,
            Self::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Self::Malformed(_) => ErrorCode::MalformedMessage,
        }
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, M> {
    v: u32,
    #[serde(flatten)]
    body: &'a M,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u32>,
}

/// Encodes a message as one versioned JSON frame.
pub fn encode<M: Serialize>(message: &M) -> String {
    let envelope = EnvelopeOut {
        v: PROTOCOL_VERSION,
        body: message,
    };
    // Serializing these plain enums to a String cannot fail: no maps with non-string keys, no
    // failing Serialize impls.
    serde_json::to_string(&envelope).expect("signaling messages always serialize")
}

/// Decodes one frame, checking its size and version.
pub fn decode<M: DeserializeOwned>(frame: &str) -> Result<M, ProtocolError> {
    if frame.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(frame.len()));
    }
    let probe: VersionProbe =
        serde_json::from_str(frame).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    match probe.v {
        Some(PROTOCOL_VERSION) => {}
        Some(other) => return Err(ProtocolError::UnsupportedVersion(other)),
        None => return Err(ProtocolError::Malformed("missing field `v`".into())),
    }
    serde_json::from_str(frame).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> CommunicationIdentifier {
        CommunicationIdentifier::user("bob").unwrap()
    }

    #[test]
    fn messages_round_trip_with_version() {
        let msg = ClientMessage::StartCall {
            call_id: CallId("c1".into()),
            targets: vec![bob(), CommunicationIdentifier::EchoBot],
        };
        let frame = encode(&msg);
        assert!(
            frame.starts_with(r#"{"v":1,"type":"start_call""#),
            "{frame}"
        );
        assert_eq!(decode::<ClientMessage>(&frame).unwrap(), msg);

        let msg = ServerMessage::CallEnded {
            call_id: CallId("c1".into()),
            reason: CallEndReason::DECLINED,
        };
        assert_eq!(decode::<ServerMessage>(&encode(&msg)).unwrap(), msg);
    }

    #[test]
    fn bad_frames_give_typed_errors() {
        assert_eq!(
            decode::<ClientMessage>(r#"{"v":2,"type":"hang_up","call_id":"x"}"#),
            Err(ProtocolError::UnsupportedVersion(2))
        );
        assert!(matches!(
            decode::<ClientMessage>(r#"{"type":"hang_up","call_id":"x"}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode::<ClientMessage>(r#"{"v":1,"type":"fly"}"#),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode::<ClientMessage>("not json"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode::<ClientMessage>(
                r#"{"v":1,"type":"start_call","call_id":"c","targets":["bob"]}"#
            ),
            Err(ProtocolError::Malformed(_))
        ));
        let huge = format!(
            r#"{{"v":1,"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(matches!(
            decode::<ClientMessage>(&huge),
            Err(ProtocolError::TooLarge(_))
        ));
    }

    #[test]
    fn group_ids_are_guids() {
        let id = CallId::new_group();
        assert!(id.is_guid(), "{id}");
        assert_ne!(id, CallId::new_group());
        assert!(CallId("29228d3e-040e-4656-a70e-890ab4e173E4".into()).is_guid());
        for bad in [
            "",
            "c1",
            "29228d3e040e4656a70e890ab4e173e4",
            "29228d3e-040e-4656-a70e-890ab4e173eg",
        ] {
            assert!(!CallId(bad.into()).is_guid(), "{bad}");
        }
        assert!(!CallId::random().is_guid());
    }

    #[test]
    fn end_reasons_describe_themselves() {
        assert!(CallEndReason::LOCAL_HANG_UP.is_normal());
        assert!(!CallEndReason::DECLINED.is_normal());
        assert_eq!(
            CallEndReason::DECLINED.to_string(),
            "603/0: the callee declined the call"
        );
        assert!(
            CallEndReason::new(999, 9)
                .description()
                .contains("does not know")
        );
    }
}
