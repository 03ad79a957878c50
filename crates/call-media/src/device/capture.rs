//! The non-realtime half of a hardware microphone. Its cpal callback only mixes each period
//! down to mono and copies it into a lock-free ring ([`rtrb`]), then unparks the reader: this
//! module's loop, on the stream's own thread, which cuts the ring's samples into
//! [`AudioFrame`]s (20 ms, or the size asked for) for the engine, resampling them to 48 kHz first when the device runs at
//! another rate.

use std::time::{Duration, Instant};

use super::resample::ToEngine;
use super::{AudioFrame, FRAME_SAMPLES, SAMPLE_RATE, StopSignal};

/// The longest the reader sleeps between periods when the callback does not wake it.
const FRAME: Duration = Duration::from_millis(20);

/// How many samples at `rate` the ring between the callback and the reader holds: 200 ms, ten
/// frames, so a reader delayed by the scheduler loses nothing. When it is full the callback
/// drops the newest samples.
pub(super) fn ring_capacity(rate: u32) -> usize {
    (rate as usize / 5).max(FRAME_SAMPLES)
}

/// How long `samples` at 48 kHz last.
fn duration(samples: usize) -> Duration {
    Duration::from_secs_f64(samples as f64 / SAMPLE_RATE as f64)
}

/// Cuts mono samples into frames and hands them to the engine.
struct Frames {
    /// Samples per frame.
    size: usize,
    pending: Vec<f32>,
    out: tokio::sync::mpsc::Sender<AudioFrame>,
}

impl Frames {
    /// Adds samples captured up to about now; false once the engine closed the channel.
    fn push(&mut self, mut samples: &[f32]) -> bool {
        while !samples.is_empty() {
            let take = (self.size - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() == self.size {
                // The samples after this frame were captured after its last one.
                let later = Duration::from_secs_f64(samples.len() as f64 / SAMPLE_RATE as f64);
                let frame = AudioFrame {
                    samples: std::mem::replace(&mut self.pending, Vec::with_capacity(self.size)),
                    captured_at: Instant::now()
                        .checked_sub(later + duration(self.size))
                        .unwrap_or_else(Instant::now),
                };
                // A full queue means the engine is behind: drop this frame, never block.
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                    self.out.try_send(frame)
                {
                    return false;
                }
            }
        }
        true
    }
}

/// Reads what the callback writes into `ring` (through `resampler` when the device is not at
/// 48 kHz) until the device is stopped or the engine stops listening. The callback unparks this thread after each period; the timeout is a fallback.
pub(super) fn read(
    mut ring: rtrb::Consumer<f32>,
    mut resampler: Option<ToEngine>,
    out: tokio::sync::mpsc::Sender<AudioFrame>,
    stop: StopSignal,
    size: usize,
) {
    let mut frames = Frames {
        size,
        pending: Vec::with_capacity(size),
        out,
    };
    let mut deliver = |samples: &[f32]| match &mut resampler {
        Some(resampler) => resampler.push(samples, |s| frames.push(s)),
        None => frames.push(samples),
    };
    while !stop.stopped() {
        if let Ok(chunk) = ring.read_chunk(ring.slots()) {
            let (first, second) = chunk.as_slices();
            let open = deliver(first) && deliver(second);
            chunk.commit_all();
            if !open {
                return;
            }
        }
        std::thread::park_timeout(FRAME);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_cut_into_frames_across_pushes() {
        let (out, mut frames) = tokio::sync::mpsc::channel(8);
        let mut cutter = Frames {
            size: FRAME_SAMPLES,
            pending: Vec::new(),
            out,
        };
        let samples: Vec<f32> = (0..2 * FRAME_SAMPLES + 100).map(|i| i as f32).collect();
        for period in samples.chunks(441) {
            assert!(cutter.push(period));
        }
        let first = frames.try_recv().unwrap();
        let second = frames.try_recv().unwrap();
        assert!(frames.try_recv().is_err(), "100 samples stay pending");
        assert_eq!(first.samples, samples[..FRAME_SAMPLES]);
        assert_eq!(second.samples, samples[FRAME_SAMPLES..2 * FRAME_SAMPLES]);
        assert!(first.captured_at < second.captured_at);
        drop(frames);
        assert!(
            !cutter.push(&samples[..FRAME_SAMPLES]),
            "the engine stopped listening"
        );
    }
}
