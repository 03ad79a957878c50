//! The SFU's forwarding decisions as plain data: from a received packet's header to the legs it
//! goes out on, each with the sequence number and timestamp that keep that leg continuous.
//!
//! A [`Forwarder`] owns the [`Router`] (who hears whom), the receivers that are open (connected,
//! with so many receive slots of each kind) and one [`Rebaser`] per leg. Nothing here does I/O
//! or knows str0m, so the SFU's decisions are unit-tested with synthetic packet headers; the
//! [`crate::sfu`] loop only turns each [`Outgoing`] into an RTP write.

use std::collections::HashMap;
use std::time::Instant;

use call_protocol::{CallId, MediaType};

use crate::router::{Leg, Router, VideoSource};
use crate::speakers::Level;
use crate::switchboard::SessionId;

/// Opus frames are 20 ms: 960 ticks of the 48 kHz RTP clock.
const OPUS_FRAME_TICKS: u32 = 960;
/// A video frame at 30 fps on the 90 kHz clock, for continuity when a slot's source changes.
const VIDEO_FRAME_TICKS: u32 = 3000;

/// What a received packet is: the publisher's audio, or one of its video streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Its microphone.
    Audio,
    /// Its camera or its screen share.
    Video(MediaType),
}

impl Source {
    /// Which kind of receive slot this source goes out on.
    pub fn kind(self) -> Kind {
        match self {
            Self::Audio => Kind::Audio,
            Self::Video(_) => Kind::Video,
        }
    }

    fn frame_ticks(self) -> u32 {
        match self {
            Self::Audio => OPUS_FRAME_TICKS,
            Self::Video(_) => VIDEO_FRAME_TICKS,
        }
    }
}

/// A receiver's two kinds of receive slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Audio receive slots.
    Audio,
    /// Video receive slots.
    Video,
}

/// One copy of a received packet to send: to whom, on which receive slot, with which sequence
/// number and timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The receiving session.
    pub to: SessionId,
    /// Which kind of its receive slots.
    pub kind: Kind,
    /// Which slot of that kind.
    pub slot: usize,
    /// The leg's extended sequence number.
    pub seq: u64,
    /// The leg's RTP timestamp.
    pub ts: u32,
}

/// How many receive slots of each kind an open receiver has.
#[derive(Clone, Copy, Debug)]
struct Receiver {
    audio_slots: usize,
    video_slots: usize,
}

/// Routes plus per-leg rebasing: decides where each received packet goes and how it is numbered.
#[derive(Debug, Default)]
pub struct Forwarder {
    router: Router,
    receivers: HashMap<SessionId, Receiver>,
    legs: HashMap<(SessionId, Kind, usize), Rebaser>,
}

impl Forwarder {
    /// Who hears whom.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Who hears whom, to change call routes (video subscriptions go through
    /// [`Self::set_video`], which restarts the slot's leg).
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// `to` can receive now, on this many audio and video receive slots. Calling it again
    /// changes the counts and keeps its legs' numbering.
    pub fn open(&mut self, to: SessionId, audio_slots: usize, video_slots: usize) {
        self.receivers.insert(
            to,
            Receiver {
                audio_slots,
                video_slots,
            },
        );
    }

    /// Whether `to` is open.
    pub fn is_open(&self, to: SessionId) -> bool {
        self.receivers.contains_key(&to)
    }

    /// `to` receives nothing until opened again, and its legs then start afresh (a new peer
    /// for the same session has new streams). Its routes stay.
    pub fn close(&mut self, to: SessionId) {
        self.receivers.remove(&to);
        self.legs.retain(|&(leg_to, _, _), _| leg_to != to);
    }

    /// Takes in an audio packet's level ([`Router::hear`]); returns the call whose dominant
    /// speakers changed, if any.
    pub fn hear(&mut self, from: SessionId, level: Option<Level>, at: Instant) -> Option<CallId> {
        self.router.hear(from, level, at)
    }

    /// Forgets a session that left: its routes (see [`Router::forget`]) and its legs.
    pub fn forget(&mut self, session: SessionId) {
        self.router.forget(session);
        self.close(session);
    }

    /// Video receive slot `slot` of `to` now carries the stream `from` (`None`: nothing). A slot
    /// given a new stream starts it at a keyframe (see [`Rebaser`]).
    pub fn set_video(&mut self, to: SessionId, slot: usize, from: Option<VideoSource>) {
        if self.router.video_source(to, slot) == from {
            return;
        }
        self.router.set_video(to, slot, from);
        if let Some(leg) = self.legs.get_mut(&(to, Kind::Video, slot)) {
            leg.restart();
        }
    }

    /// The copies to send of a packet from `from` with extended sequence number `seq` and RTP
    /// timestamp `ts`: one per routed leg whose receiver is open and has that slot, and that is
    /// not waiting for a keyframe of this stream. `starts_keyframe` says whether the packet is the
    /// first of a keyframe (always true for audio).
    pub fn forward(
        &mut self,
        from: SessionId,
        source: Source,
        seq: u64,
        ts: u32,
        starts_keyframe: bool,
    ) -> Forwarded {
        let kind = source.kind();
        let legs = match source {
            Source::Audio => self.router.audio_legs(from),
            Source::Video(media_type) => self.router.video_legs((from, media_type)),
        };
        let mut forwarded = Forwarded::default();
        for Leg { to, slot } in legs {
            let open = self.receivers.get(&to).is_some_and(|r| {
                slot < match kind {
                    Kind::Audio => r.audio_slots,
                    Kind::Video => r.video_slots,
                }
            });
            if !open {
                continue;
            }
            let leg = self.legs.entry((to, kind, slot)).or_default();
            let starts = starts_keyframe || kind == Kind::Audio;
            match leg.map((from, source), seq, ts, source.frame_ticks(), starts) {
                Some((seq, ts)) => forwarded.copies.push(Outgoing {
                    to,
                    kind,
                    slot,
                    seq,
                    ts,
                }),
                None => forwarded.wants_keyframe = true,
            }
        }
        forwarded
    }
}

/// What becomes of one received packet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The copies to send.
    pub copies: Vec<Outgoing>,
    /// A leg held the packet back until a keyframe of its stream: ask the publisher for one.
    pub wants_keyframe: bool,
}

/// Maps a stream's RTP sequence numbers and timestamps onto one outgoing leg, so the leg stays
/// continuous (and starts below 65536, as SRTP's rollover counter needs) whichever stream feeds
/// it.
///
/// A new stream on a leg starts at its first keyframe: the receiver cannot tell from the
/// continuous numbering that the stream changed, and would decode the new stream's delta frames
/// against the old stream's pictures (smeared blocks, until the next keyframe, which may never
/// come unasked). Packets before that keyframe are not sent, so they leave no gap to repair.
#[derive(Debug, Default)]
pub struct Rebaser {
    source: Option<(SessionId, Source)>,
    seq_delta: i64,
    ts_delta: u32,
    next_seq: u64,
    next_ts: u32,
}

impl Rebaser {
    /// The leg's sequence number and timestamp for a packet of stream `source` with extended
    /// sequence number `seq`, RTP timestamp `ts`, lasting `duration` timestamp units; `None` while
    /// a stream new to the leg has not reached a packet that `starts_keyframe`.
    pub fn map(
        &mut self,
        source: (SessionId, Source),
        seq: u64,
        ts: u32,
        duration: u32,
        starts_keyframe: bool,
    ) -> Option<(u64, u32)> {
        if self.source != Some(source) {
            if !starts_keyframe {
                return None;
            }
            self.source = Some(source);
            self.seq_delta = self.next_seq as i64 - seq as i64;
            self.ts_delta = self.next_ts.wrapping_sub(ts);
        }
        let out_seq = (seq as i64 + self.seq_delta).max(0) as u64;
        let out_ts = ts.wrapping_add(self.ts_delta);
        if out_seq >= self.next_seq {
            self.next_seq = out_seq + 1;
            self.next_ts = out_ts.wrapping_add(duration);
        }
        Some((out_seq, out_ts))
    }

    /// Whatever stream comes next, even the same one again, starts anew at a keyframe, numbered
    /// on from the last packet sent.
    fn restart(&mut self) {
        self.source = None;
    }
}

#[cfg(test)]
mod tests {
    use call_protocol::{AUDIO_SLOTS, CallId, VIDEO_SLOTS};

    use super::*;

    const CAMERA: Source = Source::Video(MediaType::Video);
    const SCREEN: Source = Source::Video(MediaType::ScreenSharing);

    /// A forwarder whose sessions are all open with every slot, in one call, where the first
    /// three have taken audio slots 0, 1 and 2 in that order.
    fn call(members: &[SessionId]) -> Forwarder {
        let mut f = Forwarder::default();
        for &s in members {
            f.open(s, AUDIO_SLOTS, VIDEO_SLOTS);
        }
        f.router_mut()
            .set_route(CallId("c".into()), members.to_vec());
        for &s in members {
            f.hear(s, None, Instant::now());
        }
        f
    }

    fn audio(to: SessionId, slot: usize, seq: u64, ts: u32) -> Outgoing {
        Outgoing {
            to,
            kind: Kind::Audio,
            slot,
            seq,
            ts,
        }
    }

    fn video(to: SessionId, slot: usize, seq: u64, ts: u32) -> Outgoing {
        Outgoing {
            to,
            kind: Kind::Video,
            slot,
            seq,
            ts,
        }
    }

    /// The copies of a packet that starts a keyframe (or is audio).
    fn keyframe(
        f: &mut Forwarder,
        from: SessionId,
        source: Source,
        seq: u64,
        ts: u32,
    ) -> Vec<Outgoing> {
        f.forward(from, source, seq, ts, true).copies
    }

    fn sorted(mut out: Vec<Outgoing>) -> Vec<Outgoing> {
        out.sort_by_key(|o| (o.to, o.slot));
        out
    }

    #[test]
    fn one_to_one_sends_each_packet_to_the_other_rebased_from_zero() {
        let mut f = call(&[1, 2]);
        assert_eq!(
            keyframe(&mut f, 1, Source::Audio, 70_000, 5_000),
            [audio(2, 0, 0, 0)]
        );
        assert_eq!(
            keyframe(&mut f, 1, Source::Audio, 70_001, 5_960),
            [audio(2, 0, 1, 960)]
        );
        assert_eq!(
            keyframe(&mut f, 2, Source::Audio, 9, 123),
            [audio(1, 1, 0, 0)]
        );
        // Nobody subscribed to video: it goes nowhere.
        assert!(keyframe(&mut f, 1, CAMERA, 1, 1).is_empty());
    }

    #[test]
    fn three_party_call_gives_each_speaker_its_slot_on_every_other() {
        let mut f = call(&[1, 2, 3]);
        assert_eq!(
            sorted(keyframe(&mut f, 1, Source::Audio, 100, 0)),
            [audio(2, 0, 0, 0), audio(3, 0, 0, 0)]
        );
        assert_eq!(
            sorted(keyframe(&mut f, 2, Source::Audio, 500, 0)),
            [audio(1, 1, 0, 0), audio(3, 1, 0, 0)]
        );
        assert_eq!(
            sorted(keyframe(&mut f, 3, Source::Audio, 7, 0)),
            [audio(1, 2, 0, 0), audio(2, 2, 0, 0)]
        );
        // Each leg counts on its own.
        assert_eq!(
            sorted(keyframe(&mut f, 1, Source::Audio, 101, 960)),
            [audio(2, 0, 1, 960), audio(3, 0, 1, 960)]
        );
    }

    #[test]
    fn video_goes_to_the_subscribed_slot_only() {
        let mut f = call(&[1, 2, 3]);
        f.set_video(2, 4, Some((1, MediaType::Video)));
        f.set_video(3, 0, Some((1, MediaType::ScreenSharing)));
        assert_eq!(keyframe(&mut f, 1, CAMERA, 40, 9_000), [video(2, 4, 0, 0)]);
        assert_eq!(keyframe(&mut f, 1, SCREEN, 80, 1), [video(3, 0, 0, 0)]);
        assert!(keyframe(&mut f, 2, CAMERA, 1, 1).is_empty());
    }

    #[test]
    fn receivers_get_nothing_until_open_and_only_on_slots_they_have() {
        let mut f = Forwarder::default();
        f.router_mut().set_route(CallId("c".into()), vec![1, 2]);
        f.set_video(2, 3, Some((1, MediaType::Video)));
        f.hear(1, None, Instant::now());
        assert!(keyframe(&mut f, 1, Source::Audio, 1, 0).is_empty());
        assert!(!f.is_open(2));
        f.open(2, 1, 2);
        assert!(f.is_open(2));
        assert_eq!(
            keyframe(&mut f, 1, Source::Audio, 2, 960),
            [audio(2, 0, 0, 0)]
        );
        // Its offer had two video receive lines: slot 3 does not exist there.
        assert!(keyframe(&mut f, 1, CAMERA, 1, 0).is_empty());
    }

    #[test]
    fn a_slot_whose_source_changes_stays_continuous() {
        let mut f = call(&[1, 2, 3]);
        f.set_video(3, 0, Some((1, MediaType::Video)));
        assert_eq!(
            keyframe(&mut f, 1, CAMERA, 1_000, 90_000),
            [video(3, 0, 0, 0)]
        );
        assert_eq!(
            keyframe(&mut f, 1, CAMERA, 1_001, 93_000),
            [video(3, 0, 1, 3_000)]
        );
        // The slot now shows session 2's camera, numbered on from where session 1 stopped.
        f.set_video(3, 0, Some((2, MediaType::Video)));
        assert!(keyframe(&mut f, 1, CAMERA, 1_002, 96_000).is_empty());
        assert_eq!(keyframe(&mut f, 2, CAMERA, 50, 7), [video(3, 0, 2, 6_000)]);
        assert_eq!(
            keyframe(&mut f, 2, CAMERA, 51, 3_007),
            [video(3, 0, 3, 9_000)]
        );
        // And then session 2's screen: another stream of the same publisher, rebased too.
        f.set_video(3, 0, Some((2, MediaType::ScreenSharing)));
        assert_eq!(
            keyframe(&mut f, 2, SCREEN, 9_999, 1),
            [video(3, 0, 4, 12_000)]
        );
    }

    #[test]
    fn a_slot_given_a_new_stream_starts_it_at_a_keyframe() {
        let mut f = call(&[1, 2, 3]);
        let held = Forwarded {
            copies: vec![],
            wants_keyframe: true,
        };
        f.set_video(3, 0, Some((1, MediaType::Video)));
        // A fresh slot waits for its stream's keyframe too; audio never waits.
        assert_eq!(f.forward(1, CAMERA, 10, 0, false), held);
        assert_eq!(
            f.forward(1, Source::Audio, 1, 0, false).copies,
            [audio(2, 0, 0, 0), audio(3, 0, 0, 0)]
        );
        assert_eq!(keyframe(&mut f, 1, CAMERA, 11, 3_000), [video(3, 0, 0, 0)]);
        assert_eq!(
            f.forward(1, CAMERA, 12, 3_000, false).copies,
            [video(3, 0, 1, 0)]
        );
        // Switched mid-stream to session 2's camera: its delta frames are held back and a
        // keyframe asked for; the keyframe goes out numbered on, without a gap.
        f.set_video(3, 0, Some((2, MediaType::Video)));
        assert_eq!(f.forward(2, CAMERA, 500, 0, false), held);
        assert_eq!(f.forward(2, CAMERA, 501, 0, false), held);
        assert_eq!(
            keyframe(&mut f, 2, CAMERA, 502, 6_000),
            [video(3, 0, 2, 3_000)]
        );
        // Dropped and taken again, the same stream starts anew at a keyframe, not with a gap
        // of what the slot missed.
        f.set_video(3, 0, None);
        assert_eq!(
            f.forward(2, CAMERA, 503, 9_000, false),
            Forwarded::default()
        );
        f.set_video(3, 0, Some((2, MediaType::Video)));
        assert_eq!(f.forward(2, CAMERA, 600, 9_000, false), held);
        assert_eq!(
            keyframe(&mut f, 2, CAMERA, 601, 12_000),
            [video(3, 0, 3, 6_000)]
        );
        // Asked again for what it carries, a slot goes on as it was.
        f.set_video(3, 0, Some((2, MediaType::Video)));
        assert_eq!(
            f.forward(2, CAMERA, 602, 12_000, false).copies,
            [video(3, 0, 4, 6_000)]
        );
    }

    #[test]
    fn nothing_goes_to_or_from_a_forgotten_session() {
        let mut f = call(&[1, 2, 3]);
        f.set_video(1, 0, Some((2, MediaType::Video)));
        f.set_video(2, 0, Some((1, MediaType::Video)));
        f.forget(2);
        // Its call membership is signaling's to change, with the call's route; until then,
        // nothing is sent to it.
        assert_eq!(
            keyframe(&mut f, 1, Source::Audio, 1, 0),
            [audio(3, 0, 0, 0)]
        );
        assert!(keyframe(&mut f, 1, CAMERA, 1, 0).is_empty());
        assert!(keyframe(&mut f, 2, CAMERA, 1, 0).is_empty());
        f.router_mut().set_route(CallId("c".into()), vec![1, 3]);
        assert!(
            keyframe(&mut f, 2, Source::Audio, 1, 0).is_empty(),
            "out of the call, its audio goes nowhere"
        );
    }

    #[test]
    fn rebaser_starts_low_and_stays_continuous_across_sources() {
        let mut leg = Rebaser::default();
        let (a, b) = ((1, Source::Audio), (2, Source::Audio));
        assert_eq!(leg.map(a, 70_000, 1_000, 960, true), Some((0, 0)));
        assert_eq!(leg.map(a, 70_001, 1_960, 960, true), Some((1, 960)));
        // A new source continues where the old one stopped.
        assert_eq!(leg.map(b, 5, 99_999, 960, true), Some((2, 1_920)));
        assert_eq!(leg.map(b, 6, 100_959, 960, true), Some((3, 2_880)));
        // A late packet maps back without moving the leg forward.
        assert_eq!(leg.map(b, 5, 99_999, 960, true), Some((2, 1_920)));
        assert_eq!(leg.map(b, 7, 101_919, 960, true), Some((4, 3_840)));
    }
}
