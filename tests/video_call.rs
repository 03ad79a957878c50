//! Video end to end: a synthetic camera at A, H.264 through the SFU, decoded into B's texture.

mod common;

use std::time::Duration;

use bevy::prelude::Entity;
use bevy_calling::pattern::{self, FrameStamp};
use bevy_calling::prelude::*;
use common::*;

/// The stamp B's texture shows after running both apps for a while.
fn stamp_after(
    a: &mut Client,
    b: &mut Client,
    stream: Entity,
    wait: Duration,
) -> Option<FrameStamp> {
    run_for(&mut [a, b], wait);
    shown(b, stream).map(|p| p.3)
}

/// Waits until `watcher` (index into `c`) shows a decoded picture of `stream` past frame 10 and
/// returns it.
fn decoded_picture(
    c: &mut [&mut Client],
    watcher: usize,
    stream: Entity,
) -> (Vec<u8>, u32, u32, FrameStamp) {
    let mut picture = None;
    run_until(c, "a decoded, stamped picture in the texture", |c| {
        picture = shown(c[watcher], stream);
        picture.as_ref().is_some_and(|p| p.3.counter > 10)
    });
    picture.expect("a picture")
}

#[test]
fn video_flows_both_ways_into_textures_with_psnr_above_30_db() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let a_camera = add_camera(&a, 640, 360, 30);
    let b_camera = add_camera(&b, 320, 180, 30);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    a.trigger(StartVideo {
        call: a_call,
        camera: a_camera,
    });
    b.trigger(StartVideo {
        call: b_call,
        camera: b_camera,
    });
    let (alice, bob) = (a.user.clone(), b.user.clone());
    let at_b = available_camera_stream(&mut [&mut a, &mut b], 1, b_call, &alice);
    let at_a = available_camera_stream(&mut [&mut a, &mut b], 0, a_call, &bob);
    b.trigger(SubscribeVideo { stream: at_b });
    a.trigger(SubscribeVideo { stream: at_a });

    for (watcher, stream, size) in [(1, at_b, (640, 360)), (0, at_a, (320, 180))] {
        let (rgba, w, h, stamp) = decoded_picture(&mut [&mut a, &mut b], watcher, stream);
        assert_eq!((w, h), size, "the sender's size arrives");
        let quality = psnr_against_source(&rgba, w, h, stamp);
        assert!(
            quality > 30.0,
            "PSNR of frame {} at client {watcher} is {quality:.1} dB",
            stamp.counter
        );
    }
    // The view counts the pictures it shows: a second at 30 fps is well over ten.
    let pictures = |b: &Client| b.app.world().get::<VideoView>(at_b).unwrap().pictures;
    let before = pictures(&b);
    run_for(&mut [&mut a, &mut b], Duration::from_secs(1));
    let counted = pictures(&b) - before;
    assert!(counted >= 10, "B's view counted {counted} pictures in 1 s");
    // A's own preview shows what it sends.
    let preview = a
        .app
        .world()
        .get::<LocalVideoStream>(a_call)
        .unwrap()
        .preview
        .clone();
    let images = a
        .app
        .world()
        .resource::<bevy::prelude::Assets<bevy::prelude::Image>>();
    let shown_locally = images.get(&preview).and_then(|i| {
        let size = i.texture_descriptor.size;
        pattern::read_rgba(i.data.as_deref()?, size.width, size.height)
            .map(|_| (size.width, size.height))
    });
    assert_eq!(
        shown_locally,
        Some((640, 360)),
        "the local preview shows A's own (640x360) camera"
    );
}

#[test]
fn video_off_makes_the_stream_unavailable_and_the_texture_stops() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    let (a_call, _, stream) = watching(&mut a, &mut b, camera);

    a.trigger(StopVideo { call: a_call });
    run_until(&mut [&mut a, &mut b], "A's video off on both sides", |c| {
        c[0].app.world().get::<LocalVideoStream>(a_call).is_none()
            && c[1]
                .app
                .world()
                .get::<RemoteVideoStream>(stream)
                .is_some_and(|r| !r.is_available)
    });
    let settled =
        stamp_after(&mut a, &mut b, stream, Duration::from_millis(300)).map(|s| s.counter);
    let later = stamp_after(&mut a, &mut b, stream, Duration::from_secs(1)).map(|s| s.counter);
    assert_eq!(
        settled, later,
        "B's texture kept updating after video went off"
    );
}

#[test]
fn switching_camera_shows_the_new_source_without_renegotiation() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let first = add_camera(&a, 320, 180, 30);
    let second = add_camera(&a, 320, 180, 30);
    let (a_call, _, stream) = watching(&mut a, &mut b, first);
    assert_eq!(shown(&b, stream).unwrap().3.source, 1);

    a.trigger(StartVideo {
        call: a_call,
        camera: second.clone(),
    });
    run_until(
        &mut [&mut a, &mut b],
        "B shows the second camera's pattern",
        |c| shown(c[1], stream).is_some_and(|p| p.3.source == 2),
    );
    let local = a.app.world().get::<LocalVideoStream>(a_call).unwrap();
    assert_eq!(local.camera, second);
}

#[test]
fn after_unsubscribing_the_service_stops_sending() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    let (_, _, stream) = watching(&mut a, &mut b, camera);
    let bob = b.user.clone();
    let video_to_bob = |s: &call_service::CallService| s.traffic_to(&bob).unwrap().video_bytes;

    let before = video_to_bob(&service);
    run_for(&mut [&mut a, &mut b], Duration::from_secs(1));
    let subscribed = video_to_bob(&service) - before;
    assert!(
        subscribed > 10_000,
        "only {subscribed} video bytes in a subscribed second"
    );

    b.trigger(UnsubscribeVideo { stream });
    run_until(&mut [&mut a, &mut b], "B's view goes", |c| {
        c[1].app.world().get::<VideoView>(stream).is_none()
    });
    run_for(&mut [&mut a, &mut b], Duration::from_millis(300));
    let after = video_to_bob(&service);
    run_for(&mut [&mut a, &mut b], Duration::from_secs(1));
    assert_eq!(
        video_to_bob(&service),
        after,
        "video still forwarded after unsubscribing"
    );
}

#[test]
fn one_receiver_renders_nine_cameras_and_a_screen_share() {
    let service = service();
    let shared = bevy_calling::DeviceManager::new();
    let mut receiver = client(&service, "receiver", Mic::None);
    let mut senders: Vec<Client> = (1..=9)
        .map(|i| client_sharing_devices(&service, &format!("sender{i}"), &shared))
        .collect();
    let cameras: Vec<_> = (0..9)
        .map(|_| shared.add_pattern_camera("pattern", 320, 180, 15))
        .collect();
    // The screen share is a tenth pattern source, sent by the first sender beside its camera.
    let screen = shared.add_pattern_camera("screen", 320, 180, 15);

    let mut all: Vec<&mut Client> = std::iter::once(&mut receiver)
        .chain(senders.iter_mut())
        .collect();
    let started = std::time::Instant::now();
    run_until(&mut all, "everyone signed in", |c| {
        if started.elapsed() > DEADLINE - Duration::from_secs(1) {
            let states: Vec<_> = c.iter().map(|c| c.agent().connection.clone()).collect();
            eprintln!("agents so far: {states:?}");
        }
        c.iter().all(|c| c.agent().is_connected())
    });
    let targets = all[1..].iter().map(|c| c.user.clone()).collect();
    let agent = all[0].agent;
    all[0].start_call(StartCall {
        agent,
        targets,
        video: None,
    });
    run_until(&mut all, "nine incoming calls", |c| {
        c[1..].iter_mut().all(|s| !s.calls().is_empty())
    });
    for (sender, camera) in all[1..].iter_mut().zip(&cameras) {
        let call = sender.calls()[0].0;
        sender.trigger(AcceptCall { call });
        sender.trigger(StartVideo {
            call,
            camera: camera.clone(),
        });
    }
    let call = all[1].calls()[0].0;
    all[1].trigger(StartScreenShare {
        call,
        source: screen.clone(),
    });
    let mut streams: Vec<(Entity, MediaType)> = Vec::new();
    run_until(&mut all, "nine cameras and a screen share available", |c| {
        let mut q = c[0].app.world_mut().query::<(Entity, &RemoteVideoStream)>();
        streams = q
            .iter(c[0].app.world())
            .filter(|(_, s)| s.is_available)
            .map(|(e, s)| (e, s.media_type))
            .collect();
        streams.len() == 10
    });
    assert_eq!(
        streams
            .iter()
            .filter(|(_, t)| *t == MediaType::ScreenSharing)
            .count(),
        1
    );
    for &(stream, _) in &streams {
        all[0].trigger(SubscribeVideo { stream });
    }
    let started = std::time::Instant::now();
    run_until(
        &mut all,
        "ten distinct sources in the receiver's textures",
        |c| {
            let mut sources: Vec<u8> = streams
                .iter()
                .filter_map(|&(s, _)| shown(c[0], s).map(|p| p.3.source))
                .collect();
            sources.sort_unstable();
            sources.dedup();
            if started.elapsed() > DEADLINE - Duration::from_secs(1) {
                eprintln!("sources shown so far: {sources:?}");
            }
            sources.len() == 10
        },
    );
    assert!(all[1].app.world().get::<LocalScreenShare>(call).is_some());
}

#[test]
fn a_call_started_with_video_on_shows_video() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    run_until(&mut [&mut a, &mut b], "both connected", |c| {
        c.iter().all(|c| c.agent().is_connected())
    });
    let (agent, bob) = (a.agent, b.user.clone());
    a.start_call(StartCall {
        agent,
        targets: vec![bob],
        video: Some(camera),
    });
    let mut b_call = None;
    run_until(&mut [&mut a, &mut b], "B is called", |c| {
        b_call = c[1].calls().first().map(|(e, _)| *e);
        b_call.is_some()
    });
    b.trigger(AcceptCall {
        call: b_call.unwrap(),
    });
    let alice = a.user.clone();
    let stream = available_camera_stream(&mut [&mut a, &mut b], 1, b_call.unwrap(), &alice);
    b.trigger(SubscribeVideo { stream });
    run_until(&mut [&mut a, &mut b], "A's pattern in B's texture", |c| {
        shown(c[1], stream).is_some_and(|p| p.3.source == 1)
    });
}

#[test]
fn video_recovers_from_packet_loss_with_keyframe_requests_and_retransmission() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 640, 360, 30);
    let (_, _, stream) = watching(&mut a, &mut b, camera);

    let loss = Impairment::drop_one_in(10, service.media_addr().port());
    let start = shown(&b, stream).unwrap().3.counter;
    // Until the rule has really dropped packets and B's picture moved on by a second's worth of
    // frames (by packets and frames, not by time: a loaded machine sends fewer per second).
    let (mut dropped, mut checked) = (0, std::time::Instant::now());
    run_until(
        &mut [&mut a, &mut b],
        "ten packets dropped and thirty new frames shown under loss",
        |c| {
            if checked.elapsed() > Duration::from_millis(200) {
                dropped = loss.dropped();
                checked = std::time::Instant::now();
            }
            dropped >= 10 && shown(c[1], stream).is_some_and(|p| p.3.counter >= start + 30)
        },
    );
    drop(loss);
    let (rgba, w, h, stamp) = shown(&b, stream).expect("a picture");
    let quality = psnr_against_source(&rgba, w, h, stamp);
    assert!(
        quality > 30.0,
        "a corrupted picture under loss: {quality:.1} dB"
    );
}

#[test]
fn hanging_up_ends_video_state_on_both_sides() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    let (a_call, b_call, stream) = watching(&mut a, &mut b, camera);
    b.trigger(HangUp { call: b_call });
    ended(&mut [&mut a, &mut b], 0, a_call);
    ended(&mut [&mut a, &mut b], 1, b_call);
    assert!(
        a.app.world().get::<LocalVideoStream>(a_call).is_none(),
        "A still shows video on"
    );
    assert!(
        b.app.world().get::<VideoView>(stream).is_none(),
        "B still has a view"
    );
    assert!(
        !b.app
            .world()
            .get::<RemoteVideoStream>(stream)
            .unwrap()
            .is_available
    );
}

#[test]
fn call_stats_report_the_media_that_flows() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Tone);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 320, 180, 30);
    let (a_call, b_call, _) = watching(&mut a, &mut b, camera);
    // Two full intervals after the picture arrived, so every rate covers flowing media.
    run_for(&mut [&mut a, &mut b], Duration::from_millis(2_500));
    let stats = |c: &Client, call| c.app.world().get::<CallStats>(call).cloned();
    let at_b = stats(&b, b_call).expect("B's call has statistics");
    let video = at_b
        .incoming_video
        .iter()
        .find(|v| v.participant == a.user && v.media_type == MediaType::Video)
        .expect("A's camera in B's statistics")
        .stats
        .clone();
    assert_eq!(video.frame_size, Some((320, 180)), "{video:?}");
    let fps = video.frames_per_second.unwrap_or(0.0);
    assert!(
        (15.0..=40.0).contains(&fps),
        "B decodes {fps} fps of a 30 fps camera"
    );
    assert!(
        video.bitrate > 50_000,
        "received video at {} bit/s",
        video.bitrate
    );
    assert!(video.packets > 30 && video.packets_lost == 0, "{video:?}");
    assert!(video.jitter < Duration::from_millis(100), "{video:?}");
    let audio = &at_b.incoming_audio;
    // Opus at 32 kbit/s plus RTP headers, 50 packets a second.
    assert!(
        (20_000..80_000).contains(&audio.bitrate) && audio.packets > 50,
        "received audio {audio:?}"
    );
    let rtt = at_b.round_trip_time.expect("a round trip was measured");
    assert!(
        rtt < Duration::from_millis(200),
        "loopback round trip {rtt:?}"
    );

    let at_a = stats(&a, a_call).expect("A's call has statistics");
    let (_, sent) = at_a
        .outgoing_video
        .iter()
        .find(|(m, _)| *m == MediaType::Video)
        .expect("A's camera in A's statistics");
    assert_eq!(sent.frame_size, Some((320, 180)), "{sent:?}");
    let fps = sent.frames_per_second.unwrap_or(0.0);
    assert!(
        (20.0..=40.0).contains(&fps),
        "A sends {fps} fps of a 30 fps camera"
    );
    assert!(sent.bitrate > 50_000, "{sent:?}");
    assert!(
        at_a.outgoing_audio.bitrate > 20_000,
        "{:?}",
        at_a.outgoing_audio
    );
    assert!(
        at_a.incoming_video.is_empty(),
        "A subscribed to nothing: {:?}",
        at_a.incoming_video
    );
}

/// A receive slot that showed one stream and is given another never shows the new stream's
/// delta frames drawn over the old one's pictures: the SFU starts a stream on a slot at a
/// keyframe. This is the app's echo-then-group scenario: Alice's echo used her slot 0, Bob's
/// camera gets it next, and the SFU had just been asked for Bob's keyframe for Carol.
#[test]
fn a_reused_receive_slot_starts_its_new_stream_at_a_keyframe() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let mut c = client(&service, "carol", Mic::None);
    let a_camera = add_camera(&a, 320, 180, 30);
    // Bob's second pattern camera stamps source 2; Alice's stamps 1.
    add_camera(&b, 320, 180, 30);
    let b_camera = add_camera(&b, 320, 180, 30);
    run_until(&mut [&mut a, &mut b, &mut c], "all signed in", |c| {
        c.iter().all(|c| c.agent().is_connected())
    });

    // Alice's receive slot 0 decodes her echoed camera, then the echo call ends.
    let agent = a.agent;
    let echo = a.start_call(StartCall {
        agent,
        targets: vec![CommunicationIdentifier::EchoBot],
        video: Some(a_camera),
    });
    let stream = available_camera_stream(&mut [&mut a], 0, echo, &CommunicationIdentifier::EchoBot);
    a.trigger(SubscribeVideo { stream });
    run_until(&mut [&mut a], "Alice's echo shown", |c| {
        shown(c[0], stream).is_some_and(|p| p.3.counter > 10)
    });
    a.trigger(HangUp { call: echo });
    run_until(&mut [&mut a], "the echo call ended", |c| {
        c[0].call(echo).state == CallState::Disconnected
    });

    // Bob sends his camera in a group call that Carol and Alice join; his first keyframes go
    // by long before anyone subscribes.
    let group = CallId::new_group();
    let mut all = [&mut a, &mut b, &mut c];
    let mut calls = [Entity::PLACEHOLDER; 3];
    for (i, video) in [(1, Some(b_camera)), (2, None), (0, None)] {
        let agent = all[i].agent;
        calls[i] = all[i].app.world_mut().join_group_call(JoinGroupCall {
            agent,
            group_id: group.clone(),
            video,
        });
        run_until(&mut all, "the joiner is connected", |c| {
            c[i].call(calls[i]).state == CallState::Connected
        });
    }
    let bob = all[1].user.clone();
    let at_carol = available_camera_stream(&mut all, 2, calls[2], &bob);
    let at_alice = available_camera_stream(&mut all, 0, calls[0], &bob);
    run_for(&mut all, Duration::from_secs(1));

    // Carol subscribes and sees Bob: the SFU asked Bob for a keyframe. Alice subscribes right
    // after, within the SFU's least gap between two keyframe requests to Bob.
    all[2].trigger(SubscribeVideo { stream: at_carol });
    run_until(&mut all, "Carol shows Bob", |c| {
        shown(c[2], at_carol).is_some()
    });
    all[0].trigger(SubscribeVideo { stream: at_alice });
    let mut pictures = 0;
    let mut last = None;
    run_until(&mut all, "Alice shows 30 of Bob's pictures", |c| {
        if let Some((rgba, w, h)) = view_pixels(c[0], at_alice) {
            let stamp = pattern::read_rgba(&rgba, w, h);
            assert!(
                stamp.is_some_and(|s| s.source == 2),
                "Alice's slot shows a picture that is not Bob's camera: {stamp:?}"
            );
            if last != stamp {
                pictures += 1;
                last = stamp;
            }
        }
        pictures >= 30
    });
    let (rgba, w, h, stamp) = shown(all[0], at_alice).expect("a picture");
    let quality = psnr_against_source(&rgba, w, h, stamp);
    assert!(
        quality > 30.0,
        "Bob's frame {} at {quality:.1} dB",
        stamp.counter
    );
}
