//! The synthetic camera's test pattern, and the stamp it carries in its pixels.
//!
//! Each frame is a pure function of `(source, counter, size)`: a moving gradient with colour
//! bands whose hue depends on the source, plus a code strip in the top rows carrying a
//! [`FrameStamp`] (source id, frame counter, capture time). A receiver reads the stamp back from
//! the decoded picture, and can regenerate the exact source frame to measure quality, or compare the
//! capture time with its own clock for glass-to-glass latency.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
    /// When it was captured: the wall clock's microseconds, modulo 2^32 ([`stamp_micros`]).
    pub micros: u32,
}

/// Microseconds of the wall clock at `at`, modulo 2^32 (about 71 minutes), as a stamp carries
/// them. The wall clock is the machine's, so a stamp from one process (a bot) reads correctly
/// in another (the app) on the same machine: latencies are differences of two such values.
pub fn stamp_micros(at: Instant) -> u32 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at_wall = if at <= now {
        wall.saturating_sub(now - at)
    } else {
        wall + (at - now)
    };
    at_wall.as_micros() as u32
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
    let w = width as usize;
    if rgba.len() < w * height as usize * 4 {
        return None;
    }
    read_with(width, height, |x, y| {
        let at = (y as usize * w + x as usize) * 4;
        [rgba[at], rgba[at + 1], rgba[at + 2]]
    })
}

/// Reads the stamp of a `width`x`height` picture of the pattern through `sample`, which gives
/// the RGB colour at a pixel of the picture: the picture may be anywhere, e.g. a texture drawn
/// in perspective on a screenshot, mapped back by the caller.
pub fn read_with(
    width: u32,
    height: u32,
    sample: impl Fn(u32, u32) -> [u8; 3],
) -> Option<FrameStamp> {
    let b = block(width);
    if height < 2 * b {
        return None;
    }
    let bits = std::array::from_fn(|i| {
        let (bx, by) = (i as u32 % BLOCKS_PER_ROW, i as u32 / BLOCKS_PER_ROW);
        // The centre of the block, away from edges the codec blurs.
        let p = sample(bx * b + b / 2, by * b + b / 2);
        let luma = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        luma > 128.0
    });
    FrameStamp::from_bits(&bits)
}

/// Reads the stamp of a `width`x`height` picture of the pattern drawn in perspective onto a
/// quadrilateral: `corners` are where its top-left, top-right, bottom-right and bottom-left
/// corners landed (a screenshot of a 3D view), `sample` gives the RGB colour at a point there.
pub fn read_quad(
    width: u32,
    height: u32,
    corners: [[f64; 2]; 4],
    sample: impl Fn(f64, f64) -> [u8; 3],
) -> Option<FrameStamp> {
    let map = Quad::from_unit_square(corners)?;
    read_with(width, height, |x, y| {
        let (u, v) = (
            (f64::from(x) + 0.5) / f64::from(width),
            (f64::from(y) + 0.5) / f64::from(height),
        );
        let [sx, sy] = map.apply(u, v);
        sample(sx, sy)
    })
}

/// The projective map from the unit square (u right, v down) onto a quadrilateral.
struct Quad([f64; 8]);

impl Quad {
    /// The map taking (0,0), (1,0), (1,1), (0,1) to `corners` in that order (Heckbert's
    /// square-to-quad solution); `None` for a degenerate quadrilateral.
    fn from_unit_square(corners: [[f64; 2]; 4]) -> Option<Self> {
        let [[x0, y0], [x1, y1], [x2, y2], [x3, y3]] = corners;
        let (sx, sy) = (x0 - x1 + x2 - x3, y0 - y1 + y2 - y3);
        let (dx1, dx2, dy1, dy2) = (x1 - x2, x3 - x2, y1 - y2, y3 - y2);
        let det = dx1 * dy2 - dx2 * dy1;
        if det.abs() < 1e-9 {
            return None;
        }
        let g = (sx * dy2 - dx2 * sy) / det;
        let h = (dx1 * sy - sx * dy1) / det;
        Some(Self([
            x1 - x0 + g * x1,
            x3 - x0 + h * x3,
            x0,
            y1 - y0 + g * y1,
            y3 - y0 + h * y3,
            y0,
            g,
            h,
        ]))
    }

    fn apply(&self, u: f64, v: f64) -> [f64; 2] {
        let [a, b, c, d, e, f, g, h] = self.0;
        let z = g * u + h * v + 1.0;
        [(a * u + b * v + c) / z, (d * u + e * v + f) / z]
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
    fn a_stamp_reads_back_through_a_perspective_quad() {
        let stamp = FrameStamp {
            source: 3,
            counter: 77,
            micros: 12_345,
        };
        let (w, h) = (640, 360);
        let mut rgba = vec![0; (w * h * 4) as usize];
        draw(stamp, w, h).to_rgba(&mut rgba);
        // A picture seen turned away to the right (its right edge shorter): the map hits the
        // corners.
        let corners = [[100.0, 50.0], [400.0, 70.0], [400.0, 200.0], [100.0, 220.0]];
        let inverse = Quad::from_unit_square(corners).unwrap();
        for (k, (u, v)) in [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
            .into_iter()
            .enumerate()
        {
            let [x, y] = inverse.apply(u, v);
            assert!((x - corners[k][0]).abs() < 1e-9 && (y - corners[k][1]).abs() < 1e-9);
        }
        // Drawn at half size with its top-left at (10, 20): each screen point looks up the
        // source pixel under it.
        let half = [[10.0, 20.0], [330.0, 20.0], [330.0, 200.0], [10.0, 200.0]];
        let screen = |x: f64, y: f64| {
            let (px, py) = (((x - 10.0) * 2.0) as u32, ((y - 20.0) * 2.0) as u32);
            let at = ((py.min(h - 1) * w + px.min(w - 1)) * 4) as usize;
            [rgba[at], rgba[at + 1], rgba[at + 2]]
        };
        assert_eq!(read_quad(w, h, half, screen), Some(stamp));
    }

    #[test]
    fn a_corrupt_strip_reads_as_nothing() {
        assert_eq!(read_rgba(&vec![255; 320 * 180 * 4], 320, 180), None);
    }
}
