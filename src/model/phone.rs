//! Phone calls' own requests and facts: DTMF digits, sent to the phones in a call and heard
//! from them (RFC 4733 telephone events through the service's SIP gateway).

use bevy::prelude::*;
use call_protocol::CommunicationIdentifier;

/// Request: send DTMF digits (`0-9`, `*`, `#`, `A-D`, at most 32) to the phones in a call, as
/// a keypad would: an automated menu, a conference PIN. A call without a phone, or other
/// characters, is refused ([`super::RequestFailed`]).
#[derive(Event, Clone, Debug)]
pub struct SendDtmf {
    /// The call.
    pub call: Entity,
    /// The digits, in order.
    pub tones: String,
}

/// Fact: somebody in a call sent DTMF digits (a phone pressed keys, or another participant
/// sent digits to the phones).
#[derive(Message, Clone, Debug)]
pub struct DtmfReceived {
    /// The [`super::Call`] entity.
    pub call: Entity,
    /// Who sent them.
    pub from: CommunicationIdentifier,
    /// The digits, in order.
    pub tones: String,
}
