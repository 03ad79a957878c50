//! Echo cancellation through a real sound server: the near side N plays the far side's speech
//! on a PulseAudio speaker that leaks into its PulseAudio microphone (a loopback module, the
//! room); with cancellation on, what the far side F gets back is at least 20 dB quieter than
//! with it off, and N's own speech still reaches F.
//!
//! Sink `room`: N's speaker. Sink `micmix`: what N's microphone hears (its monitor is N's
//! microphone): the room, 30 ms late, plus N's own voice when the test plays one into it.

mod common;

use std::process::Command;
use std::time::Duration;

use bevy_calling::prelude::*;
use common::*;

/// Seconds of what F heard most recently.
fn last(client: &Client, seconds: f32) -> Vec<f32> {
    let n = (seconds * 48_000.0) as usize;
    client
        .speaker
        .samples_from(client.speaker.len().saturating_sub(n))
}

fn set_processing(client: &mut Client, mode: VoiceProcessing) {
    let agent = client.agent;
    client.trigger(SetVoiceProcessing { agent, mode });
}

#[test]
fn cancellation_takes_the_far_sides_echo_down_20_db_and_keeps_near_speech() {
    let _pulse = pulse::start(&["room", "micmix"], "room", "micmix.monitor");
    let loopback = Command::new("pactl")
        .args([
            "load-module",
            "module-loopback",
            "source=room.monitor",
            "sink=micmix",
            "latency_msec=30",
        ])
        .status()
        .expect("pactl");
    assert!(loopback.success(), "the room's loopback module loads");

    let service = service();
    let mut near = client(&service, "near", Mic::None);
    let mut far = client(&service, "far", Mic::Speech);
    let devices = near.app.world().resource::<Devices>().0.clone();
    let agent = near.agent;
    for kind in [DeviceKind::Microphone, DeviceKind::Speaker] {
        let device = Some(pulse::routed_device(&devices, kind));
        near.trigger(SelectDevice {
            agent,
            kind,
            device,
        });
    }
    set_processing(&mut near, VoiceProcessing::Off);
    connected_call(&mut near, &mut far);

    // Off: F hears its own speech back from N's room.
    run_for(&mut [&mut near, &mut far], Duration::from_secs(4));
    let echo_off = energy(&last(&far, 2.0));
    let source = speech_samples();
    let corr = looped_envelope_correlation(&last(&far, 2.0), &source);
    assert!(
        echo_off > 1e-4,
        "the room leaks F's speech back: {echo_off}"
    );
    assert!(corr > 0.6, "what leaks back is F's speech: {corr}");

    // On (as it is by default for hardware): after it converges, the echo is 20 dB down.
    set_processing(&mut near, VoiceProcessing::Auto);
    run_for(&mut [&mut near, &mut far], Duration::from_secs(7));
    let echo_on = energy(&last(&far, 2.0));
    let reduction = 10.0 * (echo_off / echo_on.max(1e-12)).log10();
    assert!(
        reduction >= 20.0,
        "echo {reduction:.1} dB down ({echo_off:.2e} off, {echo_on:.2e} on)"
    );

    // N speaks too (double talk): its voice still reaches F.
    let voice = wav_samples("echo_prompt.wav");
    let clip = looped_wav(&voice, 8, "near");
    let mut speaking = Command::new("paplay")
        .arg("--device=micmix")
        .arg(&clip)
        .spawn()
        .expect("paplay");
    run_for(&mut [&mut near, &mut far], Duration::from_secs(5));
    let _ = speaking.kill();
    let _ = speaking.wait();
    let _ = std::fs::remove_file(&clip);
    let heard = last(&far, 3.0);
    let e = energy(&heard);
    let corr = looped_envelope_correlation(&heard, &voice);
    assert!(e > 1e-4, "N's own voice reaches F: {e}");
    assert!(corr > 0.6, "what F hears is N's voice: {corr}");
}
