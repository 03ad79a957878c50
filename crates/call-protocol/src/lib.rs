//! Signaling messages and identifiers shared by the bevy_calling client and the call service.
//!
//! This crate holds data only: [`CommunicationIdentifier`]s, the [`ClientMessage`] and
//! [`ServerMessage`] enums with their versioned JSON framing ([`encode`], [`decode`]), and the
//! [`CallEndReason`] table, and the one fact about RTP payloads that clients and the SFU share
//! ([`h264_starts_keyframe`]). It knows nothing of sockets, codecs or Bevy.
#![warn(missing_docs)]

mod end_reason;
mod identifier;
mod message;
mod participant;
mod rtp;

pub use end_reason::CallEndReason;
pub use identifier::{CommunicationIdentifier, IdentifierError};
pub use message::{
    AUDIO_SLOTS, CallId, ClientMessage, ErrorCode, MAX_DTMF_DIGITS, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION, ProtocolError, ServerMessage, VIDEO_SLOTS, decode, encode, valid_dtmf,
};
pub use participant::{
    MediaType, ParticipantInfo, ParticipantState, Role, StreamInfo, StreamStopReason,
};
pub use rtp::h264_starts_keyframe;
