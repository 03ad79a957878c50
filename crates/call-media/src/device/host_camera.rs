//! Hardware cameras through nokhwa (V4L2 on Linux, AVFoundation, Media Foundation). Each open
//! camera runs on a thread of its own: it asks for 640x360 at 30 fps (or the closest the device
//! offers), decodes each frame to RGB and converts it to I420 for the encoder.

use std::time::Instant;

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

use super::camera::{CAMERA_QUEUE_FRAMES, Camera};
use super::{CameraFacing, DeviceError, DeviceId, DeviceInfo, DeviceKind, Running};
use crate::video::{Packed, VideoFrame};

const PREFIX: &str = "nokhwa:";

/// The hardware cameras; none when the host has no camera system or no camera.
pub(super) fn list() -> Vec<DeviceInfo> {
    nokhwa::query(ApiBackend::Auto)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, info)| DeviceInfo {
            id: DeviceId(format!("{PREFIX}{}", info.index().as_string())),
            name: info.human_name(),
            kind: DeviceKind::Camera,
            is_synthetic: false,
            facing: Some(CameraFacing::External),
            application: None,
            // Cameras have no system default: the first one listed is it.
            is_default: i == 0,
        })
        .collect()
}

/// Opens a hardware camera listed by [`list`].
pub(super) fn open(id: &DeviceId) -> Result<Camera, DeviceError> {
    if !list().iter().any(|d| &d.id == id) {
        return Err(DeviceError::NotFound(id.clone()));
    }
    let name = id.0.trim_start_matches(PREFIX).to_owned();
    let index = name
        .parse()
        .map(CameraIndex::Index)
        .unwrap_or(CameraIndex::String(name));
    let open_error = |reason: String| DeviceError::Open {
        id: id.clone(),
        reason,
    };
    let (tx, frames) = crossbeam_channel::bounded(CAMERA_QUEUE_FRAMES);
    let (started_tx, started) = std::sync::mpsc::channel();
    let running = Running::spawn("nokhwa-camera", move |stop| {
        let wanted = CameraFormat::new_from(640, 360, FrameFormat::MJPEG, 30);
        let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
        let mut camera =
            match nokhwa::Camera::new(index, format).and_then(|mut c| c.open_stream().map(|_| c)) {
                Ok(c) => c,
                Err(e) => {
                    let _ = started_tx.send(Err(e.to_string()));
                    return;
                }
            };
        let _ = started_tx.send(Ok(camera.frame_rate()));
        // `sleep_until(now)` only asks whether the camera was closed.
        while stop.sleep_until(Instant::now()) {
            let rgb = match camera.frame().and_then(|f| f.decode_image::<RgbFormat>()) {
                Ok(rgb) => rgb,
                Err(e) => {
                    tracing::warn!("camera frame: {e}");
                    continue;
                }
            };
            let frame = rgb_to_i420(
                rgb.as_raw(),
                rgb.width() & !1,
                rgb.height() & !1,
                rgb.width(),
            );
            if let Err(crossbeam_channel::TrySendError::Disconnected(_)) = tx.try_send(frame) {
                break;
            }
        }
        let _ = camera.stop_stream();
    })
    .map_err(open_error)?;
    match started.recv() {
        Ok(Ok(fps)) => Ok(Camera::new(id.clone(), fps, frames, running)),
        Ok(Err(reason)) => Err(open_error(reason)),
        Err(_) => Err(open_error(
            "the camera thread ended before the stream started".into(),
        )),
    }
}

/// Converts packed RGB (of `stride` pixels per row) to an I420 frame of `width`x`height`.
fn rgb_to_i420(rgb: &[u8], width: u32, height: u32, stride: u32) -> VideoFrame {
    let mut frame = VideoFrame::from_packed(rgb, Packed::Rgb, width, height, stride * 3);
    frame.captured_at = Instant::now();
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_converts_to_i420_and_back() {
        let (w, h) = (16, 8);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 40, 40]).collect();
        let frame = rgb_to_i420(&rgb, w, h, w);
        let mut rgba = vec![0; (w * h * 4) as usize];
        frame.to_rgba(&mut rgba);
        let p = &rgba[(3 * w as usize + 5) * 4..][..3];
        assert!(
            p[0].abs_diff(200) < 6 && p[1].abs_diff(40) < 6 && p[2].abs_diff(40) < 6,
            "{p:?}"
        );
    }

    #[test]
    fn an_unknown_camera_is_not_found() {
        let id = DeviceId("nokhwa:no-such-camera".into());
        assert!(matches!(open(&id), Err(DeviceError::NotFound(_))));
    }
}
