//! The switchboard's rules, request by request.

use super::*;

const A: SessionId = 1;
const B: SessionId = 2;

pub(super) fn user(name: &str) -> CommunicationIdentifier {
    CommunicationIdentifier::user(name).unwrap()
}

fn board() -> Switchboard {
    let mut sb = Switchboard::default();
    sb.sign_in(A, user("alice"), Role::Presenter, "Alice".into());
    sb.sign_in(B, user("bob"), Role::Presenter, "Bob".into());
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

pub(super) fn sent_to(out: &[Outbound], session: SessionId) -> Vec<&ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Send(s, m) if *s == session => Some(m),
            _ => None,
        })
        .collect()
}

pub(super) fn ended(out: &[Outbound], session: SessionId) -> Option<CallEndReason> {
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

fn subscribe(sb: &mut Switchboard, to: SessionId, whom: &str) -> Result<Vec<Outbound>, Refusal> {
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
                stopped: None,
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

fn hold(sb: &mut Switchboard, session: SessionId, held: bool) -> Result<Vec<Outbound>, Refusal> {
    sb.handle(
        session,
        ClientMessage::SetHold {
            call_id: call(),
            held,
        },
    )
}

fn routed(out: &[Outbound]) -> Option<&Vec<SessionId>> {
    out.iter().find_map(|o| match o {
        Outbound::Route { members, .. } => Some(members),
        _ => None,
    })
}

#[test]
fn hold_takes_a_member_out_of_the_media_route_until_resumed() {
    let mut sb = board();
    start(&mut sb, "bob");
    // Not connected yet: nothing to hold.
    assert_eq!(
        hold(&mut sb, A, true).unwrap_err().code,
        ErrorCode::BadRequest
    );
    sb.handle(B, ClientMessage::AcceptCall { call_id: call() })
        .unwrap();
    let out = hold(&mut sb, A, true).unwrap();
    assert!(matches!(
        sent_to(&out, B)[0],
        ServerMessage::ParticipantUpdated { participant, .. }
            if participant.state == ParticipantState::Hold
    ));
    assert_eq!(routed(&out), Some(&Vec::new()));
    assert!(hold(&mut sb, A, true).unwrap().is_empty());
    // Subscribing to a held participant is allowed: the video flows once it resumes.
    subscribe(&mut sb, B, "alice").unwrap();
    let out = hold(&mut sb, A, false).unwrap();
    assert!(matches!(
        sent_to(&out, B)[0],
        ServerMessage::ParticipantUpdated { participant, .. }
            if participant.state == ParticipantState::Connected
    ));
    assert_eq!(routed(&out), Some(&vec![A, B]));
}

#[test]
fn a_held_member_of_three_leaves_the_other_two_talking() {
    const C: SessionId = 3;
    let mut sb = board();
    sb.sign_in(C, user("carol"), Role::Presenter, "Carol".into());
    sb.handle(
        A,
        ClientMessage::StartCall {
            call_id: call(),
            targets: vec![user("bob"), user("carol")],
        },
    )
    .unwrap();
    for s in [B, C] {
        sb.handle(s, ClientMessage::AcceptCall { call_id: call() })
            .unwrap();
    }
    let out = hold(&mut sb, C, true).unwrap();
    assert_eq!(routed(&out), Some(&vec![A, B]));
    assert_eq!(sent_to(&out, A).len(), 1);
    assert_eq!(sent_to(&out, B).len(), 1);
    // Leaving while held still ends the call properly for the others.
    let out = sb
        .handle(C, ClientMessage::HangUp { call_id: call() })
        .unwrap();
    assert_eq!(routed(&out), Some(&vec![A, B]));
}
