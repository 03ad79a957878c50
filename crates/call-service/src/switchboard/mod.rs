//! The service's call logic as plain data: who is signed in, which calls exist, who is in them.
//!
//! Every method takes one request and returns the [`Outbound`] effects it causes: messages to
//! sessions and media routes for the SFU. Nothing here does I/O, so the rules are unit-tested
//! directly; the service's signaling module owns the sockets and applies the effects.
//!
//! This file holds the types, sign-in and sign-out, and the request dispatch; `calls.rs` starts,
//! answers, invites into and leaves calls, `group.rs` holds group calls by id, roles, the lobby
//! and dominant speakers, `video.rs` keeps each subscriber's video receive slots, and `tests.rs`
//! and `group_tests.rs` hold the unit tests.

mod bots;
mod calls;
mod group;
#[cfg(test)]
mod group_tests;
mod phones;
#[cfg(test)]
mod tests;
mod video;

pub use phones::{DialIn, PHONE_SESSIONS, PhoneProgress, is_phone};

use std::collections::{BTreeSet, HashMap};

use call_protocol::{
    CallEndReason, CallId, ClientMessage, CommunicationIdentifier, ErrorCode, MediaType,
    ParticipantInfo, ParticipantState, Role, ServerMessage, StreamInfo, VIDEO_SLOTS,
};

/// One signed-in WebSocket connection, or an echo bot.
pub type SessionId = u64;

/// Sessions from here up are echo bots the switchboard makes, one per call to `8:echo123`;
/// they have no connection, and the SFU plays their part ([`crate::echo`]).
pub const BOT_SESSIONS: SessionId = 1 << 62;

/// Whether a session is an echo bot.
pub fn is_bot(session: SessionId) -> bool {
    session >= BOT_SESSIONS
}

/// An effect of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Send this message to that session.
    Send(SessionId, ServerMessage),
    /// The call's media now flows between exactly these sessions (empty: the call is gone).
    Route {
        /// Which call.
        call_id: CallId,
        /// The sessions whose media is exchanged.
        members: Vec<SessionId>,
    },
    /// An echo bot session now exists (`present`) or is gone: the SFU starts or drops it.
    Bot {
        /// The bot's session.
        session: SessionId,
        /// Whether it exists.
        present: bool,
    },
    /// Receive slot `slot` of session `to` now carries a publisher's stream (`None`: nothing).
    VideoRoute {
        /// The subscriber.
        to: SessionId,
        /// Its receive slot.
        slot: usize,
        /// The publisher and which of its streams, or none.
        from: Option<(SessionId, MediaType)>,
    },
    /// Phone session `session` is to dial `number` for the call: the gateway places it.
    Dial {
        /// Which call.
        call_id: CallId,
        /// The phone's session.
        session: SessionId,
        /// The number, E.164 with its `+`.
        number: String,
    },
    /// `session` rings in the call: if it has not answered after the service's ring timeout,
    /// call [`Switchboard::ring_timeout`].
    RingTimer {
        /// Which call.
        call_id: CallId,
        /// Who rings.
        session: SessionId,
    },
}

/// A request the switchboard refuses, answered with [`ServerMessage::Error`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The error code for the client.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug)]
struct Session {
    user: CommunicationIdentifier,
    role: Role,
    display_name: String,
    calls: BTreeSet<CallId>,
}

#[derive(Debug)]
struct Member {
    session: SessionId,
    info: ParticipantInfo,
}

impl Member {
    /// In the call: connected or on hold, not ringing, waiting in the lobby or gone.
    fn in_call(&self) -> bool {
        matches!(
            self.info.state,
            ParticipantState::Connected | ParticipantState::Hold
        )
    }
}

/// What a subscriber's video receive slot carries.
#[derive(Clone, Debug, PartialEq, Eq)]
struct VideoRoute {
    call_id: CallId,
    publisher: SessionId,
    media_type: MediaType,
}

#[derive(Debug)]
struct CallRecord {
    /// Who placed it (or joined a group call first).
    caller: SessionId,
    /// Somebody answered (a group call is connected from its first joiner).
    connected: bool,
    /// Joined by id: it goes on while anyone is in it, rather than ending below two members.
    group: bool,
    /// Joiners who are not organizers wait as [`ParticipantState::InLobby`].
    lobby: bool,
    members: Vec<Member>,
    /// The dominant speakers the SFU last reported, loudest first.
    dominant: Vec<SessionId>,
    /// Whose voice each audio receive slot carries, as the SFU last reported.
    voice_slots: Vec<Option<SessionId>>,
}

impl CallRecord {
    fn new(caller: SessionId, info: ParticipantInfo, group: bool) -> Self {
        Self {
            caller,
            connected: group,
            group,
            lobby: false,
            members: vec![Member {
                session: caller,
                info,
            }],
            dominant: Vec::new(),
            voice_slots: Vec::new(),
        }
    }

    fn member_mut(&mut self, session: SessionId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.session == session)
    }

    fn state_of(&self, session: SessionId) -> Option<ParticipantState> {
        self.members
            .iter()
            .find(|m| m.session == session)
            .map(|m| m.info.state)
    }

    /// The member who is `id` (any of a user's sessions in the call).
    fn session_of(&self, id: &CommunicationIdentifier) -> Option<SessionId> {
        self.members
            .iter()
            .find(|m| &m.info.id == id)
            .map(|m| m.session)
    }

    /// Whether the call goes on: a group call while anyone is in it (not only ringing or
    /// waiting in the lobby; phones and bots alone do not keep it), any other call while two
    /// members are left.
    fn goes_on(&self) -> bool {
        if self.group {
            self.members
                .iter()
                .any(|m| m.in_call() && !is_bot(m.session) && !is_phone(m.session))
        } else {
            self.members.len() >= 2
        }
    }

    /// The members whose media flows: connected ones, and phones playing early media.
    fn connected_sessions(&self) -> Vec<SessionId> {
        self.members
            .iter()
            .filter(|m| {
                matches!(
                    m.info.state,
                    ParticipantState::Connected | ParticipantState::EarlyMedia
                )
            })
            .map(|m| m.session)
            .collect()
    }

    /// Tells every member but `except` about `info`.
    fn announce(
        &self,
        call_id: &CallId,
        except: SessionId,
        info: &ParticipantInfo,
    ) -> Vec<Outbound> {
        self.members
            .iter()
            .filter(|m| m.session != except)
            .map(|m| {
                Outbound::Send(
                    m.session,
                    ServerMessage::ParticipantUpdated {
                        call_id: call_id.clone(),
                        participant: info.clone(),
                    },
                )
            })
            .collect()
    }

    fn route(&self, call_id: &CallId) -> Outbound {
        let members = self.connected_sessions();
        Outbound::Route {
            call_id: call_id.clone(),
            members: if members.len() >= 2 {
                members
            } else {
                Vec::new()
            },
        }
    }
}

/// Sessions and calls of one service.
#[derive(Debug, Default)]
pub struct Switchboard {
    sessions: HashMap<SessionId, Session>,
    by_user: HashMap<CommunicationIdentifier, SessionId>,
    calls: HashMap<CallId, CallRecord>,
    video: HashMap<SessionId, [Option<VideoRoute>; VIDEO_SLOTS]>,
    /// Echo bots made so far.
    bots_made: SessionId,
    /// Phone sessions made so far.
    phones_made: SessionId,
    /// A gateway dials phone numbers ([`Switchboard::enable_phones`]); without one a phone
    /// number is not found.
    phones_enabled: bool,
}

impl Switchboard {
    /// Registers a signed-in session with its token's role. A user signed in twice is reached
    /// on the newer session.
    pub fn sign_in(
        &mut self,
        session: SessionId,
        user: CommunicationIdentifier,
        role: Role,
        display_name: String,
    ) {
        self.by_user.insert(user.clone(), session);
        self.sessions.insert(
            session,
            Session {
                user,
                role,
                display_name,
                calls: BTreeSet::new(),
            },
        );
    }

    /// The session a user is reached on.
    pub fn session_of(&self, user: &CommunicationIdentifier) -> Option<SessionId> {
        self.by_user.get(user).copied()
    }

    /// Removes a session that went away: it leaves every call it was in.
    pub fn sign_out(&mut self, session: SessionId) -> Vec<Outbound> {
        let Some(calls) = self.sessions.get(&session).map(|s| s.calls.clone()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for call_id in calls {
            out.extend(self.leave(
                &call_id,
                session,
                None,
                CallEndReason::REMOTE_CONNECTION_LOST,
            ));
        }
        if let Some(s) = self.sessions.remove(&session)
            && self.by_user.get(&s.user) == Some(&session)
        {
            self.by_user.remove(&s.user);
        }
        self.video.remove(&session);
        out
    }

    /// Applies a call request from a signed-in session.
    pub fn handle(
        &mut self,
        session: SessionId,
        message: ClientMessage,
    ) -> Result<Vec<Outbound>, Refusal> {
        if !self.sessions.contains_key(&session) {
            return Err(Refusal::new(
                ErrorCode::NotSignedIn,
                "send `hello` with a token first",
            ));
        }
        match message {
            ClientMessage::StartCall { call_id, targets } => {
                self.start_call(session, call_id, targets)
            }
            ClientMessage::AcceptCall { call_id } => self.accept(session, &call_id),
            ClientMessage::RejectCall { call_id } => {
                self.pending_member(&call_id, session)?;
                Ok(self.leave(
                    &call_id,
                    session,
                    Some(CallEndReason::REJECTED_LOCALLY),
                    CallEndReason::DECLINED,
                ))
            }
            ClientMessage::HangUp { call_id } => {
                let call = self.call_of(&call_id, session)?;
                let state = call.state_of(session);
                let others = if state == Some(ParticipantState::Connecting) {
                    CallEndReason::DECLINED
                } else if !call.connected && call.caller == session {
                    CallEndReason::CANCELLED
                } else {
                    CallEndReason::REMOTE_HANG_UP
                };
                Ok(self.leave(
                    &call_id,
                    session,
                    Some(CallEndReason::LOCAL_HANG_UP),
                    others,
                ))
            }
            ClientMessage::SetMuted { call_id, muted } => {
                self.call_of(&call_id, session)?;
                Ok(self.update_member(&call_id, session, |info| info.is_muted = muted))
            }
            ClientMessage::SetVideo {
                call_id,
                media_type,
                on,
                stopped,
            } => {
                self.call_of(&call_id, session)?;
                let stream = StreamInfo {
                    media_type,
                    is_available: on,
                    stopped: stopped.filter(|_| !on),
                };
                Ok(self.update_member(&call_id, session, |info| {
                    match info.streams.iter_mut().find(|s| s.media_type == media_type) {
                        Some(s) => *s = stream,
                        None => info.streams.push(stream),
                    }
                }))
            }
            ClientMessage::SetHold { call_id, held } => self.set_hold(session, &call_id, held),
            ClientMessage::JoinGroup { call_id } => self.join_group(session, call_id),
            ClientMessage::AddParticipants { call_id, targets } => {
                self.add_participants(session, &call_id, targets)
            }
            ClientMessage::RemoveParticipant {
                call_id,
                participant,
            } => self.remove(session, &call_id, &participant),
            ClientMessage::EndForEveryone { call_id } => self.end_for_everyone(session, &call_id),
            ClientMessage::SendDtmf { call_id, tones } => self.send_dtmf(session, &call_id, tones),
            ClientMessage::SetLobby { call_id, enabled } => {
                self.moderator_in(&call_id, session)?;
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.lobby = enabled;
                }
                Ok(Vec::new())
            }
            ClientMessage::Admit {
                call_id,
                participant,
                admit,
            } => self.admit(session, &call_id, &participant, admit),
            ClientMessage::Subscribe {
                call_id,
                participant,
                media_type,
            } => self.subscribe(session, call_id, &participant, media_type),
            ClientMessage::Unsubscribe {
                call_id,
                participant,
                media_type,
            } => {
                self.call_of(&call_id, session)?;
                let publisher = self.by_user.get(&participant).copied();
                Ok(self.unroute(session, |r| {
                    r.call_id == call_id
                        && Some(r.publisher) == publisher
                        && r.media_type == media_type
                }))
            }
            ClientMessage::Hello { .. }
            | ClientMessage::Offer { .. }
            | ClientMessage::IceCandidate { .. } => {
                Err(Refusal::new(ErrorCode::BadRequest, "not a call request"))
            }
        }
    }

    /// Records that the SFU hears `session` speaking or not, and tells its calls.
    pub fn set_speaking(&mut self, session: SessionId, speaking: bool) -> Vec<Outbound> {
        let calls = self
            .sessions
            .get(&session)
            .map(|s| s.calls.clone())
            .unwrap_or_default();
        calls
            .iter()
            .flat_map(|call_id| {
                self.update_member(call_id, session, |info| info.is_speaking = speaking)
            })
            .collect()
    }

    fn info_of(&self, session: SessionId, state: ParticipantState) -> ParticipantInfo {
        let s = &self.sessions[&session];
        ParticipantInfo {
            id: s.user.clone(),
            display_name: s.display_name.clone(),
            state,
            is_muted: false,
            is_speaking: false,
            streams: vec![StreamInfo {
                media_type: MediaType::Video,
                is_available: false,
                stopped: None,
            }],
            role: s.role,
        }
    }

    fn call_of(&self, call_id: &CallId, session: SessionId) -> Result<&CallRecord, Refusal> {
        self.calls
            .get(call_id)
            .filter(|c| c.members.iter().any(|m| m.session == session))
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::UnknownCall,
                    format!("you are not in call `{call_id}`"),
                )
            })
    }

    fn pending_member(&self, call_id: &CallId, session: SessionId) -> Result<(), Refusal> {
        let call = self.call_of(call_id, session)?;
        let pending = call
            .members
            .iter()
            .any(|m| m.session == session && m.info.state == ParticipantState::Connecting);
        if pending {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("call `{call_id}` is not ringing here"),
            ))
        }
    }
}
