//! A real 1:1 voice call between two headless Bevy apps through the in-process call service.

mod common;

use std::time::Duration;

use bevy_calling::prelude::*;
use bevy_calling::{AgentError, ErrorCode, Role};
use common::*;

#[test]
fn answered_call_connects_both_sides_with_each_other_as_participants() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let (a_call, b_call) = connected_call(&mut a, &mut b);

    assert_eq!(a.call(a_call).direction, CallDirection::Outgoing);
    assert_eq!(b.call(b_call).direction, CallDirection::Incoming);
    assert_eq!(a.call(a_call).id, b.call(b_call).id);
    let (alice, bob) = (a.user.clone(), b.user.clone());
    run_until(
        &mut [&mut a, &mut b],
        "each sees the other connected",
        |c| {
            c[0].participant(a_call, &bob)
                .is_some_and(|p| is_connected(&p))
                && c[1]
                    .participant(b_call, &alice)
                    .is_some_and(|p| is_connected(&p))
        },
    );
    let seen_by_b = b.participant(b_call, &alice).unwrap();
    assert_eq!(seen_by_b.display_name, "alice");
    assert_eq!(a.participants(a_call).len(), 1);
}

#[test]
fn speech_flows_both_ways_and_correlates_with_the_source() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::Speech);
    connected_call(&mut a, &mut b);

    let source = speech_samples();
    for (direction, received) in [
        ("A to B", listen(&mut a, &mut b, 6 * 48_000, 48_000)),
        ("B to A", listen(&mut b, &mut a, 6 * 48_000, 48_000)),
    ] {
        let e = energy(&received);
        let corr = looped_envelope_correlation(&received, &source);
        assert!(e > 0.002, "speech energy {direction}: {e}");
        assert!(corr > 0.8, "envelope correlation {direction}: {corr}");
    }
}

#[test]
fn low_latency_voice_sends_10_ms_frames_that_play_as_the_speech() {
    let service = service();
    let low =
        |c: &mut bevy_calling::AgentConfig| c.voice_frame = bevy_calling::VoiceFrame::LowLatency;
    let mut a = client_with(&service, "alice", Mic::Speech, low);
    let mut b = client(&service, "bob", Mic::None);
    connected_call(&mut a, &mut b);
    let bob = b.user.clone();
    let packets =
        |s: &call_service::CallService| s.traffic_to(&bob).unwrap_or_default().audio_packets;
    let before = packets(&service);
    let received = listen(&mut a, &mut b, 4 * 48_000, 48_000);
    let sent = packets(&service) - before;
    // Four seconds of 10 ms frames: about 400 packets (20 ms frames would be 200).
    assert!((340..=460).contains(&sent), "{sent} audio packets in 4 s");
    let e = energy(&received);
    let corr = looped_envelope_correlation(&received, &speech_samples());
    assert!(e > 0.002, "speech energy: {e}");
    assert!(corr > 0.8, "envelope correlation: {corr}");
}

#[test]
fn mute_silences_a_for_b_and_unmute_brings_it_back() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::None);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    let alice = a.user.clone();

    let measure = |a: &mut Client, b: &mut Client| energy(&listen(a, b, 96_000, 24_000));
    let before = measure(&mut a, &mut b);
    assert!(before > 0.002, "speech before mute: {before}");
    run_until(&mut [&mut a, &mut b], "B sees A speaking", |c| {
        c[1].participant(b_call, &alice)
            .is_some_and(|p| p.is_speaking)
    });

    a.trigger(Mute { call: a_call });
    run_until(&mut [&mut a, &mut b], "B sees A muted", |c| {
        c[1].participant(b_call, &alice).is_some_and(|p| p.is_muted)
    });
    assert!(a.call(a_call).is_muted);
    run_until(&mut [&mut a, &mut b], "B sees A stop speaking", |c| {
        c[1].participant(b_call, &alice)
            .is_some_and(|p| !p.is_speaking)
    });
    let muted = measure(&mut a, &mut b);
    assert!(muted < 1e-5, "energy at B while A is muted: {muted}");

    a.trigger(Unmute { call: a_call });
    run_until(&mut [&mut a, &mut b], "B sees A unmuted", |c| {
        c[1].participant(b_call, &alice)
            .is_some_and(|p| !p.is_muted)
    });
    let after = measure(&mut a, &mut b);
    assert!(after > 0.002, "speech after unmute: {after}");
}

#[test]
fn hang_up_ends_both_sides_with_who_ended_it() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    let alice = a.user.clone();

    a.trigger(HangUp { call: a_call });
    assert_eq!(
        ended(&mut [&mut a, &mut b], 0, a_call),
        CallEndReason::LOCAL_HANG_UP
    );
    assert_eq!(
        ended(&mut [&mut a, &mut b], 1, b_call),
        CallEndReason::REMOTE_HANG_UP
    );
    let left = b.participant(b_call, &alice).unwrap();
    assert_eq!(left.state, ParticipantState::Disconnected);
    assert_eq!(left.end_reason, Some(CallEndReason::REMOTE_HANG_UP));
}

#[test]
fn rejected_call_ends_with_a_declined_reason() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    run_until(&mut [&mut a, &mut b], "both connected", |c| {
        c[0].agent().is_connected() && c[1].agent().is_connected()
    });
    let (agent, bob) = (a.agent, b.user.clone());
    a.start_call(StartCall {
        agent,
        targets: vec![bob.clone()],
        video: None,
    });
    let mut incoming = None;
    run_until(&mut [&mut a, &mut b], "B is called", |c| {
        incoming = c[1].calls().first().map(|(e, _)| *e);
        incoming.is_some()
    });
    let a_call = a.calls()[0].0;
    run_until(&mut [&mut a, &mut b], "A hears ringing", |c| {
        c[0].call(a_call).state == CallState::Ringing
    });
    b.trigger(RejectCall {
        call: incoming.unwrap(),
    });
    assert_eq!(
        ended(&mut [&mut a, &mut b], 0, a_call),
        CallEndReason::DECLINED
    );
    assert_eq!(
        ended(&mut [&mut a, &mut b], 1, incoming.unwrap()),
        CallEndReason::REJECTED_LOCALLY
    );
    assert_eq!(
        a.participant(a_call, &bob).unwrap().end_reason,
        Some(CallEndReason::DECLINED)
    );
}

#[test]
fn calling_an_unknown_user_fails_with_user_not_found() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    run_until(&mut [&mut a], "connected", |c| c[0].agent().is_connected());
    let nobody = CommunicationIdentifier::user("nobody").unwrap();
    let agent = a.agent;
    a.start_call(StartCall {
        agent,
        targets: vec![nobody.clone()],
        video: None,
    });
    run_until(&mut [&mut a], "a call exists", |c| !c[0].calls().is_empty());
    let call = a.calls()[0].0;
    let reason = ended(&mut [&mut a], 0, call);
    assert_eq!(reason, CallEndReason::USER_NOT_FOUND);
    assert!(reason.description().contains("signed in"));
}

#[test]
fn bad_tokens_are_refused_with_typed_errors_and_no_session() {
    let service = service();
    let user = CommunicationIdentifier::user("mallory").unwrap();
    let forged = call_service::token::TokenIssuer::new(b"not the service's secret")
        .issue(&user, Duration::from_secs(60))
        .token;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = service
        .issuer()
        .issue_at(&user, Role::Presenter, now - 120, now - 60)
        .token;
    for (token, code) in [
        (forged, ErrorCode::InvalidToken),
        (expired, ErrorCode::TokenExpired),
        (String::new(), ErrorCode::MissingToken),
        ("garbage".to_owned(), ErrorCode::InvalidToken),
    ] {
        let mut m = client_with_token(&service, "mallory", Mic::None, token);
        run_until(&mut [&mut m], "the sign-in to be refused", |c| {
            matches!(c[0].agent().connection, AgentConnection::Disconnected(_))
        });
        match &m.agent().connection {
            AgentConnection::Disconnected(AgentError::Refused { code: got, .. }) => {
                assert_eq!(*got, code)
            }
            other => panic!("expected a refusal with {code:?}, got {other:?}"),
        }
        // No session: calls from a refused agent end at once, and say why.
        let agent = m.agent;
        m.start_call(StartCall {
            agent,
            targets: vec![CommunicationIdentifier::user("bob").unwrap()],
            video: None,
        });
        run_until(&mut [&mut m], "a call exists", |c| !c[0].calls().is_empty());
        let call = m.calls()[0].0;
        assert_eq!(
            ended(&mut [&mut m], 0, call),
            CallEndReason::SERVICE_CONNECTION_LOST
        );
    }
}

#[test]
fn losing_the_service_ends_calls_and_disconnects_agents_with_reasons() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    drop(service);
    assert_eq!(
        ended(&mut [&mut a, &mut b], 0, a_call),
        CallEndReason::SERVICE_CONNECTION_LOST
    );
    assert_eq!(
        ended(&mut [&mut a, &mut b], 1, b_call),
        CallEndReason::SERVICE_CONNECTION_LOST
    );
    run_until(&mut [&mut a, &mut b], "both agents disconnected", |c| {
        c.iter().all(|c| {
            matches!(
                c.agent().connection,
                AgentConnection::Disconnected(AgentError::ConnectionLost)
            )
        })
    });
}

#[test]
fn media_that_never_connects_is_tried_again_then_reported_with_its_reason() {
    let service = service();
    // Every datagram to the SFU is dropped: signaling works, ICE never completes.
    let blocked = Impairment::drop_one_in(1, service.media_addr().port());
    let mut a = client(&service, "alice", Mic::None);
    let start = std::time::Instant::now();
    let error = loop {
        a.app.update();
        if let AgentConnection::Disconnected(error) = &a.agent().connection {
            break error.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "still {:?} after 40 s",
            a.agent().connection
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let AgentError::Media(reason) = &error else {
        panic!("a media error, not {error:?}");
    };
    // Three connections were built and offered (after 3 s, then 6 s more) before the 20 s
    // limit gave up: never a client left connecting for ever.
    assert!(reason.contains("3 attempts"), "{reason}");
    assert!(
        start.elapsed() >= Duration::from_secs(19),
        "{:?}",
        start.elapsed()
    );
    assert!(blocked.dropped() > 0);
}
