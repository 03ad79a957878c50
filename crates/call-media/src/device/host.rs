//! Hardware audio through cpal (cameras are not cpal's: none are listed here). Each open stream lives on a thread of its own (cpal streams are
//! not `Send` on every platform); that thread holds it until the device is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfigRange};

use super::{
    AudioFrame, DeviceError, DeviceId, DeviceInfo, DeviceKind, FRAME_SAMPLES, PlayoutSource,
    Running, SAMPLE_RATE,
};

const PREFIX: &str = "cpal:";

fn devices(kind: DeviceKind) -> Vec<cpal::Device> {
    let host = cpal::default_host();
    let found = match kind {
        DeviceKind::Microphone => host.input_devices(),
        DeviceKind::Speaker => host.output_devices(),
        DeviceKind::Camera => return Vec::new(),
    };
    found.map(|d| d.collect()).unwrap_or_default()
}

/// The hardware devices of `kind`; none when the host has no audio system.
pub(super) fn list(kind: DeviceKind) -> Vec<DeviceInfo> {
    devices(kind)
        .into_iter()
        .filter_map(|d| {
            let id = d.id().ok()?.to_string();
            let name = d
                .description()
                .map(|n| n.name().to_owned())
                .unwrap_or_else(|_| id.clone());
            Some(DeviceInfo {
                id: DeviceId(format!("{PREFIX}{id}")),
                name,
                kind,
                is_synthetic: false,
                facing: None,
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

/// A 48 kHz config in f32 or i16, preferring f32 and fewer channels.
fn pick(
    id: &DeviceId,
    configs: Vec<SupportedStreamConfigRange>,
) -> Result<(StreamConfig, SampleFormat), DeviceError> {
    configs
        .into_iter()
        .filter(|c| matches!(c.sample_format(), SampleFormat::F32 | SampleFormat::I16))
        .filter(|c| (c.min_sample_rate()..=c.max_sample_rate()).contains(&SAMPLE_RATE))
        .min_by_key(|c| (c.sample_format() != SampleFormat::F32, c.channels()))
        .map(|c| {
            let format = c.sample_format();
            (c.with_sample_rate(SAMPLE_RATE).config(), format)
        })
        .ok_or_else(|| DeviceError::Open {
            id: id.clone(),
            reason: "the device offers no 48 kHz f32 or i16 format".into(),
        })
}

/// Runs `build` on a device thread, keeps the stream it makes playing until stopped, and
/// reports whether it started.
fn run_stream(
    id: &DeviceId,
    build: impl FnOnce() -> Result<cpal::Stream, String> + Send + 'static,
) -> Result<Running, DeviceError> {
    let (started_tx, started) = std::sync::mpsc::channel();
    let running = Running::spawn("cpal-stream", move |stop| {
        let stream = match build().and_then(|s| s.play().map(|_| s).map_err(|e| e.to_string())) {
            Ok(s) => s,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        let _ = started_tx.send(Ok(()));
        stop.wait();
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

/// Opens a hardware microphone; its callback cuts the input into 20 ms mono frames.
pub(super) fn open_microphone(
    id: &DeviceId,
    frames: tokio::sync::mpsc::Sender<AudioFrame>,
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
    run_stream(id, move || match format {
        SampleFormat::I16 => input_stream::<i16>(&device, &config, frames, label),
        _ => input_stream::<f32>(&device, &config, frames, label),
    })
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    frames: tokio::sync::mpsc::Sender<AudioFrame>,
    label: DeviceId,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = config.channels.max(1) as usize;
    let mut pending: Vec<f32> = Vec::with_capacity(FRAME_SAMPLES);
    device
        .build_input_stream::<T, _, _>(
            config,
            move |data: &[T], _| {
                for chunk in data.chunks(channels) {
                    let mono =
                        chunk.iter().map(|&s| s.to_sample::<f32>()).sum::<f32>() / channels as f32;
                    pending.push(mono);
                    if pending.len() == FRAME_SAMPLES {
                        let frame = AudioFrame {
                            samples: std::mem::replace(
                                &mut pending,
                                Vec::with_capacity(FRAME_SAMPLES),
                            ),
                            captured_at: Instant::now() - Duration::from_millis(20),
                        };
                        // A full queue means the engine is behind: drop this frame, never block.
                        let _ = frames.try_send(frame);
                    }
                }
            },
            move |e| tracing::warn!("microphone {label}: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}

/// Opens a hardware speaker; its callback pulls mono audio and copies it to every channel.
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
    run_stream(id, move || match format {
        SampleFormat::I16 => output_stream::<i16>(&device, &config, source, label),
        _ => output_stream::<f32>(&device, &config, source, label),
    })
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    source: Arc<dyn PlayoutSource>,
    label: DeviceId,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = config.channels.max(1) as usize;
    let mut mono = Vec::new();
    device
        .build_output_stream::<T, _, _>(
            config,
            move |data: &mut [T], _| {
                mono.resize(data.len() / channels, 0.0);
                source.fill(&mut mono);
                for (chunk, &s) in data.chunks_mut(channels).zip(&mono) {
                    chunk.fill(T::from_sample(s));
                }
            },
            move |e| tracing::warn!("speaker {label}: {e}"),
            None,
        )
        .map_err(|e| e.to_string())
}
