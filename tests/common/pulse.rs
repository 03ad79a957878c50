//! A private PulseAudio daemon with null sinks: a real sound server for the cpal/ALSA path on a
//! machine without a sound card. ALSA's default device routes to it (the `pulse` plugin).

use std::process::{Child, Command};

use bevy_calling::{DeviceId, DeviceKind, DeviceManager};
use std::time::{Duration, Instant};

/// A PulseAudio daemon of this test's own, stopped when dropped.
pub struct Pulse {
    daemon: Child,
    runtime_dir: std::path::PathBuf,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // A killed daemon leaves its pid file behind (see `start`).
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// Starts a daemon with a null sink per name in `sinks`; ALSA's default plays into
/// `default_sink` and records from `default_source` (a sink's monitor is `<sink>.monitor`).
///
/// It sets the environment that PulseAudio's clients read, so call it first in a test binary
/// with one test, before any thread that reads the environment exists.
pub fn start(sinks: &[&str], default_sink: &str, default_source: &str) -> Pulse {
    let runtime_dir =
        std::env::temp_dir().join(format!("bevy_calling_pulse_{}", std::process::id()));
    // Fresh each time: a directory left by an earlier process with this pid holds a daemon's pid
    // file, and a live process that now has that pid makes the new daemon refuse to start.
    let _ = std::fs::remove_dir_all(&runtime_dir);
    std::fs::create_dir_all(&runtime_dir).unwrap();
    // SAFETY: the caller runs this before any other thread exists (see above).
    unsafe {
        std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
        std::env::set_var("PULSE_SINK", default_sink);
        std::env::set_var("PULSE_SOURCE", default_source);
    }
    let mut command = Command::new("pulseaudio");
    command
        .args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--log-target=stderr",
        ])
        .args(["-L", "module-native-protocol-unix"]);
    for sink in sinks {
        command.args([
            "-L",
            &format!("module-null-sink sink_name={sink} rate=48000"),
        ]);
    }
    let daemon = command
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
        runtime_dir,
    }
}

/// The cpal device of `kind` that ALSA routes to the sound server: `default`, else `pulse`.
pub fn routed_device(devices: &DeviceManager, kind: DeviceKind) -> DeviceId {
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
}
