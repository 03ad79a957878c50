//! A clean microphone: echo cancellation, noise suppression and automatic gain (WebRTC's AEC3,
//! NS and AGC2, as the pure-Rust `sonora` port), with what the mixer plays as the far end.
//!
//! The speaker's callback copies each mixed block into a lock-free ring ([`Playout`] owns the
//! producer); the engine, before it encodes a microphone frame, feeds everything played since
//! the last frame to the echo canceller as render audio, then processes the frame in 10 ms
//! halves. AEC3 finds the delay between the two itself.
//!
//! [`Playout`]: super::Playout

use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::device::SAMPLE_RATE;

/// The processing block: 10 ms at 48 kHz.
pub const BLOCK: usize = 480;
/// Far-end samples the reference ring holds: one second.
pub const REFERENCE_CAPACITY: usize = SAMPLE_RATE as usize;
/// More far-end audio than this waiting (the microphone was closed while the speaker played)
/// is stale: all but the newest [`REFERENCE_KEEP`] samples are skipped.
const REFERENCE_STALE: usize = 10 * BLOCK;
const REFERENCE_KEEP: usize = 4 * BLOCK;

/// When the microphone path is processed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VoiceProcessing {
    /// On for hardware microphones (a room, loudspeakers), off for synthetic ones (files and
    /// tones that are already clean, and cost nothing in load tests).
    #[default]
    Auto,
    /// Always on.
    On,
    /// Always off.
    Off,
}

impl VoiceProcessing {
    /// Whether a microphone that is `synthetic` or not is processed.
    pub fn applies_to(self, synthetic: bool) -> bool {
        match self {
            Self::Auto => !synthetic,
            Self::On => true,
            Self::Off => false,
        }
    }
}

/// The echo canceller, noise suppressor and gain control of one microphone path.
pub struct VoiceProcessor {
    apm: AudioProcessing,
    render: [f32; BLOCK],
    out: [f32; BLOCK],
}

impl Default for VoiceProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl VoiceProcessor {
    /// AEC3, a high-pass filter, moderate noise suppression and adaptive digital gain, on
    /// 48 kHz mono.
    pub fn new() -> Self {
        let config = Config {
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: Some(EchoCanceller::default()),
            noise_suppression: Some(NoiseSuppression::default()),
            gain_controller2: Some(GainController2 {
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        Self {
            apm: AudioProcessing::builder()
                .config(config)
                .capture_config(stream)
                .render_config(stream)
                .build(),
            render: [0.0; BLOCK],
            out: [0.0; BLOCK],
        }
    }

    /// Feeds the far-end audio played since the last call, then processes a microphone frame
    /// (a whole number of [`BLOCK`]s) in place.
    pub fn process(&mut self, reference: &mut rtrb::Consumer<f32>, frame: &mut [f32]) {
        let waiting = reference.slots();
        if waiting > REFERENCE_STALE
            && let Ok(stale) = reference.read_chunk(waiting - REFERENCE_KEEP)
        {
            stale.commit_all();
        }
        while let Ok(chunk) = reference.read_chunk(BLOCK) {
            let (a, b) = chunk.as_slices();
            self.render[..a.len()].copy_from_slice(a);
            self.render[a.len()..].copy_from_slice(b);
            chunk.commit_all();
            if let Err(e) = self
                .apm
                .process_render_f32(&[&self.render], &mut [&mut self.out])
            {
                tracing::debug!("echo canceller render: {e:?}");
            }
        }
        for block in frame.chunks_exact_mut(BLOCK) {
            match self.apm.process_capture_f32(&[block], &mut [&mut self.out]) {
                Ok(()) => block.copy_from_slice(&self.out),
                Err(e) => tracing::debug!("echo canceller capture: {e:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: &mut u32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn energy(s: &[f32]) -> f32 {
        s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32
    }

    #[test]
    fn a_delayed_echo_of_the_far_end_is_cancelled() {
        let (mut producer, mut reference) = rtrb::RingBuffer::new(REFERENCE_CAPACITY);
        let mut processor = VoiceProcessor::new();
        let mut seed = 7;
        let far = noise(6 * SAMPLE_RATE as usize, &mut seed);
        // The microphone hears the far end 30 ms late, 6 dB down.
        let delay = 1440;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (i, block) in far.chunks(960).enumerate() {
            for &s in block {
                producer.push(s).unwrap();
            }
            let mut mic: Vec<f32> = (i * 960..(i + 1) * 960)
                .map(|t| {
                    if t >= delay {
                        0.5 * far[t - delay]
                    } else {
                        0.0
                    }
                })
                .collect();
            before.extend_from_slice(&mic);
            processor.process(&mut reference, &mut mic);
            after.extend_from_slice(&mic);
        }
        // After four seconds to converge, the echo is far down.
        let tail = 4 * SAMPLE_RATE as usize;
        let erle = 10.0 * (energy(&before[tail..]) / energy(&after[tail..]).max(1e-12)).log10();
        assert!(erle > 20.0, "echo return loss enhancement {erle:.1} dB");
    }
}
