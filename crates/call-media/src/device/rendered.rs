//! Screen sources whose pictures the app renders itself (a view of a game's world, a replay):
//! the app pushes RGBA pictures into a [`FramePusher`], and while the source is open as a share
//! they reach the encoder, paced to [`super::SCREEN_FPS`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::camera::{CAMERA_QUEUE_FRAMES, Camera};
use super::{DeviceId, Running, SCREEN_FPS};
use crate::video::{Packed, VideoFrame};

/// The app's side of a rendered screen source
/// ([`super::DeviceManager::add_rendered_screen`]). Cheap to clone.
#[derive(Clone, Default)]
pub struct FramePusher(Arc<Mutex<Pushing>>);

#[derive(Default)]
struct Pushing {
    /// The open source's channel, while it is open.
    open: Option<crossbeam_channel::Sender<VideoFrame>>,
    /// When the last picture was taken.
    last: Option<Instant>,
}

impl FramePusher {
    fn state(&self) -> std::sync::MutexGuard<'_, Pushing> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a picture pushed now would be taken: the source is open and a frame period has
    /// passed since the last one. An app can skip rendering or reading back otherwise.
    pub fn wants_picture(&self) -> bool {
        let state = self.state();
        let period = Duration::from_secs(1) / SCREEN_FPS;
        state.open.is_some() && state.last.is_none_or(|at| at.elapsed() >= period)
    }

    /// Offers an RGBA picture (`stride` bytes per row, top row first); converted to I420 and
    /// sent when [`FramePusher::wants_picture`], else dropped. Returns whether it was taken.
    pub fn push_rgba(&self, rgba: &[u8], width: u32, height: u32, stride: u32) -> bool {
        if !self.wants_picture() {
            return false;
        }
        let frame = VideoFrame::from_packed(rgba, Packed::Rgba, width, height, stride);
        let mut state = self.state();
        let taken = state
            .open
            .as_ref()
            .is_some_and(|tx| tx.try_send(frame).is_ok());
        if taken {
            state.last = Some(Instant::now());
        }
        taken
    }
}

/// Opens a rendered source: from now until the camera is dropped, pushed pictures reach it.
pub(super) fn open(id: &DeviceId, pusher: FramePusher) -> Result<Camera, String> {
    let (tx, frames) = crossbeam_channel::bounded(CAMERA_QUEUE_FRAMES);
    *pusher.state() = Pushing {
        open: Some(tx.clone()),
        last: None,
    };
    // The thread only waits to be stopped, then closes the channel (unless the source was
    // opened again meanwhile): the source lives as long as the camera, like any other.
    let running = Running::spawn("rendered-screen", move |stop| {
        stop.wait();
        let mut state = pusher.state();
        if state
            .open
            .as_ref()
            .is_some_and(|open| open.same_channel(&tx))
        {
            state.open = None;
        }
    })?;
    Ok(Camera::new(id.clone(), SCREEN_FPS, frames, running))
}
