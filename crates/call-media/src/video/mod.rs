//! Video between cameras and the wire: I420 frames, the synthetic test pattern, H.264 coding,
//! and the latest-frame slots that hand decoded pictures to the app without ever blocking.

mod codec;
pub mod pattern;
mod sender;
mod slot;

pub use codec::{VideoDecoder, VideoEncoder, bitrate_for};
pub(crate) use sender::{ENCODED_QUEUE, EncodedUnit, VideoSender};
pub use slot::{FrameSlot, SlotFrame, SlotWriter};

use std::time::Instant;

/// One picture in I420 (planar 4:2:0, BT.601 limited range), planes packed without padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Blue-difference chroma, `width/2 * height/2` bytes.
    pub u: Vec<u8>,
    /// Red-difference chroma, `width/2 * height/2` bytes.
    pub v: Vec<u8>,
    /// When it was captured.
    pub captured_at: Instant,
}

impl VideoFrame {
    /// A black frame of this size.
    pub fn black(width: u32, height: u32) -> Self {
        let luma = (width * height) as usize;
        let chroma = luma / 4;
        Self {
            width,
            height,
            y: vec![16; luma],
            u: vec![128; chroma],
            v: vec![128; chroma],
            captured_at: Instant::now(),
        }
    }

    /// Converts to RGBA8 (sRGB-encoded, alpha 255) into `rgba`, which must hold
    /// `width * height * 4` bytes. SIMD through the `yuv` crate.
    pub fn to_rgba(&self, rgba: &mut [u8]) {
        i420_to_rgba(
            [&self.y, &self.u, &self.v],
            [self.width, self.width / 2, self.width / 2],
            self.width,
            self.height,
            rgba,
        );
    }
}

/// Converts I420 planes with the given strides to RGBA8 (BT.601, limited range).
pub(crate) fn i420_to_rgba(
    planes: [&[u8]; 3],
    strides: [u32; 3],
    width: u32,
    height: u32,
    rgba: &mut [u8],
) {
    let image = yuv::YuvPlanarImage {
        y_plane: planes[0],
        y_stride: strides[0],
        u_plane: planes[1],
        u_stride: strides[1],
        v_plane: planes[2],
        v_stride: strides[2],
        width,
        height,
    };
    if let Err(e) = yuv::yuv420_to_rgba(
        &image,
        rgba,
        width * 4,
        yuv::YuvRange::Limited,
        yuv::YuvStandardMatrix::Bt601,
    ) {
        tracing::warn!("I420 to RGBA conversion failed: {e}");
    }
}
