//! One video stream's receive path: packets are put back in order, lost ones are asked for again
//! ([`Losses`]), access units are reassembled and handed to a decoder thread, and a loss that is
//! not repaired within [`REPAIR_WAIT`] asks for a keyframe instead.
//!
//! Time is a parameter (`now`) everywhere, so the whole policy runs without sleeps in tests; the
//! receive loop calls [`VideoReceiver::poll`] at [`VideoReceiver::deadline`] when no packet comes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use call_protocol::h264_starts_keyframe;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;

use super::losses::Losses;
use crate::seq::SeqUnwrapper;
use crate::video::{FrameSlot, VideoDecoder};

/// The least time between two PLIs for one stream.
const PLI_GAP: Duration = Duration::from_millis(250);
/// Access units waiting for the decoder; more means it is behind, and the newest are dropped.
pub(super) const DECODE_QUEUE: usize = 4;
/// How long a missing packet may be waited for (NACKed, and NACKed again) before the stream goes
/// on without it and asks for a keyframe.
pub(super) const REPAIR_WAIT: Duration = Duration::from_millis(80);
/// Silence after a packet without the marker bit before the rest of its unit counts as lost: a
/// unit's packets come in one burst, so its tail is late only when it was lost.
pub(super) const TAIL_WAIT: Duration = Duration::from_millis(15);
/// Packets held while waiting for a repair; beyond this the gap is given up at once.
const REORDER_LIMIT: usize = 512;

/// What a [`VideoReceiver`] asks of the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Feedback {
    /// Retransmit these packets (a generic NACK of RTP sequence numbers).
    Nack(Vec<u16>),
    /// Send a keyframe (a PLI).
    Pli,
}

/// Reorders one video stream's packets, reassembles access units and feeds its decoder.
pub(super) struct VideoReceiver {
    sequence: SeqUnwrapper,
    /// Packets after a gap, by extended sequence number, with their arrival time.
    pending: BTreeMap<u64, (Instant, rtc::rtp::Packet)>,
    next: Option<u64>,
    /// The packets just before the next one were given up: whichever unit they belonged to is
    /// broken.
    gap_before_next: bool,
    /// `next` was given up before anything after it arrived (a lost tail): whatever packet comes
    /// next continues the stream, without waiting for the ones between.
    next_given_up: bool,
    /// While the unit being assembled still lacks its marker: when its latest packet arrived.
    open_since: Option<Instant>,
    losses: Losses,
    depacketizer: H264Packet,
    access_unit: Vec<u8>,
    timestamp: Option<u32>,
    intact: bool,
    /// The unit being assembled began with an SPS: a keyframe.
    keyframe: bool,
    /// A unit was lost or dropped: the units after it reference a picture the decoder never
    /// had, so only a keyframe is decoded until one arrives (else the picture shows the decoder's
    /// guesses: smeared blocks).
    awaiting_keyframe: bool,
    decode: crossbeam_channel::Sender<Vec<u8>>,
    want_keyframe: Arc<AtomicBool>,
    last_pli: Option<Instant>,
}

impl VideoReceiver {
    /// A receiver whose access units a new decoder thread decodes into `frames`.
    pub(super) fn start(slot: usize, frames: FrameSlot) -> Self {
        let (decode, units) = crossbeam_channel::bounded::<Vec<u8>>(DECODE_QUEUE);
        let want_keyframe = Arc::new(AtomicBool::new(true));
        let flag = want_keyframe.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("video-decode-{slot}"))
            .spawn(move || {
                let mut decoder = match VideoDecoder::new() {
                    Ok(d) => d,
                    Err(e) => return tracing::error!("no H.264 decoder: {e}"),
                };
                let mut writer = frames.writer();
                for unit in units {
                    if decoder.decode(&unit, &mut writer).is_err() {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("could not start a video decoder thread: {e}");
        }
        Self::new(decode, want_keyframe)
    }

    /// A receiver that hands whole access units to `decode`; whoever decodes them raises
    /// `want_keyframe` when one fails.
    pub(super) fn new(
        decode: crossbeam_channel::Sender<Vec<u8>>,
        want_keyframe: Arc<AtomicBool>,
    ) -> Self {
        Self {
            sequence: SeqUnwrapper::default(),
            pending: BTreeMap::new(),
            next: None,
            gap_before_next: false,
            next_given_up: false,
            open_since: None,
            losses: Losses::default(),
            depacketizer: H264Packet::default(),
            access_unit: Vec::new(),
            timestamp: None,
            intact: true,
            keyframe: false,
            awaiting_keyframe: false,
            decode,
            want_keyframe,
            last_pli: None,
        }
    }

    /// Takes one RTP packet that arrived at `now`; returns what to ask of the sender.
    pub(super) fn packet(&mut self, packet: &rtc::rtp::Packet, now: Instant) -> Vec<Feedback> {
        let seq = self.sequence.unwrap(packet.header.sequence_number);
        let mut next = *self.next.get_or_insert(seq);
        if seq < next {
            // Assembled or given up already: a late copy.
            return self.poll(now);
        }
        if std::mem::take(&mut self.next_given_up) {
            // The lost tail stays lost; `gap_before_next` already marks the break.
            next = seq;
            self.next = Some(seq);
        }
        let expected = self.pending.last_key_value().map_or(next, |(&s, _)| s + 1);
        self.losses.lost(expected..seq, now);
        self.losses.found(seq);
        self.pending.insert(seq, (now, packet.clone()));
        self.poll(now)
    }

    /// Gives up what waited too long and returns what to ask of the sender at `now`. The receive
    /// loop calls it at [`Self::deadline`]; [`Self::packet`] calls it too.
    pub(super) fn poll(&mut self, now: Instant) -> Vec<Feedback> {
        self.drain(now);
        let mut feedback = Vec::new();
        let nack = self.losses.due(now);
        if !nack.is_empty() {
            feedback.push(Feedback::Nack(nack));
        }
        if self.keyframe_due(now) {
            feedback.push(Feedback::Pli);
        }
        feedback
    }

    /// When [`Self::poll`] has something to do if no packet arrives first.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let repair = self.overdue_since().map(|t| t + REPAIR_WAIT);
        let pli = self
            .last_pli
            .filter(|_| self.want_keyframe.load(Ordering::Relaxed))
            .map(|t| t + PLI_GAP);
        [repair, self.losses.next_ask(), pli]
            .into_iter()
            .flatten()
            .min()
    }

    /// Since when the packet at `next` is overdue: the arrival of the first packet after it, or
    /// of the last one before it while that one's unit waits for its marker.
    fn overdue_since(&self) -> Option<Instant> {
        let gap = self.pending.first_key_value().map(|(_, (at, _))| *at);
        match (gap, self.open_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Assembles every packet that is next in order; gives up a missing one that waited too long.
    fn drain(&mut self, now: Instant) {
        while let Some(next) = self.next {
            if let Some((arrived, packet)) = self.pending.remove(&next) {
                self.next = Some(next + 1);
                self.assemble(&packet, arrived);
                continue;
            }
            if let (Some(open), true) = (self.open_since, self.pending.is_empty()) {
                // Nothing after `next` yet, and its unit is unfinished: its tail may be lost.
                self.losses.lost(next..next + 1, open + TAIL_WAIT);
            }
            let Some(since) = self.overdue_since() else {
                break;
            };
            if now < since + REPAIR_WAIT && self.pending.len() < REORDER_LIMIT {
                break;
            }
            self.give_up(next);
        }
        if let Some(next) = self.next {
            self.losses.forget_before(next);
        }
    }

    /// Goes on without the packet at `next`. Whatever references it needs a keyframe.
    fn give_up(&mut self, next: u64) {
        self.want_keyframe.store(true, Ordering::Relaxed);
        self.gap_before_next = true;
        self.open_since = None;
        self.losses.found(next);
        match self.pending.first_key_value() {
            Some((&first, _)) => self.next = Some(first),
            None => {
                self.next_given_up = true;
                self.access_unit.clear();
            }
        }
    }

    fn assemble(&mut self, packet: &rtc::rtp::Packet, arrived: Instant) {
        let gap = std::mem::take(&mut self.gap_before_next);
        if gap {
            // The depacketizer may hold half a fragment.
            self.depacketizer = H264Packet::default();
            self.intact = false;
        }
        if self.timestamp != Some(packet.header.timestamp) {
            self.access_unit.clear();
            self.timestamp = Some(packet.header.timestamp);
            // A new unit is whole unless the lost packets may have been its first ones; a
            // keyframe that starts with its SPS shows it has its start.
            self.keyframe = h264_starts_keyframe(&packet.payload);
            self.intact = !gap || self.keyframe;
        }
        // webrtc-rs's STAP-A parser can index past a malformed packet's end; a bad publisher
        // must cost its own picture, not this receiver's task.
        let depacketized = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.depacketizer.depacketize(&packet.payload)
        }));
        match depacketized {
            Ok(Ok(nal)) => self.access_unit.extend_from_slice(&nal),
            Ok(Err(_)) => self.intact = false,
            Err(_) => {
                self.depacketizer = H264Packet::default();
                self.intact = false;
            }
        }
        self.open_since = (!packet.header.marker).then_some(arrived);
        if packet.header.marker {
            let whole = self.intact && !self.access_unit.is_empty();
            if whole && (self.keyframe || !self.awaiting_keyframe) {
                // A full queue means the decoder is behind: drop this unit and ask for a
                // keyframe, since the next ones reference it.
                self.awaiting_keyframe = self
                    .decode
                    .try_send(std::mem::take(&mut self.access_unit))
                    .is_err();
            } else {
                self.awaiting_keyframe = true;
            }
            if self.awaiting_keyframe {
                self.want_keyframe.store(true, Ordering::Relaxed);
            }
            self.intact = true;
            self.access_unit.clear();
        }
    }

    /// Whether to send a PLI now: a keyframe is wanted and the last PLI is old enough.
    fn keyframe_due(&mut self, now: Instant) -> bool {
        if self
            .last_pli
            .is_some_and(|t| now.saturating_duration_since(t) < PLI_GAP)
            || !self.want_keyframe.swap(false, Ordering::Relaxed)
        {
            return false;
        }
        self.last_pli = Some(now);
        true
    }
}
