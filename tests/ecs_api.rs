//! The ECS API without traps: despawning live calls and agents, the order of requests within a
//! frame, the call handle returned at start, and plugin order, each through the real stack.

mod common;

use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::image::ImagePlugin;
use bevy::prelude::*;
use bevy_calling::pattern;
use bevy_calling::prelude::*;
use common::*;

#[test]
fn despawning_a_live_call_hangs_up_and_later_facts_for_it_are_dropped() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    let alice = a.user.clone();

    a.app.world_mut().despawn(a_call);
    // The far side sees a normal hang-up with its reason.
    assert_eq!(
        ended(&mut [&mut a, &mut b], 1, b_call),
        CallEndReason::REMOTE_HANG_UP
    );
    let left = b.participant(b_call, &alice).expect("A as a participant");
    assert_eq!(left.end_reason, Some(CallEndReason::REMOTE_HANG_UP));
    // The engine's own "call ended" for the despawned call arrives now and is dropped; the app
    // keeps running and places the next call as usual.
    run_for(&mut [&mut a, &mut b], Duration::from_millis(300));
    assert!(a.calls().is_empty(), "no call entity comes back");
    let (again, _) = connected_call(&mut a, &mut b);
    assert_eq!(a.call(again).state, CallState::Connected);
}

#[test]
fn despawning_a_ringing_call_declines_it() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    run_until(&mut [&mut a, &mut b], "both connected", |c| {
        c[0].agent().is_connected() && c[1].agent().is_connected()
    });
    let (agent, bob) = (a.agent, b.user.clone());
    let a_call = a.start_call(StartCall {
        agent,
        targets: vec![bob],
        video: None,
    });
    let mut incoming = None;
    run_until(&mut [&mut a, &mut b], "B is called", |c| {
        incoming = c[1].calls().first().map(|(e, _)| *e);
        incoming.is_some()
    });
    b.app.world_mut().despawn(incoming.expect("incoming"));
    assert_eq!(
        ended(&mut [&mut a, &mut b], 0, a_call),
        CallEndReason::DECLINED
    );
}

#[test]
fn despawning_a_live_agent_hangs_up_without_stalling_the_frame() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::None);
    let (_, b_call) = connected_call(&mut a, &mut b);

    // The old engine joined its thread here, waiting up to 700 ms for the link and runtime.
    let started = Instant::now();
    let agent = a.agent;
    a.app.world_mut().despawn(agent);
    a.app.update();
    let frame = started.elapsed();
    assert!(
        frame < Duration::from_millis(150),
        "despawn and one update took {frame:?}"
    );
    assert!(a.calls().is_empty(), "the agent's calls went with it");
    assert_eq!(
        ended(&mut [&mut b], 0, b_call),
        CallEndReason::REMOTE_HANG_UP
    );
}

#[test]
fn requests_within_a_frame_are_applied_in_the_order_written() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    let alice = a.user.clone();
    a.trigger(StartVideo {
        call: a_call,
        camera: camera.clone(),
    });
    let stream = available_camera_stream(&mut [&mut a, &mut b], 1, b_call, &alice);
    b.trigger(SubscribeVideo { stream });

    // One frame's requests, written through Commands: unmute then mute, video off then on.
    {
        let mut commands = a.app.world_mut().commands();
        commands.trigger(Unmute { call: a_call });
        commands.trigger(Mute { call: a_call });
        commands.trigger(StopVideo { call: a_call });
        commands.trigger(StartVideo {
            call: a_call,
            camera,
        });
    }
    a.app.world_mut().flush();
    a.app.update();

    assert!(a.call(a_call).is_muted, "unmute then mute ends muted");
    run_until(&mut [&mut a, &mut b], "B sees A muted", |c| {
        c[1].participant(b_call, &alice).is_some_and(|p| p.is_muted)
    });
    let muted = energy(&listen(&mut a, &mut b, 48_000, 24_000));
    assert!(muted < 1e-5, "energy at B after unmute, mute: {muted}");

    assert!(
        a.app.world().get::<LocalVideoStream>(a_call).is_some(),
        "video off then on ends with video on"
    );
    let counter = |b: &Client| {
        view_pixels(b, stream)
            .and_then(|(rgba, w, h)| pattern::read_rgba(&rgba, w, h))
            .map(|s| s.counter)
    };
    run_for(&mut [&mut a, &mut b], Duration::from_millis(500));
    let before = counter(&b);
    run_until(&mut [&mut a, &mut b], "B's picture keeps advancing", |c| {
        counter(c[1]).is_some_and(|n| before.is_none_or(|b| n > b + 10))
    });
}

#[test]
fn start_call_returns_each_call_at_once_and_two_calls_are_told_apart() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let mut c = client(&service, "carol", Mic::None);
    run_until(&mut [&mut a, &mut b, &mut c], "all connected", |c| {
        c.iter().all(|c| c.agent().is_connected())
    });
    let agent = a.agent;
    let (bob, carol) = (b.user.clone(), c.user.clone());
    // Two calls placed in one frame through Commands: each handle is known before any update.
    let (to_bob, to_carol) = {
        let mut commands = a.app.world_mut().commands();
        let to_bob = commands.start_call(StartCall {
            agent,
            targets: vec![bob.clone()],
            video: None,
        });
        let to_carol = commands.start_call(StartCall {
            agent,
            targets: vec![carol.clone()],
            video: None,
        });
        (to_bob, to_carol)
    };
    a.app.world_mut().flush();
    assert_ne!(to_bob, to_carol);
    assert_eq!(a.call(to_bob).state, CallState::Connecting);

    let mut both = None;
    run_until(&mut [&mut a, &mut b, &mut c], "B and C are called", |c| {
        both = c[1]
            .calls()
            .first()
            .zip(c[2].calls().first())
            .map(|(b, c)| (b.0, c.0));
        both.is_some()
    });
    let (b_call, c_call) = both.expect("both called");
    b.trigger(AcceptCall { call: b_call });
    c.trigger(AcceptCall { call: c_call });
    run_until(
        &mut [&mut a, &mut b, &mut c],
        "both calls connected",
        |cl| {
            cl[0].call(to_bob).state == CallState::Connected
                && cl[0].call(to_carol).state == CallState::Connected
        },
    );
    let names = |client: &mut Client, call| {
        client
            .participants(call)
            .into_iter()
            .map(|p| p.identifier)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&mut a, to_bob), vec![bob]);
    assert_eq!(names(&mut a, to_carol), vec![carol]);
}

#[test]
fn plugin_order_does_not_matter() {
    let service = service();
    // The calling plugin before the asset and image plugins, and after them.
    let mut first = App::new();
    first.add_plugins((
        MinimalPlugins,
        CallingPlugin::default(),
        AssetPlugin::default(),
        ImagePlugin::default(),
    ));
    let mut last = App::new();
    last.add_plugins((
        MinimalPlugins,
        AssetPlugin::default(),
        ImagePlugin::default(),
        CallingPlugin { media_threads: 1 },
    ));
    let mut a = client_in(first, &service, "alice", Mic::None);
    let mut b = client_in(last, &service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    a.trigger(StartVideo {
        call: a_call,
        camera,
    });
    let alice = a.user.clone();
    let stream = available_camera_stream(&mut [&mut a, &mut b], 1, b_call, &alice);
    b.trigger(SubscribeVideo { stream });
    run_until(&mut [&mut a, &mut b], "a stamped picture at B", |c| {
        view_pixels(c[1], stream)
            .is_some_and(|(rgba, w, h)| pattern::read_rgba(&rgba, w, h).is_some())
    });
}
