//! Dominant speakers as plain data: whose voices a call forwards into its listeners' receive
//! slots, picked from the RFC 6464 levels in the senders' packet headers.
//!
//! Each member's loudness is a moving average of its packets' levels (time constant
//! [`TIME_CONSTANT`]). A call has as many dominant speakers as receive slots, and each keeps its
//! slot while it is one, so a listener's slot `k` only changes voice when speaker `k` is
//! replaced. A free slot goes to the first member who sends anything. A member who is not
//! dominant replaces the quietest dominant speaker once it has been louder by [`MARGIN`] for
//! [`CHALLENGE`]: a cough or a single loud frame moves nobody (hysteresis). The reported order
//! puts the one who most recently became the loudest (by the same margin) first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::switchboard::SessionId;

/// How fast a member's loudness follows its levels.
pub const TIME_CONSTANT: Duration = Duration::from_millis(300);
/// How much louder (in dB) a challenger must be than a dominant speaker to replace it, or than
/// the loudest to take the first place.
pub const MARGIN: f32 = 6.0;
/// How long a challenger must stay louder by [`MARGIN`] before it replaces a dominant speaker.
pub const CHALLENGE: Duration = Duration::from_millis(150);
/// Levels at or below this (in -dBov) count as silence: loudness is how far above it a level is.
const FLOOR_DBOV: u8 = 80;

/// An RFC 6464 client-to-mixer audio level, as a packet's header carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// The level in -dBov, 0 (loudest) to 127 (silence).
    pub dbov: u8,
    /// The sender's voice activity flag, when it sets one.
    pub voice: Option<bool>,
}

impl Level {
    /// How loud this is, in dB above the silence floor (0 for silence or no voice).
    fn loudness(self) -> f32 {
        if self.voice == Some(false) {
            return 0.0;
        }
        f32::from(FLOOR_DBOV.saturating_sub(self.dbov))
    }
}

/// One member's moving loudness.
#[derive(Clone, Copy, Debug)]
struct Loudness {
    score: f32,
    at: Instant,
    /// Since when it has been louder than the quietest dominant speaker by [`MARGIN`].
    louder_since: Option<Instant>,
}

impl Loudness {
    fn new(now: Instant) -> Self {
        Self {
            score: 0.0,
            at: now,
            louder_since: None,
        }
    }

    /// The loudness at `now`, decayed since the last level heard.
    fn score_at(&self, now: Instant) -> f32 {
        self.score * decay(now.saturating_duration_since(self.at))
    }

    fn hear(&mut self, loudness: f32, now: Instant) {
        let keep = decay(now.saturating_duration_since(self.at));
        self.score = self.score * keep + loudness * (1.0 - keep);
        self.at = self.at.max(now);
    }
}

fn decay(elapsed: Duration) -> f32 {
    (-elapsed.as_secs_f32() / TIME_CONSTANT.as_secs_f32()).exp()
}

/// The dominant speakers of one call.
#[derive(Clone, Debug)]
pub struct DominantSpeakers {
    slots: Vec<Option<SessionId>>,
    members: HashMap<SessionId, Loudness>,
    /// The one who most recently became the loudest.
    top: Option<SessionId>,
}

impl DominantSpeakers {
    /// Whose voice each receive slot carries.
    pub fn slots(&self) -> &[Option<SessionId>] {
        &self.slots
    }

    /// A call whose listeners have `slots` receive slots for voices.
    pub fn new(slots: usize) -> Self {
        Self {
            slots: vec![None; slots],
            members: HashMap::new(),
            top: None,
        }
    }

    /// The slot `session`'s voice goes out on, if it is a dominant speaker.
    pub fn slot_of(&self, session: SessionId) -> Option<usize> {
        self.slots.iter().position(|s| *s == Some(session))
    }

    /// The dominant speakers, the one who most recently became the loudest first.
    pub fn list(&self) -> Vec<SessionId> {
        let top = self.top.filter(|&t| self.slot_of(t).is_some());
        let mut list: Vec<SessionId> = top.into_iter().collect();
        list.extend(self.slots.iter().flatten().filter(|&&s| Some(s) != top));
        list
    }

    /// Takes in a packet from `from` (its level, if its header has one) and returns the slot
    /// its voice goes out on now, if any, and whether [`DominantSpeakers::list`] changed.
    pub fn hear(
        &mut self,
        from: SessionId,
        level: Option<Level>,
        now: Instant,
    ) -> (Option<usize>, bool) {
        let top = self.top;
        let (slot, took_slot) = self.take_in(from, level, now);
        if slot.is_some() {
            self.update_top(from, now);
        }
        (slot, took_slot || top != self.top)
    }

    /// The slot `from` has after this packet, and whether it just took it.
    fn take_in(
        &mut self,
        from: SessionId,
        level: Option<Level>,
        now: Instant,
    ) -> (Option<usize>, bool) {
        let entry = self
            .members
            .entry(from)
            .or_insert_with(|| Loudness::new(now));
        if let Some(level) = level {
            entry.hear(level.loudness(), now);
        }
        let mine = entry.score_at(now);
        if let Some(slot) = self.slot_of(from) {
            return (Some(slot), false);
        }
        if let Some(free) = self.slots.iter().position(Option::is_none) {
            self.slots[free] = Some(from);
            return (Some(free), true);
        }
        let Some((weakest, weakest_score)) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(k, s)| Some((k, self.score_of((*s)?, now))))
            .min_by(|a, b| a.1.total_cmp(&b.1))
        else {
            // No slots at all: nobody is forwarded.
            return (None, false);
        };
        let Some(entry) = self.members.get_mut(&from) else {
            return (None, false);
        };
        if mine <= weakest_score + MARGIN {
            entry.louder_since = None;
            return (None, false);
        }
        let since = *entry.louder_since.get_or_insert(now);
        if now.saturating_duration_since(since) < CHALLENGE {
            return (None, false);
        }
        entry.louder_since = None;
        self.slots[weakest] = Some(from);
        (Some(weakest), true)
    }

    fn score_of(&self, session: SessionId, now: Instant) -> f32 {
        self.members.get(&session).map_or(0.0, |l| l.score_at(now))
    }

    /// `from`, a dominant speaker, becomes the first if there is none or it is louder than the
    /// first by [`MARGIN`].
    fn update_top(&mut self, from: SessionId, now: Instant) {
        let takes_over = match self.top {
            Some(top) if top == from => false,
            Some(top) if self.slot_of(top).is_some() => {
                self.score_of(from, now) > self.score_of(top, now) + MARGIN
            }
            _ => true,
        };
        if takes_over {
            self.top = Some(from);
        }
    }

    /// Keeps only these members (the call's route changed): anyone else loses their slot.
    /// Returns whether [`DominantSpeakers::list`] changed.
    pub fn retain(&mut self, members: &[SessionId]) -> bool {
        let before = self.list();
        self.members.retain(|s, _| members.contains(s));
        for slot in &mut self.slots {
            if slot.is_some_and(|s| !members.contains(&s)) {
                *slot = None;
            }
        }
        self.top = self.top.filter(|s| members.contains(s));
        before != self.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUD: Option<Level> = Some(Level {
        dbov: 20,
        voice: Some(true),
    });
    const SILENT: Option<Level> = Some(Level {
        dbov: 127,
        voice: Some(false),
    });

    /// Everyone in `members` sends one 20 ms packet at `t` ms; `loud` speak, the rest are silent.
    fn tick(
        d: &mut DominantSpeakers,
        start: Instant,
        t: u64,
        members: &[SessionId],
        loud: &[SessionId],
    ) {
        let now = start + Duration::from_millis(t);
        for &m in members {
            d.hear(m, if loud.contains(&m) { LOUD } else { SILENT }, now);
        }
    }

    /// Runs 20 ms packets from `from` ms to `to` ms.
    fn talk(
        d: &mut DominantSpeakers,
        start: Instant,
        (from, to): (u64, u64),
        members: &[SessionId],
        loud: &[SessionId],
    ) {
        for t in (from..to).step_by(20) {
            tick(d, start, t, members, loud);
        }
    }

    #[test]
    fn free_slots_go_to_the_first_senders_even_without_levels() {
        let now = Instant::now();
        let mut d = DominantSpeakers::new(3);
        assert_eq!(d.hear(1, None, now), (Some(0), true));
        assert_eq!(d.hear(2, SILENT, now), (Some(1), true));
        assert_eq!(d.hear(1, None, now), (Some(0), false));
        assert_eq!(d.list(), vec![1, 2]);
    }

    #[test]
    fn a_steady_louder_speaker_replaces_the_quietest_and_a_burst_does_not() {
        let start = Instant::now();
        let members = [1, 2, 3, 4, 5];
        let mut d = DominantSpeakers::new(3);
        talk(&mut d, start, (0, 1000), &members, &[1]);
        assert_eq!(d.list(), vec![1, 2, 3]);
        // Member 4 speaks for 100 ms only: shorter than the challenge, nothing changes.
        talk(&mut d, start, (1000, 1100), &members, &[4]);
        assert_eq!(d.slot_of(4), None);
        talk(&mut d, start, (1100, 2000), &members, &[]);
        // Member 5 speaks on: it replaces a silent one (2 or 3), never the recent speaker 1.
        talk(&mut d, start, (2000, 2400), &members, &[5]);
        let slot = d.slot_of(5).expect("5 became dominant");
        assert_ne!(slot, 0, "speaker 1 keeps its slot");
        assert_eq!(d.list()[0], 5, "the new speaker is the loudest now");
        assert_eq!(d.list().len(), 3);
    }

    #[test]
    fn speakers_taking_turns_each_become_the_first() {
        let start = Instant::now();
        let members: Vec<SessionId> = (1..=6).collect();
        let mut d = DominantSpeakers::new(3);
        for (turn, &speaker) in members.iter().enumerate() {
            let t = turn as u64 * 1500;
            talk(&mut d, start, (t, t + 1500), &members, &[speaker]);
            assert_eq!(d.list()[0], speaker, "turn {turn}");
            assert!(d.slot_of(speaker).is_some());
        }
        // The last three speakers are the dominant ones.
        let mut dominant = d.list();
        dominant.sort();
        assert_eq!(dominant, vec![4, 5, 6]);
    }

    #[test]
    fn two_speakers_alternating_quickly_do_not_flicker_the_order() {
        let start = Instant::now();
        let members = [1, 2, 3];
        let mut d = DominantSpeakers::new(3);
        talk(&mut d, start, (0, 1000), &members, &[1, 2]);
        let first = d.list()[0];
        let mut changes = 0;
        for k in 0..20 {
            let t = 1000 + k * 40;
            let loud = if k % 2 == 0 { [1] } else { [2] };
            let before = d.list();
            talk(&mut d, start, (t, t + 40), &members, &loud);
            changes += usize::from(before != d.list());
        }
        assert_eq!(changes, 0, "first stays {first}");
    }

    #[test]
    fn members_who_leave_free_their_slots() {
        let now = Instant::now();
        let mut d = DominantSpeakers::new(3);
        for m in [1, 2, 3] {
            d.hear(m, LOUD, now);
        }
        assert!(d.retain(&[1, 3, 4]));
        assert_eq!(d.slot_of(2), None);
        assert_eq!(d.hear(4, None, now).0, Some(1));
        assert!(!d.retain(&[1, 3, 4]));
    }
}
