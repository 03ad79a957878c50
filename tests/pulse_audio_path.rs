//! The real audio path end to end: speech played into a PulseAudio virtual microphone is
//! captured by cpal/ALSA at A, sent through a call, and played by cpal/ALSA at B into a
//! PulseAudio virtual speaker, where a recorder outside the app hears it.
//!
//! Sink `feed`: the test plays speech into it; its monitor is A's microphone. Sink `out`: B's
//! speaker; the test records its monitor with `parec`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use bevy_calling::prelude::*;
use common::*;

#[test]
fn speech_into_a_pulseaudio_microphone_comes_out_of_the_far_sides_pulseaudio_speaker() {
    let _pulse = pulse::start(&["feed", "out"], "out", "feed.monitor");
    // Ten seconds of the speech clip, played into the microphone's sink as the call runs.
    let speech = speech_samples();
    let clip = looped_wav(&speech, 10, "feed");

    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let devices = a.app.world().resource::<Devices>().0.clone();
    let (mic, speaker) = (
        pulse::routed_device(&devices, DeviceKind::Microphone),
        pulse::routed_device(&devices, DeviceKind::Speaker),
    );
    for (client, kind, device) in [
        (&mut a, DeviceKind::Microphone, mic),
        (&mut b, DeviceKind::Speaker, speaker),
    ] {
        let agent = client.agent;
        client.trigger(SelectDevice {
            agent,
            kind,
            device: Some(device),
        });
    }
    let mut feed = Command::new("paplay")
        .args(["--device=feed"])
        .arg(&clip)
        .spawn()
        .expect("paplay");
    let mut recorder = Command::new("parec")
        .args([
            "--device=out.monitor",
            "--rate=48000",
            "--channels=1",
            "--format=float32le",
            "--raw",
            "--latency-msec=20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("parec");
    // Drained as it records: a full pipe would stall parec.
    let mut output = recorder.stdout.take().expect("parec's output");
    let drained = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = output.read_to_end(&mut bytes);
        bytes
    });
    connected_call(&mut a, &mut b);
    run_for(&mut [&mut a, &mut b], Duration::from_secs(6));
    // SIGINT lets parec write out what it holds.
    let _ = Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status();
    let _ = feed.kill();
    let _ = feed.wait();
    let _ = recorder.wait();
    let bytes = drained.join().expect("the drain thread");
    let _ = std::fs::remove_file(&clip);
    let recorded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // A null sink's monitor runs only while something plays into the sink: from B's speaker
    // opening. The last three seconds: the call was up and playing by then.
    assert!(
        recorded.len() > 3 * 48_000,
        "parec recorded {} samples",
        recorded.len()
    );
    let tail = &recorded[recorded.len() - 3 * 48_000..];
    let e = energy(tail);
    let corr = looped_envelope_correlation(tail, &speech);
    assert!(
        e > 0.001,
        "B's PulseAudio speaker plays A's speech: energy {e}"
    );
    assert!(
        corr > 0.7,
        "what B's speaker plays correlates {corr} with the speech"
    );
}
