//! Phone participants: a call to `4:+<E.164>` makes a phone session for that call alone, which
//! the SIP gateway ([`crate::pstn`]) dials; its progress comes back here as the seed's states
//! (180 ringing, 183 early media, 200 connected, failures with their reasons). Messages the
//! switchboard addresses to a phone session go to the gateway, which acts on the ones that
//! concern it (its call ended).

use std::collections::BTreeSet;

use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, MAX_DTMF_DIGITS, ParticipantState,
    Role, ServerMessage, valid_dtmf,
};

use super::{BOT_SESSIONS, CallRecord, Member, Outbound, Refusal, Session, SessionId, Switchboard};

/// Sessions from here up to [`BOT_SESSIONS`] are phones the switchboard makes, one per call
/// with a phone; they have no connection, and the gateway plays their part.
pub const PHONE_SESSIONS: SessionId = 1 << 61;

/// Whether a session is a phone participant.
pub fn is_phone(session: SessionId) -> bool {
    (PHONE_SESSIONS..BOT_SESSIONS).contains(&session)
}

/// Whom a number on the trunk reaches when a phone dials it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialIn {
    /// A user, rung like any call (`8:acs:...`).
    User(CommunicationIdentifier),
    /// A group call, joined by its id.
    Group(CallId),
}

/// How a call to a phone progresses, as the gateway hears it from the carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneProgress {
    /// 180: the phone rings.
    Ringing,
    /// 183 with a description: the carrier plays ringback or an announcement.
    EarlyMedia,
    /// 200: answered.
    Answered,
    /// The phone sent DTMF digits.
    Dtmf(String),
    /// The phone's side ended: refused, unanswered, unreachable or hung up.
    Ended(CallEndReason),
}

impl Switchboard {
    /// Lets calls reach phone numbers: a gateway is configured.
    pub fn enable_phones(&mut self) {
        self.phones_enabled = true;
    }

    /// A new phone session for `id`, named `display_name`, ringing in a call.
    pub(super) fn new_phone(
        &mut self,
        id: CommunicationIdentifier,
        display_name: String,
    ) -> Member {
        let session = PHONE_SESSIONS + self.phones_made;
        self.phones_made += 1;
        self.sessions.insert(
            session,
            Session {
                display_name,
                user: id,
                role: Role::Presenter,
                calls: BTreeSet::new(),
            },
        );
        let info = self.info_of(session, ParticipantState::Connecting);
        Member { session, info }
    }

    /// A phone (`caller`, named `display_name`) dials a number on the trunk that reaches
    /// `target`: it gets a session, and either rings the user in a call of its own or joins
    /// the group call. Its session, or why nobody can be reached.
    pub fn phone_dials_in(
        &mut self,
        caller: CommunicationIdentifier,
        display_name: String,
        target: DialIn,
    ) -> (Result<SessionId, CallEndReason>, Vec<Outbound>) {
        let mut phone = self.new_phone(caller, display_name);
        let session = phone.session;
        let result = match target {
            DialIn::User(user) => {
                let call_id = CallId::random();
                phone.info.state = ParticipantState::Connected;
                self.calls
                    .insert(call_id.clone(), CallRecord::new(session, phone.info, false));
                self.join_session(session, &call_id);
                let invited = self.invite(session, &call_id, vec![user]);
                match invited.added {
                    0 => {
                        self.calls.remove(&call_id);
                        self.leave_session(session, &call_id);
                        Err(CallEndReason::USER_NOT_FOUND)
                    }
                    _ => Ok(invited.out),
                }
            }
            DialIn::Group(call_id) => self
                .join_group(session, call_id)
                .map_err(|_| CallEndReason::BAD_REQUEST),
        };
        match result {
            Ok(out) => (Ok(session), out),
            Err(reason) => {
                self.sessions.remove(&session);
                (Err(reason), Vec::new())
            }
        }
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
            PhoneProgress::Dtmf(tones) => self.tell_digits(&call_id, session, tones),
            PhoneProgress::Ended(reason) => self.leave(&call_id, session, None, reason),
        }
    }

    /// `session` sends DTMF digits to the phones in the call.
    pub(super) fn send_dtmf(
        &mut self,
        session: SessionId,
        call_id: &CallId,
        tones: String,
    ) -> Result<Vec<Outbound>, Refusal> {
        let call = self.call_of(call_id, session)?;
        if !valid_dtmf(&tones) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("`{tones}` is not 1 to {MAX_DTMF_DIGITS} of 0-9 * # A-D"),
            ));
        }
        if !call.members.iter().any(|m| is_phone(m.session)) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("call `{call_id}` has no phone to send digits to"),
            ));
        }
        Ok(self.tell_digits(call_id, session, tones))
    }

    /// Tells everyone in the call but `from` (phones play them, people hear of them) that
    /// `from` sent `tones`.
    fn tell_digits(&self, call_id: &CallId, from: SessionId, tones: String) -> Vec<Outbound> {
        let (Some(call), Some(sender)) = (self.calls.get(call_id), self.sessions.get(&from)) else {
            return Vec::new();
        };
        call.members
            .iter()
            .filter(|m| m.session != from)
            .map(|m| {
                Outbound::Send(
                    m.session,
                    ServerMessage::DtmfReceived {
                        call_id: call_id.clone(),
                        from: sender.user.clone(),
                        tones: tones.clone(),
                    },
                )
            })
            .collect()
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
