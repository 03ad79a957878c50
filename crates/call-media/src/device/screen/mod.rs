//! Screens and application windows as video sources, listed as [`DeviceKind::Screen`] devices
//! with each window's title and application, kept current as windows open and close, and
//! captured at [`SCREEN_FPS`] up to [`MAX_SHARE`].
//!
//! Two platforms: X11 through x11rb ([`x11`], Linux and the BSDs), and the desktops of Windows
//! and macOS through xcap ([`desktop`]). Each names its sources with its own id prefix and
//! calls the place it lists a *display* (an X display such as `:99`; the one desktop
//! elsewhere). Both capture through [`paced`], on a thread of the source's own.
//!
//! [`DeviceKind::Screen`]: super::DeviceKind::Screen

#[cfg(any(windows, target_os = "macos"))]
mod desktop;
#[cfg(all(unix, not(target_os = "macos")))]
mod x11;
#[cfg(all(unix, not(target_os = "macos")))]
mod x11_scale;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(any(windows, target_os = "macos"))]
pub(super) use desktop::{default_display, generation, is_screen, list, open, unreachable};
#[cfg(all(unix, not(target_os = "macos")))]
pub(super) use x11::{default_display, generation, is_screen, list, open, unreachable};

use super::camera::{CAMERA_QUEUE_FRAMES, Camera, SourceEnd};
use super::{DeviceError, DeviceId, DeviceInfo, Running};
use crate::video::VideoFrame;

/// Frames per second a screen source captures: screen content is sharp text and little motion.
pub const SCREEN_FPS: u32 = 15;

/// The largest picture a screen source sends; bigger screens and windows are scaled to fit.
pub const MAX_SHARE: (u16, u16) = (1920, 1080);

/// The size `size` is sent at: itself when it fits [`MAX_SHARE`], else scaled down to fit,
/// keeping its aspect, even in both directions.
fn fitted(size: (u16, u16)) -> (u16, u16) {
    let (w, h) = (f64::from(size.0), f64::from(size.1));
    let scale = (f64::from(MAX_SHARE.0) / w)
        .min(f64::from(MAX_SHARE.1) / h)
        .min(1.0);
    let even = |v: f64| ((v * scale) as u16 & !1).max(2);
    match scale < 1.0 {
        true => (even(w), even(h)),
        false => size,
    }
}

/// One display's sources, kept current by its platform's watch thread.
struct Watch {
    sources: Mutex<Arc<[DeviceInfo]>>,
    generation: AtomicU64,
    /// Why the display cannot be listed, if it cannot, and when to try it again.
    failed: Mutex<Option<(Instant, String)>>,
}

impl Watch {
    /// A watch listing `sources`, counting its generations on from `generation`.
    fn listing(sources: Vec<DeviceInfo>, generation: u64) -> Self {
        Self {
            sources: Mutex::new(sources.into()),
            generation: AtomicU64::new(generation),
            failed: Mutex::new(None),
        }
    }

    fn failure(&self) -> Option<(Instant, String)> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The display can no longer be listed: it lists nothing, and is tried again at `retry_at`.
    fn fail(&self, why: String, retry_at: Instant) {
        self.store(Vec::new());
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some((retry_at, why));
    }

    fn sources(&self) -> Vec<DeviceInfo> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_vec()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The display was listed: `listed` is what it has now.
    fn store(&self, listed: Vec<DeviceInfo>) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if **sources != *listed {
            *sources = listed.into();
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// A source being captured: a screen or a window on one platform.
trait Grab: Send + 'static {
    /// The next picture, as I420 no larger than [`MAX_SHARE`], or why the source ended.
    fn next(&mut self) -> Result<VideoFrame, SourceEnd>;
}

/// Captures `source` as camera `id` at [`SCREEN_FPS`], on absolute deadlines, on a thread of
/// its own; a picture the encoder has not taken yet is dropped, never queued.
fn paced(id: &DeviceId, mut source: impl Grab) -> Result<Camera, DeviceError> {
    let (tx, frames) = crossbeam_channel::bounded(CAMERA_QUEUE_FRAMES);
    let ended = Arc::new(Mutex::new(None));
    let end = ended.clone();
    let period = Duration::from_secs(1) / SCREEN_FPS;
    let running = Running::spawn("screen-capture", move |stop| {
        let start = Instant::now();
        for n in 0u32.. {
            if !stop.sleep_until(start + period * n) {
                break;
            }
            let frame = match source.next() {
                Ok(frame) => frame,
                Err(reason) => {
                    *end.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                    break;
                }
            };
            if let Err(crossbeam_channel::TrySendError::Disconnected(_)) = tx.try_send(frame) {
                break;
            }
        }
    })
    .map_err(|reason| DeviceError::Open {
        id: id.clone(),
        reason,
    })?;
    Ok(Camera::new(id.clone(), SCREEN_FPS, frames, running).ending_with(ended))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_pictures_fit_1080p_keeping_their_aspect() {
        assert_eq!(fitted((1280, 720)), (1280, 720));
        assert_eq!(fitted((1920, 1080)), (1920, 1080));
        assert_eq!(fitted((2560, 1440)), (1920, 1080));
        assert_eq!(fitted((3840, 1080)), (1920, 540));
        assert_eq!(fitted((1000, 2000)), (540, 1080));
    }
}
