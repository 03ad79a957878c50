//! Starting, answering, updating and leaving calls.

use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, ParticipantInfo, ParticipantState,
    ServerMessage,
};

use super::{CallRecord, Member, Outbound, Refusal, SessionId, Switchboard};

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
            if target == CommunicationIdentifier::EchoBot {
                let bot = self.new_bot();
                call.members.push(bot);
                continue;
            }
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
        self.calls.insert(call_id.clone(), call);
        out.extend(self.answer_bots(&call_id));
        Ok(out)
    }

    pub(super) fn accept(
        &mut self,
        session: SessionId,
        call_id: &CallId,
    ) -> Result<Vec<Outbound>, Refusal> {
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

    /// Holds or resumes a connected member. A held member leaves the call's media route (it
    /// neither sends nor receives) and the others see it as [`ParticipantState::Hold`].
    pub(super) fn set_hold(
        &mut self,
        session: SessionId,
        call_id: &CallId,
        held: bool,
    ) -> Result<Vec<Outbound>, Refusal> {
        let call = self.call_of(call_id, session)?;
        let state = call
            .members
            .iter()
            .find(|m| m.session == session)
            .map(|m| m.info.state);
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
            out.extend(self.retire_bots(&[session]));
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
        let sessions: Vec<SessionId> = call.members.iter().map(|m| m.session).collect();
        out.extend(self.retire_bots(&[&sessions[..], &[session]].concat()));
        out
    }
}
