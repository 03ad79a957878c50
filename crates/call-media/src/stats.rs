//! Call statistics: what each stream sends and receives, measured by the engine itself.
//!
//! The receive loops count every RTP packet they read (RFC 3550: packets expected from the
//! extended sequence numbers, interarrival jitter from arrival times against RTP timestamps),
//! the send paths count what they write, and the decoders' latest-frame slots give frame rates
//! and sizes. Only the round-trip time comes from webrtc-rs (its ICE candidate pair's STUN
//! round trips): its own `get_stats` leaves frame counts, remote-inbound loss and RTT at zero.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use call_protocol::{CallId, CommunicationIdentifier, MediaType};

use crate::seq::SeqUnwrapper;

/// How often the engine reports [`MediaStats`] while a call is connected.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// One stream's figures over the last [`STATS_INTERVAL`] (rates) or since it started (totals).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamStats {
    /// Media bits per second, RTP headers included for received streams, payload only for sent
    /// ones.
    pub bitrate: u32,
    /// Packets received or sent so far.
    pub packets: u64,
    /// Packets lost so far (received streams: expected less received, never negative).
    pub packets_lost: u64,
    /// The share of the packets expected in the last interval that did not arrive (0..1).
    pub loss_fraction: f32,
    /// Interarrival jitter (RFC 3550), received streams only.
    pub jitter: Duration,
    /// Width and height of the latest picture (video only).
    pub frame_size: Option<(u32, u32)>,
    /// Pictures decoded (received) or sent per second over the last interval (video only).
    pub frames_per_second: Option<f32>,
}

/// A received video stream's figures, with whose stream it is.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingVideoStats {
    /// The call it belongs to.
    pub call_id: CallId,
    /// Whose stream.
    pub participant: CommunicationIdentifier,
    /// Camera or screen share.
    pub media_type: MediaType,
    /// The figures.
    pub stats: StreamStats,
}

/// An agent's media figures, reported every [`STATS_INTERVAL`] while a call is connected. One
/// connection carries all of an agent's calls, so the audio and the round trip are shared by
/// them; received video names its call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaStats {
    /// The latest ICE round trip to the service, once one was measured.
    pub round_trip_time: Option<Duration>,
    /// The microphone's stream.
    pub outgoing_audio: StreamStats,
    /// Every received voice together (the service forwards up to three at once).
    pub incoming_audio: StreamStats,
    /// The camera and the screen share, while each is sent.
    pub outgoing_video: Vec<(MediaType, StreamStats)>,
    /// Each subscribed video stream.
    pub incoming_video: Vec<IncomingVideoStats>,
}

/// RFC 3550 reception counters of one receive slot; the receive loop writes, the engine reads.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReceiveCounters(Arc<Mutex<Reception>>);

/// What a receive slot has counted since its current sender's first packet.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Counted {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// Packets expected from the first to the highest sequence number.
    pub(crate) expected: u64,
    /// Interarrival jitter in seconds.
    pub(crate) jitter: f64,
}

#[derive(Debug, Default)]
struct Reception {
    ssrc: Option<u32>,
    unwrap: SeqUnwrapper,
    first: u64,
    highest: u64,
    counted: Counted,
    /// The previous packet's transit time (arrival less RTP time), in seconds.
    transit: Option<f64>,
    epoch: Option<Instant>,
}

impl ReceiveCounters {
    /// Counts one packet of `ssrc` with `bytes` on the wire, RTP `timestamp` at `clock_rate`.
    pub(crate) fn packet(
        &self,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        clock_rate: u32,
        bytes: usize,
        arrival: Instant,
    ) {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if r.ssrc != Some(ssrc) {
            // A new sender in this slot: its counters start over.
            *r = Reception {
                ssrc: Some(ssrc),
                ..Default::default()
            };
        }
        let seq = r.unwrap.unwrap(seq);
        if r.counted.packets == 0 {
            (r.first, r.highest) = (seq, seq);
        }
        // A late packet from before the first one extends the range back.
        r.first = r.first.min(seq);
        r.highest = r.highest.max(seq);
        r.counted.packets += 1;
        r.counted.bytes += bytes as u64;
        r.counted.expected = r.highest - r.first + 1;
        let epoch = *r.epoch.get_or_insert(arrival);
        let transit = arrival.duration_since(epoch).as_secs_f64()
            - f64::from(timestamp) / f64::from(clock_rate.max(1));
        if let Some(previous) = r.transit.replace(transit) {
            let d = (transit - previous).abs();
            // A timestamp that wrapped or jumped is not network jitter.
            if d < 1.0 {
                r.counted.jitter += (d - r.counted.jitter) / 16.0;
            }
        }
    }

    /// What was counted so far.
    pub(crate) fn read(&self) -> Counted {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).counted
    }
}

/// Turns cumulative counts into a [`StreamStats`] over the interval since the previous reading.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    previous: Option<(Counted, u64, Instant)>,
}

impl Rate {
    /// Figures for `now`, given the cumulative `counted` and the cumulative pictures `frames`.
    pub(crate) fn update(&mut self, counted: Counted, frames: u64, now: Instant) -> StreamStats {
        let (before, frames_before, at) = match self.previous {
            // A counter that went back is a new sender in the slot.
            Some((c, f, at)) if c.packets <= counted.packets && f <= frames => (c, f, at),
            _ => (Counted::default(), frames, now),
        };
        self.previous = Some((counted, frames, now));
        let seconds = now.duration_since(at).as_secs_f64();
        let per_second = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let expected = counted.expected.saturating_sub(before.expected);
        let received = counted.packets - before.packets;
        StreamStats {
            bitrate: (per_second(counted.bytes - before.bytes) * 8.0) as u32,
            packets: counted.packets,
            packets_lost: counted.expected.saturating_sub(counted.packets),
            loss_fraction: if expected > 0 {
                expected.saturating_sub(received) as f32 / expected as f32
            } else {
                0.0
            },
            jitter: Duration::from_secs_f64(counted.jitter),
            frame_size: None,
            frames_per_second: (seconds > 0.0).then(|| per_second(frames - frames_before) as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_jitter_and_rates_follow_rfc_3550() {
        let counters = ReceiveCounters::default();
        let start = Instant::now();
        // 50 packets of 100 bytes, 20 ms apart at 48 kHz; every tenth lost; odd ones 2 ms late.
        for i in 0..50u16 {
            if i % 10 == 5 {
                continue;
            }
            let late = if i % 2 == 1 { 2 } else { 0 };
            let arrival = start + Duration::from_millis(u64::from(i) * 20 + late);
            counters.packet(
                7,
                65_530u16.wrapping_add(i),
                u32::from(i) * 960,
                48_000,
                100,
                arrival,
            );
        }
        let counted = counters.read();
        assert_eq!((counted.packets, counted.expected), (45, 50));
        // Each step changes transit by ±2 ms, except across the gaps; the estimate nears 2 ms.
        assert!(
            (0.0012..0.0021).contains(&counted.jitter),
            "jitter {}",
            counted.jitter
        );
        let mut rate = Rate::default();
        rate.update(Counted::default(), 0, start);
        let stats = rate.update(counted, 25, start + Duration::from_secs(1));
        assert_eq!(stats.bitrate, 45 * 100 * 8);
        assert_eq!(stats.packets_lost, 5);
        assert!((stats.loss_fraction - 0.1).abs() < 1e-6);
        assert_eq!(stats.frames_per_second, Some(25.0));
        // A new sender in the slot starts its counts over.
        counters.packet(8, 3, 0, 48_000, 100, start);
        assert_eq!(counters.read().packets, 1);
    }
}
