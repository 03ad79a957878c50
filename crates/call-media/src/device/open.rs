//! Opening devices: synthetic ones at once, hardware on its own thread, and async variants that
//! run on tokio's blocking pool.

use std::sync::Arc;

use super::synthetic::CaptureClock;
use super::{
    Camera, DeviceError, DeviceId, DeviceKind, DeviceManager, FRAME_SAMPLES, MIC_QUEUE_FRAMES,
    Microphone, PlayoutSource, Speaker, Synthetic, camera, host, host_camera, rendered, screen,
    synthetic,
};

impl DeviceManager {
    /// Opens a microphone that delivers 20 ms frames and starts capturing. Synthetic
    /// microphones open at once; a hardware one blocks while the device is probed and started,
    /// so async code should use [`DeviceManager::open_microphone_async`].
    pub fn open_microphone(&self, id: &DeviceId) -> Result<Microphone, DeviceError> {
        self.open_microphone_framed(id, FRAME_SAMPLES)
    }

    /// Opens a microphone that delivers frames of `frame` samples (480 for 10 ms, 960 for
    /// 20 ms; at least 48).
    pub fn open_microphone_framed(
        &self,
        id: &DeviceId,
        frame: usize,
    ) -> Result<Microphone, DeviceError> {
        let frame = frame.max(48);
        let (tx, frames) = tokio::sync::mpsc::channel(MIC_QUEUE_FRAMES);
        let open_error = |reason| DeviceError::Open {
            id: id.clone(),
            reason,
        };
        let running = match self.synthetic(id, DeviceKind::Microphone)? {
            Some(Synthetic::WavMicrophone(path)) => {
                let wav = synthetic::open_wav(&path).map_err(open_error)?;
                synthetic::spawn_microphone(
                    move || wav.read().map(Arc::from),
                    true,
                    CaptureClock::default(),
                    tx,
                    frame,
                )
                .map_err(open_error)?
            }
            Some(Synthetic::SamplesMicrophone(samples, clock)) => {
                synthetic::spawn_microphone(move || Ok(samples), false, clock, tx, frame)
                    .map_err(open_error)?
            }
            Some(Synthetic::ToneMicrophone { hz, amplitude }) => synthetic::spawn_microphone(
                move || Ok(synthetic::tone(hz, amplitude)),
                true,
                CaptureClock::default(),
                tx,
                frame,
            )
            .map_err(open_error)?,
            // synthetic() returned a microphone: it checked the kind.
            Some(_) => unreachable!("synthetic() checked the kind"),
            None => {
                self.hardware(id)?;
                host::open_microphone(id, tx, frame)?
            }
        };
        Ok(Microphone {
            frames,
            _running: running,
        })
    }

    /// Opens a camera, or a screen source ([`DeviceKind::Screen`]), and starts capturing.
    /// Synthetic cameras open at once; a hardware one blocks while the device is probed and
    /// started, so async code should use [`DeviceManager::open_camera_async`].
    pub fn open_camera(&self, id: &DeviceId) -> Result<Camera, DeviceError> {
        if screen::is_screen(id) {
            return match self.list(DeviceKind::Screen).iter().any(|s| &s.id == id) {
                true => screen::open(id),
                false => Err(DeviceError::NotFound(id.clone())),
            };
        }
        let open_error = |reason| DeviceError::Open {
            id: id.clone(),
            reason,
        };
        let synthetic = self
            .synthetic(id, DeviceKind::Screen)
            .or_else(|_| self.synthetic(id, DeviceKind::Camera))?;
        match synthetic {
            Some(Synthetic::PatternCamera(settings)) => {
                camera::open_pattern(id, settings).map_err(open_error)
            }
            Some(Synthetic::Y4mCamera(path)) => camera::open_y4m(id, &path).map_err(open_error),
            Some(Synthetic::RenderedScreen(pusher)) => {
                rendered::open(id, pusher).map_err(open_error)
            }
            // synthetic() returned a camera: it checked the kind.
            Some(_) => unreachable!("synthetic() checked the kind"),
            None => {
                self.hardware(id)?;
                host_camera::open(id)
            }
        }
    }

    /// Opens a speaker that plays what `source` gives it. Synthetic speakers open at once; a
    /// hardware one blocks while the device is probed and started, so async code should use
    /// [`DeviceManager::open_speaker_async`].
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
            None => {
                self.hardware(id)?;
                host::open_speaker(id, source)?
            }
        };
        Ok(Speaker { _running: running })
    }
}

/// Runs a device open on tokio's blocking pool, so that probing hardware (which can take a good
/// part of a second) never stalls an async worker. Outside a tokio runtime it runs in place.
async fn open_blocking<T: Send + 'static>(
    id: &DeviceId,
    open: impl FnOnce() -> Result<T, DeviceError> + Send + 'static,
) -> Result<T, DeviceError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return open();
    }
    tokio::task::spawn_blocking(open).await.unwrap_or_else(|e| {
        Err(DeviceError::Open {
            id: id.clone(),
            reason: format!("opening did not finish: {e}"),
        })
    })
}

impl DeviceManager {
    /// [`DeviceManager::open_microphone_framed`] for async code: it runs on tokio's blocking
    /// pool.
    pub async fn open_microphone_async(
        &self,
        id: &DeviceId,
        frame: usize,
    ) -> Result<Microphone, DeviceError> {
        let (devices, owned) = (self.clone(), id.clone());
        open_blocking(id, move || devices.open_microphone_framed(&owned, frame)).await
    }

    /// [`DeviceManager::open_camera`] for async code: it runs on tokio's blocking pool.
    pub async fn open_camera_async(&self, id: &DeviceId) -> Result<Camera, DeviceError> {
        let (devices, owned) = (self.clone(), id.clone());
        open_blocking(id, move || devices.open_camera(&owned)).await
    }

    /// [`DeviceManager::open_speaker`] for async code: it runs on tokio's blocking pool.
    pub async fn open_speaker_async(
        &self,
        id: &DeviceId,
        source: Arc<dyn PlayoutSource>,
    ) -> Result<Speaker, DeviceError> {
        let (devices, owned) = (self.clone(), id.clone());
        open_blocking(id, move || devices.open_speaker(&owned, source)).await
    }
}
