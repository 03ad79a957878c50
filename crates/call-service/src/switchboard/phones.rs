//! Phone participants: a call to `4:+<E.164>` makes a phone session for that call alone, which
//! the SIP gateway ([`crate::pstn`]) dials; its progress comes back here as the seed's states
//! (180 ringing, 183 early media, 200 connected, failures with their reasons). Messages the
//! switchboard addresses to a phone session go to the gateway, which acts on the ones that
//! concern it (its call ended).

use std::collections::BTreeSet;

use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ParticipantState, Role, ServerMessage,
};

use super::{BOT_SESSIONS, Member, Outbound, Session, SessionId, Switchboard};

/// Sessions from here up to [`BOT_SESSIONS`] are phones the switchboard makes, one per call
/// with a phone; they have no connection, and the gateway plays their part.
pub const PHONE_SESSIONS: SessionId = 1 << 61;

/// Whether a session is a phone participant.
pub fn is_phone(session: SessionId) -> bool {
    (PHONE_SESSIONS..BOT_SESSIONS).contains(&session)
}

/// How a call to a phone progresses, as the gateway hears it from the carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneProgress {
    /// 180: the phone rings.
    Ringing,
    /// 183 with a description: the carrier plays ringback or an announcement.
    EarlyMedia,
    /// 200: answered.
    Answered,
    /// The phone's side ended: refused, unanswered, unreachable or hung up.
    Ended(CallEndReason),
}

impl Switchboard {
    /// Lets calls reach phone numbers: a gateway is configured.
    pub fn enable_phones(&mut self) {
        self.phones_enabled = true;
    }

    /// A new phone session for `number`, ringing in a call being placed.
    pub(super) fn new_phone(&mut self, id: CommunicationIdentifier) -> Member {
        let session = PHONE_SESSIONS + self.phones_made;
        self.phones_made += 1;
        self.sessions.insert(
            session,
            Session {
                display_name: id.to_string().trim_start_matches("4:").to_owned(),
                user: id,
                role: Role::Presenter,
                calls: BTreeSet::new(),
            },
        );
        let info = self.info_of(session, ParticipantState::Connecting);
        Member { session, info }
    }

    /// What the gateway heard about phone `session`'s call.
    pub fn phone_progress(&mut self, session: SessionId, progress: PhoneProgress) -> Vec<Outbound> {
        let Some(call_id) = self.phone_call(session) else {
            return Vec::new();
        };
        match progress {
            PhoneProgress::Ringing => {
                self.tell_caller(&call_id, |call_id| ServerMessage::CallRinging { call_id })
            }
            PhoneProgress::EarlyMedia => {
                let mut out = self.update_member(&call_id, session, |info| {
                    info.state = ParticipantState::EarlyMedia;
                });
                out.extend(
                    self.tell_caller(&call_id, |call_id| ServerMessage::CallEarlyMedia {
                        call_id,
                    }),
                );
                out.extend(self.calls.get(&call_id).map(|call| call.route(&call_id)));
                out
            }
            PhoneProgress::Answered => self.connect_member(session, &call_id),
            PhoneProgress::Ended(reason) => self.leave(&call_id, session, None, reason),
        }
    }

    /// The one call a phone session is in.
    fn phone_call(&self, session: SessionId) -> Option<CallId> {
        let calls = &self.sessions.get(&session)?.calls;
        calls.iter().next().cloned()
    }

    /// Tells the caller of a call nobody has answered yet how it progresses.
    fn tell_caller(
        &self,
        call_id: &CallId,
        message: impl FnOnce(CallId) -> ServerMessage,
    ) -> Vec<Outbound> {
        match self.calls.get(call_id) {
            Some(call) if !call.connected => {
                vec![Outbound::Send(call.caller, message(call_id.clone()))]
            }
            _ => Vec::new(),
        }
    }
}
