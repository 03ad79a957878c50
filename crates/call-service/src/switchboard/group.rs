//! Growing and running calls: group calls joined by id, invitations, roles (remove, end for
//! everyone, the lobby), ring timeouts and the dominant speakers the SFU reports.

use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, ParticipantState, ServerMessage,
};

use super::{CallRecord, Member, Outbound, Refusal, SessionId, Switchboard};

impl CallRecord {
    /// The dominant speakers message for this call.
    pub(super) fn dominant_message(&self, call_id: &CallId) -> ServerMessage {
        let id = |s: SessionId| {
            self.members
                .iter()
                .find(|m| m.session == s)
                .map(|m| m.info.id.clone())
        };
        ServerMessage::DominantSpeakers {
            call_id: call_id.clone(),
            speakers: self.dominant.iter().filter_map(|&s| id(s)).collect(),
            slots: self.voice_slots.iter().map(|s| s.and_then(id)).collect(),
        }
    }
}

impl Switchboard {
    /// Joins (or starts) the group call `call_id`. With its lobby on, anyone but an organizer
    /// waits there; one who was invited and joins by id answers the invitation.
    pub(super) fn join_group(
        &mut self,
        session: SessionId,
        call_id: CallId,
    ) -> Result<Vec<Outbound>, Refusal> {
        if !call_id.is_guid() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("group call ids are GUIDs; `{call_id}` is not one"),
            ));
        }
        let role = self.sessions[&session].role;
        let Some(call) = self.calls.get_mut(&call_id) else {
            let info = self.info_of(session, ParticipantState::Connected);
            self.calls
                .insert(call_id.clone(), CallRecord::new(session, info, true));
            self.join_session(session, &call_id);
            return Ok(vec![Outbound::Send(
                session,
                ServerMessage::CallConnected { call_id },
            )]);
        };
        if !call.group {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("call `{call_id}` is not a group call"),
            ));
        }
        match call.state_of(session) {
            Some(ParticipantState::Connecting) => return self.accept(session, &call_id),
            Some(_) => {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    format!("you are in group call `{call_id}` already"),
                ));
            }
            None => {}
        }
        let waits = call.lobby && !role.moderates();
        let info = self.info_of(
            session,
            if waits {
                ParticipantState::InLobby
            } else {
                ParticipantState::Connecting
            },
        );
        self.join_session(session, &call_id);
        let call = self
            .calls
            .get_mut(&call_id)
            .expect("the call was found above");
        call.members.push(Member {
            session,
            info: info.clone(),
        });
        if !waits {
            return Ok(self.connect_member(session, &call_id));
        }
        let mut out = vec![Outbound::Send(
            session,
            ServerMessage::InLobby {
                call_id: call_id.clone(),
            },
        )];
        out.extend(call.announce(&call_id, session, &info));
        Ok(out)
    }

    /// Invites more people into a call the sender is connected in.
    pub(super) fn add_participants(
        &mut self,
        session: SessionId,
        call_id: &CallId,
        targets: Vec<CommunicationIdentifier>,
    ) -> Result<Vec<Outbound>, Refusal> {
        let call = self.call_of(call_id, session)?;
        if !call.connected || call.state_of(session) != Some(ParticipantState::Connected) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("you are not connected in call `{call_id}`"),
            ));
        }
        if !self.sessions[&session].role.invites() {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "attendees cannot invite anybody into a call",
            ));
        }
        let invited = self.invite(session, call_id, targets);
        let mut out = invited.out;
        out.extend(self.answer_bots(call_id, session, &invited.bots));
        Ok(out)
    }

    /// Checks that `session` is in the call as an organizer.
    pub(super) fn moderator_in(&self, call_id: &CallId, session: SessionId) -> Result<(), Refusal> {
        self.call_of(call_id, session)?;
        if self.sessions[&session].role.moderates() {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::Forbidden,
                "only an organizer can remove participants, run the lobby or end a call for \
                 everyone",
            ))
        }
    }

    /// The session of `participant` in the call, or a refusal naming them.
    fn member_of(
        &self,
        call_id: &CallId,
        participant: &CommunicationIdentifier,
    ) -> Result<SessionId, Refusal> {
        self.calls
            .get(call_id)
            .and_then(|c| c.session_of(participant))
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::BadRequest,
                    format!("`{participant}` is not in call `{call_id}`"),
                )
            })
    }

    /// An organizer takes a participant out: everyone, them included, sees
    /// [`CallEndReason::REMOVED`].
    pub(super) fn remove(
        &mut self,
        session: SessionId,
        call_id: &CallId,
        participant: &CommunicationIdentifier,
    ) -> Result<Vec<Outbound>, Refusal> {
        self.moderator_in(call_id, session)?;
        let target = self.member_of(call_id, participant)?;
        if target == session {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "to leave a call, hang up",
            ));
        }
        let removed = CallEndReason::REMOVED;
        Ok(self.leave(call_id, target, Some(removed), removed))
    }

    /// An organizer ends the call: the others see [`CallEndReason::ENDED_FOR_EVERYONE`].
    pub(super) fn end_for_everyone(
        &mut self,
        session: SessionId,
        call_id: &CallId,
    ) -> Result<Vec<Outbound>, Refusal> {
        self.moderator_in(call_id, session)?;
        Ok(self.end_call(call_id, |s| {
            if s == session {
                CallEndReason::LOCAL_HANG_UP
            } else {
                CallEndReason::ENDED_FOR_EVERYONE
            }
        }))
    }

    /// An organizer admits a participant waiting in the lobby, or rejects them.
    pub(super) fn admit(
        &mut self,
        session: SessionId,
        call_id: &CallId,
        participant: &CommunicationIdentifier,
        admit: bool,
    ) -> Result<Vec<Outbound>, Refusal> {
        self.moderator_in(call_id, session)?;
        let target = self.member_of(call_id, participant)?;
        if self.calls[call_id].state_of(target) != Some(ParticipantState::InLobby) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("`{participant}` is not waiting in the lobby"),
            ));
        }
        Ok(if admit {
            self.connect_member(target, call_id)
        } else {
            let rejected = CallEndReason::LOBBY_REJECTED;
            self.leave(call_id, target, Some(rejected), rejected)
        })
    }

    /// The ring timeout of `session` in the call passed: if it still rings, it leaves with
    /// [`CallEndReason::NO_ANSWER`].
    pub fn ring_timeout(&mut self, call_id: &CallId, session: SessionId) -> Vec<Outbound> {
        let ringing = self
            .calls
            .get(call_id)
            .is_some_and(|c| c.state_of(session) == Some(ParticipantState::Connecting));
        if !ringing {
            return Vec::new();
        }
        let reason = CallEndReason::NO_ANSWER;
        self.leave(call_id, session, Some(reason), reason)
    }

    /// Records the call's dominant speakers as the SFU picked them, loudest first, and whose
    /// voice each receive slot carries, and tells every member.
    pub fn set_dominant(
        &mut self,
        call_id: &CallId,
        speakers: Vec<SessionId>,
        slots: Vec<Option<SessionId>>,
    ) -> Vec<Outbound> {
        let Some(call) = self.calls.get_mut(call_id) else {
            return Vec::new();
        };
        if call.dominant == speakers && call.voice_slots == slots {
            return Vec::new();
        }
        call.dominant = speakers;
        call.voice_slots = slots;
        let message = call.dominant_message(call_id);
        call.members
            .iter()
            .filter(|m| m.in_call())
            .map(|m| Outbound::Send(m.session, message.clone()))
            .collect()
    }
}
