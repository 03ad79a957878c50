//! The sending side of one video stream: one thread per stream (camera, screen share) takes
//! frames from the current source, shows them in
//! the local preview slot, encodes them, and hands the access units to the engine to send over a
//! bounded queue; when the engine is behind, a unit is dropped and the next one is a keyframe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use call_protocol::MediaType;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{Content, FrameSlot, VideoEncoder};
use crate::device::{Camera, DeviceId, SourceEnd};

/// A frame's duration when the camera gives no earlier frame to measure from (30 fps).
const DEFAULT_FRAME: Duration = Duration::from_micros(33_333);

/// Encoded units waiting for the engine to send them, both streams together: about a quarter
/// second at 30 frames per second in all. A unit that finds the queue full is dropped.
pub(crate) const ENCODED_QUEUE: usize = 8;

/// An encoded access unit, which stream it belongs to, and how long it lasts.
pub(crate) type EncodedUnit = (MediaType, Vec<u8>, Duration);

/// A source that ended by itself: which stream's, which source, and why.
pub(crate) type SourceEnded = (MediaType, DeviceId, SourceEnd);

/// The encoder thread. Dropping it stops the thread.
pub(crate) struct VideoSender {
    cameras: Option<crossbeam_channel::Sender<Option<Camera>>>,
    preview: FrameSlot,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VideoSender {
    /// Starts the thread. Units go to `units` (see [`hand_over`] for a full queue); `keyframe`
    /// asks for an IDR (the next frame is one, then the flag clears); a source that ends by
    /// itself is told on `ended` (at most once per source opened, so it needs no bound).
    pub(crate) fn start(
        media_type: MediaType,
        units: mpsc::Sender<EncodedUnit>,
        keyframe: Arc<AtomicBool>,
        ended: mpsc::UnboundedSender<SourceEnded>,
    ) -> std::io::Result<Self> {
        // Source switches, at most one per video request: bounded by the engine's command queue,
        // and the thread takes each as soon as it arrives.
        let (cameras, switches) = crossbeam_channel::unbounded::<Option<Camera>>();
        let preview = FrameSlot::new();
        let mut writer = preview.writer();
        let content = match media_type {
            MediaType::Video => Content::Camera,
            MediaType::ScreenSharing => Content::Screen,
        };
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
                            if let Some(c) = camera.take()
                                && let Some(end) = c.end_reason()
                            {
                                let _ = ended.send((media_type, c.id.clone(), end));
                            }
                            continue;
                        };
                        writer.publish(frame.width, frame.height, Some(frame.captured_at), |rgba| frame.to_rgba(rgba));
                        let fps = camera.as_ref().map_or(30, |c| c.fps);
                        let encoder = match &mut encoder {
                            Some(e) => e,
                            None => match VideoEncoder::for_content(frame.width, frame.height, fps, content) {
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
                                if !hand_over(&units, (media_type, unit, duration), &keyframe) {
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

/// Hands a unit to the engine without waiting; false once the engine is gone. A full queue means
/// the engine is behind: the unit is dropped, and the next one is made a keyframe, because the
/// units after a dropped one reference it. The stream goes on from the newest picture instead of
/// queueing old ones.
fn hand_over(units: &mpsc::Sender<EncodedUnit>, unit: EncodedUnit, keyframe: &AtomicBool) -> bool {
    match units.try_send(unit) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            keyframe.store(true, Ordering::Relaxed);
            true
        }
        Err(TrySendError::Closed(_)) => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_unit_and_makes_the_next_one_a_keyframe() {
        let (units, mut engine) = mpsc::channel(2);
        let keyframe = AtomicBool::new(false);
        let unit = |n| (MediaType::Video, vec![n], DEFAULT_FRAME);
        assert!(hand_over(&units, unit(1), &keyframe));
        assert!(hand_over(&units, unit(2), &keyframe));
        assert!(!keyframe.load(Ordering::Relaxed), "room for both");
        // The engine is behind: the third unit is dropped, and the encoder is asked for an IDR.
        assert!(hand_over(&units, unit(3), &keyframe));
        assert!(keyframe.load(Ordering::Relaxed));
        let queued: Vec<u8> = std::iter::from_fn(|| engine.try_recv().ok())
            .map(|(_, unit, _)| unit[0])
            .collect();
        assert_eq!(
            queued,
            [1, 2],
            "the queued units are kept, the dropped one is gone"
        );
        // Once the engine catches up, units flow again; once it is gone, the thread stops.
        assert!(hand_over(&units, unit(4), &keyframe));
        assert_eq!(engine.try_recv().map(|(_, unit, _)| unit), Ok(vec![4]));
        drop(engine);
        assert!(!hand_over(&units, unit(5), &keyframe));
    }
}
