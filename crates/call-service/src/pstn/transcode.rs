//! The phone leg's audio between the call's Opus at 48 kHz and the phone's G.711 at 8 kHz.
//!
//! Toward the phone, each of the voices the SFU forwards (its audio slots) is decoded into a
//! short queue of its own; every 20 ms the queues that are ready are mixed, resampled to 8 kHz
//! and coded in the phone's law. From the phone, G.711 is decoded, resampled to 48 kHz and
//! coded as 20 ms Opus frames with their RFC 6464 level. Resampling is rubato's band-limited
//! sinc interpolation; the G.711 laws come from `audio-codec-algorithms`.

use std::collections::VecDeque;

use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};
use bytes::Bytes;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};

use super::sdp::Law;

/// Samples in 20 ms at 48 kHz: one Opus frame.
pub const WIDE_FRAME: usize = 960;
/// Samples in 20 ms at 8 kHz: one G.711 packet.
pub const PHONE_FRAME: usize = 160;
/// A voice's queue starts playing once it holds this much (40 ms), so packets arriving a little
/// late do not break it up; it holds at most [`MAX_QUEUED`].
const START_QUEUED: usize = 2 * WIDE_FRAME;
/// The most a voice's queue keeps (100 ms); older samples are dropped.
const MAX_QUEUED: usize = 5 * WIDE_FRAME;

/// A mono sinc resampler from `from` to `to` Hz taking `chunk` input frames at a time, with
/// its output buffer made once.
struct Converter {
    resampler: Async<f32>,
    buffer: Vec<f32>,
}

impl Converter {
    fn new(from: u32, to: u32, chunk: usize) -> Result<Self, String> {
        let parameters = SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2);
        let resampler = Async::new_sinc(
            f64::from(to) / f64::from(from),
            1.0,
            &parameters,
            chunk,
            1,
            FixedAsync::Input,
        )
        .map_err(|e| format!("resampler {from} Hz to {to} Hz: {e}"))?;
        Ok(Self {
            buffer: vec![0.0; resampler.output_frames_max()],
            resampler,
        })
    }

    /// Resamples `input` (exactly the chunk) onto the end of `out`.
    fn push(&mut self, input: &[f32], out: &mut VecDeque<f32>) {
        let frames = self.buffer.len();
        let (Ok(input), Ok(mut output)) = (
            InterleavedSlice::new(input, 1, input.len()),
            InterleavedSlice::new_mut(&mut self.buffer, 1, frames),
        ) else {
            return;
        };
        if let Ok((_, written)) = self
            .resampler
            .process_into_buffer(&input, &mut output, None)
        {
            out.extend(&self.buffer[..written]);
        }
    }
}

fn encode(law: Law, sample: f32) -> u8 {
    let linear = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
    match law {
        Law::Pcmu => encode_ulaw(linear),
        Law::Pcma => encode_alaw(linear),
    }
}

fn decode(law: Law, byte: u8) -> f32 {
    let linear = match law {
        Law::Pcmu => decode_ulaw(byte),
        Law::Pcma => decode_alaw(byte),
    };
    f32::from(linear) / f32::from(i16::MAX)
}

/// One forwarded voice: its decoder and the samples waiting to be mixed.
struct Voice {
    decoder: opus::Decoder,
    queued: VecDeque<f32>,
    playing: bool,
}

/// The call's voices, mixed into the phone's G.711.
pub struct ToPhone {
    law: Law,
    voices: Vec<Option<Voice>>,
    resampler: Converter,
    narrow: VecDeque<f32>,
    decoded: Vec<f32>,
}

impl ToPhone {
    /// A mixer of `slots` voices into `law`.
    pub fn new(law: Law, slots: usize) -> Result<Self, String> {
        Ok(Self {
            law,
            voices: (0..slots).map(|_| None).collect(),
            resampler: Converter::new(48_000, 8_000, WIDE_FRAME)?,
            narrow: VecDeque::new(),
            decoded: vec![0.0; 6 * WIDE_FRAME],
        })
    }

    /// An Opus packet of the voice in `slot`.
    pub fn push(&mut self, slot: usize, packet: &[u8]) {
        let Some(entry) = self.voices.get_mut(slot) else {
            return;
        };
        if entry.is_none() {
            match opus::Decoder::new(48_000, opus::Channels::Mono) {
                Ok(decoder) => {
                    *entry = Some(Voice {
                        decoder,
                        queued: VecDeque::new(),
                        playing: false,
                    })
                }
                Err(e) => {
                    tracing::warn!("no Opus decoder for a phone leg: {e}");
                    return;
                }
            }
        }
        let Some(voice) = entry else { return };
        match voice.decoder.decode_float(packet, &mut self.decoded, false) {
            Ok(n) => voice.queued.extend(&self.decoded[..n]),
            Err(e) => tracing::debug!("a voice's packet for a phone did not decode: {e}"),
        }
        let excess = voice.queued.len().saturating_sub(MAX_QUEUED);
        voice.queued.drain(..excess);
    }

    /// The next 20 ms for the phone, in its law: the ready voices mixed (silence if none).
    pub fn frame(&mut self) -> Vec<u8> {
        let mut mix = vec![0.0f32; WIDE_FRAME];
        for voice in self.voices.iter_mut().flatten() {
            voice.playing = match voice.playing {
                true => !voice.queued.is_empty(),
                false => voice.queued.len() >= START_QUEUED,
            };
            if voice.playing {
                let n = voice.queued.len().min(WIDE_FRAME);
                for (m, s) in mix.iter_mut().zip(voice.queued.drain(..n)) {
                    *m += s;
                }
            }
        }
        self.resampler.push(&mix, &mut self.narrow);
        let n = self.narrow.len().min(PHONE_FRAME);
        let mut out: Vec<u8> = self
            .narrow
            .drain(..n)
            .map(|s| encode(self.law, s))
            .collect();
        out.resize(PHONE_FRAME, encode(self.law, 0.0));
        out
    }
}

/// One Opus frame of the phone's voice, with its RFC 6464 level (-dBov, 0..=127).
pub struct WideFrame {
    /// The Opus packet.
    pub payload: Bytes,
    /// Its level as -dBov.
    pub level: u8,
}

/// The phone's voice, coded for the call.
pub struct FromPhone {
    law: Law,
    resampler: Converter,
    narrow: Vec<f32>,
    wide: VecDeque<f32>,
    encoder: opus::Encoder,
}

impl FromPhone {
    /// A coder of a phone speaking `law`.
    pub fn new(law: Law) -> Result<Self, String> {
        let encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .map_err(|e| format!("no Opus encoder for a phone leg: {e}"))?;
        Ok(Self {
            law,
            resampler: Converter::new(8_000, 48_000, PHONE_FRAME)?,
            narrow: Vec::with_capacity(PHONE_FRAME),
            wide: VecDeque::new(),
            encoder,
        })
    }

    /// A G.711 payload from the phone; returns the Opus frames it completes.
    pub fn push(&mut self, payload: &[u8]) -> Vec<WideFrame> {
        let mut frames = Vec::new();
        for &byte in payload {
            self.narrow.push(decode(self.law, byte));
            if self.narrow.len() == PHONE_FRAME {
                self.resampler.push(&self.narrow, &mut self.wide);
                self.narrow.clear();
            }
        }
        while self.wide.len() >= WIDE_FRAME {
            let pcm: Vec<f32> = self.wide.drain(..WIDE_FRAME).collect();
            match self.encoder.encode_vec_float(&pcm, 1500) {
                Ok(payload) => frames.push(WideFrame {
                    payload: payload.into(),
                    level: level(&pcm),
                }),
                Err(e) => tracing::warn!("a phone's frame did not encode: {e}"),
            }
        }
        frames
    }
}

/// The RFC 6464 level of a frame: its RMS in -dBov, 127 for silence.
fn level(pcm: &[f32]) -> u8 {
    let rms = (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32).sqrt();
    match rms > 0.0 {
        true => (-20.0 * rms.log10()).clamp(0.0, 127.0) as u8,
        false => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| 0.3 * (std::f32::consts::TAU * hz * i as f32 / rate).sin())
            .collect()
    }

    fn rms(samples: &[f32]) -> f32 {
        (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
    }

    #[test]
    fn a_voice_reaches_the_phone_and_the_phone_reaches_the_call() {
        for law in [Law::Pcmu, Law::Pcma] {
            // The call's 440 Hz voice, as the SFU forwards it, comes out as G.711 at 8 kHz.
            let mut encoder =
                opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
            let mut to_phone = ToPhone::new(law, 3).unwrap();
            let mut heard = Vec::new();
            for frame in tone(440.0, 48_000.0, 50 * WIDE_FRAME).chunks(WIDE_FRAME) {
                to_phone.push(1, &encoder.encode_vec_float(frame, 1500).unwrap());
                let g711 = to_phone.frame();
                assert_eq!(g711.len(), PHONE_FRAME);
                heard.extend(g711.iter().map(|&b| decode(law, b)));
            }
            let tail = &heard[heard.len() / 2..];
            assert!(
                (rms(tail) - 0.3 / 2f32.sqrt()).abs() < 0.05,
                "{law:?}: {}",
                rms(tail)
            );

            // The phone's 440 Hz back as Opus frames that decode to it.
            let mut from_phone = FromPhone::new(law).unwrap();
            let narrow: Vec<u8> = tone(440.0, 8_000.0, 50 * PHONE_FRAME)
                .iter()
                .map(|&s| encode(law, s))
                .collect();
            let frames: Vec<WideFrame> = narrow
                .chunks(PHONE_FRAME)
                .flat_map(|p| from_phone.push(p))
                .collect();
            assert!(frames.len() >= 48, "{law:?}: {} frames", frames.len());
            let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
            let mut pcm = vec![0.0; WIDE_FRAME];
            let last = frames.last().unwrap();
            for f in &frames {
                decoder.decode_float(&f.payload, &mut pcm, false).unwrap();
            }
            assert!(
                (rms(&pcm) - 0.3 / 2f32.sqrt()).abs() < 0.05,
                "{law:?}: {}",
                rms(&pcm)
            );
            assert!((12..=15).contains(&last.level), "level {}", last.level);
        }
    }

    #[test]
    fn silence_goes_to_the_phone_when_nobody_speaks() {
        let mut to_phone = ToPhone::new(Law::Pcmu, 3).unwrap();
        let frame = to_phone.frame();
        assert!(frame.iter().all(|&b| decode(Law::Pcmu, b).abs() < 1e-3));
        to_phone.push(7, b"no such slot");
        to_phone.push(0, b"\xff\xff not opus");
        assert_eq!(to_phone.frame().len(), PHONE_FRAME);
    }
}
