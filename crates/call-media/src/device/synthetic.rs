//! Synthetic devices for machines without audio hardware: microphones that play samples (from a
//! WAV file, a buffer, or a tone) in real time, and a speaker that records what it plays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AudioFrame, FRAME_SAMPLES, PlayoutSource, Running, SAMPLE_RATE, resample};

/// How often the recording speaker pulls audio: 10 ms, a typical device period.
const PLAYOUT_PERIOD: Duration = Duration::from_millis(10);
/// Samples pulled per [`PLAYOUT_PERIOD`].
const PLAYOUT_SAMPLES: usize = FRAME_SAMPLES / 2;

/// When a synthetic microphone captured its first sample; sample `i` was captured
/// `i / 48000` seconds later.
#[derive(Clone, Debug, Default)]
pub struct CaptureClock(Arc<Mutex<Option<Instant>>>);

impl CaptureClock {
    /// When sample 0 was captured, once the microphone has opened.
    pub fn started_at(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }
}

#[derive(Debug, Default)]
struct RecordingData {
    started_at: Option<Instant>,
    samples: Vec<f32>,
    /// The same, as the stereo pairs the source gave (left, right interleaved).
    stereo: Vec<f32>,
}

/// What a recording speaker played, shared with whoever added it. Sample `i` was played
/// `i / 48000` seconds after [`Recording::started_at`].
#[derive(Clone, Debug)]
pub struct Recording {
    data: Arc<Mutex<RecordingData>>,
    wav: Option<PathBuf>,
}

impl Recording {
    pub(super) fn new(wav: Option<PathBuf>) -> Self {
        Self {
            data: Arc::new(Mutex::new(RecordingData::default())),
            wav,
        }
    }

    fn data(&self) -> std::sync::MutexGuard<'_, RecordingData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything played so far, mono at 48 kHz.
    pub fn samples(&self) -> Vec<f32> {
        self.data().samples.clone()
    }

    /// How many samples have been played.
    pub fn len(&self) -> usize {
        self.data().samples.len()
    }

    /// True before anything was played.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples played from index `from` on.
    pub fn samples_from(&self, from: usize) -> Vec<f32> {
        let data = self.data();
        data.samples.get(from..).unwrap_or_default().to_vec()
    }

    /// The left and the right channel from sample `from` on: voices the mixer placed are
    /// panned between them; `samples` is their average.
    pub fn channels_from(&self, from: usize) -> (Vec<f32>, Vec<f32>) {
        let data = self.data();
        let pairs = data.stereo.get(2 * from..).unwrap_or_default();
        pairs.chunks(2).map(|p| (p[0], p[1])).unzip()
    }

    /// When the speaker played sample 0.
    pub fn started_at(&self) -> Option<Instant> {
        self.data().started_at
    }

    fn write_wav(&self, path: &Path) -> Result<(), hound::Error> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec)?;
        for &s in &self.data().samples {
            writer.write_sample((s.clamp(-1.0, 1.0) * i16::MAX as f32) as i16)?;
        }
        writer.finalize()
    }
}

/// An opened WAV file whose header parsed; its samples are read later, on the device's thread.
pub(super) struct WavFile {
    reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
    path: PathBuf,
}

/// Opens a WAV file and parses its header: cheap, so a missing or malformed file is an open
/// error while the samples are read on the microphone's own thread.
pub(super) fn open_wav(path: &Path) -> Result<WavFile, String> {
    let reader = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(WavFile {
        reader,
        path: path.to_owned(),
    })
}

impl WavFile {
    /// Reads every sample as mono 48 kHz, mixing channels down and resampling with
    /// [`resample::clip`].
    pub(super) fn read(self) -> Result<Vec<f32>, String> {
        let Self { mut reader, path } = self;
        let spec = reader.spec();
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
            hound::SampleFormat::Int => {
                let bits = spec.bits_per_sample.clamp(1, 32) - 1;
                let scale = 1.0 / (1u64 << bits) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
            }
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let channels = spec.channels.max(1) as usize;
        let mono: Vec<f32> = interleaved
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / channels as f32)
            .collect();
        if mono.is_empty() {
            return Err(format!("{}: no samples", path.display()));
        }
        resample::clip(mono, spec.sample_rate).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A whole number of periods of a sine tone, to loop without a click.
pub(super) fn tone(hz: f32, amplitude: f32) -> Arc<[f32]> {
    let periods = 50.0_f32;
    let len = (SAMPLE_RATE as f32 * periods / hz.max(1.0))
        .round()
        .max(1.0) as usize;
    let step = std::f32::consts::TAU * periods / len as f32;
    (0..len)
        .map(|i| amplitude * (step * i as f32).sin())
        .collect()
}

/// Plays the samples `load` gives as captured audio, a frame of `frame_samples` every frame
/// period on absolute
/// deadlines. `load` runs on the microphone's own thread, so reading a file never holds up the
/// opener; if it fails, the stream ends at once (the frame channel closes).
pub(super) fn spawn_microphone(
    load: impl FnOnce() -> Result<Arc<[f32]>, String> + Send + 'static,
    looped: bool,
    clock: CaptureClock,
    frames: tokio::sync::mpsc::Sender<AudioFrame>,
    frame_samples: usize,
) -> Result<Running, String> {
    let period = Duration::from_secs_f64(frame_samples as f64 / SAMPLE_RATE as f64);
    Running::spawn("synthetic-mic", move |stop| {
        let samples = match load() {
            Ok(samples) => samples,
            Err(e) => {
                tracing::warn!("microphone ends: {e}");
                return;
            }
        };
        let start = Instant::now();
        clock.start(start);
        for n in 0u32.. {
            if !stop.sleep_until(start + period * (n + 1)) {
                break;
            }
            let first = n as usize * frame_samples;
            let frame = (first..first + frame_samples)
                .map(|i| match looped {
                    true => samples
                        .get(i % samples.len().max(1))
                        .copied()
                        .unwrap_or(0.0),
                    false => samples.get(i).copied().unwrap_or(0.0),
                })
                .collect();
            let frame = AudioFrame {
                samples: frame,
                captured_at: start + period * n,
            };
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = frames.try_send(frame) {
                break;
            }
        }
    })
}

/// Pulls 10 ms of audio from `source` every 10 ms on absolute deadlines and records it.
pub(super) fn spawn_speaker(
    recording: Recording,
    source: Arc<dyn PlayoutSource>,
) -> Result<Running, String> {
    Running::spawn("synthetic-speaker", move |stop| {
        let start = Instant::now();
        {
            let mut data = recording.data();
            data.started_at = Some(start);
            data.samples.clear();
            data.stereo.clear();
        }
        let mut frame = vec![0.0f32; 2 * PLAYOUT_SAMPLES];
        for m in 0u32.. {
            if !stop.sleep_until(start + PLAYOUT_PERIOD * m) {
                break;
            }
            source.fill_stereo(&mut frame);
            let mut data = recording.data();
            data.stereo.extend_from_slice(&frame);
            data.samples
                .extend(frame.chunks(2).map(|pair| (pair[0] + pair[1]) / 2.0));
        }
        if let Some(path) = &recording.wav
            && let Err(e) = recording.write_wav(path)
        {
            tracing::warn!("could not write {}: {e}", path.display());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_44_1_khz_stereo_wav_reads_as_48_khz_mono() {
        let path =
            std::env::temp_dir().join(format!("bevy_calling_wav_{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..44_100 {
            let s = 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / 44_100.0).sin();
            let s = (s * i16::MAX as f32) as i16;
            writer.write_sample(s).unwrap();
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        let samples = open_wav(&path).unwrap().read().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            samples.len().abs_diff(48_000) <= 1,
            "{} samples",
            samples.len()
        );
        let crossings = samples[480..]
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let hz = crossings as f32 / 2.0 / ((samples.len() - 480) as f32 / 48_000.0);
        assert!((hz - 440.0).abs() < 2.0, "{hz} Hz");
    }

    #[test]
    fn tone_loops_whole_periods() {
        let t = tone(400.0, 0.5);
        assert_eq!(t.len(), 6000);
        assert!(t[0].abs() < 1e-6);
        let peak = t.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.01);
    }
}
