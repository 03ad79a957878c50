//! Starting, answering, updating and leaving calls.

use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, ParticipantInfo, ParticipantState,
    ServerMessage,
};

use super::{CallRecord, Member, Outbound, Refusal, SessionId, Switchboard, is_bot};

/// What inviting people into a call did.
#[derive(Default)]
pub(super) struct Invited {
    /// The effects: incoming calls, ring timers, roster updates, unknown targets.
    pub(super) out: Vec<Outbound>,
    /// How many joined the call as ringing members (bots included).
    pub(super) added: usize,
    /// The echo bots made, for the caller to answer.
    pub(super) bots: Vec<SessionId>,
    /// How many phones are dialled: their calls ring when the carrier says so.
    pub(super) phones: usize,
    /// Targets nobody could be rung for.
    pub(super) unreachable: Vec<CommunicationIdentifier>,
}

impl Switchboard {
    pub(super) fn start_call(
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
        let info = self.info_of(caller, ParticipantState::Connected);
        self.calls
            .insert(call_id.clone(), CallRecord::new(caller, info, false));
        self.join_session(caller, &call_id);
        let invited = self.invite(caller, &call_id, targets);
        if invited.added == 0 {
            // Nobody to ring: the call ends at once.
            self.calls.remove(&call_id);
            self.leave_session(caller, &call_id);
            let caller_user = &self.sessions[&caller].user;
            let reason = if invited.unreachable.iter().any(|t| t != caller_user) {
                CallEndReason::USER_NOT_FOUND
            } else {
                CallEndReason::BAD_REQUEST
            };
            return Ok(vec![Outbound::Send(
                caller,
                ServerMessage::CallEnded { call_id, reason },
            )]);
        }
        let mut out = Vec::new();
        // A call only to phones rings when the carrier says so (180).
        if invited.phones < invited.added {
            out.push(Outbound::Send(
                caller,
                ServerMessage::CallRinging {
                    call_id: call_id.clone(),
                },
            ));
        }
        out.extend(invited.out);
        out.extend(self.answer_bots(&call_id, caller, &invited.bots));
        Ok(out)
    }

    /// Rings `targets` in a call `inviter` is in: each new member is `Connecting`, gets an
    /// incoming call from the inviter, and everyone else sees them; unknown targets come back
    /// to the inviter as left with [`CallEndReason::USER_NOT_FOUND`]. Echo bots are made here
    /// and answered by the caller ([`Switchboard::answer_bots`]).
    pub(super) fn invite(
        &mut self,
        inviter: SessionId,
        call_id: &CallId,
        targets: Vec<CommunicationIdentifier>,
    ) -> Invited {
        let mut invited = Invited::default();
        let inviter_user = self.sessions[&inviter].user.clone();
        let mut added = Vec::new();
        for target in targets {
            let member = if target == CommunicationIdentifier::EchoBot {
                let bot = self.new_bot();
                invited.bots.push(bot.session);
                Some(bot)
            } else if let Some(number) = target.e164()
                && self.phones_enabled
            {
                let phone = self.new_phone(target.clone(), number.clone());
                invited.out.push(Outbound::Dial {
                    call_id: call_id.clone(),
                    session: phone.session,
                    number,
                });
                invited.phones += 1;
                Some(phone)
            } else {
                let in_call = |s| {
                    self.calls
                        .get(call_id)
                        .is_some_and(|c| c.state_of(s).is_some())
                };
                match self.by_user.get(&target) {
                    Some(&callee) if target != inviter_user && !in_call(callee) => Some(Member {
                        session: callee,
                        info: self.info_of(callee, ParticipantState::Connecting),
                    }),
                    _ => None,
                }
            };
            match member {
                Some(m) => {
                    added.push((m.session, m.info.clone()));
                    self.join_session(m.session, call_id);
                    if let Some(call) = self.calls.get_mut(call_id) {
                        call.members.push(m);
                    }
                }
                None => invited.unreachable.push(target),
            }
        }
        let Some(call) = self.calls.get(call_id) else {
            return invited;
        };
        let Some(from) = call.members.iter().find(|m| m.session == inviter) else {
            return invited;
        };
        for (session, info) in &added {
            if !is_bot(*session) {
                invited.out.push(Outbound::Send(
                    *session,
                    ServerMessage::IncomingCall {
                        call_id: call_id.clone(),
                        caller: from.info.clone(),
                    },
                ));
                invited.out.push(Outbound::RingTimer {
                    call_id: call_id.clone(),
                    session: *session,
                });
            }
            invited.out.extend(call.announce(call_id, *session, info));
        }
        for id in &invited.unreachable {
            invited.out.push(Outbound::Send(
                inviter,
                ServerMessage::ParticipantLeft {
                    call_id: call_id.clone(),
                    id: id.clone(),
                    reason: CallEndReason::USER_NOT_FOUND,
                },
            ));
        }
        invited.added = added.len();
        invited
    }

    pub(super) fn accept(
        &mut self,
        session: SessionId,
        call_id: &CallId,
    ) -> Result<Vec<Outbound>, Refusal> {
        self.pending_member(call_id, session)?;
        Ok(self.connect_member(session, call_id))
    }

    /// Makes a ringing or waiting member `Connected`: it gets the call connected and the
    /// roster, everyone else sees it, the caller of a call not yet answered hears it connect,
    /// and media is routed anew.
    pub(super) fn connect_member(&mut self, session: SessionId, call_id: &CallId) -> Vec<Outbound> {
        let mut out = Vec::new();
        let Some(call) = self.calls.get_mut(call_id) else {
            return out;
        };
        let Some(member) = call.member_mut(session) else {
            return out;
        };
        member.info.state = ParticipantState::Connected;
        let info = member.info.clone();
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
        if !call.dominant.is_empty() {
            out.push(Outbound::Send(session, call.dominant_message(call_id)));
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
        out
    }

    /// Holds or resumes a connected member. A held member leaves the call's media route (it
    /// neither sends nor receives) and the others see it as [`ParticipantState::Hold`].
    pub(super) fn set_hold(
        &mut self,
        session: SessionId,
        call_id: &CallId,
        held: bool,
    ) -> Result<Vec<Outbound>, Refusal> {
        let call = self.call_of(call_id, session)?;
        let state = call.state_of(session);
        // The caller is `Connected` from the start: the call must be answered too.
        let state = state.filter(|_| call.connected);
        let next = match state {
            Some(ParticipantState::Connected | ParticipantState::Hold) if held => {
                ParticipantState::Hold
            }
            Some(ParticipantState::Connected | ParticipantState::Hold) => {
                ParticipantState::Connected
            }
            _ => {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    format!("call `{call_id}` is not connected here"),
                ));
            }
        };
        if state == Some(next) {
            return Ok(Vec::new());
        }
        let mut out = self.update_member(call_id, session, |info| info.state = next);
        out.extend(self.calls.get(call_id).map(|call| call.route(call_id)));
        Ok(out)
    }

    pub(super) fn update_member(
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
    pub(super) fn leave(
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
        call.dominant.retain(|&s| s != session);
        let remaining: Vec<SessionId> = call.members.iter().map(|m| m.session).collect();
        self.leave_session(session, call_id);
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
        if call.goes_on() {
            out.push(call.route(call_id));
            out.extend(self.retire_bots_and_phones(&[session]));
            return out;
        }
        out.extend(self.end_call(call_id, |_| others));
        out.extend(self.retire_bots_and_phones(&[session]));
        out
    }

    /// Ends a call for every member still in it, each with `reason(member)`: their video
    /// routes of the call stop, the SFU drops the call's route, and its bots go.
    pub(super) fn end_call(
        &mut self,
        call_id: &CallId,
        reason: impl Fn(SessionId) -> CallEndReason,
    ) -> Vec<Outbound> {
        let Some(call) = self.calls.remove(call_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let sessions: Vec<SessionId> = call.members.iter().map(|m| m.session).collect();
        for &session in &sessions {
            out.extend(
                self.unroute(session, |r| &r.call_id == call_id)
                    .into_iter()
                    .filter(|o| matches!(o, Outbound::VideoRoute { .. })),
            );
            out.push(Outbound::Send(
                session,
                ServerMessage::CallEnded {
                    call_id: call_id.clone(),
                    reason: reason(session),
                },
            ));
            self.leave_session(session, call_id);
        }
        out.push(Outbound::Route {
            call_id: call_id.clone(),
            members: Vec::new(),
        });
        out.extend(self.retire_bots_and_phones(&sessions));
        out
    }

    /// Records that `session` is in the call.
    pub(super) fn join_session(&mut self, session: SessionId, call_id: &CallId) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.calls.insert(call_id.clone());
        }
    }

    /// Records that `session` is no longer in the call.
    pub(super) fn leave_session(&mut self, session: SessionId, call_id: &CallId) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.calls.remove(call_id);
        }
    }
}
