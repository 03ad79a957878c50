//! The synthetic camera's test pattern, and the stamp it carries in its pixels.
//!
//! Each frame is a pure function of `(source, counter, size)`: a moving gradient with colour
//! bands whose hue depends on the source, plus a code strip in the top rows carrying a
//! [`FrameStamp`] (source id, frame counter, capture time). A receiver reads the stamp back from
//! the decoded picture, and can regenerate the exact source frame to measure quality, or compare the
//! capture time with its own clock for glass-to-glass latency.

use std::sync::OnceLock;
use std::time::Instant;

use super::VideoFrame;

/// Bits in the code strip: 8 source + 32 counter + 32 micros + 8 check.
const CODE_BITS: usize = 80;
/// Blocks per code row; the strip has two rows.
const BLOCKS_PER_ROW: u32 = 40;

/// What a frame of the test pattern says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameStamp {
    /// Which synthetic camera drew it.
    pub source: u8,
    /// Its frame number at that camera.
    pub counter: u32,
    /// When it was captured: microseconds since [`epoch`], modulo 2^32.
    pub micros: u32,
}

/// The process-wide instant that stamps count from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds from [`epoch`] to `at`, modulo 2^32, as a stamp carries them.
pub fn stamp_micros(at: Instant) -> u32 {
    at.saturating_duration_since(epoch()).as_micros() as u32
}

impl FrameStamp {
    fn bits(&self) -> [bool; CODE_BITS] {
        let mut bytes = [0u8; 10];
        bytes[0] = self.source;
        bytes[1..5].copy_from_slice(&self.counter.to_be_bytes());
        bytes[5..9].copy_from_slice(&self.micros.to_be_bytes());
        bytes[9] = bytes[..9].iter().fold(0x5a, |a, b| a ^ b);
        std::array::from_fn(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
    }

    fn from_bits(bits: &[bool; CODE_BITS]) -> Option<Self> {
        let mut bytes = [0u8; 10];
        for (i, &bit) in bits.iter().enumerate() {
            if bit {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        if bytes[9] != bytes[..9].iter().fold(0x5a, |a, b| a ^ b) {
            return None;
        }
        Some(Self {
            source: bytes[0],
            counter: u32::from_be_bytes(bytes[1..5].try_into().ok()?),
            micros: u32::from_be_bytes(bytes[5..9].try_into().ok()?),
        })
    }
}

/// The size of one code block, and the code strip's height, for a frame width.
fn block(width: u32) -> u32 {
    (width / BLOCKS_PER_ROW).max(2) & !1
}

/// Draws frame `stamp.counter` of source `stamp.source` at `width`x`height` (both even).
pub fn draw(stamp: FrameStamp, width: u32, height: u32) -> VideoFrame {
    let (w, h) = (width as usize, height as usize);
    let mut frame = VideoFrame::black(width, height);
    let shift = stamp.counter as usize * 4;
    let hue = stamp.source as usize * 53;
    for y in 0..h {
        for x in 0..w {
            frame.y[y * w + x] = (((x + shift) * 200 / w + y * 40 / h) % 220 + 16) as u8;
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for y in 0..ch {
        for x in 0..cw {
            let band = ((x * 2 + shift) / 64 + hue) % 6;
            frame.u[y * cw + x] = [64, 192, 128, 96, 160, 128][band];
            frame.v[y * cw + x] = [128, 96, 192, 160, 64, 128][(band + y * 6 / ch.max(1)) % 6];
        }
    }
    let b = block(width) as usize;
    for (i, bit) in stamp.bits().iter().enumerate() {
        let (bx, by) = (i % BLOCKS_PER_ROW as usize, i / BLOCKS_PER_ROW as usize);
        let luma = if *bit { 235 } else { 16 };
        for y in by * b..(by + 1) * b {
            frame.y[y * w + bx * b..y * w + (bx + 1) * b].fill(luma);
        }
        for y in by * b / 2..(by + 1) * b / 2 {
            frame.u[y * cw + bx * b / 2..y * cw + (bx + 1) * b / 2].fill(128);
            frame.v[y * cw + bx * b / 2..y * cw + (bx + 1) * b / 2].fill(128);
        }
    }
    frame
}

/// Reads the stamp from a decoded RGBA picture of the pattern, if it carries a valid one.
pub fn read_rgba(rgba: &[u8], width: u32, height: u32) -> Option<FrameStamp> {
    let b = block(width) as usize;
    let w = width as usize;
    if height as usize >= 2 * b && rgba.len() >= w * height as usize * 4 {
        let bits = std::array::from_fn(|i| {
            let (bx, by) = (i % BLOCKS_PER_ROW as usize, i / BLOCKS_PER_ROW as usize);
            // The centre of the block, away from edges the codec blurs.
            let (x, y) = (bx * b + b / 2, by * b + b / 2);
            let p = &rgba[(y * w + x) * 4..(y * w + x) * 4 + 3];
            let luma = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            luma > 128.0
        });
        FrameStamp::from_bits(&bits)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_stamp_reads_back_from_rgba() {
        let stamp = FrameStamp {
            source: 7,
            counter: 123_456,
            micros: 0xdead_beef,
        };
        let frame = draw(stamp, 640, 360);
        let mut rgba = vec![0; 640 * 360 * 4];
        frame.to_rgba(&mut rgba);
        assert_eq!(read_rgba(&rgba, 640, 360), Some(stamp));
    }

    #[test]
    fn frames_move_and_sources_differ() {
        let at = |source, counter| {
            draw(
                FrameStamp {
                    source,
                    counter,
                    micros: 0,
                },
                320,
                180,
            )
        };
        assert_ne!(at(1, 1).y[5000..], at(1, 2).y[5000..]);
        assert_ne!(at(1, 1).u, at(2, 1).u);
    }

    #[test]
    fn a_corrupt_strip_reads_as_nothing() {
        assert_eq!(read_rgba(&vec![255; 320 * 180 * 4], 320, 180), None);
    }
}
