//! The service's call logic as plain data: who is signed in, which calls exist, who is in them.
//!
//! Every method takes one request and returns the [`Outbound`] effects it causes: messages to
//! sessions and media routes for the SFU. Nothing here does I/O, so the rules are unit-tested
//! directly; [`crate::signaling`] owns the sockets and applies the effects.

use std::collections::{BTreeSet, HashMap};

use call_protocol::{
    CallEndReason, CallId, ClientMessage, CommunicationIdentifier, ErrorCode, MediaType,
    ParticipantInfo, ParticipantState, ServerMessage, StreamInfo, VIDEO_SLOTS,
};

/// One signed-in WebSocket connection.
pub type SessionId = u64;

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
    /// Receive slot `slot` of session `to` now carries a publisher's stream (`None`: nothing).
    VideoRoute {
        /// The subscriber.
        to: SessionId,
        /// Its receive slot.
        slot: usize,
        /// The publisher and which of its streams, or none.
        from: Option<(SessionId, MediaType)>,
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
    display_name: String,
    calls: BTreeSet<CallId>,
}

#[derive(Debug)]
struct Member {
    session: SessionId,
    info: ParticipantInfo,
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
    caller: SessionId,
    connected: bool,
    members: Vec<Member>,
}

impl CallRecord {
    fn member_mut(&mut self, session: SessionId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.session == session)
    }

    fn connected_sessions(&self) -> Vec<SessionId> {
        self.members
            .iter()
            .filter(|m| m.info.state == ParticipantState::Connected)
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
}

impl Switchboard {
    /// Registers a signed-in session. A user signed in twice is reached on the newer session.
    pub fn sign_in(
        &mut self,
        session: SessionId,
        user: CommunicationIdentifier,
        display_name: String,
    ) {
        self.by_user.insert(user.clone(), session);
        self.sessions.insert(
            session,
            Session {
                user,
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
                let state = call
                    .members
                    .iter()
                    .find(|m| m.session == session)
                    .map(|m| m.info.state);
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
            } => {
                self.call_of(&call_id, session)?;
                Ok(self.update_member(&call_id, session, |info| {
                    match info.streams.iter_mut().find(|s| s.media_type == media_type) {
                        Some(stream) => stream.is_available = on,
                        None => info.streams.push(StreamInfo {
                            media_type,
                            is_available: on,
                        }),
                    }
                }))
            }
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
            }],
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

    fn start_call(
        &mut self,
        caller: SessionId,
        call_id: CallId,
        targets: Vec<CommunicationIdentifier>,
    ) -> Result<Vec<Outbound>, Refusal> {
        if self.calls.contains_key(&call_id) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("call id `{call_id}` is in use"),
            ));
        }
        let caller_user = self.sessions[&caller].user.clone();
        let mut call = CallRecord {
            caller,
            connected: false,
            members: vec![Member {
                session: caller,
                info: self.info_of(caller, ParticipantState::Connected),
            }],
        };
        let mut out = Vec::new();
        let mut unreachable = Vec::new();
        for target in targets {
            match self.by_user.get(&target) {
                Some(&callee) if target != caller_user && call.member_mut(callee).is_none() => {
                    call.members.push(Member {
                        session: callee,
                        info: self.info_of(callee, ParticipantState::Connecting),
                    });
                }
                _ => unreachable.push(target),
            }
        }
        if call.members.len() < 2 {
            let reason = if unreachable.iter().any(|t| t != &caller_user) {
                CallEndReason::USER_NOT_FOUND
            } else {
                CallEndReason::BAD_REQUEST
            };
            out.push(Outbound::Send(
                caller,
                ServerMessage::CallEnded { call_id, reason },
            ));
            return Ok(out);
        }
        out.push(Outbound::Send(
            caller,
            ServerMessage::CallRinging {
                call_id: call_id.clone(),
            },
        ));
        for m in &call.members[1..] {
            out.push(Outbound::Send(
                m.session,
                ServerMessage::IncomingCall {
                    call_id: call_id.clone(),
                    caller: call.members[0].info.clone(),
                },
            ));
            out.push(Outbound::Send(
                caller,
                ServerMessage::ParticipantUpdated {
                    call_id: call_id.clone(),
                    participant: m.info.clone(),
                },
            ));
        }
        for id in unreachable {
            out.push(Outbound::Send(
                caller,
                ServerMessage::ParticipantLeft {
                    call_id: call_id.clone(),
                    id,
                    reason: CallEndReason::USER_NOT_FOUND,
                },
            ));
        }
        for m in &call.members {
            if let Some(s) = self.sessions.get_mut(&m.session) {
                s.calls.insert(call_id.clone());
            }
        }
        self.calls.insert(call_id, call);
        Ok(out)
    }

    fn accept(&mut self, session: SessionId, call_id: &CallId) -> Result<Vec<Outbound>, Refusal> {
        self.pending_member(call_id, session)?;
        let call = self
            .calls
            .get_mut(call_id)
            .expect("pending_member checked the call exists");
        let mut out = Vec::new();
        let accepter = call
            .member_mut(session)
            .expect("pending_member checked membership");
        accepter.info.state = ParticipantState::Connected;
        let info = accepter.info.clone();
        out.push(Outbound::Send(
            session,
            ServerMessage::CallConnected {
                call_id: call_id.clone(),
            },
        ));
        for m in call.members.iter().filter(|m| m.session != session) {
            out.push(Outbound::Send(
                session,
                ServerMessage::ParticipantUpdated {
                    call_id: call_id.clone(),
                    participant: m.info.clone(),
                },
            ));
        }
        out.extend(call.announce(call_id, session, &info));
        if !call.connected {
            call.connected = true;
            out.push(Outbound::Send(
                call.caller,
                ServerMessage::CallConnected {
                    call_id: call_id.clone(),
                },
            ));
        }
        out.push(call.route(call_id));
        Ok(out)
    }

    fn subscribe(
        &mut self,
        session: SessionId,
        call_id: CallId,
        participant: &CommunicationIdentifier,
        media_type: MediaType,
    ) -> Result<Vec<Outbound>, Refusal> {
        let call = self.call_of(&call_id, session)?;
        let publisher = call
            .members
            .iter()
            .find(|m| {
                &m.info.id == participant
                    && m.session != session
                    && m.info.state == ParticipantState::Connected
            })
            .map(|m| m.session)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::BadRequest,
                    format!("{participant} is not connected in call `{call_id}`"),
                )
            })?;
        let route = VideoRoute {
            call_id: call_id.clone(),
            publisher,
            media_type,
        };
        let slots = self.video.entry(session).or_default();
        let slot = match slots.iter().position(|r| r.as_ref() == Some(&route)) {
            Some(slot) => slot,
            None => {
                let free = slots.iter().position(Option::is_none).ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::BadRequest,
                        format!("all {VIDEO_SLOTS} video receive slots are in use"),
                    )
                })?;
                slots[free] = Some(route);
                free
            }
        };
        Ok(vec![
            Outbound::VideoRoute {
                to: session,
                slot,
                from: Some((publisher, media_type)),
            },
            Outbound::Send(
                session,
                ServerMessage::VideoRouted {
                    call_id,
                    participant: participant.clone(),
                    media_type,
                    slot: slot as u8,
                },
            ),
        ])
    }

    /// Clears `subscriber`'s slots whose route matches, telling it and the SFU.
    fn unroute(
        &mut self,
        subscriber: SessionId,
        matches: impl Fn(&VideoRoute) -> bool,
    ) -> Vec<Outbound> {
        let mut out = Vec::new();
        let Some(slots) = self.video.get_mut(&subscriber) else {
            return out;
        };
        for (slot, entry) in slots.iter_mut().enumerate() {
            let Some(route) = entry.take_if(|r| matches(r)) else {
                continue;
            };
            out.push(Outbound::VideoRoute {
                to: subscriber,
                slot,
                from: None,
            });
            if let Some(publisher) = self.sessions.get(&route.publisher) {
                out.push(Outbound::Send(
                    subscriber,
                    ServerMessage::VideoUnrouted {
                        call_id: route.call_id,
                        participant: publisher.user.clone(),
                        media_type: route.media_type,
                    },
                ));
            }
        }
        out
    }

    fn update_member(
        &mut self,
        call_id: &CallId,
        session: SessionId,
        change: impl FnOnce(&mut ParticipantInfo),
    ) -> Vec<Outbound> {
        let Some(call) = self.calls.get_mut(call_id) else {
            return Vec::new();
        };
        let Some(member) = call.member_mut(session) else {
            return Vec::new();
        };
        let before = member.info.clone();
        change(&mut member.info);
        if member.info == before {
            return Vec::new();
        }
        let info = member.info.clone();
        call.announce(call_id, session, &info)
    }

    /// Takes `session` out of the call: it hears `own` (if it is still there to hear it), the
    /// others hear `others`. A call left with fewer than two members ends for them too.
    fn leave(
        &mut self,
        call_id: &CallId,
        session: SessionId,
        own: Option<CallEndReason>,
        others: CallEndReason,
    ) -> Vec<Outbound> {
        let mut out = Vec::new();
        let Some(call) = self.calls.get_mut(call_id) else {
            return out;
        };
        let Some(pos) = call.members.iter().position(|m| m.session == session) else {
            return out;
        };
        let gone = call.members.remove(pos);
        let remaining: Vec<SessionId> = call.members.iter().map(|m| m.session).collect();
        if let Some(s) = self.sessions.get_mut(&session) {
            s.calls.remove(call_id);
        }
        // Video to and from the one who left stops; the others are told.
        out.extend(
            self.unroute(session, |r| &r.call_id == call_id)
                .into_iter()
                .filter(|o| matches!(o, Outbound::VideoRoute { .. })),
        );
        for other in remaining {
            out.extend(self.unroute(other, |r| &r.call_id == call_id && r.publisher == session));
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return out;
        };
        if let Some(reason) = own {
            out.push(Outbound::Send(
                session,
                ServerMessage::CallEnded {
                    call_id: call_id.clone(),
                    reason,
                },
            ));
        }
        for m in &call.members {
            out.push(Outbound::Send(
                m.session,
                ServerMessage::ParticipantLeft {
                    call_id: call_id.clone(),
                    id: gone.info.id.clone(),
                    reason: others,
                },
            ));
        }
        if call.members.len() >= 2 {
            out.push(call.route(call_id));
            return out;
        }
        let call = self
            .calls
            .remove(call_id)
            .expect("the call was found above");
        for m in &call.members {
            out.push(Outbound::Send(
                m.session,
                ServerMessage::CallEnded {
                    call_id: call_id.clone(),
                    reason: others,
                },
            ));
            if let Some(s) = self.sessions.get_mut(&m.session) {
                s.calls.remove(call_id);
            }
        }
        out.push(Outbound::Route {
            call_id: call_id.clone(),
            members: Vec::new(),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SessionId = 1;
    const B: SessionId = 2;

    fn user(name: &str) -> CommunicationIdentifier {
        CommunicationIdentifier::user(name).unwrap()
    }

    fn board() -> Switchboard {
        let mut sb = Switchboard::default();
        sb.sign_in(A, user("alice"), "Alice".into());
        sb.sign_in(B, user("bob"), "Bob".into());
        sb
    }

    fn call() -> CallId {
        CallId("c1".into())
    }

    fn start(sb: &mut Switchboard, target: &str) -> Vec<Outbound> {
        sb.handle(
            A,
            ClientMessage::StartCall {
                call_id: call(),
                targets: vec![user(target)],
            },
        )
        .unwrap()
    }

    fn sent_to(out: &[Outbound], session: SessionId) -> Vec<&ServerMessage> {
        out.iter()
            .filter_map(|o| match o {
                Outbound::Send(s, m) if *s == session => Some(m),
                _ => None,
            })
            .collect()
    }

    fn ended(out: &[Outbound], session: SessionId) -> Option<CallEndReason> {
        sent_to(out, session).into_iter().find_map(|m| match m {
            ServerMessage::CallEnded { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    #[test]
    fn answered_call_connects_both_and_routes_media() {
        let mut sb = board();
        let out = start(&mut sb, "bob");
        assert!(matches!(
            sent_to(&out, B)[0],
            ServerMessage::IncomingCall { .. }
        ));
        assert!(matches!(
            sent_to(&out, A)[0],
            ServerMessage::CallRinging { .. }
        ));

        let out = sb
            .handle(B, ClientMessage::AcceptCall { call_id: call() })
            .unwrap();
        assert!(sent_to(&out, A).contains(&&ServerMessage::CallConnected { call_id: call() }));
        assert!(sent_to(&out, B).contains(&&ServerMessage::CallConnected { call_id: call() }));
        assert!(out.contains(&Outbound::Route {
            call_id: call(),
            members: vec![A, B]
        }));
    }

    #[test]
    fn hang_up_ends_for_both_with_who_ended_it() {
        let mut sb = board();
        start(&mut sb, "bob");
        sb.handle(B, ClientMessage::AcceptCall { call_id: call() })
            .unwrap();
        let out = sb
            .handle(A, ClientMessage::HangUp { call_id: call() })
            .unwrap();
        assert_eq!(ended(&out, A), Some(CallEndReason::LOCAL_HANG_UP));
        assert_eq!(ended(&out, B), Some(CallEndReason::REMOTE_HANG_UP));
        assert!(out.contains(&Outbound::Route {
            call_id: call(),
            members: vec![]
        }));
        assert!(sb.calls.is_empty());
    }

    #[test]
    fn reject_and_cancel_and_unknown_have_their_reasons() {
        let mut sb = board();
        start(&mut sb, "bob");
        let out = sb
            .handle(B, ClientMessage::RejectCall { call_id: call() })
            .unwrap();
        assert_eq!(ended(&out, A), Some(CallEndReason::DECLINED));
        assert_eq!(ended(&out, B), Some(CallEndReason::REJECTED_LOCALLY));

        start(&mut sb, "bob");
        let out = sb
            .handle(A, ClientMessage::HangUp { call_id: call() })
            .unwrap();
        assert_eq!(ended(&out, B), Some(CallEndReason::CANCELLED));

        let out = start(&mut sb, "nobody");
        assert_eq!(ended(&out, A), Some(CallEndReason::USER_NOT_FOUND));
    }

    #[test]
    fn lost_session_ends_the_call_for_the_other() {
        let mut sb = board();
        start(&mut sb, "bob");
        sb.handle(B, ClientMessage::AcceptCall { call_id: call() })
            .unwrap();
        let out = sb.sign_out(B);
        assert_eq!(ended(&out, A), Some(CallEndReason::REMOTE_CONNECTION_LOST));
        assert!(!sb.by_user.contains_key(&user("bob")));
    }

    #[test]
    fn mute_is_announced_to_the_others_once() {
        let mut sb = board();
        start(&mut sb, "bob");
        sb.handle(B, ClientMessage::AcceptCall { call_id: call() })
            .unwrap();
        let out = sb
            .handle(
                A,
                ClientMessage::SetMuted {
                    call_id: call(),
                    muted: true,
                },
            )
            .unwrap();
        let to_b = sent_to(&out, B);
        assert!(matches!(
            to_b[0],
            ServerMessage::ParticipantUpdated { participant, .. } if participant.is_muted
        ));
        let again = sb
            .handle(
                A,
                ClientMessage::SetMuted {
                    call_id: call(),
                    muted: true,
                },
            )
            .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn requests_for_other_calls_are_refused() {
        let mut sb = board();
        let err = sb
            .handle(A, ClientMessage::HangUp { call_id: call() })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownCall);
        let err = sb
            .handle(9, ClientMessage::HangUp { call_id: call() })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotSignedIn);
        start(&mut sb, "bob");
        let err = sb
            .handle(A, ClientMessage::AcceptCall { call_id: call() })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
    }

    fn connected(sb: &mut Switchboard) {
        start(sb, "bob");
        sb.handle(B, ClientMessage::AcceptCall { call_id: call() })
            .unwrap();
    }

    fn subscribe(
        sb: &mut Switchboard,
        to: SessionId,
        whom: &str,
    ) -> Result<Vec<Outbound>, Refusal> {
        sb.handle(
            to,
            ClientMessage::Subscribe {
                call_id: call(),
                participant: user(whom),
                media_type: MediaType::Video,
            },
        )
    }

    #[test]
    fn video_flows_only_while_subscribed() {
        let mut sb = board();
        connected(&mut sb);
        let out = subscribe(&mut sb, B, "alice").unwrap();
        assert!(out.contains(&Outbound::VideoRoute {
            to: B,
            slot: 0,
            from: Some((A, MediaType::Video))
        }));
        assert!(
            sent_to(&out, B)
                .iter()
                .any(|m| matches!(m, ServerMessage::VideoRouted { slot: 0, .. }))
        );
        // Subscribing again keeps the slot.
        let again = subscribe(&mut sb, B, "alice").unwrap();
        assert!(again.contains(&Outbound::VideoRoute {
            to: B,
            slot: 0,
            from: Some((A, MediaType::Video))
        }));

        let out = sb
            .handle(
                B,
                ClientMessage::Unsubscribe {
                    call_id: call(),
                    participant: user("alice"),
                    media_type: MediaType::Video,
                },
            )
            .unwrap();
        assert!(out.contains(&Outbound::VideoRoute {
            to: B,
            slot: 0,
            from: None
        }));
        assert!(
            sent_to(&out, B)
                .iter()
                .any(|m| matches!(m, ServerMessage::VideoUnrouted { .. }))
        );
    }

    #[test]
    fn video_on_is_announced_and_leaving_unroutes_subscribers() {
        let mut sb = board();
        connected(&mut sb);
        let out = sb
            .handle(
                A,
                ClientMessage::SetVideo {
                    call_id: call(),
                    media_type: MediaType::Video,
                    on: true,
                },
            )
            .unwrap();
        assert!(matches!(
            sent_to(&out, B)[0],
            ServerMessage::ParticipantUpdated { participant, .. } if participant.streams[0].is_available
        ));
        subscribe(&mut sb, B, "alice").unwrap();
        let out = sb
            .handle(A, ClientMessage::HangUp { call_id: call() })
            .unwrap();
        assert!(out.contains(&Outbound::VideoRoute {
            to: B,
            slot: 0,
            from: None
        }));
        assert!(
            sent_to(&out, B)
                .iter()
                .any(|m| matches!(m, ServerMessage::VideoUnrouted { .. }))
        );
    }

    #[test]
    fn subscribing_needs_a_connected_other_participant() {
        let mut sb = board();
        connected(&mut sb);
        assert_eq!(
            subscribe(&mut sb, B, "bob").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            subscribe(&mut sb, B, "carol").unwrap_err().code,
            ErrorCode::BadRequest
        );
    }
}
