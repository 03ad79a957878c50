//! Which lost video packets to ask for, and when: a generic NACK as soon as a loss is known, then
//! again every [`ASK_AGAIN`] while the packet stays missing, at most [`MAX_ASKS`] times.
//!
//! webrtc-rs's NACK generator is not used for this. RTX repairs are unwrapped after the
//! interceptors, so it never sees one arrive: uncapped it NACK-storms, capped to one ask it cannot
//! ask again for a lost retransmission, and it only asks on a 100 ms tick (interop notes).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

/// How long a NACK waits for its retransmission before the packet is asked for again: a few
/// round trips on the networks calls run over.
const ASK_AGAIN: Duration = Duration::from_millis(30);
/// Asks per lost packet. With [`ASK_AGAIN`], the last one still fits in the repair wait.
const MAX_ASKS: u8 = 3;
/// Lost packets tracked at once (and so at most this many NACK entries in one RTCP packet);
/// a bigger hole is repaired by the keyframe that follows giving it up.
const MAX_TRACKED: usize = 128;

/// One stream's lost packets, by extended sequence number.
#[derive(Debug, Default)]
pub(super) struct Losses {
    asks: BTreeMap<u64, Ask>,
}

#[derive(Debug)]
struct Ask {
    /// Times asked so far.
    count: u8,
    /// When to ask next; `None` once asked [`MAX_ASKS`] times.
    at: Option<Instant>,
}

impl Losses {
    /// The packets in `seqs` are missing: ask for each first at `at`, or earlier if that was
    /// planned already. A packet asked for already keeps its schedule.
    pub(super) fn lost(&mut self, seqs: Range<u64>, at: Instant) {
        for seq in seqs {
            if self.asks.len() >= MAX_TRACKED && !self.asks.contains_key(&seq) {
                return;
            }
            let ask = self.asks.entry(seq).or_insert(Ask {
                count: 0,
                at: Some(at),
            });
            if ask.count == 0 {
                ask.at = Some(ask.at.map_or(at, |planned| planned.min(at)));
            }
        }
    }

    /// Stops asking for `seq`: it arrived, or it is given up.
    pub(super) fn found(&mut self, seq: u64) {
        self.asks.remove(&seq);
    }

    /// Forgets every packet before `seq` (assembled or given up).
    pub(super) fn forget_before(&mut self, seq: u64) {
        self.asks = self.asks.split_off(&seq);
    }

    /// The packets to NACK at `now` (RTP's 16-bit numbers), each counted as asked.
    pub(super) fn due(&mut self, now: Instant) -> Vec<u16> {
        let mut due = Vec::new();
        for (&seq, ask) in &mut self.asks {
            if ask.at.is_some_and(|at| at <= now) {
                ask.count += 1;
                ask.at = (ask.count < MAX_ASKS).then_some(now + ASK_AGAIN);
                // The low 16 bits of the extended number are the RTP sequence number.
                due.push(seq as u16);
            }
        }
        due
    }

    /// When the next ask is due.
    pub(super) fn next_ask(&self) -> Option<Instant> {
        self.asks.values().filter_map(|a| a.at).min()
    }
}
