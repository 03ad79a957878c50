//! A receive jitter buffer for 20 ms audio packets: reorders by sequence number, waits for an
//! adaptive number of frames before playing, and says when a frame must be concealed.
//!
//! Its storage is allocated once, when it is made: pushing and pulling copy bytes and never
//! allocate or free, because both run in the speaker's realtime callback.

use crate::seq::SeqUnwrapper;

/// The largest payload a jitter buffer holds, in bytes; a larger packet is dropped. An RTP
/// packet fits a 1500-byte Ethernet MTU, and one Opus frame is at most 1275 bytes (RFC 6716).
pub const MAX_PACKET: usize = 1500;

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

/// What to play for the next 20 ms. The payloads borrow the buffer until the next push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull<'a> {
    /// The packet that is due.
    Packet(&'a [u8]),
    /// The due packet is missing: conceal it, from the next packet's in-band FEC if present.
    Conceal {
        /// The packet after the missing one, whose FEC data describes it.
        fec_from: Option<&'a [u8]>,
    },
    /// Nothing is playing.
    Silence,
}

/// Reorders and paces one stream's packets, in a fixed number of fixed-size places.
#[derive(Debug)]
pub struct JitterBuffer {
    /// What each place holds: the packet's extended sequence number and its length.
    held: [Option<(u64, usize)>; CAPACITY],
    /// [`CAPACITY`] places of [`MAX_PACKET`] bytes.
    bytes: Box<[u8]>,
    /// How many places are taken.
    count: usize,
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
            held: [None; CAPACITY],
            bytes: vec![0; CAPACITY * MAX_PACKET].into_boxed_slice(),
            count: 0,
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

    /// Adds a received packet. When full, the oldest packet goes (this one, if it is older
    /// than all held); a packet over [`MAX_PACKET`] bytes is dropped.
    pub fn push(&mut self, seq: u16, payload: &[u8]) {
        let seq = self.sequence.unwrap(seq);
        if self.next.is_some_and(|n| seq < n) || payload.len() > MAX_PACKET {
            return;
        }
        let place = match self.find(seq) {
            Some((place, _)) => place,
            None if self.count < CAPACITY => {
                self.count += 1;
                // count < CAPACITY: a free place exists.
                self.held.iter().position(Option::is_none).unwrap_or(0)
            }
            None => match self.first() {
                Some((oldest, place)) if oldest < seq => place,
                _ => return,
            },
        };
        self.held[place] = Some((seq, payload.len()));
        self.bytes[place * MAX_PACKET..][..payload.len()].copy_from_slice(payload);
    }

    /// The place holding `seq`, and the packet's length.
    fn find(&self, seq: u64) -> Option<(usize, usize)> {
        self.held
            .iter()
            .enumerate()
            .find_map(|(place, h)| h.filter(|&(s, _)| s == seq).map(|(_, len)| (place, len)))
    }

    /// The oldest packet's sequence number and place.
    fn first(&self) -> Option<(u64, usize)> {
        self.held
            .iter()
            .enumerate()
            .filter_map(|(place, h)| h.map(|(s, _)| (s, place)))
            .min()
    }

    /// Frees a place; its bytes stay readable until the next push.
    fn free(&mut self, place: usize) {
        if self.held[place].take().is_some() {
            self.count -= 1;
        }
    }

    /// Drops the oldest packet and returns its sequence number.
    fn pop_first(&mut self) -> Option<u64> {
        let (seq, place) = self.first()?;
        self.free(place);
        Some(seq)
    }

    /// The `len` bytes at a place; a freed place keeps them until the next push.
    fn payload(&self, place: usize, len: usize) -> &[u8] {
        &self.bytes[place * MAX_PACKET..][..len]
    }

    /// What to play for the next frame.
    pub fn pull(&mut self) -> Pull<'_> {
        let mut next = match self.next {
            Some(next) => next,
            None => {
                if self.count < self.target {
                    return Pull::Silence;
                }
                // Start with just the target buffered: a backlog from before playout began (the
                // speaker opened late) is dropped rather than played late forever.
                while self.count > self.target {
                    self.pop_first();
                }
                match self.first() {
                    Some((first, _)) => first,
                    None => return Pull::Silence,
                }
            }
        };
        while self.count > self.target + MAX_EXCESS {
            if let Some(seq) = self.pop_first() {
                next = next.max(seq + 1);
            }
        }
        if let Some((place, len)) = self.find(next) {
            self.free(place);
            self.next = Some(next + 1);
            self.concealed_in_row = 0;
            // More than the target stays buffered play after play: drop a frame to catch up.
            if self.count > self.target {
                self.excess_pulls += 1;
                if self.excess_pulls >= EXCESS_PULLS {
                    self.excess_pulls = 0;
                    if let Some(seq) = self.pop_first() {
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
            return Pull::Packet(self.payload(place, len));
        }
        self.stable_pulls = 0;
        if self.count == 0 {
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
            fec_from: self
                .find(next + 1)
                .map(|(place, len)| self.payload(place, len)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> [u8; 1] {
        [n]
    }

    #[test]
    fn plays_in_sequence_order() {
        let mut jb = JitterBuffer::default();
        jb.push(10, &p(10));
        assert_eq!(jb.pull(), Pull::Packet(&p(10)));
        jb.push(12, &p(12));
        jb.push(11, &p(11));
        assert_eq!(jb.pull(), Pull::Packet(&p(11)));
        assert_eq!(jb.pull(), Pull::Packet(&p(12)));
    }

    #[test]
    fn loss_is_concealed_with_fec_from_the_next_packet() {
        let mut jb = JitterBuffer::default();
        jb.push(1, &p(1));
        assert_eq!(jb.pull(), Pull::Packet(&p(1)));
        jb.push(3, &p(3));
        assert_eq!(
            jb.pull(),
            Pull::Conceal {
                fec_from: Some(&p(3))
            }
        );
        assert_eq!(jb.pull(), Pull::Packet(&p(3)));
    }

    #[test]
    fn underrun_grows_the_target_and_a_late_packet_still_plays() {
        let mut jb = JitterBuffer::default();
        jb.push(1, &p(1));
        assert_eq!(jb.pull(), Pull::Packet(&p(1)));
        assert_eq!(jb.pull(), Pull::Conceal { fec_from: None });
        assert_eq!(jb.target(), 2);
        jb.push(2, &p(2));
        assert_eq!(jb.pull(), Pull::Packet(&p(2)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::default();
        jb.push(65_535, &p(1));
        assert_eq!(jb.pull(), Pull::Packet(&p(1)));
        jb.push(0, &p(2));
        assert_eq!(jb.pull(), Pull::Packet(&p(2)));
    }

    #[test]
    fn a_stopped_stream_falls_silent_then_restarts() {
        let mut jb = JitterBuffer::default();
        jb.push(1, &p(1));
        jb.pull();
        for _ in 0..MAX_CONCEALED {
            assert!(matches!(jb.pull(), Pull::Conceal { .. }));
        }
        assert_eq!(jb.pull(), Pull::Silence);
        jb.push(50, &p(50));
        jb.push(51, &p(51));
        assert_eq!(jb.pull(), Pull::Packet(&p(50)));
    }

    #[test]
    fn a_backlog_before_playout_is_skipped() {
        let mut jb = JitterBuffer::default();
        for s in 0..10u16 {
            jb.push(s, &p(s as u8));
        }
        assert_eq!(jb.pull(), Pull::Packet(&p(9)));
    }

    #[test]
    fn a_standing_excess_is_trimmed_to_the_target() {
        let mut jb = JitterBuffer::default();
        jb.push(0, &p(0));
        assert_eq!(jb.pull(), Pull::Packet(&p(0)));
        // Two frames arrive per pull for a while: the buffer stands above the target.
        jb.push(1, &p(1));
        jb.push(2, &p(2));
        let mut played = Vec::new();
        for s in 3..30u16 {
            jb.push(s, &p(s as u8));
            if let Pull::Packet(b) = jb.pull() {
                played.push(b[0]);
            }
        }
        // One frame was skipped, so only the target (one frame, 29) is left waiting; without
        // trimming, 28 would still be waiting too and 27 would be the last played.
        assert_eq!(played.len(), 27, "{played:?}");
        assert_eq!(*played.last().unwrap(), 28, "{played:?}");
    }

    #[test]
    fn a_full_buffer_keeps_the_newest_packets() {
        let mut jb = JitterBuffer::default();
        for s in 0..(CAPACITY as u16 + 5) {
            jb.push(s, &p(s as u8));
        }
        // Older than everything held in a full buffer: dropped.
        jb.push(2, &p(2));
        assert_eq!(jb.count, CAPACITY);
        // Extended sequence numbers start one wrap up (see SeqUnwrapper).
        assert_eq!(jb.first().map(|(seq, _)| seq), Some((1 << 16) + 5));
    }

    #[test]
    fn an_oversized_packet_is_dropped() {
        let mut jb = JitterBuffer::default();
        jb.push(1, &[7; MAX_PACKET + 1]);
        assert_eq!(jb.pull(), Pull::Silence);
        jb.push(2, &[7; MAX_PACKET]);
        assert_eq!(jb.pull(), Pull::Packet(&[7; MAX_PACKET]));
    }
}
