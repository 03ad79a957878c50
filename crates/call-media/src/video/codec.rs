//! H.264 through openh264: Constrained Baseline encoding of camera frames into Annex-B access
//! units, and decoding of received access units straight into a latest-frame slot.

use std::time::Instant;

use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::{SlotWriter, VideoFrame, i420_to_rgba};

impl YUVSource for VideoFrame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// The target bitrate for a resolution and frame rate: about 0.1 bit per pixel per frame,
/// between 150 kbit/s and 2.5 Mbit/s (360p30 ≈ 700 kbit/s, 720p30 ≈ 2.5 Mbit/s).
pub fn bitrate_for(width: u32, height: u32, fps: u32) -> u32 {
    let bits = width as f64 * height as f64 * fps as f64 * 0.1;
    bits.clamp(150_000.0, 2_500_000.0) as u32
}

/// The target bitrate for screen content: sharp text and little motion at a low frame rate,
/// so about 0.2 bit per pixel per frame (1080p15 ≈ 6 Mbit/s before the cap), between 300 kbit/s
/// and 3 Mbit/s; each frame gets several times a camera frame's bits.
pub fn screen_bitrate_for(width: u32, height: u32, fps: u32) -> u32 {
    let bits = width as f64 * height as f64 * fps as f64 * 0.2;
    bits.clamp(300_000.0, 3_000_000.0) as u32
}

/// What an encoder is tuned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// A camera: motion, [`bitrate_for`].
    Camera,
    /// A screen or window: openh264's screen-content mode, [`screen_bitrate_for`], and a level
    /// that allows pictures up to 1080p.
    Screen,
}

/// Encodes I420 frames to H.264 Constrained Baseline (what `profile-level-id=42e01f` announces).
pub struct VideoEncoder {
    encoder: Encoder,
    size: (u32, u32),
    fps: u32,
    content: Content,
    started: Instant,
}

impl VideoEncoder {
    /// An encoder for camera frames of this size at this rate.
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, String> {
        Self::for_content(width, height, fps, Content::Camera)
    }

    /// An encoder for frames of this size at this rate, tuned for `content`.
    pub fn for_content(
        width: u32,
        height: u32,
        fps: u32,
        content: Content,
    ) -> Result<Self, String> {
        let (usage, level, bitrate) = match content {
            Content::Camera => (
                UsageType::CameraVideoRealTime,
                Level::Level_3_1,
                bitrate_for(width, height, fps),
            ),
            Content::Screen => (
                UsageType::ScreenContentRealTime,
                Level::Level_4_0,
                screen_bitrate_for(width, height, fps),
            ),
        };
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(level)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(usage)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .skip_frames(false);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            encoder,
            size: (width, height),
            fps,
            content,
            started: Instant::now(),
        })
    }

    /// Encodes one frame to an Annex-B access unit; `keyframe` forces an IDR (with SPS and PPS).
    /// A frame of another size rebuilds the encoder for that size first. Returns the access unit
    /// and whether it is a keyframe; an empty unit means the encoder skipped the frame.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        keyframe: bool,
    ) -> Result<(Vec<u8>, bool), String> {
        if (frame.width, frame.height) != self.size {
            *self = Self::for_content(frame.width, frame.height, self.fps, self.content)?;
        }
        if keyframe {
            self.encoder.force_intra_frame();
        }
        let millis = frame
            .captured_at
            .saturating_duration_since(self.started)
            .as_millis() as u64;
        let stream = self
            .encoder
            .encode_at(frame, Timestamp::from_millis(millis))
            .map_err(|e| e.to_string())?;
        // The bitstream borrows the encoder and is not Send: copy it out at once.
        let idr = stream.frame_type() == FrameType::IDR;
        Ok((stream.to_vec(), idr))
    }
}

/// Decodes H.264 access units into a latest-frame slot as RGBA.
pub struct VideoDecoder {
    decoder: Decoder,
}

impl VideoDecoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            decoder: Decoder::new().map_err(|e| e.to_string())?,
        })
    }

    /// Decodes one access unit and publishes the picture. `Ok(false)` when the unit produced no
    /// picture yet; an error (corrupt data, a lost reference) means a keyframe is needed.
    pub fn decode(&mut self, access_unit: &[u8], slot: &mut SlotWriter) -> Result<bool, String> {
        let Some(picture) = self
            .decoder
            .decode(access_unit)
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let (w, h) = picture.dimensions();
        let (sy, su, sv) = picture.strides();
        let (width, height) = (w as u32, h as u32);
        slot.publish(width, height, None, |rgba| {
            i420_to_rgba(
                [picture.y(), picture.u(), picture.v()],
                [sy as u32, su as u32, sv as u32],
                width,
                height,
                rgba,
            );
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::FrameSlot;
    use crate::video::pattern::{FrameStamp, draw, read_rgba};

    #[test]
    fn the_pattern_survives_an_encode_decode_round_trip() {
        let mut encoder = VideoEncoder::new(320, 180, 30).unwrap();
        let mut decoder = VideoDecoder::new().unwrap();
        let slot = FrameSlot::new();
        let mut writer = slot.writer();
        for counter in 0..5 {
            let stamp = FrameStamp {
                source: 3,
                counter,
                micros: counter * 33_000,
            };
            let (au, idr) = encoder
                .encode(&draw(stamp, 320, 180), counter == 0)
                .unwrap();
            assert_eq!(idr, counter == 0);
            assert!(decoder.decode(&au, &mut writer).unwrap());
        }
        slot.read_if_new(0, |f| {
            assert_eq!((f.width, f.height), (320, 180));
            let stamp = read_rgba(&f.rgba, f.width, f.height).expect("a readable stamp");
            assert_eq!((stamp.source, stamp.counter), (3, 4));
        })
        .expect("a picture");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decoder = VideoDecoder::new().unwrap();
        let slot = FrameSlot::new();
        let mut writer = slot.writer();
        let mut junk = vec![0, 0, 0, 1, 0x65];
        junk.extend((0..500).map(|i| (i * 7) as u8));
        assert!(decoder.decode(&junk, &mut writer).is_err() || slot.sequence() == 0);
    }
}
