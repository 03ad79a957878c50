//! Audio devices: real ones through cpal, and synthetic ones (WAV-file and tone microphones, a
//! recording speaker) offered through the same [`DeviceManager`].
//!
//! A [`Microphone`] delivers 20 ms mono frames at 48 kHz on a channel. A [`Speaker`] pulls mono
//! 48 kHz audio from a [`PlayoutSource`] on its own clock: the device's clock drives playout.
//! Dropping either stops it. Opening a device that fails returns a [`DeviceError`], never a panic.

mod camera;
mod host;
mod host_camera;
mod synthetic;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use camera::Camera;
pub use synthetic::{CaptureClock, Recording};

/// The audio sample rate everywhere in the engine.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 960;

/// One 20 ms mono frame from a microphone.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// [`FRAME_SAMPLES`] samples in -1..1.
    pub samples: Vec<f32>,
    /// When the first sample was captured.
    pub captured_at: Instant,
}

/// A stable id of a device, e.g. `synthetic:mic:1` or `cpal:alsa:default`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub String);

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a device does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Captures audio.
    Microphone,
    /// Plays audio.
    Speaker,
    /// Captures video.
    Camera,
}

/// Where a camera points, as far as the device says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CameraFacing {
    /// Towards the user.
    Front,
    /// Away from the user.
    Back,
    /// A separate device (USB and the like); direction unknown.
    External,
    /// A synthetic camera: a test pattern or a file.
    Virtual,
}

/// A device as the manager lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its id, for opening it.
    pub id: DeviceId,
    /// A name for people.
    pub name: String,
    /// Microphone or speaker.
    pub kind: DeviceKind,
    /// True for the synthetic devices, false for hardware (cpal, nokhwa).
    pub is_synthetic: bool,
    /// For cameras: where it points.
    pub facing: Option<CameraFacing>,
}

/// Why a device could not be listed or opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No device has this id (it may have been unplugged).
    #[error("no device `{0}`")]
    NotFound(DeviceId),
    /// The id names a device of the other kind.
    #[error("device `{id}` is not a {wanted:?}")]
    WrongKind {
        /// The device.
        id: DeviceId,
        /// The kind the caller asked for.
        wanted: DeviceKind,
    },
    /// The device exists but could not be opened or started.
    #[error("could not open `{id}`: {reason}")]
    Open {
        /// The device.
        id: DeviceId,
        /// What the backend said.
        reason: String,
    },
}

/// What a speaker plays: filled on the speaker's own clock, mono at [`SAMPLE_RATE`].
pub trait PlayoutSource: Send + Sync + 'static {
    /// Fills `out` with the next samples to play.
    fn fill(&self, out: &mut [f32]);
}

/// An open microphone. Frames arrive on [`Microphone::frames`]; dropping it stops capture.
pub struct Microphone {
    /// 20 ms frames as they are captured. A frame the engine is too slow to take is dropped.
    pub frames: tokio::sync::mpsc::Receiver<AudioFrame>,
    _running: Running,
}

/// An open speaker, pulling from its [`PlayoutSource`]. Dropping it stops playback.
pub struct Speaker {
    _running: Running,
}

/// Keeps a device's thread running; stops and joins it when dropped. The thread waits on a
/// [`StopSignal`], which wakes it at once, so dropping a device never waits out a frame.
struct Running {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The device thread's side of [`Running`].
struct StopSignal(std::sync::mpsc::Receiver<()>);

impl StopSignal {
    /// Sleeps until `deadline`; false if the device was stopped meanwhile.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let wait = deadline.saturating_duration_since(Instant::now());
        matches!(
            self.0.recv_timeout(wait),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    }

    /// Blocks until the device is stopped.
    fn wait(&self) {
        let _ = self.0.recv();
    }
}

impl Running {
    fn spawn(name: &str, body: impl FnOnce(StopSignal) + Send + 'static) -> Result<Self, String> {
        let (stop, signal) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(StopSignal(signal)))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread's wait with "disconnected".
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many frames a microphone channel holds before it drops the oldest-to-arrive.
const MIC_QUEUE_FRAMES: usize = 8;

#[derive(Clone)]
enum Synthetic {
    WavMicrophone(PathBuf),
    SamplesMicrophone(Arc<[f32]>, CaptureClock),
    ToneMicrophone { hz: f32, amplitude: f32 },
    RecordingSpeaker(Recording),
    PatternCamera(camera::PatternSettings),
    Y4mCamera(PathBuf),
}

impl Synthetic {
    fn kind(&self) -> DeviceKind {
        match self {
            Self::RecordingSpeaker(_) => DeviceKind::Speaker,
            Self::PatternCamera(_) | Self::Y4mCamera(_) => DeviceKind::Camera,
            _ => DeviceKind::Microphone,
        }
    }
}

#[derive(Default)]
struct Registry {
    synthetic: Vec<(DeviceInfo, Synthetic)>,
}

/// Lists and opens microphones and speakers, real and synthetic. Cheap to clone; clones share
/// the same synthetic devices.
#[derive(Clone, Default)]
pub struct DeviceManager {
    registry: Arc<Mutex<Registry>>,
}

impl DeviceManager {
    /// A manager with no synthetic devices yet; hardware devices are found when listing.
    pub fn new() -> Self {
        Self::default()
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, name: &str, device: Synthetic) -> DeviceId {
        let mut registry = self.registry();
        let kind = device.kind();
        let prefix = match kind {
            DeviceKind::Microphone => "mic",
            DeviceKind::Speaker => "speaker",
            DeviceKind::Camera => "camera",
        };
        let id = DeviceId(format!(
            "synthetic:{prefix}:{}",
            registry.synthetic.len() + 1
        ));
        let info = DeviceInfo {
            id: id.clone(),
            name: name.to_owned(),
            kind,
            is_synthetic: true,
            facing: (kind == DeviceKind::Camera).then_some(CameraFacing::Virtual),
        };
        registry.synthetic.push((info, device));
        id
    }

    /// Adds a microphone that plays a WAV file in a loop. The file is read when the device opens,
    /// so a missing or unreadable file is an open error.
    pub fn add_wav_microphone(&self, name: &str, path: impl Into<PathBuf>) -> DeviceId {
        self.add(name, Synthetic::WavMicrophone(path.into()))
    }

    /// Adds a microphone that plays these 48 kHz samples once, then silence. The clock tells
    /// when sample 0 was captured, for latency measurements.
    pub fn add_samples_microphone(
        &self,
        name: &str,
        samples: Arc<[f32]>,
    ) -> (DeviceId, CaptureClock) {
        let clock = CaptureClock::default();
        (
            self.add(name, Synthetic::SamplesMicrophone(samples, clock.clone())),
            clock,
        )
    }

    /// Adds a microphone that plays a sine tone.
    pub fn add_tone_microphone(&self, name: &str, hz: f32, amplitude: f32) -> DeviceId {
        self.add(name, Synthetic::ToneMicrophone { hz, amplitude })
    }

    /// Adds a camera that draws the moving test pattern at `width`x`height` and `fps`, with its
    /// frame counter and capture time stamped into the pixels ([`crate::video::pattern`]). Each
    /// pattern camera of a manager has its own source id, so a receiver can tell them apart.
    pub fn add_pattern_camera(&self, name: &str, width: u32, height: u32, fps: u32) -> DeviceId {
        let source = 1 + self
            .registry()
            .synthetic
            .iter()
            .filter(|(_, d)| matches!(d, Synthetic::PatternCamera(_)))
            .count() as u8;
        self.add(
            name,
            Synthetic::PatternCamera(camera::PatternSettings {
                source,
                width: width & !1,
                height: height & !1,
                fps: fps.max(1),
            }),
        )
    }

    /// Adds a camera that plays a Y4M (YUV4MPEG2, 4:2:0) file in a loop at the file's frame rate.
    /// The file is read when the camera opens, so a missing or bad file is an open error.
    pub fn add_y4m_camera(&self, name: &str, path: impl Into<PathBuf>) -> DeviceId {
        self.add(name, Synthetic::Y4mCamera(path.into()))
    }

    /// Adds a speaker that records what it plays to memory, and also to a WAV file at `wav`
    /// (written when the speaker closes) if given.
    pub fn add_recording_speaker(&self, name: &str, wav: Option<PathBuf>) -> (DeviceId, Recording) {
        let recording = Recording::new(wav);
        (
            self.add(name, Synthetic::RecordingSpeaker(recording.clone())),
            recording,
        )
    }

    /// Every device of `kind`: hardware first (when the host has an audio system), then the
    /// synthetic ones.
    pub fn list(&self, kind: DeviceKind) -> Vec<DeviceInfo> {
        let mut devices = match kind {
            DeviceKind::Camera => host_camera::list(),
            _ => host::list(kind),
        };
        devices.extend(
            self.registry()
                .synthetic
                .iter()
                .filter(|(info, _)| info.kind == kind)
                .map(|(info, _)| info.clone()),
        );
        devices
    }

    fn synthetic(
        &self,
        id: &DeviceId,
        wanted: DeviceKind,
    ) -> Result<Option<Synthetic>, DeviceError> {
        match self
            .registry()
            .synthetic
            .iter()
            .find(|(info, _)| &info.id == id)
        {
            Some((info, _)) if info.kind != wanted => Err(DeviceError::WrongKind {
                id: id.clone(),
                wanted,
            }),
            Some((_, device)) => Ok(Some(device.clone())),
            None => Ok(None),
        }
    }

    /// Opens a microphone and starts capturing.
    pub fn open_microphone(&self, id: &DeviceId) -> Result<Microphone, DeviceError> {
        let (tx, frames) = tokio::sync::mpsc::channel(MIC_QUEUE_FRAMES);
        let open_error = |reason| DeviceError::Open {
            id: id.clone(),
            reason,
        };
        let running = match self.synthetic(id, DeviceKind::Microphone)? {
            Some(Synthetic::WavMicrophone(path)) => {
                let samples = synthetic::read_wav(&path).map_err(open_error)?;
                synthetic::spawn_microphone(samples.into(), true, CaptureClock::default(), tx)
                    .map_err(open_error)?
            }
            Some(Synthetic::SamplesMicrophone(samples, clock)) => {
                synthetic::spawn_microphone(samples, false, clock, tx).map_err(open_error)?
            }
            Some(Synthetic::ToneMicrophone { hz, amplitude }) => synthetic::spawn_microphone(
                synthetic::tone(hz, amplitude),
                true,
                CaptureClock::default(),
                tx,
            )
            .map_err(open_error)?,
            // synthetic() returned a microphone: it checked the kind.
            Some(_) => unreachable!("synthetic() checked the kind"),
            None => host::open_microphone(id, tx)?,
        };
        Ok(Microphone {
            frames,
            _running: running,
        })
    }

    /// Opens a camera and starts capturing.
    pub fn open_camera(&self, id: &DeviceId) -> Result<Camera, DeviceError> {
        let open_error = |reason| DeviceError::Open {
            id: id.clone(),
            reason,
        };
        match self.synthetic(id, DeviceKind::Camera)? {
            Some(Synthetic::PatternCamera(settings)) => {
                camera::open_pattern(id, settings).map_err(open_error)
            }
            Some(Synthetic::Y4mCamera(path)) => camera::open_y4m(id, &path).map_err(open_error),
            // synthetic() returned a camera: it checked the kind.
            Some(_) => unreachable!("synthetic() checked the kind"),
            None => host_camera::open(id),
        }
    }

    /// Opens a speaker that plays what `source` gives it.
    pub fn open_speaker(
        &self,
        id: &DeviceId,
        source: Arc<dyn PlayoutSource>,
    ) -> Result<Speaker, DeviceError> {
        let running = match self.synthetic(id, DeviceKind::Speaker)? {
            Some(Synthetic::RecordingSpeaker(recording)) => {
                synthetic::spawn_speaker(recording, source).map_err(|reason| DeviceError::Open {
                    id: id.clone(),
                    reason,
                })?
            }
            // synthetic() returned a speaker: it checked the kind.
            Some(_) => unreachable!("synthetic() checked the kind"),
            None => host::open_speaker(id, source)?,
        };
        Ok(Speaker { _running: running })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silence;
    impl PlayoutSource for Silence {
        fn fill(&self, out: &mut [f32]) {
            out.fill(0.0);
        }
    }

    #[test]
    fn synthetic_devices_are_listed_with_their_kind() {
        let devices = DeviceManager::new();
        let mic = devices.add_tone_microphone("tone", 440.0, 0.5);
        let (speaker, _) = devices.add_recording_speaker("recorder", None);
        let mics = devices.list(DeviceKind::Microphone);
        assert!(
            mics.iter()
                .any(|d| d.id == mic && d.is_synthetic && d.name == "tone")
        );
        assert!(!mics.iter().any(|d| d.id == speaker));
        assert!(
            devices
                .list(DeviceKind::Speaker)
                .iter()
                .any(|d| d.id == speaker)
        );
    }

    #[test]
    fn failures_to_open_are_typed_errors() {
        let devices = DeviceManager::new();
        let missing = devices.add_wav_microphone("missing", "/nonexistent/speech.wav");
        assert!(matches!(
            devices.open_microphone(&missing),
            Err(DeviceError::Open { .. })
        ));
        let unknown = DeviceId("synthetic:mic:99".into());
        assert_eq!(
            devices.open_microphone(&unknown).err(),
            Some(DeviceError::NotFound(unknown))
        );
        let gone = DeviceId("cpal:no-such-card".into());
        assert!(matches!(
            devices.open_speaker(&gone, Arc::new(Silence)),
            Err(DeviceError::NotFound(_))
        ));
        let mic = devices.add_tone_microphone("tone", 440.0, 0.5);
        assert!(matches!(
            devices.open_speaker(&mic, Arc::new(Silence)),
            Err(DeviceError::WrongKind { .. })
        ));
    }

    #[test]
    fn tone_microphone_delivers_paced_frames_and_speaker_records() {
        let devices = DeviceManager::new();
        let mic = devices.add_tone_microphone("tone", 1000.0, 0.5);
        let mut open = devices.open_microphone(&mic).unwrap();
        let start = Instant::now();
        let mut frames = Vec::new();
        while frames.len() < 10 {
            if let Some(f) = open.frames.blocking_recv() {
                frames.push(f);
            }
        }
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(180),
            "paced in real time"
        );
        assert!(frames.iter().all(|f| f.samples.len() == FRAME_SAMPLES));
        let rms =
            (frames[5].samples.iter().map(|s| s * s).sum::<f32>() / FRAME_SAMPLES as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "tone RMS {rms}");

        let (speaker, recording) = devices.add_recording_speaker("recorder", None);
        let open = devices.open_speaker(&speaker, Arc::new(Silence)).unwrap();
        // Wait for the speaker thread's pulls themselves: a fixed sleep loses to a busy machine.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while recording.len() < 4 * 480 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(open);
        assert!(recording.len() >= 4 * 480, "recorded {}", recording.len());
        assert!(recording.started_at().is_some());
    }

    #[test]
    fn synthetic_cameras_are_listed_and_a_y4m_file_plays() {
        let dir = std::env::temp_dir().join(format!("bevy_calling_y4m_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("two_frames.y4m");
        {
            let file = std::fs::File::create(&path).unwrap();
            let mut encoder = y4m::encode(64, 36, y4m::Ratio::new(30, 1))
                .with_colorspace(y4m::Colorspace::C420jpeg)
                .write_header(file)
                .unwrap();
            for luma in [40u8, 200] {
                let (y, uv) = (vec![luma; 64 * 36], vec![128u8; 32 * 18]);
                encoder
                    .write_frame(&y4m::Frame::new([&y, &uv, &uv], None))
                    .unwrap();
            }
        }
        let devices = DeviceManager::new();
        let file_camera = devices.add_y4m_camera("file", &path);
        let pattern = devices.add_pattern_camera("pattern", 320, 180, 30);
        let cameras = devices.list(DeviceKind::Camera);
        for id in [&file_camera, &pattern] {
            let info = cameras.iter().find(|d| &d.id == id).expect("listed");
            assert_eq!(info.facing, Some(CameraFacing::Virtual));
        }
        let open = devices.open_camera(&file_camera).unwrap();
        let lumas: Vec<u8> = (0..3)
            .map(|_| open.frames.recv().unwrap())
            .map(|f| {
                assert_eq!((f.width, f.height), (64, 36));
                f.y[0]
            })
            .collect();
        // The first two fit the camera's queue; a slow reader may see the camera drop later
        // ones, so the third is whichever frame of the file came next when there was room.
        // A third frame from a two-frame file is the loop.
        assert_eq!(lumas[..2], [40, 200], "plays the file in order");
        assert!([40, 200].contains(&lumas[2]), "plays the file in a loop");
        let missing = devices.add_y4m_camera("missing", dir.join("none.y4m"));
        assert!(matches!(
            devices.open_camera(&missing),
            Err(DeviceError::Open { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
