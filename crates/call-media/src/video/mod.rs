//! Video between cameras and the wire: I420 frames, the synthetic test pattern, H.264 coding,
//! and the latest-frame slots that hand decoded pictures to the app without ever blocking.

mod codec;
pub mod pattern;
mod sender;
mod slot;

pub use codec::{Content, VideoDecoder, VideoEncoder, bitrate_for, screen_bitrate_for};
pub(crate) use sender::{ENCODED_QUEUE, EncodedUnit, SourceEnded, VideoSender};
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

    /// Converts a packed picture of `stride` bytes per row to I420 (BT.601, limited range),
    /// cropped to even dimensions (at least 2x2). SIMD through the `yuv` crate.
    pub fn from_packed(
        pixels: &[u8],
        layout: Packed,
        width: u32,
        height: u32,
        stride: u32,
    ) -> Self {
        let (even_width, even_height) = (width & !1, height & !1);
        let mut frame = Self::black(even_width.max(2), even_height.max(2));
        let mut planes = yuv::YuvPlanarImageMut {
            y_plane: yuv::BufferStoreMut::Borrowed(&mut frame.y),
            y_stride: frame.width,
            u_plane: yuv::BufferStoreMut::Borrowed(&mut frame.u),
            u_stride: frame.width / 2,
            v_plane: yuv::BufferStoreMut::Borrowed(&mut frame.v),
            v_stride: frame.width / 2,
            width: even_width,
            height: even_height,
        };
        let convert = match layout {
            Packed::Rgb => yuv::rgb_to_yuv420,
            Packed::Rgba => yuv::rgba_to_yuv420,
            Packed::Bgrx => yuv::bgra_to_yuv420,
        };
        if let Err(e) = convert(
            &mut planes,
            pixels,
            stride,
            yuv::YuvRange::Limited,
            yuv::YuvStandardMatrix::Bt601,
            yuv::YuvConversionMode::Balanced,
        ) {
            tracing::warn!("{layout:?} picture to I420 failed: {e}");
        }
        frame
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

/// How a packed picture's bytes are laid out, for [`VideoFrame::from_packed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packed {
    /// R, G, B: a camera's decoded frame.
    Rgb,
    /// R, G, B, A: a rendered image.
    Rgba,
    /// B, G, R and an unused byte: an X11 screen at depth 24 on a little-endian server.
    Bgrx,
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
