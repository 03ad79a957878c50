//! The receive mixer: one jitter buffer and Opus decoder per receive slot, mixed into the
//! speaker on the speaker's own clock.
//!
//! The network and the speaker share no lock. Each receive slot has a lock-free single-producer
//! ring ([`rtrb`]): the slot's receive task copies each packet into it. The speaker, in its
//! realtime callback, drains the rings into the jitter buffers, then decodes and mixes into
//! buffers allocated up front, so a pull never allocates and never waits on the network side.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use call_protocol::AUDIO_SLOTS;

use super::jitter::{JitterBuffer, MAX_PACKET, Pull};
use super::processing::REFERENCE_CAPACITY;
use crate::device::{FRAME_SAMPLES, PlayoutSource, SAMPLE_RATE};

/// Packets a slot's ring holds between two pulls: one second of one stream, far more than a
/// device period.
const RING_PACKETS: usize = 50;
/// A packet that waited longer than this in its ring (the speaker was closed) is not played.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// A received packet on its way through a ring: plain bytes, so moving it never allocates.
struct Received {
    seq: u16,
    len: usize,
    arrived: Instant,
    bytes: [u8; MAX_PACKET],
}

struct Slot {
    inbound: rtrb::Consumer<Received>,
    jitter: JitterBuffer,
    decoder: opus::Decoder,
    /// Decoded samples not yet played; never more than two frames (see [`Playout::fill`]).
    pcm: VecDeque<f32>,
}

impl Slot {
    /// Moves what arrived into the jitter buffer, dropping what waited past [`MAX_WAIT`].
    fn receive(&mut self, now: Instant) {
        while let Ok(packet) = self.inbound.pop() {
            if now.saturating_duration_since(packet.arrived) <= MAX_WAIT {
                self.jitter.push(packet.seq, &packet.bytes[..packet.len]);
            }
        }
    }

    /// Makes `n` (at most [`FRAME_SAMPLES`]) samples available, decoding the next packet when
    /// needed. A silent slot pads only what is asked, so a stream that starts plays from the
    /// next pull instead of waiting for a 20 ms boundary set by silence.
    fn ensure(&mut self, n: usize, frame: &mut [f32]) {
        while self.pcm.len() < n {
            let decoded = match self.jitter.pull() {
                Pull::Packet(p) => self.decoder.decode_float(p, frame, false),
                Pull::Conceal { fec_from: Some(p) } => self.decoder.decode_float(p, frame, true),
                Pull::Conceal { fec_from: None } => self.decoder.decode_float(&[], frame, false),
                Pull::Silence => {
                    let missing = n - self.pcm.len();
                    self.pcm.extend(std::iter::repeat_n(0.0, missing));
                    return;
                }
            };
            match decoded {
                Ok(len) => self.pcm.extend(&frame[..len.min(frame.len())]),
                // No logging here: this runs in the device callback, where formatting
                // allocates. A packet that does not decode plays as silence.
                Err(_) => self.pcm.extend(std::iter::repeat_n(0.0, FRAME_SAMPLES)),
            }
        }
    }
}

struct Mixer {
    slots: Vec<Slot>,
    frame: Vec<f32>,
    /// What was played, for the echo canceller ([`super::processing`]).
    reference: rtrb::Producer<f32>,
}

/// Receive-side audio: packets go in with [`Playout::push`], the speaker pulls mixed PCM.
pub struct Playout {
    /// The network side of each slot's ring. A slot is fed by one receive task at a time; the
    /// lock only orders a replaced track's task with its successor, and the speaker never
    /// takes it.
    inbound: Vec<Mutex<rtrb::Producer<Received>>>,
    /// The speaker side. Only a pull takes this lock, and only with `try_lock`.
    mixer: Mutex<Mixer>,
    /// On hold: the mixer keeps its streams in step but plays silence.
    held: AtomicBool,
    /// The reading side of what was played, until the engine takes it.
    reference: Mutex<Option<rtrb::Consumer<f32>>>,
    /// Each slot's left and right gain ([`Gains`]), set from any thread.
    gains: [AtomicU64; AUDIO_SLOTS],
}

/// A voice's left and right gains: where it sits between the speakers, and how near.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gains {
    /// The left channel's gain (1: as received).
    pub left: f32,
    /// The right channel's gain.
    pub right: f32,
}

impl Gains {
    /// Both channels as received: no placement.
    pub const CENTRE: Self = Self {
        left: 1.0,
        right: 1.0,
    };

    fn pack(self) -> u64 {
        (u64::from(self.left.to_bits()) << 32) | u64::from(self.right.to_bits())
    }

    fn unpack(bits: u64) -> Self {
        Self {
            left: f32::from_bits((bits >> 32) as u32),
            right: f32::from_bits(bits as u32),
        }
    }
}

impl Playout {
    /// A mixer with [`AUDIO_SLOTS`] slots.
    pub fn new() -> Result<Self, opus::Error> {
        let mut inbound = Vec::with_capacity(AUDIO_SLOTS);
        let mut slots = Vec::with_capacity(AUDIO_SLOTS);
        for _ in 0..AUDIO_SLOTS {
            let (producer, consumer) = rtrb::RingBuffer::new(RING_PACKETS);
            inbound.push(Mutex::new(producer));
            slots.push(Slot {
                inbound: consumer,
                jitter: JitterBuffer::default(),
                decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
                pcm: VecDeque::with_capacity(2 * FRAME_SAMPLES),
            });
        }
        let (producer, consumer) = rtrb::RingBuffer::new(REFERENCE_CAPACITY);
        Ok(Self {
            inbound,
            mixer: Mutex::new(Mixer {
                slots,
                frame: vec![0.0; FRAME_SAMPLES],
                reference: producer,
            }),
            held: AtomicBool::new(false),
            reference: Mutex::new(Some(consumer)),
            gains: std::array::from_fn(|_| AtomicU64::new(Gains::CENTRE.pack())),
        })
    }

    /// What the speaker played, as it plays it: the echo canceller's far end. Taken once; until
    /// then (or if nobody takes it) the ring fills and further audio is not kept.
    pub fn take_reference(&self) -> Option<rtrb::Consumer<f32>> {
        self.reference
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Plays silence while `held` (the call is on hold), whatever still arrives.
    pub fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    /// Places the voice in `slot` (positional audio): its left and right gains from the next
    /// pull on. A mono speaker plays their average.
    pub fn set_gains(&self, slot: usize, gains: Gains) {
        if let Some(g) = self.gains.get(slot) {
            g.store(gains.pack(), Ordering::Relaxed);
        }
    }

    /// Adds a received Opus packet to a slot. When the slot's ring is full (nobody pulls: the
    /// speaker is closed) this newest packet is dropped, since a single producer cannot evict
    /// the oldest; the speaker drops those for having waited too long. A packet over
    /// [`MAX_PACKET`] bytes is dropped.
    pub fn push(&self, slot: usize, seq: u16, payload: Bytes) {
        let Some(ring) = self.inbound.get(slot) else {
            return;
        };
        if payload.len() > MAX_PACKET {
            tracing::debug!("dropping a {}-byte audio packet", payload.len());
            return;
        }
        let mut packet = Received {
            seq,
            len: payload.len(),
            arrived: Instant::now(),
            bytes: [0; MAX_PACKET],
        };
        packet.bytes[..payload.len()].copy_from_slice(&payload);
        let _ = ring.lock().unwrap_or_else(|p| p.into_inner()).push(packet);
    }
}

impl Playout {
    /// Decodes and mixes `frames` frames into `out`: interleaved left/right when `stereo`, each
    /// slot through its [`Gains`]; mono otherwise, each slot at its gains' average.
    fn mix(&self, out: &mut [f32], stereo: bool) {
        out.fill(0.0);
        let mut mixer = match self.mixer.try_lock() {
            Ok(mixer) => mixer,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Another speaker pulls this playout at this very moment (the engine opens one at a
            // time): this one plays silence rather than wait.
            Err(TryLockError::WouldBlock) => return,
        };
        let Mixer {
            slots,
            frame,
            reference,
        } = &mut *mixer;
        let now = Instant::now();
        for slot in slots.iter_mut() {
            slot.receive(now);
        }
        let gains: [Gains; AUDIO_SLOTS] =
            std::array::from_fn(|k| Gains::unpack(self.gains[k].load(Ordering::Relaxed)));
        let channels = if stereo { 2 } else { 1 };
        // At most a frame at a time, so no slot ever holds more than two frames of PCM.
        for chunk in out.chunks_mut(channels * FRAME_SAMPLES) {
            let len = chunk.len() / channels;
            for (slot, g) in slots.iter_mut().zip(gains) {
                slot.ensure(len, frame);
                let pcm = slot.pcm.drain(..len);
                if stereo {
                    for (pair, s) in chunk.chunks_mut(2).zip(pcm) {
                        pair[0] += s * g.left;
                        pair[1] += s * g.right;
                    }
                } else {
                    let gain = (g.left + g.right) / 2.0;
                    for (o, s) in chunk.iter_mut().zip(pcm) {
                        *o += s * gain;
                    }
                }
            }
        }
        if self.held.load(Ordering::Relaxed) {
            out.fill(0.0);
        }
        for o in out.iter_mut() {
            *o = o.clamp(-1.0, 1.0);
        }
        // The echo canceller hears the mono mix. A full ring (nobody reads it) keeps what it has.
        let n = (out.len() / channels).min(reference.slots());
        if let Ok(chunk) = reference.write_chunk_uninit(n) {
            chunk.fill_from_iter(
                out.chunks(channels)
                    .map(|c| c.iter().sum::<f32>() / channels as f32),
            );
        }
    }
}

impl PlayoutSource for Playout {
    fn fill(&self, out: &mut [f32]) {
        self.mix(out, false);
    }

    fn fill_stereo(&self, out: &mut [f32]) {
        self.mix(out, true);
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
    fn a_placed_voice_plays_on_its_side() {
        let playout = Playout::new().unwrap();
        playout.set_gains(
            0,
            Gains {
                left: 1.0,
                right: 0.0,
            },
        );
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut out = vec![0.0f32; 2 * FRAME_SAMPLES];
        let (mut left, mut right) = (0.0, 0.0);
        for n in 0..10u16 {
            let pcm: Vec<f32> = (0..FRAME_SAMPLES)
                .map(|i| 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin())
                .collect();
            playout.push(0, n, Bytes::from(enc.encode_vec_float(&pcm, 4000).unwrap()));
            playout.fill_stereo(&mut out);
            left = out.chunks(2).map(|p| p[0] * p[0]).sum::<f32>();
            right = out.chunks(2).map(|p| p[1] * p[1]).sum::<f32>();
        }
        assert!(left > 10.0 && right == 0.0, "left {left}, right {right}");
    }

    #[test]
    fn an_idle_mixer_plays_silence() {
        let playout = Playout::new().unwrap();
        let mut out = vec![1.0f32; 480];
        playout.fill(&mut out);
        assert!(out.iter().all(|&s| s == 0.0));
    }
}
