//! The receive mixer: one jitter buffer and Opus decoder per receive slot, mixed into the
//! speaker on the speaker's own clock.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use call_protocol::AUDIO_SLOTS;

use super::jitter::{JitterBuffer, Pull};
use crate::device::{FRAME_SAMPLES, PlayoutSource, SAMPLE_RATE};

struct Slot {
    jitter: JitterBuffer,
    decoder: opus::Decoder,
    /// Decoded samples not yet played.
    pcm: VecDeque<f32>,
}

impl Slot {
    /// Makes `n` samples available, decoding the next packet when needed. A silent slot pads
    /// only what is asked, so a stream that starts plays from the next pull instead of waiting
    /// for a 20 ms boundary set by silence.
    fn ensure(&mut self, n: usize, frame: &mut [f32]) {
        while self.pcm.len() < n {
            let decoded = match self.jitter.pull() {
                Pull::Packet(p) => self.decoder.decode_float(&p, frame, false),
                Pull::Conceal { fec_from: Some(p) } => self.decoder.decode_float(&p, frame, true),
                Pull::Conceal { fec_from: None } => self.decoder.decode_float(&[], frame, false),
                Pull::Silence => {
                    let missing = n - self.pcm.len();
                    self.pcm.extend(std::iter::repeat_n(0.0, missing));
                    return;
                }
            };
            match decoded {
                Ok(len) => self.pcm.extend(&frame[..len.min(frame.len())]),
                Err(e) => {
                    tracing::debug!("opus decode failed: {e}");
                    self.pcm.extend(std::iter::repeat_n(0.0, FRAME_SAMPLES));
                }
            }
        }
    }
}

struct Mixer {
    slots: Vec<Slot>,
    frame: Vec<f32>,
}

/// Receive-side audio: packets go in with [`Playout::push`], the speaker pulls mixed PCM.
pub struct Playout {
    mixer: Mutex<Mixer>,
}

impl Playout {
    /// A mixer with [`AUDIO_SLOTS`] slots.
    pub fn new() -> Result<Self, opus::Error> {
        let slots = (0..AUDIO_SLOTS)
            .map(|_| {
                Ok(Slot {
                    jitter: JitterBuffer::default(),
                    decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
                    pcm: VecDeque::with_capacity(2 * FRAME_SAMPLES),
                })
            })
            .collect::<Result<_, opus::Error>>()?;
        Ok(Self {
            mixer: Mutex::new(Mixer {
                slots,
                frame: vec![0.0; FRAME_SAMPLES],
            }),
        })
    }

    fn mixer(&self) -> std::sync::MutexGuard<'_, Mixer> {
        self.mixer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a received Opus packet to a slot's jitter buffer.
    pub fn push(&self, slot: usize, seq: u16, payload: Bytes) {
        if let Some(s) = self.mixer().slots.get_mut(slot) {
            s.jitter.push(seq, payload);
        }
    }
}

impl PlayoutSource for Playout {
    fn fill(&self, out: &mut [f32]) {
        out.fill(0.0);
        let len = out.len();
        let mixer = &mut *self.mixer();
        for slot in &mut mixer.slots {
            slot.ensure(len, &mut mixer.frame);
            for (o, s) in out.iter_mut().zip(slot.pcm.drain(..len)) {
                *o += s;
            }
        }
        for o in out.iter_mut() {
            *o = o.clamp(-1.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_tone_comes_out_of_the_mixer() {
        let playout = Playout::new().unwrap();
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut out = vec![0.0f32; FRAME_SAMPLES];
        let mut energy = 0.0;
        for n in 0..10u16 {
            let pcm: Vec<f32> = (0..FRAME_SAMPLES)
                .map(|i| {
                    0.5 * (std::f32::consts::TAU * 440.0 * (n as usize * FRAME_SAMPLES + i) as f32
                        / 48_000.0)
                        .sin()
                })
                .collect();
            let packet = enc.encode_vec_float(&pcm, 4000).unwrap();
            playout.push(0, n, Bytes::from(packet));
            playout.fill(&mut out);
            energy = out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32;
        }
        assert!(energy > 0.05, "mean square {energy}");
    }

    #[test]
    fn an_idle_mixer_plays_silence() {
        let playout = Playout::new().unwrap();
        let mut out = vec![1.0f32; 480];
        playout.fill(&mut out);
        assert!(out.iter().all(|&s| s == 0.0));
    }
}
