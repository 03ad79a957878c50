//! The camera side: one thread per agent takes frames from the current camera, shows them in
//! the local preview slot, encodes them, and hands the access units to the engine to send.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use call_protocol::MediaType;
use tokio::sync::mpsc;

use super::{FrameSlot, VideoEncoder};
use crate::device::Camera;

/// A frame's duration when the camera gives no earlier frame to measure from (30 fps).
const DEFAULT_FRAME: Duration = Duration::from_micros(33_333);

/// An encoded access unit, which stream it belongs to, and how long it lasts.
pub(crate) type EncodedUnit = (MediaType, Vec<u8>, Duration);

/// The encoder thread. Dropping it stops the thread.
pub(crate) struct VideoSender {
    cameras: Option<crossbeam_channel::Sender<Option<Camera>>>,
    preview: FrameSlot,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VideoSender {
    /// Starts the thread. Units go to `units`; `keyframe` asks for an IDR (the next frame is one,
    /// then the flag clears).
    pub(crate) fn start(
        media_type: MediaType,
        units: mpsc::UnboundedSender<EncodedUnit>,
        keyframe: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let (cameras, switches) = crossbeam_channel::unbounded::<Option<Camera>>();
        let preview = FrameSlot::new();
        let mut writer = preview.writer();
        let thread = std::thread::Builder::new().name("video-encode".into()).spawn(move || {
            let mut camera: Option<Camera> = None;
            let mut encoder: Option<VideoEncoder> = None;
            let mut last_capture = None;
            loop {
                let frames = camera.as_ref().map(|c| c.frames.clone()).unwrap_or_else(crossbeam_channel::never);
                crossbeam_channel::select! {
                    recv(switches) -> switch => match switch {
                        Ok(next) => {
                            // A new source starts with a keyframe, so receivers switch at once,
                            // and with an encoder planned for its frame rate.
                            camera = next;
                            encoder = None;
                            keyframe.store(true, Ordering::Relaxed);
                            last_capture = None;
                        }
                        Err(_) => break,
                    },
                    recv(frames) -> frame => {
                        let Ok(frame) = frame else {
                            camera = None;
                            continue;
                        };
                        writer.publish(frame.width, frame.height, Some(frame.captured_at), |rgba| frame.to_rgba(rgba));
                        let fps = camera.as_ref().map_or(30, |c| c.fps);
                        let encoder = match &mut encoder {
                            Some(e) => e,
                            None => match VideoEncoder::new(frame.width, frame.height, fps) {
                                Ok(e) => encoder.insert(e),
                                Err(e) => {
                                    tracing::error!("no H.264 encoder: {e}");
                                    continue;
                                }
                            },
                        };
                        let duration = last_capture
                            .map(|t| frame.captured_at.saturating_duration_since(t))
                            .filter(|d| !d.is_zero())
                            .unwrap_or(DEFAULT_FRAME);
                        last_capture = Some(frame.captured_at);
                        match encoder.encode(&frame, keyframe.swap(false, Ordering::Relaxed)) {
                            Ok((unit, _)) if unit.is_empty() => {}
                            Ok((unit, _)) => {
                                if units.send((media_type, unit, duration)).is_err() {
                                    break;
                                }
                            }
                            Err(e) => tracing::warn!("H.264 encode failed: {e}"),
                        }
                    },
                }
            }
        })?;
        Ok(Self {
            cameras: Some(cameras),
            preview,
            thread: Some(thread),
        })
    }

    /// Sends from this camera from now on (`None`: stop sending).
    pub(crate) fn set_camera(&self, camera: Option<Camera>) {
        if let Some(cameras) = &self.cameras {
            let _ = cameras.send(camera);
        }
    }

    /// The local preview: the frames being sent, as RGBA.
    pub(crate) fn preview(&self) -> FrameSlot {
        self.preview.clone()
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        drop(self.cameras.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
