//! The SIP gateway: phone calls through a carrier's trunk.
//!
//! A call to `4:+<E.164>` makes a phone session in the switchboard
//! ([`crate::switchboard::PhoneProgress`]); the gateway dials it on the trunk over SIP (UDP,
//! rsipstack for messages, transactions and dialogs), tells the switchboard how it progresses
//! (180, 183, 200, failures as end reasons), and plays the phone's part in the SFU: a media leg
//! ([`leg`]) codes between the call's Opus and the phone's G.711 ([`transcode`]), described in
//! SDP ([`sdp`]). Messages the switchboard addresses to a phone session come here; its call
//! ending hangs the phone up.

pub mod leg;
pub mod sdp;
mod sip;
pub mod transcode;

use std::collections::HashMap;
use std::net::SocketAddr;

use call_protocol::{CallId, ServerMessage};

use crate::switchboard::SessionId;

pub use sip::Gateway;

/// How many commands may wait for the gateway; it never waits on the network while taking
/// them, so this is only a burst's room.
pub const GATEWAY_COMMANDS: usize = 1024;

/// Digest credentials the trunk asks for (401/407).
#[derive(Clone, Debug)]
pub struct SipCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// The carrier trunk and the numbers on it.
#[derive(Clone, Debug)]
pub struct PstnConfig {
    /// The trunk's SIP address (UDP).
    pub trunk: SocketAddr,
    /// The local SIP (UDP) port, on the service's address; 0 picks a free one.
    pub sip_port: u16,
    /// Credentials for the trunk's digest challenges, if it asks.
    pub credentials: Option<SipCredentials>,
    /// The number our calls come from (the From user), E.164 with its `+`.
    pub caller_id: String,
    /// Numbers on the trunk that ring someone here when dialled.
    pub dial_in: HashMap<String, DialIn>,
}

/// Whom a number on the trunk reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialIn {
    /// A user, rung like any call (`8:acs:...`).
    User(call_protocol::CommunicationIdentifier),
    /// A group call, joined by its id.
    Group(CallId),
}

/// What signaling asks of the gateway.
#[derive(Debug)]
pub enum GatewayCommand {
    /// Dial `number` for phone session `session` in the call.
    Dial {
        /// Which call.
        call_id: CallId,
        /// The phone's session.
        session: SessionId,
        /// The number, E.164 with its `+`.
        number: String,
    },
    /// The switchboard told phone session `session` this.
    Message {
        /// The phone's session.
        session: SessionId,
        /// What it was told.
        message: ServerMessage,
    },
}
