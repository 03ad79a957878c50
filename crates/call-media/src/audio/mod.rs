//! Audio processing between devices and the wire: Opus encoding of microphone frames with their
//! RFC 6464 level, and the receive side's jitter buffers and mixer.

pub mod jitter;
mod playout;
pub mod processing;

pub use playout::{Gains, Playout};
pub use processing::{VoiceProcessing, VoiceProcessor};

use crate::device::FRAME_SAMPLES;

/// The RMS of a frame, 0 (silence) to 1 (full scale).
pub fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

/// The RFC 6464 level of a frame: 0 (loudest) to 127 (silence), in -dBov.
pub fn audio_level(samples: &[f32]) -> u8 {
    let mean_square = rms(samples).powi(2);
    if mean_square <= 0.0 {
        return 127;
    }
    let dbov = 10.0 * mean_square.log10();
    (-dbov).round().clamp(0.0, 127.0) as u8
}

/// How long each Opus frame of the microphone is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VoiceFrame {
    /// 20 ms: the usual voice frame, the fewest packets.
    #[default]
    Standard,
    /// 10 ms: half the framing delay for twice the packets, the low-latency voice of games.
    LowLatency,
}

impl VoiceFrame {
    /// Samples per frame at 48 kHz.
    pub fn samples(self) -> usize {
        match self {
            Self::Standard => FRAME_SAMPLES,
            Self::LowLatency => FRAME_SAMPLES / 2,
        }
    }
}

/// Levels quieter than this (-dBov) are not voice.
pub const VOICE_LEVEL: u8 = 50;

/// Encodes mono voice frames as Opus.
pub struct VoiceEncoder {
    encoder: opus::Encoder,
    out: Vec<u8>,
}

impl VoiceEncoder {
    /// An encoder at 48 kHz mono, 32 kbit/s, for `frame`s: 20 ms frames in Opus's voice mode
    /// with in-band FEC for 5% loss; 10 ms frames in its restricted low-delay mode (CELT only:
    /// about 4 ms less algorithmic delay than SILK, and no in-band FEC, which is SILK's).
    pub fn new(frame: VoiceFrame) -> Result<Self, opus::Error> {
        let application = match frame {
            VoiceFrame::Standard => opus::Application::Voip,
            VoiceFrame::LowLatency => opus::Application::LowDelay,
        };
        let mut encoder = opus::Encoder::new(
            crate::device::SAMPLE_RATE,
            opus::Channels::Mono,
            application,
        )?;
        encoder.set_bitrate(opus::Bitrate::Bits(32_000))?;
        encoder.set_inband_fec(true)?;
        encoder.set_packet_loss_perc(5)?;
        Ok(Self {
            encoder,
            out: vec![0; 1500],
        })
    }

    /// Encodes one frame: 10 or 20 ms ([`VoiceFrame`]).
    pub fn encode(&mut self, frame: &[f32]) -> Result<&[u8], opus::Error> {
        let n = self.encoder.encode_float(frame, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_rfc6464() {
        assert_eq!(audio_level(&[0.0; 960]), 127);
        assert_eq!(audio_level(&[1.0; 960]), 0);
        assert_eq!(audio_level(&[0.1; 960]), 20);
    }
}
