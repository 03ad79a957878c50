//! Devices as entities and chosen per agent, through the real stack: listing with the default
//! marked, devices coming and going, choosing and switching the microphone and speaker before
//! and during a call (checked by what the far side hears), falling back when the device in use
//! goes away, and level meters. The devices are synthetic ones through the same manager as
//! hardware; tests/pulse_audio_path.rs does the same with PulseAudio devices.

mod common;

use std::time::Duration;

use bevy::ecs::message::Messages;
use bevy::prelude::*;
use bevy_calling::prelude::*;
use common::*;

/// The frequency of a pure tone, from its zero crossings.
fn frequency(samples: &[f32]) -> f32 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f32 / 2.0 / (samples.len() as f32 / 48_000.0)
}

/// Runs both apps until `listener` has played `seconds` more, and returns the tail half of it
/// (playout settled after any change).
fn heard(talker: &mut Client, listener: &mut Client, seconds: f32) -> Vec<f32> {
    let n = (seconds * 48_000.0) as usize;
    listen(talker, listener, n, n / 2)
}

fn devices_of(client: &mut Client, kind: DeviceKind) -> Vec<Device> {
    let mut q = client.app.world_mut().query::<&Device>();
    q.iter(client.app.world())
        .filter(|d| d.kind == kind)
        .cloned()
        .collect()
}

fn select(client: &mut Client, kind: DeviceKind, device: Option<DeviceId>) {
    let agent = client.agent;
    client.trigger(SelectDevice {
        agent,
        kind,
        device,
    });
}

/// The device facts written since the last call.
fn switches(client: &mut Client) -> Vec<DeviceSwitched> {
    client
        .app
        .world_mut()
        .resource_mut::<Messages<DeviceSwitched>>()
        .drain()
        .collect()
}

fn manager(client: &Client) -> bevy_calling::DeviceManager {
    client.app.world().resource::<Devices>().0.clone()
}

#[test]
fn devices_are_entities_with_one_default_each_and_follow_adds_and_removes() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let devices = manager(&a);
    let tone = devices.add_tone_microphone("tone", 440.0, 0.5);
    run_until(&mut [&mut a], "the devices as entities", |c| {
        devices_of(c[0], DeviceKind::Microphone)
            .iter()
            .any(|d| d.id == tone)
    });
    for kind in [DeviceKind::Microphone, DeviceKind::Speaker] {
        let listed = devices_of(&mut a, kind);
        let defaults = listed.iter().filter(|d| d.is_default).count();
        assert_eq!(defaults, 1, "one default {kind:?} among {listed:?}");
        assert_eq!(listed.len(), devices.list(kind).len());
    }
    let mics = devices_of(&mut a, DeviceKind::Microphone);
    let named = mics.iter().find(|d| d.id == tone).expect("the tone");
    assert_eq!((named.name.as_str(), named.is_synthetic), ("tone", true));

    // A device added while running appears, with a fact; removed, it goes, with a fact.
    let late = devices.add_tone_microphone("late", 660.0, 0.5);
    let mut added = None;
    run_until(&mut [&mut a], "the new device's entity", |c| {
        let world = c[0].app.world_mut();
        added = world
            .resource_mut::<Messages<DeviceAdded>>()
            .drain()
            .find(|m| m.id == late);
        added.is_some()
    });
    let entity = added.unwrap().device;
    assert_eq!(a.app.world().get::<Device>(entity).unwrap().name, "late");
    assert!(devices.remove(&late));
    let mut removed = false;
    run_until(&mut [&mut a], "the removed device's fact", |c| {
        let world = c[0].app.world_mut();
        removed |= world
            .resource_mut::<Messages<DeviceRemoved>>()
            .drain()
            .any(|m| m.id == late && m.kind == DeviceKind::Microphone);
        removed
    });
    assert!(
        a.app.world().get_entity(entity).is_err(),
        "its entity is gone"
    );
}

#[test]
fn microphone_chosen_before_a_call_and_switched_during_it_is_what_the_far_side_hears() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let devices = manager(&a);
    let low = devices.add_tone_microphone("low", 440.0, 0.5);
    let high = devices.add_tone_microphone("high", 880.0, 0.5);
    select(&mut a, DeviceKind::Microphone, Some(low.clone()));
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    assert_eq!(a.agent().microphone(), Some(&low));
    let hz = frequency(&heard(&mut a, &mut b, 1.0));
    assert!(
        (hz - 440.0).abs() < 20.0,
        "B hears the chosen microphone: {hz} Hz"
    );

    // Mid-call: the far side hears the new microphone within a second.
    select(&mut a, DeviceKind::Microphone, Some(high.clone()));
    let switched = switches(&mut a);
    assert!(switched.iter().any(|s| s.to == Some(high.clone())
        && s.from == Some(low.clone())
        && s.reason == DeviceSwitchReason::Requested));
    let hz = frequency(&heard(&mut a, &mut b, 1.0));
    assert!(
        (hz - 880.0).abs() < 20.0,
        "B hears the new microphone: {hz} Hz"
    );

    // Mute survives a switch: silence, still muted, and unmuting gives the new microphone.
    a.trigger(Mute { call: a_call });
    run_until(&mut [&mut a, &mut b], "B sees A muted", |c| {
        c[1].participant(b_call, &c[0].user.clone())
            .is_some_and(|p| p.is_muted)
    });
    select(&mut a, DeviceKind::Microphone, Some(low.clone()));
    let muted = energy(&heard(&mut a, &mut b, 1.0));
    assert!(muted < 1e-5, "muted through the switch: {muted}");
    assert!(a.call(a_call).is_muted);
    a.trigger(Unmute { call: a_call });
    let hz = frequency(&heard(&mut a, &mut b, 1.0));
    assert!(
        (hz - 440.0).abs() < 20.0,
        "unmuted, the switched-to microphone: {hz} Hz"
    );

    // Hold survives a switch too.
    a.trigger(Hold { call: a_call });
    run_until(&mut [&mut a, &mut b], "A holds", |c| {
        c[0].call(a_call).state == CallState::LocalHold
    });
    select(&mut a, DeviceKind::Microphone, Some(high.clone()));
    run_for(&mut [&mut a, &mut b], Duration::from_millis(500));
    assert_eq!(a.call(a_call).state, CallState::LocalHold);
    let held = energy(&heard(&mut a, &mut b, 1.0));
    assert!(held < 1e-5, "held through the switch: {held}");
    a.trigger(Resume { call: a_call });
    let hz = frequency(&heard(&mut a, &mut b, 1.0));
    assert!(
        (hz - 880.0).abs() < 20.0,
        "resumed on the new microphone: {hz} Hz"
    );
}

#[test]
fn speaker_switched_during_a_call_plays_on_the_new_one() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::None);
    let (second, recording) = manager(&b).add_recording_speaker("second", None);
    connected_call(&mut a, &mut b);
    let first = energy(&heard(&mut a, &mut b, 1.0));
    assert!(first > 0.002, "the first speaker plays the call: {first}");

    select(&mut b, DeviceKind::Speaker, Some(second.clone()));
    run_until(&mut [&mut a, &mut b], "the second speaker plays", |c| {
        let _ = c;
        recording.len() > 48_000
    });
    // The first speaker closed: it plays nothing more.
    let closed_at = b.speaker.len();
    run_for(&mut [&mut a, &mut b], Duration::from_millis(500));
    assert_eq!(b.speaker.len(), closed_at, "the first speaker still plays");
    let tail = recording.samples_from(recording.len() - 24_000);
    assert!(
        energy(&tail) > 0.002,
        "the call on the new speaker: {}",
        energy(&tail)
    );
    assert_eq!(b.agent().speaker(), Some(&second));
}

#[test]
fn removing_the_microphone_in_use_falls_back_to_the_default_then_to_none() {
    let service = service();
    // Synthetic devices only: what is left when they go must not depend on the machine.
    let devices = bevy_calling::DeviceManager::synthetic_only();
    let mut a = client_sharing_devices(&service, "alice", &devices);
    let mut b = client(&service, "bob", Mic::None);
    let used = devices.add_tone_microphone("used", 880.0, 0.5);
    let fallback = devices.add_tone_microphone("fallback", 440.0, 0.5);
    devices.set_default(&fallback);
    select(&mut a, DeviceKind::Microphone, Some(used.clone()));
    connected_call(&mut a, &mut b);
    let hz = frequency(&heard(&mut a, &mut b, 1.0));
    assert!(
        (hz - 880.0).abs() < 20.0,
        "B hears the chosen microphone: {hz} Hz"
    );
    switches(&mut a);

    let fell_back = |a: &mut Client, b: &mut Client| {
        let mut fact = None;
        run_until(&mut [a, b], "A falls back", |c| {
            fact = switches(c[0])
                .into_iter()
                .find(|s| s.reason == DeviceSwitchReason::Unplugged);
            fact.is_some()
        });
        fact.unwrap()
    };
    devices.remove(&used);
    let fact = fell_back(&mut a, &mut b);
    assert_eq!((fact.from, fact.to), (Some(used), Some(fallback.clone())));
    assert_eq!(a.agent().microphone(), Some(&fallback));
    let hz = frequency(&heard(&mut a, &mut b, 1.0));
    assert!((hz - 440.0).abs() < 20.0, "B hears the fallback: {hz} Hz");

    // With no microphone left, the agent says so, and sends nothing.
    devices.remove(&fallback);
    let fact = fell_back(&mut a, &mut b);
    assert_eq!((fact.from, fact.to), (Some(fallback), None));
    assert_eq!(a.agent().microphone(), None);
    let silent = energy(&heard(&mut a, &mut b, 1.0));
    assert!(silent < 1e-5, "no microphone, no sound: {silent}");
}

#[test]
fn level_meters_show_a_microphone_before_any_call_and_the_agents_in_a_call() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let devices = manager(&a);
    let tone = devices.add_tone_microphone("tone", 440.0, 0.5);
    let mut device = None;
    run_until(&mut [&mut a], "the tone's entity", |c| {
        let mut q = c[0].app.world_mut().query::<(Entity, &Device)>();
        device = q
            .iter(c[0].app.world())
            .find(|(_, d)| d.id == tone)
            .map(|(e, _)| e);
        device.is_some()
    });
    let device = device.unwrap();
    a.app
        .world_mut()
        .entity_mut(device)
        .insert(LevelMeter::default());
    // A 0.5 sine: RMS 0.354.
    run_until(&mut [&mut a], "the device test's meter", |c| {
        c[0].app
            .world()
            .get::<LevelMeter>(device)
            .is_some_and(|m| (m.rms - 0.354).abs() < 0.02 && m.is_speaking())
    });
    a.app.world_mut().entity_mut(device).remove::<LevelMeter>();

    let agent = a.agent;
    let meter = |c: &Client| *c.app.world().get::<LevelMeter>(c.agent).unwrap();
    assert_eq!(meter(&a).rms, 0.0, "no call, no agent microphone open");
    select(&mut a, DeviceKind::Microphone, Some(tone));
    let (a_call, _) = connected_call(&mut a, &mut b);
    run_until(
        &mut [&mut a, &mut b],
        "the agent's meter in the call",
        |c| (meter(c[0]).rms - 0.354).abs() < 0.02,
    );
    // Muted, the meter still shows the microphone (a "you are muted" hint needs it).
    a.trigger(Mute { call: a_call });
    run_for(&mut [&mut a, &mut b], Duration::from_millis(200));
    assert!(meter(&a).is_speaking());
    a.trigger(HangUp { call: a_call });
    run_until(
        &mut [&mut a, &mut b],
        "the meter falls when the call ends",
        |c| meter(c[0]).rms == 0.0,
    );
    let _ = agent;
}
