//! Hardware audio through cpal, on a real (virtual) sound server: a private PulseAudio daemon
//! with a null sink. ALSA's default device routes to it, so cpal's speaker plays into the sink and
//! cpal's microphone records the sink's monitor: a tone played out comes back in.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use call_media::device::{DeviceKind, DeviceManager, FRAME_SAMPLES, PlayoutSource};

const SINK: &str = "bevy_calling_test";

/// A 1 kHz tone at 0.5 amplitude.
struct Tone(std::sync::Mutex<u64>);

impl PlayoutSource for Tone {
    fn fill(&self, out: &mut [f32]) {
        let mut n = self.0.lock().unwrap();
        for s in out {
            *s = 0.5 * (std::f32::consts::TAU * 1000.0 * *n as f32 / 48_000.0).sin();
            *n += 1;
        }
    }
}

#[test]
fn cpal_speaker_output_comes_back_through_the_cpal_microphone() {
    let monitor = format!("{SINK}.monitor");
    let _pulse = common::pulse::start(&[SINK], SINK, &monitor);
    let devices = DeviceManager::new();
    let speaker_id = common::pulse::routed_device(&devices, DeviceKind::Speaker);
    let mic_id = common::pulse::routed_device(&devices, DeviceKind::Microphone);

    let _speaker = devices
        .open_speaker(&speaker_id, Arc::new(Tone(Default::default())))
        .expect("the cpal speaker opens");
    let mut mic = devices
        .open_microphone(&mic_id)
        .expect("the cpal microphone opens");
    let mut captured = Vec::new();
    let start = Instant::now();
    while captured.len() < 48_000 && start.elapsed() < Duration::from_secs(10) {
        if let Some(frame) = mic.frames.blocking_recv() {
            assert_eq!(frame.samples.len(), FRAME_SAMPLES);
            captured.extend(frame.samples);
        }
    }
    let tail = &captured[captured.len() / 2..];
    let rms = (tail.iter().map(|s| s * s).sum::<f32>() / tail.len() as f32).sqrt();
    let crossings = tail
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let hz = crossings as f32 / 2.0 / (tail.len() as f32 / 48_000.0);
    assert!(rms > 0.1, "the tone's RMS through PulseAudio: {rms}");
    assert!(
        (hz - 1000.0).abs() < 50.0,
        "the tone's frequency through PulseAudio: {hz} Hz"
    );
}
