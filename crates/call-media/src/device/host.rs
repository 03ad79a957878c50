//! Hardware audio through cpal (cameras are not cpal's: none are listed here). Each open stream
//! lives on a thread of its own (cpal streams are not `Send` on every platform); that thread
//! holds it until the device is dropped, and for a microphone also cuts its frames.
//!
//! The callbacks are realtime: they never allocate and never take a lock. The microphone's
//! writes into a lock-free ring; the speaker's pulls from its [`PlayoutSource`] into a buffer
//! allocated before the stream starts.

use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfigRange};

use super::resample::{ToDevice, ToEngine};
use super::{
    AudioFrame, DeviceError, DeviceId, DeviceInfo, DeviceKind, FRAME_SAMPLES, PlayoutSource,
    Running, SAMPLE_RATE, StopSignal, capture,
};

const PREFIX: &str = "cpal:";
/// Devices not listed: ALSA's `null` PCM discards and invents samples as fast as it is asked,
/// with no clock, so a stream on it spins its thread at full speed (measured: two such threads
/// took most of two cores from a call) and nobody hears or speaks through it.
const UNPACED: &[&str] = &["alsa:null"];

fn devices(kind: DeviceKind) -> Vec<cpal::Device> {
    let host = cpal::default_host();
    let found = match kind {
        DeviceKind::Microphone => host.input_devices(),
        DeviceKind::Speaker => host.output_devices(),
        DeviceKind::Camera | DeviceKind::Screen => return Vec::new(),
    };
    found.map(|d| d.collect()).unwrap_or_default()
}

/// The id the system's default device of `kind` has.
fn default_id(kind: DeviceKind) -> Option<String> {
    let host = cpal::default_host();
    let device = match kind {
        DeviceKind::Microphone => host.default_input_device(),
        DeviceKind::Speaker => host.default_output_device(),
        DeviceKind::Camera | DeviceKind::Screen => None,
    };
    Some(device?.id().ok()?.to_string())
}

/// The hardware devices of `kind`, the system's default marked; none when the host has no
/// audio system.
pub(super) fn list(kind: DeviceKind) -> Vec<DeviceInfo> {
    let default = default_id(kind);
    devices(kind)
        .into_iter()
        .filter_map(|d| {
            let id = d.id().ok()?.to_string();
            if UNPACED.contains(&id.as_str()) {
                return None;
            }
            let name = d
                .description()
                .map(|n| n.name().to_owned())
                .unwrap_or_else(|_| id.clone());
            Some(DeviceInfo {
                is_default: default.as_ref() == Some(&id),
                id: DeviceId(format!("{PREFIX}{id}")),
                name,
                kind,
                is_synthetic: false,
                facing: None,
                application: None,
            })
        })
        .collect()
}

fn find(id: &DeviceId, kind: DeviceKind) -> Result<cpal::Device, DeviceError> {
    let wanted =
        id.0.strip_prefix(PREFIX)
            .ok_or_else(|| DeviceError::NotFound(id.clone()))?;
    devices(kind)
        .into_iter()
        .find(|d| d.id().is_ok_and(|i| i.to_string() == wanted))
        .ok_or_else(|| DeviceError::NotFound(id.clone()))
}

/// The config nearest 48 kHz in f32 or i16: 48 kHz itself when offered (no resampling), else
/// the supported rate closest to it, which the stream resamples. f32 and fewer channels first.
fn pick(
    id: &DeviceId,
    configs: Vec<SupportedStreamConfigRange>,
) -> Result<(StreamConfig, SampleFormat), DeviceError> {
    configs
        .into_iter()
        .filter(|c| matches!(c.sample_format(), SampleFormat::F32 | SampleFormat::I16))
        .filter_map(|c| {
            let rate = SAMPLE_RATE
                .max(c.min_sample_rate())
                .min(c.max_sample_rate());
            let format = c.sample_format();
            let channels = c.channels();
            // A range the device got backwards yields nothing rather than a panic.
            let config = c.try_with_sample_rate(rate).filter(|_| rate > 0)?;
            Some((config.config(), format, channels))
        })
        .min_by_key(|(config, format, channels)| {
            (
                config.sample_rate.abs_diff(SAMPLE_RATE),
                *format != SampleFormat::F32,
                *channels,
            )
        })
        .map(|(config, format, _)| (config, format))
        .ok_or_else(|| DeviceError::Open {
            id: id.clone(),
            reason: "the device offers no f32 or i16 format".into(),
        })
}

/// Runs `build` on a device thread and, once the stream it makes plays, `then` on that thread
/// until the device is stopped. Reports whether the stream started.
fn run_stream<Then: FnOnce(StopSignal)>(
    id: &DeviceId,
    build: impl FnOnce() -> Result<(cpal::Stream, Then), String> + Send + 'static,
) -> Result<Running, DeviceError> {
    let (started_tx, started) = std::sync::mpsc::channel();
    let running = Running::spawn("cpal-stream", move |stop| {
        let (stream, then) = match build()
            .and_then(|(s, then)| s.play().map(|_| (s, then)).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        let _ = started_tx.send(Ok(()));
        then(stop);
        drop(stream);
    })
    .map_err(|reason| DeviceError::Open {
        id: id.clone(),
        reason,
    })?;
    match started.recv() {
        Ok(Ok(())) => Ok(running),
        Ok(Err(reason)) => Err(DeviceError::Open {
            id: id.clone(),
            reason,
        }),
        Err(_) => Err(DeviceError::Open {
            id: id.clone(),
            reason: "the device thread ended before the stream started".into(),
        }),
    }
}

/// Opens a hardware microphone. Its callback mixes to mono into a ring; the stream's thread
/// resamples the ring to 48 kHz if needed and cuts it into 20 ms frames ([`capture`]).
pub(super) fn open_microphone(
    id: &DeviceId,
    frames: tokio::sync::mpsc::Sender<AudioFrame>,
    frame: usize,
) -> Result<Running, DeviceError> {
    let device = find(id, DeviceKind::Microphone)?;
    let configs = device
        .supported_input_configs()
        .map_err(|e| DeviceError::Open {
            id: id.clone(),
            reason: e.to_string(),
        })?
        .collect();
    let (config, format) = pick(id, configs)?;
    let label = id.clone();
    run_stream(id, move || {
        let rate = config.sample_rate;
        let resampler = match rate {
            SAMPLE_RATE => None,
            _ => Some(ToEngine::new(rate)?),
        };
        let (ring, samples) = rtrb::RingBuffer::new(capture::ring_capacity(rate));
        let reader = std::thread::current();
        let stream = match format {
            SampleFormat::I16 => input_stream::<i16>(&device, &config, ring, reader, label),
            _ => input_stream::<f32>(&device, &config, ring, reader, label),
        }?;
        Ok((stream, move |stop| {
            capture::read(samples, resampler, frames, stop, frame)
        }))
    })
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut ring: rtrb::Producer<f32>,
    reader: std::thread::Thread,
    label: DeviceId,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = config.channels.max(1) as usize;
    device
        .build_input_stream::<T, _, _>(
            config,
            move |data: &[T], _| {
                // Realtime: no allocation, no lock. A full ring (the reader is behind) drops
                // the newest samples.
                let mono = data.chunks(channels).map(|chunk| {
                    chunk.iter().map(|&s| s.to_sample::<f32>()).sum::<f32>() / channels as f32
                });
                let n = mono.len().min(ring.slots());
                if let Ok(chunk) = ring.write_chunk_uninit(n) {
                    chunk.fill_from_iter(mono);
                }
                reader.unpark();
            },
            move |e| tracing::warn!("microphone {label}: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}

/// Opens a hardware speaker. Its callback pulls stereo at 48 kHz for a device with two or more
/// channels at that rate, otherwise mono (resampled to the device's rate in place when it is
/// not 48 kHz) copied to every channel.
pub(super) fn open_speaker(
    id: &DeviceId,
    source: Arc<dyn PlayoutSource>,
) -> Result<Running, DeviceError> {
    let device = find(id, DeviceKind::Speaker)?;
    let configs = device
        .supported_output_configs()
        .map_err(|e| DeviceError::Open {
            id: id.clone(),
            reason: e.to_string(),
        })?
        .collect();
    let (config, format) = pick(id, configs)?;
    let label = id.clone();
    run_stream(id, move || {
        let resampler = match config.sample_rate {
            SAMPLE_RATE => None,
            rate => Some(ToDevice::new(rate)?),
        };
        let stream = match format {
            SampleFormat::I16 => output_stream::<i16>(&device, &config, source, resampler, label),
            _ => output_stream::<f32>(&device, &config, source, resampler, label),
        }?;
        Ok((stream, |stop: StopSignal| stop.wait()))
    })
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    source: Arc<dyn PlayoutSource>,
    mut resampler: Option<ToDevice>,
    label: DeviceId,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = config.channels.max(1) as usize;
    // Allocated here, before the stream runs: the callback pulls a frame at most at a time.
    let mut mono = vec![0.0; FRAME_SAMPLES];
    let mut stereo = vec![0.0; 2 * FRAME_SAMPLES];
    device
        .build_output_stream::<T, _, _>(
            config,
            move |data: &mut [T], _| {
                for block in data.chunks_mut(channels * FRAME_SAMPLES) {
                    let frames = block.len() / channels;
                    match &mut resampler {
                        // Two channels at 48 kHz: left and right as the mixer placed them, the
                        // average on any further channel.
                        None if channels >= 2 => {
                            let pairs = &mut stereo[..2 * frames];
                            source.fill_stereo(pairs);
                            for (chunk, pair) in block.chunks_mut(channels).zip(pairs.chunks(2)) {
                                chunk.fill(T::from_sample((pair[0] + pair[1]) / 2.0));
                                chunk[0] = T::from_sample(pair[0]);
                                chunk[1] = T::from_sample(pair[1]);
                            }
                            continue;
                        }
                        // Resampled devices play the mono mix.
                        Some(resampler) => resampler.fill(&mut mono[..frames], &*source),
                        None => source.fill(&mut mono[..frames]),
                    }
                    for (chunk, &s) in block.chunks_mut(channels).zip(mono.iter()) {
                        chunk.fill(T::from_sample(s));
                    }
                }
            },
            move |e| tracing::warn!("speaker {label}: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    fn range(
        channels: u16,
        min: u32,
        max: u32,
        format: SampleFormat,
    ) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(channels, min, max, SupportedBufferSize::Unknown, format)
    }

    #[test]
    fn a_device_without_48_khz_opens_at_its_nearest_rate() {
        let id = DeviceId("cpal:test".into());
        let (config, format) = pick(
            &id,
            vec![
                range(2, 8_000, 22_050, SampleFormat::F32),
                range(2, 44_100, 44_100, SampleFormat::I16),
                range(1, 96_000, 192_000, SampleFormat::F32),
            ],
        )
        .unwrap();
        assert_eq!((config.sample_rate, format), (44_100, SampleFormat::I16));

        let (config, format) = pick(
            &id,
            vec![
                range(2, 44_100, 48_000, SampleFormat::I16),
                range(2, 44_100, 96_000, SampleFormat::F32),
                range(1, 8_000, 48_000, SampleFormat::F32),
            ],
        )
        .unwrap();
        assert_eq!(
            (config.sample_rate, config.channels, format),
            (48_000, 1, SampleFormat::F32)
        );

        assert!(matches!(
            pick(&id, vec![range(2, 48_000, 44_100, SampleFormat::F32)]),
            Err(DeviceError::Open { .. })
        ));
        assert!(matches!(
            pick(&id, vec![range(2, 48_000, 48_000, SampleFormat::U8)]),
            Err(DeviceError::Open { .. })
        ));
    }
}
