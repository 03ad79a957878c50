//! Sample-rate conversion with [`rubato`], for hardware that cannot run at 48 kHz and for WAV
//! files at other rates. All of it is band-limited sinc interpolation (rubato's `Async`
//! resampler) with a short filter: 64 taps delay a stream by well under a millisecond.
//!
//! The stream converters allocate their buffers when made; converting never allocates, so
//! [`ToDevice`] runs inside a speaker's realtime callback. Each works in chunks of 2.5 ms on
//! the device side, which is all the delay their buffering adds.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};

use super::{FRAME_SAMPLES, PlayoutSource, SAMPLE_RATE};

/// Taps of the interpolation filter.
const SINC_LEN: usize = 64;

/// Device-side frames per chunk at `rate`: 2.5 ms.
fn chunk(rate: u32) -> usize {
    (rate as usize / 400).max(16)
}

/// A mono sinc resampler from `from` to `to` Hz with `chunk` frames on its `fixed` side.
fn sinc(from: u32, to: u32, chunk: usize, fixed: FixedAsync) -> Result<Async<f32>, String> {
    if from == 0 || to == 0 {
        return Err(format!("cannot resample from {from} Hz to {to} Hz"));
    }
    let parameters = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2);
    Async::new_sinc(to as f64 / from as f64, 1.0, &parameters, chunk, 1, fixed)
        .map_err(|e| format!("resampling {from} Hz to {to} Hz: {e}"))
}

/// Converts a whole mono clip at `rate` to [`SAMPLE_RATE`], keeping its duration.
pub(super) fn clip(samples: Vec<f32>, rate: u32) -> Result<Vec<f32>, String> {
    if rate == SAMPLE_RATE {
        return Ok(samples);
    }
    let mut resampler = sinc(rate, SAMPLE_RATE, 1024, FixedAsync::Input)?;
    let input = InterleavedSlice::new(&samples, 1, samples.len()).map_err(|e| e.to_string())?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| format!("resampling {rate} Hz: {e}"))?;
    Ok(output.take_data())
}

/// Converts a captured stream at the device's rate to [`SAMPLE_RATE`], on the non-realtime side
/// of a microphone.
pub(super) struct ToEngine {
    resampler: Async<f32>,
    input: Vec<f32>,
    filled: usize,
    output: Vec<f32>,
}

impl ToEngine {
    /// A converter from `rate` Hz.
    pub(super) fn new(rate: u32) -> Result<Self, String> {
        let resampler = sinc(rate, SAMPLE_RATE, chunk(rate), FixedAsync::Input)?;
        Ok(Self {
            input: vec![0.0; resampler.input_frames_max()],
            filled: 0,
            output: vec![0.0; resampler.output_frames_max()],
            resampler,
        })
    }

    /// Converts `samples`, handing each converted piece to `out` as soon as a chunk is full;
    /// stops and returns false when `out` does.
    pub(super) fn push(
        &mut self,
        mut samples: &[f32],
        mut out: impl FnMut(&[f32]) -> bool,
    ) -> bool {
        while !samples.is_empty() {
            let needed = self.resampler.input_frames_next().min(self.input.len());
            let take = (needed - self.filled).min(samples.len());
            self.input[self.filled..][..take].copy_from_slice(&samples[..take]);
            self.filled += take;
            samples = &samples[take..];
            if self.filled < needed {
                break;
            }
            self.filled = 0;
            match convert(&mut self.resampler, &self.input[..needed], &mut self.output) {
                Some(written) => {
                    if !out(&self.output[..written]) {
                        return false;
                    }
                }
                None => tracing::warn!("resampling a microphone chunk failed"),
            }
        }
        true
    }
}

/// Converts a [`PlayoutSource`] at [`SAMPLE_RATE`] to the device's rate, inside a speaker's
/// callback: it pulls from the source a chunk at a time, as the device asks.
pub(super) struct ToDevice {
    resampler: Async<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
    /// The converted samples in `output` not yet played.
    ready: std::ops::Range<usize>,
}

impl ToDevice {
    /// A converter to `rate` Hz.
    pub(super) fn new(rate: u32) -> Result<Self, String> {
        let resampler = sinc(SAMPLE_RATE, rate, chunk(rate), FixedAsync::Output)?;
        if resampler.input_frames_max() > FRAME_SAMPLES {
            return Err(format!("{rate} Hz needs too large a chunk"));
        }
        Ok(Self {
            input: vec![0.0; resampler.input_frames_max()],
            output: vec![0.0; resampler.output_frames_max()],
            ready: 0..0,
            resampler,
        })
    }

    /// Fills `out` at the device's rate from `source`. Never allocates.
    pub(super) fn fill(&mut self, out: &mut [f32], source: &dyn PlayoutSource) {
        let mut done = 0;
        while done < out.len() {
            if self.ready.is_empty() {
                let needed = self.resampler.input_frames_next().min(self.input.len());
                source.fill(&mut self.input[..needed]);
                match convert(&mut self.resampler, &self.input[..needed], &mut self.output) {
                    Some(written) if written > 0 => self.ready = 0..written,
                    // Cannot happen with buffers sized by the resampler; play silence if it
                    // does rather than spin.
                    _ => {
                        out[done..].fill(0.0);
                        return;
                    }
                }
            }
            let n = self.ready.len().min(out.len() - done);
            out[done..][..n].copy_from_slice(&self.output[self.ready.start..][..n]);
            self.ready.start += n;
            done += n;
        }
    }
}

/// One chunk through the resampler; the number of samples written, or none on an error.
fn convert(resampler: &mut Async<f32>, input: &[f32], output: &mut [f32]) -> Option<usize> {
    let frames_out = output.len();
    let input = InterleavedSlice::new(input, 1, input.len()).ok()?;
    let mut output = InterleavedSlice::new_mut(output, 1, frames_out).ok()?;
    let (_, written) = resampler
        .process_into_buffer(&input, &mut output, None)
        .ok()?;
    Some(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    /// The frequency of a tone, by counting zero crossings past its first 10 ms.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let tail = &samples[rate as usize / 100..];
        let crossings = tail
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (tail.len() as f32 / rate as f32)
    }

    #[test]
    fn a_clip_keeps_its_frequency_and_duration() {
        let out = clip(tone(1000.0, 44_100, 44_100), 44_100).unwrap();
        assert!(out.len().abs_diff(48_000) <= 1, "{} samples", out.len());
        let hz = frequency(&out, SAMPLE_RATE);
        assert!((hz - 1000.0).abs() < 2.0, "{hz} Hz");
        let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.02, "RMS {rms}");
    }

    #[test]
    fn a_44_1_khz_capture_stream_becomes_48_khz() {
        let mut to_engine = ToEngine::new(44_100).unwrap();
        let mut out = Vec::new();
        // One second in 10 ms device periods.
        for period in tone(1000.0, 44_100, 44_100).chunks(441) {
            assert!(to_engine.push(period, |s| {
                out.extend_from_slice(s);
                true
            }));
        }
        // All but the last part-filled chunk (2.5 ms) has come out.
        assert!(
            out.len() <= 48_000 && out.len() >= 48_000 - 2 * chunk(SAMPLE_RATE),
            "{} samples",
            out.len()
        );
        let hz = frequency(&out, SAMPLE_RATE);
        assert!((hz - 1000.0).abs() < 2.0, "{hz} Hz");
    }

    /// A 48 kHz tone, counting the samples pulled.
    struct Tone(std::sync::Mutex<usize>);

    impl PlayoutSource for Tone {
        fn fill(&self, out: &mut [f32]) {
            let mut n = self.0.lock().unwrap();
            for s in out {
                *s = 0.5 * (std::f32::consts::TAU * 1000.0 * *n as f32 / 48_000.0).sin();
                *n += 1;
            }
        }
    }

    #[test]
    fn a_48_khz_source_plays_on_a_44_1_khz_speaker() {
        let mut to_device = ToDevice::new(44_100).unwrap();
        let source = Tone(Default::default());
        let mut out = vec![0.0; 44_100];
        // One second in device periods of 512 frames.
        for period in out.chunks_mut(512) {
            to_device.fill(period, &source);
        }
        let pulled = *source.0.lock().unwrap();
        assert!(
            pulled.abs_diff(48_000) <= 2 * chunk(SAMPLE_RATE),
            "pulled {pulled} samples for a second"
        );
        let hz = frequency(&out, 44_100);
        assert!((hz - 1000.0).abs() < 2.0, "{hz} Hz");
    }
}
