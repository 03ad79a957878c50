//! Hardware audio through cpal, on a real (virtual) sound server: a private PulseAudio daemon
//! with a null sink. ALSA's default device routes to it, so cpal's speaker plays into the sink and
//! cpal's microphone records the sink's monitor: a tone played out comes back in.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use call_media::device::{DeviceKind, DeviceManager, FRAME_SAMPLES, PlayoutSource};

const SINK: &str = "bevy_calling_test";

/// A PulseAudio daemon of this test's own, stopped when dropped.
struct Pulse {
    daemon: Child,
    _runtime_dir: std::path::PathBuf,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn start_pulse() -> Pulse {
    let runtime_dir =
        std::env::temp_dir().join(format!("bevy_calling_pulse_{}", std::process::id()));
    std::fs::create_dir_all(&runtime_dir).unwrap();
    // SAFETY: this test binary has one test and sets these before any thread that reads the
    // environment (cpal, PulseAudio's client library) exists.
    unsafe {
        std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
        std::env::set_var("PULSE_SINK", SINK);
        std::env::set_var("PULSE_SOURCE", format!("{SINK}.monitor"));
    }
    let daemon = Command::new("pulseaudio")
        .args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--log-target=stderr",
        ])
        .args(["-L", "module-native-protocol-unix"])
        .args([
            "-L",
            &format!("module-null-sink sink_name={SINK} rate=48000"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pulseaudio is installed (./dev.sh test installs it)");
    let start = Instant::now();
    while !Command::new("pactl")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "pulseaudio did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Pulse {
        daemon,
        _runtime_dir: runtime_dir,
    }
}

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
    let _pulse = start_pulse();
    let devices = DeviceManager::new();
    let pick = |kind| {
        let listed = devices.list(kind);
        listed
            .iter()
            .find(|d| !d.is_synthetic && d.id.0.contains("default"))
            .or_else(|| {
                listed
                    .iter()
                    .find(|d| !d.is_synthetic && d.id.0.contains("pulse"))
            })
            .unwrap_or_else(|| panic!("no cpal {kind:?} routed to PulseAudio in {listed:?}"))
            .id
            .clone()
    };
    let speaker_id = pick(DeviceKind::Speaker);
    let mic_id = pick(DeviceKind::Microphone);

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
