//! The camera handle, and the synthetic cameras: the moving test pattern, and a Y4M file played
//! in a loop. Each runs on a thread of its own, paced on absolute deadlines at its frame rate; the
//! Y4M camera reads its file there a frame at a time, so a long clip is never held in memory.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    ended: Arc<Mutex<Option<SourceEnd>>>,
    _running: Running,
}

/// Why a video source stopped delivering frames by itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceEnd {
    /// The shared window was closed.
    #[error("the window was closed")]
    WindowClosed,
    /// Capture failed (the display went away, or the device stopped).
    #[error("capture failed: {0}")]
    Failed(String),
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

/// Runs `next(n, captured_at)` for frame n at `fps`, sending what it returns; `None` ends the
/// stream.
fn spawn_camera(
    id: &DeviceId,
    fps: u32,
    mut next: impl FnMut(u32, Instant) -> Option<VideoFrame> + Send + 'static,
) -> Result<Camera, String> {
    let (tx, frames) = crossbeam_channel::bounded(CAMERA_QUEUE_FRAMES);
    let period = Duration::from_secs(1) / fps.max(1);
    let running = Running::spawn("synthetic-camera", move |stop| {
        let start = Instant::now();
        for n in 0u32.. {
            if !stop.sleep_until(start + period * n) {
                break;
            }
            let Some(frame) = next(n, Instant::now()) else {
                break;
            };
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
            ended: Arc::default(),
            _running: running,
        }
    }

    /// Shares `ended`, where the capture thread tells why it stopped before its channel closes.
    pub(super) fn ending_with(self, ended: Arc<Mutex<Option<SourceEnd>>>) -> Self {
        Self { ended, ..self }
    }

    /// Why the source ended by itself, once [`Camera::frames`] has disconnected; `None` for a
    /// source still running or one that just ran out (a file camera's last frame).
    pub fn end_reason(&self) -> Option<SourceEnd> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        Some(frame)
    })
}

/// A Y4M file being played: one frame read at a time, from the start again at its end.
struct Y4mFile {
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    width: u32,
    height: u32,
    fps: u32,
}

impl Y4mFile {
    /// Opens a 4:2:0 8-bit Y4M file and parses its header (cheap: no frame is read).
    fn open(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let decoder =
            y4m::decode(BufReader::new(file)).map_err(|e| format!("{}: {e:?}", path.display()))?;
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
        Ok(Self {
            path: path.to_owned(),
            decoder,
            width,
            height,
            fps,
        })
    }

    /// The next frame, going back to the first after the last (a truncated last frame counts
    /// as the end).
    fn next_frame(&mut self) -> Result<VideoFrame, String> {
        if let Some(frame) = self.read()? {
            return Ok(frame);
        }
        let again = Self::open(&self.path)?;
        if (again.width, again.height) != (self.width, self.height) {
            return Err(format!("{}: the file changed", self.path.display()));
        }
        *self = again;
        self.read()?
            .ok_or_else(|| format!("{}: no frames", self.path.display()))
    }

    /// The frame at the read position, or none at the end of the file.
    fn read(&mut self) -> Result<Option<VideoFrame>, String> {
        let frame = match self.decoder.read_frame() {
            Ok(frame) => frame,
            Err(y4m::Error::EOF) => return Ok(None),
            Err(y4m::Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(e) => return Err(format!("{}: {e:?}", self.path.display())),
        };
        Ok(Some(VideoFrame {
            width: self.width,
            height: self.height,
            y: frame.get_y_plane().to_vec(),
            u: frame.get_u_plane().to_vec(),
            v: frame.get_v_plane().to_vec(),
            captured_at: Instant::now(),
        }))
    }
}

/// Opens a Y4M file camera: the header is checked here, the frames are read on the camera's
/// thread as it plays. A read error ends the stream.
pub(super) fn open_y4m(id: &DeviceId, path: &Path) -> Result<Camera, String> {
    let mut file = Y4mFile::open(path)?;
    spawn_camera(id, file.fps, move |_, at| match file.next_frame() {
        Ok(mut frame) => {
            frame.captured_at = at;
            Some(frame)
        }
        Err(e) => {
            tracing::warn!("camera ends: {e}");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_y4m(path: &Path, lumas: &[u8]) {
        let file = File::create(path).unwrap();
        let mut encoder = y4m::encode(64, 36, y4m::Ratio::new(30, 1))
            .with_colorspace(y4m::Colorspace::C420jpeg)
            .write_header(file)
            .unwrap();
        for &luma in lumas {
            let (y, uv) = (vec![luma; 64 * 36], vec![128u8; 32 * 18]);
            encoder
                .write_frame(&y4m::Frame::new([&y, &uv, &uv], None))
                .unwrap();
        }
    }

    #[test]
    fn a_y4m_file_that_breaks_mid_way_ends_the_stream() {
        let dir = std::env::temp_dir().join(format!("bevy_calling_y4m_bad_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.y4m");
        write_y4m(&path, &[40, 200]);
        // Corrupt the second frame's header: the first frame plays, then the stream ends.
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.len() - (64 * 36 * 3 / 2) - 6;
        bytes[second..second + 5].copy_from_slice(b"XXXXX");
        std::fs::write(&path, &bytes).unwrap();
        let camera = open_y4m(&DeviceId("test".into()), &path).expect("the header is fine");
        assert_eq!(camera.frames.recv().map(|f| f.y[0]), Ok(40));
        assert!(camera.frames.recv().is_err(), "the stream ended");

        // A header-only file opens (the header is all that is read) and ends at once.
        write_y4m(&path, &[]);
        let camera = open_y4m(&DeviceId("test".into()), &path).expect("the header is fine");
        assert!(camera.frames.recv().is_err(), "no frames, no stream");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
