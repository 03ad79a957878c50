//! The rules of group calls, invitations, roles, the lobby and ring timeouts.

use super::tests::{ended, sent_to, user};
use super::*;

const ORG: SessionId = 1;
const P1: SessionId = 2;
const P2: SessionId = 3;
const ATT: SessionId = 4;

fn board() -> Switchboard {
    let mut sb = Switchboard::default();
    sb.sign_in(ORG, user("olga"), Role::Organizer, "Olga".into());
    sb.sign_in(P1, user("pat"), Role::Presenter, "Pat".into());
    sb.sign_in(P2, user("pia"), Role::Presenter, "Pia".into());
    sb.sign_in(ATT, user("abe"), Role::Attendee, "Abe".into());
    sb
}

fn group() -> CallId {
    CallId("29228d3e-040e-4656-a70e-890ab4e173e4".into())
}

fn join(sb: &mut Switchboard, session: SessionId) -> Vec<Outbound> {
    sb.handle(session, ClientMessage::JoinGroup { call_id: group() })
        .unwrap()
}

fn route(out: &[Outbound]) -> Option<Vec<SessionId>> {
    out.iter().rev().find_map(|o| match o {
        Outbound::Route { members, .. } => Some(members.clone()),
        _ => None,
    })
}

fn left(out: &[Outbound], session: SessionId) -> Option<(CommunicationIdentifier, CallEndReason)> {
    sent_to(out, session).into_iter().find_map(|m| match m {
        ServerMessage::ParticipantLeft { id, reason, .. } => Some((id.clone(), *reason)),
        _ => None,
    })
}

fn refusal(sb: &mut Switchboard, session: SessionId, message: ClientMessage) -> ErrorCode {
    sb.handle(session, message).unwrap_err().code
}

#[test]
fn the_first_joiner_starts_a_group_call_and_later_ones_see_the_roster() {
    let mut sb = board();
    let out = join(&mut sb, ORG);
    assert!(matches!(
        sent_to(&out, ORG)[..],
        [ServerMessage::CallConnected { .. }]
    ));
    let out = join(&mut sb, P1);
    let to_p1 = sent_to(&out, P1);
    assert!(matches!(to_p1[0], ServerMessage::CallConnected { .. }));
    assert!(to_p1.iter().any(|m| matches!(m,
        ServerMessage::ParticipantUpdated { participant, .. }
            if participant.id == user("olga") && participant.role == Role::Organizer)));
    assert!(sent_to(&out, ORG).iter().any(|m| matches!(m,
        ServerMessage::ParticipantUpdated { participant, .. }
            if participant.id == user("pat") && participant.state == ParticipantState::Connected)));
    assert_eq!(route(&out), Some(vec![ORG, P1]));
    join(&mut sb, P2);
    // Somebody leaves: the others stay, down to one.
    let out = sb
        .handle(P1, ClientMessage::HangUp { call_id: group() })
        .unwrap();
    assert_eq!(route(&out), Some(vec![ORG, P2]));
    let out = sb
        .handle(P2, ClientMessage::HangUp { call_id: group() })
        .unwrap();
    assert_eq!(
        ended(&out, ORG),
        None,
        "a group call goes on with one member"
    );
    // Joining twice, or by an id that is no GUID, is refused.
    assert_eq!(
        refusal(&mut sb, ORG, ClientMessage::JoinGroup { call_id: group() }),
        ErrorCode::BadRequest
    );
    let bad = ClientMessage::JoinGroup {
        call_id: CallId("c1".into()),
    };
    assert_eq!(refusal(&mut sb, P1, bad), ErrorCode::BadRequest);
}

/// The organizer calls P1 (ringing).
fn ring_pat(sb: &mut Switchboard, call_id: &CallId) {
    let targets = vec![user("pat")];
    let call_id = call_id.clone();
    sb.handle(ORG, ClientMessage::StartCall { call_id, targets })
        .unwrap();
}

/// A connected 1:1 call between the organizer and P1.
fn one_to_one(sb: &mut Switchboard) -> CallId {
    let call_id = CallId("c1".into());
    ring_pat(sb, &call_id);
    sb.handle(
        P1,
        ClientMessage::AcceptCall {
            call_id: call_id.clone(),
        },
    )
    .unwrap();
    call_id
}

#[test]
fn adding_a_participant_rings_them_and_keeps_the_call_routed() {
    let mut sb = board();
    let call_id = one_to_one(&mut sb);
    let out = sb
        .handle(
            P1,
            ClientMessage::AddParticipants {
                call_id: call_id.clone(),
                targets: vec![user("pia"), user("nobody")],
            },
        )
        .unwrap();
    assert!(sent_to(&out, P2).iter().any(|m| matches!(m,
        ServerMessage::IncomingCall { caller, .. } if caller.id == user("pat"))));
    assert!(out.contains(&Outbound::RingTimer {
        call_id: call_id.clone(),
        session: P2
    }));
    assert!(
        sent_to(&out, ORG).iter().any(|m| matches!(m,
        ServerMessage::ParticipantUpdated { participant, .. }
            if participant.id == user("pia") && participant.state == ParticipantState::Connecting))
    );
    assert_eq!(
        left(&out, P1),
        Some((user("nobody"), CallEndReason::USER_NOT_FOUND))
    );
    // Ringing changes no route: the first two keep theirs.
    assert_eq!(route(&out), None);
    let out = sb
        .handle(
            P2,
            ClientMessage::AcceptCall {
                call_id: call_id.clone(),
            },
        )
        .unwrap();
    assert_eq!(route(&out), Some(vec![ORG, P1, P2]));
    // The first callee leaves: the promoted call goes on for the other two.
    let out = sb
        .handle(
            P1,
            ClientMessage::HangUp {
                call_id: call_id.clone(),
            },
        )
        .unwrap();
    assert_eq!(route(&out), Some(vec![ORG, P2]));
}

#[test]
fn a_declined_or_unanswered_invitation_is_seen_by_the_inviter() {
    let mut sb = board();
    join(&mut sb, ORG);
    let invite = |targets| ClientMessage::AddParticipants {
        call_id: group(),
        targets,
    };
    sb.handle(ORG, invite(vec![user("pat"), user("pia")]))
        .unwrap();
    let out = sb
        .handle(P1, ClientMessage::RejectCall { call_id: group() })
        .unwrap();
    assert_eq!(
        left(&out, ORG),
        Some((user("pat"), CallEndReason::DECLINED))
    );
    assert_eq!(ended(&out, P1), Some(CallEndReason::REJECTED_LOCALLY));
    let out = sb.ring_timeout(&group(), P2);
    assert_eq!(
        left(&out, ORG),
        Some((user("pia"), CallEndReason::NO_ANSWER))
    );
    assert_eq!(ended(&out, P2), Some(CallEndReason::NO_ANSWER));
    assert_eq!(ended(&out, ORG), None);
    // A timer for one who answered meanwhile does nothing.
    sb.handle(ORG, invite(vec![user("pat")])).unwrap();
    sb.handle(P1, ClientMessage::AcceptCall { call_id: group() })
        .unwrap();
    assert!(sb.ring_timeout(&group(), P1).is_empty());
    // Attendees cannot invite.
    sb.handle(ORG, invite(vec![user("abe")])).unwrap();
    sb.handle(ATT, ClientMessage::AcceptCall { call_id: group() })
        .unwrap();
    assert_eq!(
        refusal(&mut sb, ATT, invite(vec![user("pia")])),
        ErrorCode::Forbidden
    );
}

#[test]
fn an_unanswered_one_to_one_call_ends_with_no_answer() {
    let mut sb = board();
    let call_id = CallId("c2".into());
    ring_pat(&mut sb, &call_id);
    let out = sb.ring_timeout(&call_id, P1);
    assert_eq!(ended(&out, ORG), Some(CallEndReason::NO_ANSWER));
    assert_eq!(ended(&out, P1), Some(CallEndReason::NO_ANSWER));
}

#[test]
fn only_an_organizer_removes_and_everyone_sees_the_reason() {
    let mut sb = board();
    for s in [ORG, P1, P2] {
        join(&mut sb, s);
    }
    let remove = |who: &str| ClientMessage::RemoveParticipant {
        call_id: group(),
        participant: user(who),
    };
    assert_eq!(refusal(&mut sb, P1, remove("pia")), ErrorCode::Forbidden);
    let out = sb.handle(ORG, remove("pia")).unwrap();
    assert_eq!(ended(&out, P2), Some(CallEndReason::REMOVED));
    for s in [ORG, P1] {
        assert_eq!(left(&out, s), Some((user("pia"), CallEndReason::REMOVED)));
    }
    assert_eq!(route(&out), Some(vec![ORG, P1]));
    assert_eq!(refusal(&mut sb, ORG, remove("pia")), ErrorCode::BadRequest);
}

#[test]
fn an_organizer_ends_the_call_for_everyone() {
    let mut sb = board();
    for s in [ORG, P1, P2] {
        join(&mut sb, s);
    }
    let end = ClientMessage::EndForEveryone { call_id: group() };
    assert_eq!(refusal(&mut sb, P1, end.clone()), ErrorCode::Forbidden);
    let out = sb.handle(ORG, end).unwrap();
    assert_eq!(ended(&out, ORG), Some(CallEndReason::LOCAL_HANG_UP));
    for s in [P1, P2] {
        assert_eq!(ended(&out, s), Some(CallEndReason::ENDED_FOR_EVERYONE));
    }
    assert_eq!(route(&out), Some(vec![]));
    // The id is free again: the next joiner starts a new call.
    assert!(matches!(
        sent_to(&join(&mut sb, P1), P1)[..],
        [ServerMessage::CallConnected { .. }]
    ));
}

fn lobby_on() -> ClientMessage {
    ClientMessage::SetLobby {
        call_id: group(),
        enabled: true,
    }
}

#[test]
fn the_lobby_holds_joiners_until_an_organizer_decides() {
    let mut sb = board();
    join(&mut sb, ORG);
    sb.handle(ORG, lobby_on()).unwrap();
    let out = join(&mut sb, P1);
    assert!(matches!(
        sent_to(&out, P1)[..],
        [ServerMessage::InLobby { .. }]
    ));
    assert!(sent_to(&out, ORG).iter().any(|m| matches!(m,
        ServerMessage::ParticipantUpdated { participant, .. }
            if participant.state == ParticipantState::InLobby)));
    assert_eq!(route(&out), None, "nobody in the lobby gets media");
    let out = join(&mut sb, P2);
    assert!(matches!(
        sent_to(&out, P2)[..],
        [ServerMessage::InLobby { .. }]
    ));
    let admit = |who: &str, admit| ClientMessage::Admit {
        call_id: group(),
        participant: user(who),
        admit,
    };
    assert_eq!(
        refusal(&mut sb, P1, admit("pia", true)),
        ErrorCode::Forbidden
    );
    let out = sb.handle(ORG, admit("pat", true)).unwrap();
    assert!(matches!(
        sent_to(&out, P1)[0],
        ServerMessage::CallConnected { .. }
    ));
    assert_eq!(route(&out), Some(vec![ORG, P1]));
    assert_eq!(
        refusal(&mut sb, P1, admit("pia", true)),
        ErrorCode::Forbidden
    );
    let out = sb.handle(ORG, admit("pia", false)).unwrap();
    assert_eq!(ended(&out, P2), Some(CallEndReason::LOBBY_REJECTED));
    assert_eq!(
        left(&out, ORG),
        Some((user("pia"), CallEndReason::LOBBY_REJECTED))
    );
    // An organizer never waits, and only an organizer turns the lobby on.
    sb.handle(ORG, ClientMessage::HangUp { call_id: group() })
        .unwrap();
    assert_eq!(refusal(&mut sb, P1, lobby_on()), ErrorCode::Forbidden);
    let out = join(&mut sb, ORG);
    assert!(matches!(
        sent_to(&out, ORG)[0],
        ServerMessage::CallConnected { .. }
    ));
}

#[test]
fn dominant_speakers_reach_connected_members_and_late_joiners() {
    let mut sb = board();
    for s in [ORG, P1] {
        join(&mut sb, s);
    }
    let out = sb.set_dominant(&group(), vec![P1, ORG], vec![Some(ORG), Some(P1), None]);
    for s in [ORG, P1] {
        assert!(sent_to(&out, s).iter().any(|m| matches!(m,
            ServerMessage::DominantSpeakers { speakers, slots, .. }
                if speakers == &vec![user("pat"), user("olga")]
                    && slots == &vec![Some(user("olga")), Some(user("pat")), None])));
    }
    assert!(
        sb.set_dominant(&group(), vec![P1, ORG], vec![Some(ORG), Some(P1), None])
            .is_empty()
    );
    let out = join(&mut sb, P2);
    assert!(sent_to(&out, P2).iter().any(|m| matches!(m,
        ServerMessage::DominantSpeakers { speakers, .. } if speakers.len() == 2)));
}
