//! Local hold and resume through the real stack: states on every side, no media while held
//! (the service's byte counters), and audio and video back after resume.

mod common;

use std::time::Duration;

use bevy::prelude::Entity;
use bevy_calling::prelude::*;
use call_service::CallService;
use common::*;

/// Bytes of audio and video the service sent to `user` so far.
fn bytes_to(service: &CallService, user: &CommunicationIdentifier) -> (u64, u64) {
    let t = service.traffic_to(user).unwrap_or_default();
    (t.audio_bytes, t.video_bytes)
}

/// Waits until `watcher` sees `whom` in `state` in its call.
fn sees(
    clients: &mut [&mut Client],
    watcher: usize,
    call: Entity,
    whom: &CommunicationIdentifier,
    state: ParticipantState,
) {
    run_until(
        clients,
        &format!("client {watcher} sees {whom} {state:?}"),
        |c| {
            c[watcher]
                .participant(call, whom)
                .is_some_and(|p| p.state == state)
        },
    );
}

#[test]
fn one_to_one_hold_stops_media_both_ways_and_resume_restores_it() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::Speech);
    let camera = add_camera(&a, 320, 180, 30);
    let (a_call, b_call, stream) = watching(&mut a, &mut b, camera);
    let (alice, bob) = (a.user.clone(), b.user.clone());

    a.trigger(Hold { call: a_call });
    run_until(
        &mut [&mut a, &mut b],
        "LocalHold at A, RemoteHold at B",
        |c| {
            c[0].call(a_call).state == CallState::LocalHold
                && c[1].call(b_call).state == CallState::RemoteHold
        },
    );
    sees(
        &mut [&mut a, &mut b],
        1,
        b_call,
        &alice,
        ParticipantState::Hold,
    );

    // Packets already in flight drain; then nothing reaches either side.
    run_for(&mut [&mut a, &mut b], Duration::from_millis(300));
    let (to_a, to_b) = (bytes_to(&service, &alice), bytes_to(&service, &bob));
    let frozen = shown(&b, stream).map(|p| p.3.counter);
    let heard = b.speaker.len();
    run_for(&mut [&mut a, &mut b], Duration::from_secs(1));
    assert_eq!(
        bytes_to(&service, &alice),
        to_a,
        "media reached A while it held"
    );
    assert_eq!(
        bytes_to(&service, &bob),
        to_b,
        "media reached B from a held A"
    );
    let quiet = energy(&b.speaker.samples_from(heard));
    assert!(quiet < 1e-6, "B heard {quiet} while A held");
    let held_stamp = shown(&b, stream).map(|p| p.3.counter);
    assert_eq!(frozen, held_stamp, "B's picture moved while A held");

    a.trigger(Resume { call: a_call });
    run_until(&mut [&mut a, &mut b], "both calls connected again", |c| {
        c[0].call(a_call).state == CallState::Connected
            && c[1].call(b_call).state == CallState::Connected
    });
    sees(
        &mut [&mut a, &mut b],
        1,
        b_call,
        &alice,
        ParticipantState::Connected,
    );
    // Video resumes from a keyframe: B's picture moves on.
    run_until(
        &mut [&mut a, &mut b],
        "a new picture at B after resume",
        |c| shown(c[1], stream).map(|p| p.3.counter) > held_stamp,
    );
    // Audio flows both ways again, and it is the speech.
    let source = speech_samples();
    for (direction, received) in [
        ("A to B", listen(&mut a, &mut b, 4 * 48_000, 48_000)),
        ("B to A", listen(&mut b, &mut a, 4 * 48_000, 48_000)),
    ] {
        let e = energy(&received);
        let corr = looped_envelope_correlation(&received, &source);
        assert!(e > 0.002, "speech energy {direction} after resume: {e}");
        assert!(
            corr > 0.7,
            "envelope correlation {direction} after resume: {corr}"
        );
    }
}

#[test]
fn in_a_call_of_three_the_others_keep_talking_while_one_holds() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::None);
    let mut c = client(&service, "carol", Mic::Speech);
    run_until(&mut [&mut a, &mut b, &mut c], "all connected", |c| {
        c.iter().all(|c| c.agent().is_connected())
    });
    let (agent, targets) = (a.agent, vec![b.user.clone(), c.user.clone()]);
    let a_call = a.start_call(StartCall {
        agent,
        targets,
        video: None,
    });
    let mut incoming = [None, None];
    run_until(&mut [&mut a, &mut b, &mut c], "B and C ring", |cl| {
        for (i, slot) in incoming.iter_mut().enumerate() {
            *slot = cl[i + 1].ringing().map(|(e, _)| e);
        }
        incoming.iter().all(Option::is_some)
    });
    let [Some(b_call), Some(c_call)] = incoming else {
        unreachable!()
    };
    b.trigger(AcceptCall { call: b_call });
    c.trigger(AcceptCall { call: c_call });
    let carol = c.user.clone();
    run_until(&mut [&mut a, &mut b, &mut c], "all in the call", |cl| {
        cl[0].call(a_call).state == CallState::Connected
            && cl[1].call(b_call).state == CallState::Connected
            && cl[2].call(c_call).state == CallState::Connected
            && cl[1].participants(b_call).iter().all(is_connected)
    });

    c.trigger(Hold { call: c_call });
    run_until(&mut [&mut a, &mut b, &mut c], "C holds", |cl| {
        cl[2].call(c_call).state == CallState::LocalHold
    });
    sees(
        &mut [&mut a, &mut b, &mut c],
        0,
        a_call,
        &carol,
        ParticipantState::Hold,
    );
    sees(
        &mut [&mut a, &mut b, &mut c],
        1,
        b_call,
        &carol,
        ParticipantState::Hold,
    );
    // With two others in the call, a hold is no call state of theirs.
    assert_eq!(a.call(a_call).state, CallState::Connected);
    assert_eq!(b.call(b_call).state, CallState::Connected);

    run_for(&mut [&mut a, &mut b, &mut c], Duration::from_millis(300));
    let to_c = bytes_to(&service, &carol);
    let heard = b.speaker.len();
    run_for(&mut [&mut a, &mut b, &mut c], Duration::from_secs(2));
    assert_eq!(bytes_to(&service, &carol), to_c, "media reached the held C");
    // B still hears A (C, held, sends nothing).
    let received = b.speaker.samples_from(heard + 24_000);
    let e = energy(&received);
    assert!(e > 0.002, "B hears A while C holds: {e}");
    let corr = looped_envelope_correlation(&received, &speech_samples());
    assert!(corr > 0.7, "what B hears is A's speech: {corr}");

    c.trigger(Resume { call: c_call });
    sees(
        &mut [&mut a, &mut b, &mut c],
        1,
        b_call,
        &carol,
        ParticipantState::Connected,
    );
    let heard = c.speaker.len();
    run_until(
        &mut [&mut a, &mut b, &mut c],
        "C hears the call again",
        |cl| {
            cl[2].speaker.len() > heard + 48_000
                && energy(&cl[2].speaker.samples_from(heard)) > 0.001
        },
    );
}

#[test]
fn a_call_that_ends_on_hold_leaves_the_next_call_audible() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::Speech);
    let (a_call, _) = connected_call(&mut a, &mut b);
    a.trigger(Hold { call: a_call });
    run_until(&mut [&mut a, &mut b], "A holds", |c| {
        c[0].call(a_call).state == CallState::LocalHold
    });
    a.trigger(HangUp { call: a_call });
    ended(&mut [&mut a, &mut b], 0, a_call);
    connected_call(&mut a, &mut b);
    let e = energy(&listen(&mut b, &mut a, 2 * 48_000, 48_000));
    assert!(e > 0.002, "A hears B in the next call: {e}");
}
