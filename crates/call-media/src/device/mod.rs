//! Audio devices: real ones through cpal, and synthetic ones (WAV-file and tone microphones, a
//! recording speaker) offered through the same [`DeviceManager`].
//!
//! A [`Microphone`] delivers 20 ms mono frames at 48 kHz on a channel. A [`Speaker`] pulls mono
//! 48 kHz audio from a [`PlayoutSource`] on its own clock: the device's clock drives playout.
//! Hardware and files at other rates are resampled to and from 48 kHz.
//! Dropping either stops it. Opening a device that fails returns a [`DeviceError`], never a panic.

mod camera;
mod capture;
mod hardware;
mod host;
mod host_camera;
mod open;
mod rendered;
mod resample;
mod screen;
mod synthetic;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use camera::{Camera, SourceEnd};
pub use hardware::POLL as HARDWARE_POLL;
pub use rendered::FramePusher;
pub use screen::{MAX_SHARE, SCREEN_FPS};
pub use synthetic::{CaptureClock, Recording};

/// The audio sample rate everywhere in the engine.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame at [`SAMPLE_RATE`]: a microphone frame, unless opened with
/// another size ([`DeviceManager::open_microphone_framed`]), and the most a speaker pulls at once.
pub const FRAME_SAMPLES: usize = 960;

/// One mono frame from a microphone (20 ms unless opened with another size).
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// The frame's samples in -1..1.
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
    /// Something to share: a whole screen or an application's window. Opened like a camera.
    Screen,
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
    /// Microphone, speaker, camera or screen source.
    pub kind: DeviceKind,
    /// True for the synthetic devices, false for hardware (cpal, nokhwa).
    pub is_synthetic: bool,
    /// For cameras: where it points.
    pub facing: Option<CameraFacing>,
    /// For a window: the application it belongs to (its class, as the window system names it).
    pub application: Option<String>,
    /// The one of its kind to use when nothing else is chosen: the system's default device,
    /// or, on a machine without hardware of this kind, the first synthetic one.
    pub is_default: bool,
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
    /// Fills `out` with the next samples to play. A hardware speaker calls this from its
    /// realtime callback, at most [`FRAME_SAMPLES`] at a time: it should neither allocate nor
    /// wait on a lock that anything slower holds.
    fn fill(&self, out: &mut [f32]);

    /// Fills `out` with interleaved stereo (left, right) samples: `out.len() / 2` frames. By
    /// default both channels play what [`PlayoutSource::fill`] gives; a mixer that places voices
    /// (positional audio) pans them.
    fn fill_stereo(&self, out: &mut [f32]) {
        let frames = out.len() / 2;
        self.fill(&mut out[..frames]);
        for i in (0..frames).rev() {
            out[2 * i + 1] = out[i];
            out[2 * i] = out[i];
        }
    }
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

    /// True once the device was stopped. A thread that polls this instead of waiting parks
    /// between polls: stopping also unparks it.
    fn stopped(&self) -> bool {
        matches!(
            self.0.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        )
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
        // Dropping the sender wakes the thread's wait with "disconnected"; unparking wakes a
        // thread that polls `stopped`.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
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
    RenderedScreen(FramePusher),
}

impl Synthetic {
    fn kind(&self) -> DeviceKind {
        match self {
            Self::RecordingSpeaker(_) => DeviceKind::Speaker,
            Self::PatternCamera(_) | Self::Y4mCamera(_) => DeviceKind::Camera,
            Self::RenderedScreen(_) => DeviceKind::Screen,
            _ => DeviceKind::Microphone,
        }
    }
}

struct Registry {
    /// Whether hardware is listed and opened, besides the synthetic devices.
    hardware: bool,
    /// The device of each kind the app prefers as the default, over the system's.
    preferred: Vec<DeviceId>,
    synthetic: Vec<(DeviceInfo, Synthetic)>,
    /// Synthetic devices ever added: ids are never reused.
    added: usize,
    /// Bumped by every synthetic add and remove.
    generation: u64,
    /// Displays whose screens and windows are listed besides the process's own (`DISPLAY`).
    displays: Vec<String>,
}

/// Lists and opens microphones, speakers and cameras, real and synthetic. Cheap to clone;
/// clones share the same synthetic devices.
#[derive(Clone)]
pub struct DeviceManager {
    registry: Arc<Mutex<Registry>>,
}

impl Default for DeviceManager {
    fn default() -> Self {
        Self::with_hardware(true)
    }
}

impl DeviceManager {
    /// A manager with no synthetic devices yet; hardware devices are found when listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A manager of synthetic devices only: no hardware is listed or opened (bots, load tools
    /// and tests that must not depend on the machine's devices).
    pub fn synthetic_only() -> Self {
        Self::with_hardware(false)
    }

    fn with_hardware(hardware: bool) -> Self {
        Self {
            registry: Arc::new(Mutex::new(Registry {
                hardware,
                preferred: Vec::new(),
                synthetic: Vec::new(),
                added: 0,
                generation: 0,
                displays: Vec::new(),
            })),
        }
    }

    /// Makes `id` the default of its kind, over the system's default (an app's saved choice).
    /// It counts while it is listed; a device that goes away leaves the system default.
    pub fn set_default(&self, id: &DeviceId) {
        let mut registry = self.registry();
        registry.preferred.retain(|p| p != id);
        registry.preferred.push(id.clone());
        registry.generation += 1;
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
            DeviceKind::Screen => "screen",
        };
        registry.added += 1;
        registry.generation += 1;
        let id = DeviceId(format!("synthetic:{prefix}:{}", registry.added));
        let info = DeviceInfo {
            id: id.clone(),
            name: name.to_owned(),
            kind,
            is_synthetic: true,
            facing: (kind == DeviceKind::Camera).then_some(CameraFacing::Virtual),
            application: None,
            is_default: false,
        };
        registry.synthetic.push((info, device));
        id
    }

    /// Removes a synthetic device, as if it were unplugged: it is no longer listed or opened.
    /// One already open keeps running until closed. False if no synthetic device has this id.
    pub fn remove(&self, id: &DeviceId) -> bool {
        let mut registry = self.registry();
        let before = registry.synthetic.len();
        registry.synthetic.retain(|(info, _)| &info.id != id);
        let removed = registry.synthetic.len() != before;
        if removed {
            registry.generation += 1;
        }
        removed
    }

    /// Changes whenever the device list may have changed: a synthetic device added or removed
    /// here, or hardware that came or went (noticed within [`HARDWARE_POLL`]).
    pub fn generation(&self) -> u64 {
        let (own, hardware) = {
            let registry = self.registry();
            (registry.generation, registry.hardware)
        };
        let screens: u64 = self.displays().iter().map(|d| screen::generation(d)).sum();
        match hardware {
            true => own + hardware::generation() + screens,
            false => own + screens,
        }
    }

    /// Lists the whole screen and the application windows of X display `display` (such as
    /// `:99`) as [`DeviceKind::Screen`] sources, besides those of the process's own display
    /// (`DISPLAY`, listed with the hardware). Windows opening and closing there are noticed.
    pub fn add_display(&self, display: &str) -> Result<(), DeviceError> {
        if let Some(reason) = screen::unreachable(display) {
            return Err(DeviceError::Open {
                id: DeviceId(display.to_owned()),
                reason,
            });
        }
        let mut registry = self.registry();
        if !registry.displays.iter().any(|d| d == display) {
            registry.displays.push(display.to_owned());
            registry.generation += 1;
        }
        Ok(())
    }

    /// The displays whose screen sources are listed: the process's own with the hardware, and
    /// those added. Read without holding the registry, since listing talks to the displays.
    fn displays(&self) -> Vec<String> {
        let registry = self.registry();
        let own = registry.hardware.then(screen::default_display).flatten();
        let mut displays = registry.displays.clone();
        displays.extend(own.filter(|d| !registry.displays.contains(d)));
        displays
    }

    /// Adds a microphone that plays a WAV file in a loop. Opening it checks that the file opens
    /// and its header parses, so a missing or malformed file is an open error; the samples are
    /// read on the microphone's own thread, and if that fails the stream ends.
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

    /// Adds a camera that plays a Y4M (YUV4MPEG2, 4:2:0) file in a loop at the file's frame rate,
    /// reading one frame at a time as it plays. Opening it checks that the file opens and its
    /// header parses, so a missing or bad file is an open error; a frame that cannot be read
    /// later ends the stream.
    pub fn add_y4m_camera(&self, name: &str, path: impl Into<PathBuf>) -> DeviceId {
        self.add(name, Synthetic::Y4mCamera(path.into()))
    }

    /// Adds a screen source whose pictures the app renders and pushes into the returned
    /// [`FramePusher`] (a view of a game's world: the native analogue of sharing a browser tab).
    /// It is listed with the screens and windows, and shared like them.
    pub fn add_rendered_screen(&self, name: &str) -> (DeviceId, FramePusher) {
        let pusher = FramePusher::default();
        (
            self.add(name, Synthetic::RenderedScreen(pusher.clone())),
            pusher,
        )
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

    /// Every device of `kind`: hardware first (as last listed, see [`HARDWARE_POLL`]), then
    /// the synthetic ones. At most one is marked the default.
    pub fn list(&self, kind: DeviceKind) -> Vec<DeviceInfo> {
        let screens = match kind {
            DeviceKind::Screen => self
                .displays()
                .iter()
                .flat_map(|d| screen::list(d))
                .collect(),
            _ => Vec::new(),
        };
        let registry = self.registry();
        let mut devices = match registry.hardware {
            true => hardware::list(kind),
            false => Vec::new(),
        };
        devices.extend(screens);
        devices.extend(
            registry
                .synthetic
                .iter()
                .filter(|(info, _)| info.kind == kind)
                .map(|(info, _)| info.clone()),
        );
        // The app's latest preference that is listed, else the system's, else the first.
        let preferred = registry
            .preferred
            .iter()
            .rev()
            .find_map(|p| devices.iter().position(|d| &d.id == p));
        let default = preferred
            .or_else(|| devices.iter().position(|d| d.is_default))
            .unwrap_or(0);
        for (i, device) in devices.iter_mut().enumerate() {
            device.is_default = i == default;
        }
        devices
    }

    /// The default device of `kind`, if there is any device of that kind.
    pub fn default_device(&self, kind: DeviceKind) -> Option<DeviceInfo> {
        self.list(kind).into_iter().find(|d| d.is_default)
    }

    /// Whether `id` names one of this manager's synthetic devices.
    pub fn is_synthetic(&self, id: &DeviceId) -> bool {
        self.registry()
            .synthetic
            .iter()
            .any(|(info, _)| &info.id == id)
    }

    /// Refuses hardware `id` when this manager lists no hardware.
    fn hardware(&self, id: &DeviceId) -> Result<(), DeviceError> {
        match self.registry().hardware {
            true => Ok(()),
            false => Err(DeviceError::NotFound(id.clone())),
        }
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
}

#[cfg(test)]
mod tests;
