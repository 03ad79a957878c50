//! A device that cannot open becomes a typed error message; the call itself goes on.

mod common;

use std::time::Duration;

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{DeviceError, DeviceFailed, DeviceKind};
use common::*;

#[test]
fn a_missing_wav_microphone_fails_to_open_and_the_call_stays_connected() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    // Give A a microphone whose file does not exist.
    let devices = a.app.world().resource::<Devices>().0.clone();
    let broken = devices.add_wav_microphone("broken", "/nonexistent/speech.wav");
    a.app.world_mut().despawn(a.agent);
    let token = service.issue_token(&a.user, Duration::from_secs(60)).token;
    a.agent = a
        .app
        .world_mut()
        .spawn(CallAgent::new(AgentConfig {
            service_url: service.ws_url(),
            token,
            display_name: "alice".into(),
            microphone: Some(broken.clone()),
            speaker: None,
            ..Default::default()
        }))
        .id();
    let (a_call, b_call) = connected_call(&mut a, &mut b);

    let mut failures = Vec::new();
    run_until(
        &mut [&mut a, &mut b],
        "A hears its microphone failed",
        |c| {
            let mut reader = c[0]
                .app
                .world_mut()
                .resource_mut::<Messages<DeviceFailed>>();
            failures.extend(reader.drain());
            !failures.is_empty()
        },
    );
    assert_eq!(failures[0].kind, DeviceKind::Microphone);
    assert!(
        matches!(&failures[0].error, DeviceError::Open { id, reason } if *id == broken && reason.contains("nonexistent")),
        "{:?}",
        failures[0].error
    );
    run_for(&mut [&mut a, &mut b], Duration::from_millis(500));
    assert_eq!(a.call(a_call).state, CallState::Connected);
    assert_eq!(b.call(b_call).state, CallState::Connected);
}

#[test]
fn a_camera_that_fails_to_open_leaves_video_off_with_a_typed_error() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let devices = a.app.world().resource::<Devices>().0.clone();
    let broken = devices.add_y4m_camera("broken", "/nonexistent/clip.y4m");
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    a.trigger(StartVideo {
        call: a_call,
        camera: broken.clone(),
    });
    let mut failures = Vec::new();
    run_until(&mut [&mut a, &mut b], "A hears its camera failed", |c| {
        let mut reader = c[0]
            .app
            .world_mut()
            .resource_mut::<Messages<DeviceFailed>>();
        failures.extend(reader.drain());
        !failures.is_empty()
    });
    assert_eq!(failures[0].kind, DeviceKind::Camera);
    run_for(&mut [&mut a, &mut b], Duration::from_millis(300));
    assert!(a.app.world().get::<LocalVideoStream>(a_call).is_none());
    let alice = a.user.clone();
    let stream = camera_stream(&mut b, b_call, &alice).expect("A offers a camera stream");
    assert!(
        !b.app
            .world()
            .get::<RemoteVideoStream>(stream)
            .unwrap()
            .is_available
    );
}
