//! The SIP gateway: phone calls through a carrier's trunk.
//!
//! A call to `4:+<E.164>` makes a phone session in the switchboard
//! ([`crate::switchboard::PhoneProgress`]); the gateway dials it on the trunk over SIP (UDP,
//! rsipstack for messages, transactions and dialogs), tells the switchboard how it progresses
//! (180, 183, 200, failures as end reasons), and plays the phone's part in the SFU: a media leg
//! ([`leg`]) codes between the call's Opus and the phone's G.711 ([`transcode`]), described in
//! SDP ([`sdp`]). Messages the switchboard addresses to a phone session come here; its call
//! ending hangs the phone up.

mod dial_in;
mod dial_out;
pub mod leg;
mod phone;
pub mod sdp;
mod sip;
pub mod transcode;

use std::collections::HashMap;
use std::net::SocketAddr;

use call_protocol::{CallEndReason, CallId, CommunicationIdentifier, ServerMessage};
use tokio::sync::{mpsc, oneshot};

pub use crate::switchboard::DialIn;
use crate::switchboard::{PhoneProgress, SessionId};

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

/// Reads a dial-in rule, `NUMBER=TARGET`: an E.164 number with its `+`, and a user
/// (`8:acs:bob`) or a group call's GUID.
pub fn parse_dial_in(rule: &str) -> Result<(String, DialIn), String> {
    let (number, target) = rule
        .split_once('=')
        .ok_or_else(|| format!("`{rule}` is not NUMBER=TARGET"))?;
    // Checked as a phone identifier; the number stays as written (`+` and digits).
    format!("4:{number}")
        .parse::<CommunicationIdentifier>()
        .map_err(|e| format!("{e}"))?;
    let group = CallId(target.to_owned());
    let target = match target.parse() {
        Ok(user @ CommunicationIdentifier::CommunicationUser(_)) => DialIn::User(user),
        _ if group.is_guid() => DialIn::Group(group),
        _ => {
            return Err(format!(
                "`{target}` is neither a user (8:acs:...) nor a group call GUID"
            ));
        }
    };
    Ok((number.to_owned(), target))
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
    /// Phone session `session` (dialled in) is played by the call task behind `commands`;
    /// sent before any message the switchboard addresses to it.
    Register {
        /// The phone's session.
        session: SessionId,
        /// Its call task.
        commands: mpsc::Sender<CallCommand>,
    },
    /// The switchboard told phone session `session` this.
    Message {
        /// The phone's session.
        session: SessionId,
        /// What it was told.
        message: ServerMessage,
    },
}

/// What the gateway's loop tells one phone call's task. Dropping its sender hangs the call up.
#[derive(Debug)]
pub enum CallCommand {
    /// The call was answered here (a phone that dialled in is connected): answer it.
    Answer,
    /// Play these digits to the phone (RFC 4733).
    Dtmf(String),
    /// The call ended here, for this reason: hang the phone up (a phone still ringing here
    /// hears the matching SIP status).
    End(CallEndReason),
}

/// What the gateway tells signaling.
#[derive(Debug)]
pub enum GatewayEvent {
    /// A phone call progressed.
    Progress(SessionId, PhoneProgress),
    /// A phone dialled a number on the trunk that reaches `target`.
    DialIn {
        /// The phone.
        caller: CommunicationIdentifier,
        /// Its name, as the carrier gave it, or its number.
        display_name: String,
        /// Whom it reaches.
        target: DialIn,
        /// Its call task, registered before the switchboard's first message to it.
        commands: mpsc::Sender<CallCommand>,
        /// Its session, or why nobody can be reached.
        reply: oneshot::Sender<Result<SessionId, CallEndReason>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_in_rules_name_a_number_and_a_user_or_a_group() {
        let bob = CommunicationIdentifier::user("bob").unwrap();
        assert_eq!(
            parse_dial_in("+15550002=8:acs:bob"),
            Ok(("+15550002".to_owned(), DialIn::User(bob)))
        );
        let group = CallId::new_group();
        assert_eq!(
            parse_dial_in(&format!("+15550003={group}")),
            Ok(("+15550003".to_owned(), DialIn::Group(group)))
        );
        for bad in [
            "+15550002",
            "15550002=8:acs:bob",
            "+1=8:acs:bob",
            "+15550002=nobody",
        ] {
            assert!(parse_dial_in(bad).is_err(), "{bad}");
        }
    }
}
