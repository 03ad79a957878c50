//! The camera handle, and the synthetic cameras: the moving test pattern, and a Y4M file played in a loop. Each runs on a
//! thread of its own, paced on absolute deadlines at its frame rate.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{DeviceId, Running};
use crate::video::VideoFrame;
use crate::video::pattern::{self, FrameStamp};

/// Frames a camera channel holds; a frame the encoder cannot take yet is dropped, never queued.
pub(super) const CAMERA_QUEUE_FRAMES: usize = 2;

/// An open camera. Frames arrive on [`Camera::frames`]; dropping it stops capture.
pub struct Camera {
    /// I420 frames as they are captured.
    pub frames: crossbeam_channel::Receiver<VideoFrame>,
    /// The camera's id.
    pub id: DeviceId,
    /// Frames per second it delivers (what the encoder plans its rate for).
    pub fps: u32,
    _running: Running,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How a pattern camera draws.
#[derive(Clone, Copy, Debug)]
pub(super) struct PatternSettings {
    pub(super) source: u8,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) fps: u32,
}

/// Runs `next(n, captured_at)` for frame n at `fps`, sending what it returns.
fn spawn_camera(
    id: &DeviceId,
    fps: u32,
    mut next: impl FnMut(u32, Instant) -> VideoFrame + Send + 'static,
) -> Result<Camera, String> {
    let (tx, frames) = crossbeam_channel::bounded(CAMERA_QUEUE_FRAMES);
    let period = Duration::from_secs(1) / fps.max(1);
    let running = Running::spawn("synthetic-camera", move |stop| {
        let start = Instant::now();
        for n in 0u32.. {
            if !stop.sleep_until(start + period * n) {
                break;
            }
            let frame = next(n, Instant::now());
            if let Err(crossbeam_channel::TrySendError::Disconnected(_)) = tx.try_send(frame) {
                break;
            }
        }
    })?;
    Ok(Camera::new(id.clone(), fps, frames, running))
}

impl Camera {
    pub(super) fn new(
        id: DeviceId,
        fps: u32,
        frames: crossbeam_channel::Receiver<VideoFrame>,
        running: Running,
    ) -> Self {
        Self {
            frames,
            id,
            fps,
            _running: running,
        }
    }
}

pub(super) fn open_pattern(id: &DeviceId, s: PatternSettings) -> Result<Camera, String> {
    spawn_camera(id, s.fps, move |counter, at| {
        let stamp = FrameStamp {
            source: s.source,
            counter,
            micros: pattern::stamp_micros(at),
        };
        let mut frame = pattern::draw(stamp, s.width, s.height);
        frame.captured_at = at;
        frame
    })
}

/// Reads every frame of a 4:2:0 8-bit Y4M file, and its frame rate.
fn read_y4m(path: &Path) -> Result<(Vec<VideoFrame>, u32), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = y4m::decode(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e:?}", path.display()))?;
    let (width, height) = (decoder.get_width() as u32, decoder.get_height() as u32);
    if !matches!(
        decoder.get_colorspace(),
        y4m::Colorspace::C420
            | y4m::Colorspace::C420jpeg
            | y4m::Colorspace::C420paldv
            | y4m::Colorspace::C420mpeg2
    ) || width % 2 == 1
        || height % 2 == 1
    {
        return Err(format!(
            "{}: only 8-bit 4:2:0 with even sizes is supported",
            path.display()
        ));
    }
    let rate = decoder.get_framerate();
    let fps = (rate.num / rate.den.max(1)).clamp(1, 120) as u32;
    let mut frames = Vec::new();
    while let Ok(f) = decoder.read_frame() {
        frames.push(VideoFrame {
            width,
            height,
            y: f.get_y_plane().to_vec(),
            u: f.get_u_plane().to_vec(),
            v: f.get_v_plane().to_vec(),
            captured_at: Instant::now(),
        });
    }
    if frames.is_empty() {
        return Err(format!("{}: no frames", path.display()));
    }
    Ok((frames, fps))
}

pub(super) fn open_y4m(id: &DeviceId, path: &Path) -> Result<Camera, String> {
    let (frames, fps) = read_y4m(path)?;
    spawn_camera(id, fps, move |n, at| {
        let mut frame = frames[n as usize % frames.len()].clone();
        frame.captured_at = at;
        frame
    })
}
