//! A receive jitter buffer for 20 ms audio packets: reorders by sequence number, waits for an
//! adaptive number of frames before playing, and says when a frame must be concealed.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::seq::SeqUnwrapper;

/// The fewest frames buffered before playout starts.
const MIN_TARGET: usize = 1;
/// The most frames the adaptive target grows to (200 ms).
const MAX_TARGET: usize = 10;
/// Frames beyond the target that are dropped at once to bring latency back down.
const MAX_EXCESS: usize = 3;
/// Consecutive plays with more than the target buffered after which one frame is dropped.
const EXCESS_PULLS: u32 = 10;
/// Pulls without an underrun after which the target shrinks by one frame.
const STABLE_PULLS: u32 = 500;
/// Consecutive empty pulls after which playout stops and buffers afresh.
const MAX_CONCEALED: u32 = 5;
/// The most packets held; older ones go first when a stream is not being played.
const CAPACITY: usize = 64;

/// What to play for the next 20 ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pull {
    /// The packet that is due.
    Packet(Bytes),
    /// The due packet is missing: conceal it, from the next packet's in-band FEC if present.
    Conceal {
        /// The packet after the missing one, whose FEC data describes it.
        fec_from: Option<Bytes>,
    },
    /// Nothing is playing.
    Silence,
}

/// Reorders and paces one stream's packets.
#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, Bytes>,
    sequence: SeqUnwrapper,
    next: Option<u64>,
    target: usize,
    concealed_in_row: u32,
    stable_pulls: u32,
    excess_pulls: u32,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self {
            packets: BTreeMap::new(),
            sequence: SeqUnwrapper::default(),
            next: None,
            target: MIN_TARGET,
            concealed_in_row: 0,
            stable_pulls: 0,
            excess_pulls: 0,
        }
    }
}

impl JitterBuffer {
    /// The number of frames it waits for before playing.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Adds a received packet.
    pub fn push(&mut self, seq: u16, payload: Bytes) {
        let seq = self.sequence.unwrap(seq);
        if self.next.is_some_and(|n| seq < n) {
            return;
        }
        self.packets.insert(seq, payload);
        while self.packets.len() > CAPACITY {
            self.packets.pop_first();
        }
    }

    /// What to play for the next frame.
    pub fn pull(&mut self) -> Pull {
        let Some(next) = self.next else {
            if self.packets.len() < self.target {
                return Pull::Silence;
            }
            // Start with just the target buffered: a backlog from before playout began (the
            // speaker opened late) is dropped rather than played late forever.
            while self.packets.len() > self.target {
                self.packets.pop_first();
            }
            let first = *self.packets.keys().next().expect("len >= target >= 1");
            self.next = Some(first);
            return self.pull();
        };
        let mut next = next;
        while self.packets.len() > self.target + MAX_EXCESS {
            if let Some((seq, _)) = self.packets.pop_first() {
                next = next.max(seq + 1);
            }
        }
        if let Some(packet) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.concealed_in_row = 0;
            // More than the target stays buffered play after play: drop a frame to catch up.
            if self.packets.len() > self.target {
                self.excess_pulls += 1;
                if self.excess_pulls >= EXCESS_PULLS {
                    self.excess_pulls = 0;
                    if let Some((seq, _)) = self.packets.pop_first() {
                        self.next = Some(seq + 1);
                    }
                }
            } else {
                self.excess_pulls = 0;
            }
            self.stable_pulls += 1;
            if self.stable_pulls >= STABLE_PULLS {
                self.stable_pulls = 0;
                self.target = (self.target - 1).max(MIN_TARGET);
            }
            return Pull::Packet(packet);
        }
        self.stable_pulls = 0;
        if self.packets.is_empty() {
            // Underrun: the due packet is late, or the stream stopped.
            self.concealed_in_row += 1;
            if self.concealed_in_row == 1 {
                self.target = (self.target + 1).min(MAX_TARGET);
            }
            if self.concealed_in_row > MAX_CONCEALED {
                self.next = None;
                return Pull::Silence;
            }
            self.next = Some(next);
            return Pull::Conceal { fec_from: None };
        }
        // A gap with later packets waiting: the due packet is lost.
        self.next = Some(next + 1);
        Pull::Conceal {
            fec_from: self.packets.get(&(next + 1)).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Bytes {
        Bytes::from(vec![n])
    }

    #[test]
    fn plays_in_sequence_order() {
        let mut jb = JitterBuffer::default();
        jb.push(10, p(10));
        assert_eq!(jb.pull(), Pull::Packet(p(10)));
        jb.push(12, p(12));
        jb.push(11, p(11));
        assert_eq!(jb.pull(), Pull::Packet(p(11)));
        assert_eq!(jb.pull(), Pull::Packet(p(12)));
    }

    #[test]
    fn loss_is_concealed_with_fec_from_the_next_packet() {
        let mut jb = JitterBuffer::default();
        jb.push(1, p(1));
        assert_eq!(jb.pull(), Pull::Packet(p(1)));
        jb.push(3, p(3));
        assert_eq!(
            jb.pull(),
            Pull::Conceal {
                fec_from: Some(p(3))
            }
        );
        assert_eq!(jb.pull(), Pull::Packet(p(3)));
    }

    #[test]
    fn underrun_grows_the_target_and_a_late_packet_still_plays() {
        let mut jb = JitterBuffer::default();
        jb.push(1, p(1));
        assert_eq!(jb.pull(), Pull::Packet(p(1)));
        assert_eq!(jb.pull(), Pull::Conceal { fec_from: None });
        assert_eq!(jb.target(), 2);
        jb.push(2, p(2));
        assert_eq!(jb.pull(), Pull::Packet(p(2)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::default();
        jb.push(65_535, p(1));
        assert_eq!(jb.pull(), Pull::Packet(p(1)));
        jb.push(0, p(2));
        assert_eq!(jb.pull(), Pull::Packet(p(2)));
    }

    #[test]
    fn a_stopped_stream_falls_silent_then_restarts() {
        let mut jb = JitterBuffer::default();
        jb.push(1, p(1));
        jb.pull();
        for _ in 0..MAX_CONCEALED {
            assert!(matches!(jb.pull(), Pull::Conceal { .. }));
        }
        assert_eq!(jb.pull(), Pull::Silence);
        jb.push(50, p(50));
        jb.push(51, p(51));
        assert_eq!(jb.pull(), Pull::Packet(p(50)));
    }

    #[test]
    fn a_backlog_before_playout_is_skipped() {
        let mut jb = JitterBuffer::default();
        for s in 0..10u16 {
            jb.push(s, p(s as u8));
        }
        assert_eq!(jb.pull(), Pull::Packet(p(9)));
    }

    #[test]
    fn a_standing_excess_is_trimmed_to_the_target() {
        let mut jb = JitterBuffer::default();
        jb.push(0, p(0));
        assert_eq!(jb.pull(), Pull::Packet(p(0)));
        // Two frames arrive per pull for a while: the buffer stands above the target.
        jb.push(1, p(1));
        jb.push(2, p(2));
        let mut played = Vec::new();
        for s in 3..30u16 {
            jb.push(s, p(s as u8));
            if let Pull::Packet(b) = jb.pull() {
                played.push(b[0]);
            }
        }
        // One frame was skipped, so only the target (one frame, 29) is left waiting; without
        // trimming, 28 would still be waiting too and 27 would be the last played.
        assert_eq!(played.len(), 27, "{played:?}");
        assert_eq!(*played.last().unwrap(), 28, "{played:?}");
    }
}
