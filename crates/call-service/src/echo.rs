//! The echo test service (`8:echo123`) as plain data: what the bot sends, and when.
//!
//! A bot answers at once, plays a spoken prompt, records about five seconds of the caller's
//! audio and plays it back, then records again; video is echoed live by the SFU (see
//! [`crate::sfu`]). It works on Opus packets as they travel, so the bot costs no decoding:
//! the prompt is encoded once when the service starts, and the recording is the caller's own
//! packets, sent again at their own pace (10 or 20 ms each, read from the Opus header) with
//! the bot's own numbering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The spoken prompt, shipped with the service: 48 kHz mono 16-bit WAV.
const PROMPT_WAV: &[u8] = include_bytes!("../../../assets/sounds/echo_prompt.wav");
/// How much of the caller's audio is recorded before it is played back.
pub const RECORD: Duration = Duration::from_secs(5);
/// The prompt's Opus frames: 20 ms, 960 ticks of the 48 kHz RTP clock.
const FRAME_SAMPLES: usize = 960;
/// Samples in [`RECORD`].
const RECORD_SAMPLES: usize = RECORD.as_secs() as usize * 48_000;

/// The prompt as Opus packets of 20 ms, encoded from the shipped WAV.
pub fn encode_prompt() -> Result<Arc<[Bytes]>, String> {
    let reader = hound::WavReader::new(PROMPT_WAV).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.sample_rate != 48_000 || spec.channels != 1 {
        return Err(format!("the prompt must be 48 kHz mono, not {spec:?}"));
    }
    let samples: Vec<f32> = reader
        .into_samples::<i16>()
        .map(|s| s.map(|s| s as f32 / i16::MAX as f32))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .map_err(|e| e.to_string())?;
    samples
        .chunks(FRAME_SAMPLES)
        .map(|chunk| {
            let mut frame = [0.0f32; FRAME_SAMPLES];
            frame[..chunk.len()].copy_from_slice(chunk);
            encoder
                .encode_vec_float(&frame, 4000)
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// What the bot is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Playing the prompt; the next packet to send.
    Prompt(usize),
    /// Keeping what the caller says.
    Record,
    /// Playing the recording back; the next packet to send.
    Playback(usize),
}

/// One audio packet the bot sends: its own sequence number and timestamp, and the Opus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoPacket {
    /// The bot's sequence number.
    pub seq: u64,
    /// The bot's RTP timestamp.
    pub ts: u32,
    /// One 20 ms Opus frame.
    pub payload: Bytes,
}

/// How many 48 kHz samples an Opus packet holds (20 ms for one that does not parse).
fn samples_in(packet: &[u8]) -> u32 {
    opus::packet::get_nb_samples(packet, 48_000).map_or(FRAME_SAMPLES as u32, |n| n as u32)
}

/// One caller's echo test.
#[derive(Debug)]
pub struct EchoBot {
    prompt: Arc<[Bytes]>,
    phase: Phase,
    recording: Vec<Bytes>,
    /// Samples recorded so far.
    recorded: usize,
    /// When the next packet is due, while sending.
    next_send: Instant,
    seq: u64,
    ts: u32,
}

impl EchoBot {
    /// A bot that starts its prompt at `now`.
    pub fn new(prompt: Arc<[Bytes]>, now: Instant) -> Self {
        Self {
            prompt,
            phase: Phase::Prompt(0),
            recording: Vec::new(),
            recorded: 0,
            next_send: now,
            seq: 0,
            ts: 0,
        }
    }

    /// What it does now.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// A packet of the caller's audio arrived: kept while recording, until [`RECORD`] is full,
    /// then played back.
    pub fn hear(&mut self, payload: Bytes, now: Instant) {
        if self.phase != Phase::Record {
            return;
        }
        self.recorded += samples_in(&payload) as usize;
        self.recording.push(payload);
        if self.recorded >= RECORD_SAMPLES {
            self.phase = Phase::Playback(0);
            self.next_send = now;
        }
    }

    /// When the bot next has a packet to send; none while it records.
    pub fn next_wake(&self) -> Option<Instant> {
        (self.phase != Phase::Record).then_some(self.next_send)
    }

    /// The packets due by `now`, in order. A bot woken late sends what it owes at once (the
    /// receiver's jitter buffer absorbs it) rather than fall behind for good.
    pub fn due(&mut self, now: Instant) -> Vec<EchoPacket> {
        let mut out = Vec::new();
        while self.phase != Phase::Record && self.next_send <= now {
            let payload = match &mut self.phase {
                Phase::Prompt(next) => {
                    let packet = self.prompt.get(*next).cloned();
                    *next += 1;
                    packet
                }
                Phase::Playback(next) => {
                    let packet = self.recording.get(*next).cloned();
                    *next += 1;
                    packet
                }
                Phase::Record => None,
            };
            let Some(payload) = payload else {
                // The prompt or the playback is over: listen again.
                self.phase = Phase::Record;
                self.recording.clear();
                self.recorded = 0;
                break;
            };
            let samples = samples_in(&payload);
            out.push(EchoPacket {
                seq: self.seq,
                ts: self.ts,
                payload,
            });
            self.seq += 1;
            self.ts = self.ts.wrapping_add(samples);
            self.next_send += Duration::from_micros(samples as u64 * 1_000_000 / 48_000);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Opus packet whose TOC byte says one 20 ms frame (config 1: SILK narrowband, 20 ms),
    /// tagged with `n` for identification.
    fn packet(n: u8) -> Bytes {
        Bytes::from(vec![1 << 3, n, n])
    }

    const FRAME: Duration = Duration::from_millis(20);
    const RECORD_PACKETS: usize = 250;

    #[test]
    fn the_shipped_prompt_encodes_to_a_few_seconds_of_packets() {
        let prompt = encode_prompt().unwrap();
        assert!(
            (50..400).contains(&prompt.len()),
            "{} packets",
            prompt.len()
        );
        assert!(prompt.iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn prompt_then_record_then_playback_of_what_was_heard_in_order() {
        let start = Instant::now();
        let prompt: Arc<[Bytes]> = (0..3).map(packet).collect();
        let mut bot = EchoBot::new(prompt, start);
        // Heard during the prompt: not recorded.
        bot.hear(packet(99), start);
        let sent = bot.due(start + 3 * FRAME);
        assert_eq!(
            sent.iter().map(|p| p.payload[1]).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(
            sent.iter().map(|p| (p.seq, p.ts)).collect::<Vec<_>>(),
            vec![(0, 0), (1, 960), (2, 1920)]
        );
        assert_eq!(bot.phase(), &Phase::Record);
        assert_eq!(bot.next_wake(), None);
        let t = start + Duration::from_secs(1);
        for n in 0..RECORD_PACKETS {
            bot.hear(packet(n as u8), t);
        }
        assert_eq!(bot.phase(), &Phase::Playback(0));
        // Paced: one packet per 20 ms, numbering continuing from the prompt.
        let first = bot.due(t);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].seq, first[0].payload[1]), (3, 0));
        let rest = bot.due(t + RECORD);
        assert_eq!(rest.len(), RECORD_PACKETS - 1);
        assert_eq!(rest.last().unwrap().payload[1], (RECORD_PACKETS - 1) as u8);
        // Played back: it records again.
        assert_eq!(bot.phase(), &Phase::Record);
    }
}
