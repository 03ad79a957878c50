//! The SFU's routes as plain data: which call each session is in, which of its members are the
//! call's dominant speakers (whose audio goes out, each in its receive slot on every other
//! member), and which video slots subscribe to whom.
//! [`PendingRoutes`] carries route changes from signaling to the media loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use call_protocol::{AUDIO_SLOTS, CallId, MediaType, VIDEO_SLOTS};

use crate::speakers::{DominantSpeakers, Level};
use crate::switchboard::SessionId;

/// One outgoing audio leg: a receiver and the receive slot on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leg {
    /// The session that receives.
    pub to: SessionId,
    /// Which of its [`AUDIO_SLOTS`] receive slots.
    pub slot: usize,
}

/// A video stream as the SFU routes it: whose, and which of their two (camera, screen).
pub type VideoSource = (SessionId, MediaType);

/// Who exchanges media with whom: audio from each call's dominant speakers to its other
/// members, video by subscription.
#[derive(Debug, Default)]
pub struct Router {
    calls: HashMap<CallId, Vec<SessionId>>,
    call_of: HashMap<SessionId, CallId>,
    speakers: HashMap<CallId, DominantSpeakers>,
    video: HashMap<SessionId, [Option<VideoSource>; VIDEO_SLOTS]>,
}

impl Router {
    /// Sets the sessions whose media is exchanged in a call; an empty list removes the call.
    /// Returns the sessions that were not in the route before (joined, or resumed from hold).
    pub fn set_route(&mut self, call_id: CallId, members: Vec<SessionId>) -> Vec<SessionId> {
        let old = self.calls.remove(&call_id).unwrap_or_default();
        for s in &old {
            self.call_of.remove(s);
        }
        if members.is_empty() {
            self.speakers.remove(&call_id);
            return Vec::new();
        }
        for &s in &members {
            self.call_of.insert(s, call_id.clone());
        }
        self.speakers
            .entry(call_id.clone())
            .or_insert_with(|| DominantSpeakers::new(AUDIO_SLOTS))
            .retain(&members);
        let added = members
            .iter()
            .filter(|s| !old.contains(s))
            .copied()
            .collect();
        self.calls.insert(call_id, members);
        added
    }

    /// The video streams that flow to or from `session` now: the ones its slots subscribe to,
    /// and its own streams that somebody receives.
    pub fn video_streams_of(&self, session: SessionId) -> Vec<VideoSource> {
        let mut streams: Vec<VideoSource> = self
            .video
            .get(&session)
            .into_iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        for media_type in [MediaType::Video, MediaType::ScreenSharing] {
            if !self.video_legs((session, media_type)).is_empty() {
                streams.push((session, media_type));
            }
        }
        streams.retain(|&(from, _)| self.same_call(from, session));
        streams
    }

    /// Whether both sessions are in the media route of one call (a held member is in none).
    fn same_call(&self, a: SessionId, b: SessionId) -> bool {
        self.call_of
            .get(&a)
            .is_some_and(|call| self.call_of.get(&b) == Some(call))
    }

    /// Video receive slot `slot` of `to` now carries the stream `from` (`None`: nothing).
    pub fn set_video(&mut self, to: SessionId, slot: usize, from: Option<VideoSource>) {
        if from.is_none() && !self.video.contains_key(&to) {
            // Nothing to clear; a late clear for a forgotten session must not bring it back.
            return;
        }
        let slots = self.video.entry(to).or_default();
        if let Some(entry) = slots.get_mut(slot) {
            *entry = from;
        }
        if slots.iter().all(Option::is_none) {
            self.video.remove(&to);
        }
    }

    /// Forgets a session that left: its video receive slots, and every slot that carried one of
    /// its streams. Its call membership stays as [`Router::set_route`] last set it.
    pub fn forget(&mut self, session: SessionId) {
        self.video.remove(&session);
        for slots in self.video.values_mut() {
            for slot in slots.iter_mut() {
                if slot.is_some_and(|(from, _)| from == session) {
                    *slot = None;
                }
            }
        }
        self.video
            .retain(|_, slots| slots.iter().any(Option::is_some));
    }

    /// The legs a video packet of stream `from` goes out on: every slot subscribed to it whose
    /// session is in the publisher's media route (so nothing flows to or from a held member).
    pub fn video_legs(&self, from: VideoSource) -> Vec<Leg> {
        self.video
            .iter()
            .filter(|&(&to, _)| self.same_call(from.0, to))
            .flat_map(|(&to, slots)| {
                slots
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| **s == Some(from))
                    .map(move |(slot, _)| Leg { to, slot })
            })
            .collect()
    }

    /// Which stream a receive slot carries.
    pub fn video_source(&self, to: SessionId, slot: usize) -> Option<VideoSource> {
        self.video
            .get(&to)
            .and_then(|slots| slots.get(slot).copied().flatten())
    }

    /// Takes in an audio packet from `from` with its level (if its header has one): the sender
    /// may become one of its call's dominant speakers ([`DominantSpeakers::hear`]). Returns the
    /// call when its dominant speakers changed.
    pub fn hear(&mut self, from: SessionId, level: Option<Level>, at: Instant) -> Option<CallId> {
        let call = self.call_of.get(&from)?;
        let (_, changed) = self.speakers.get_mut(call)?.hear(from, level, at);
        changed.then(|| call.clone())
    }

    /// The members of `session`'s call route (itself included); none when it is in none.
    pub fn members_with(&self, session: SessionId) -> &[SessionId] {
        self.call_of
            .get(&session)
            .and_then(|call| self.calls.get(call))
            .map_or(&[], Vec::as_slice)
    }

    /// A call's dominant speakers, the one who most recently became the loudest first.
    pub fn dominant(&self, call_id: &CallId) -> Vec<SessionId> {
        self.speakers
            .get(call_id)
            .map(DominantSpeakers::list)
            .unwrap_or_default()
    }

    /// Whose voice each receive slot of a call carries.
    pub fn voice_slots(&self, call_id: &CallId) -> Vec<Option<SessionId>> {
        self.speakers
            .get(call_id)
            .map(|d| d.slots().to_vec())
            .unwrap_or_default()
    }

    /// The legs an audio packet from `from` goes out on: none unless it is a dominant speaker
    /// of its call, then its slot on every other member.
    pub fn audio_legs(&self, from: SessionId) -> Vec<Leg> {
        let Some(call) = self.call_of.get(&from) else {
            return Vec::new();
        };
        let Some(slot) = self.speakers.get(call).and_then(|d| d.slot_of(from)) else {
            return Vec::new();
        };
        self.calls[call]
            .iter()
            .filter(|&&to| to != from)
            .map(|&to| Leg { to, slot })
            .collect()
    }
}

/// Route changes signaling decided that the media loop has not applied yet, the newest per key.
///
/// Routes are state, not events: only a call's latest members and a receive slot's latest source
/// matter. Keeping one entry per key bounds this table by the number of calls and slots however
/// fast routes change, and lets signaling write it under the switchboard lock without ever
/// waiting for the media loop. The loop applies it before each command, so a route decided
/// before a command was sent is in place when that command runs.
#[derive(Debug, Default)]
pub struct PendingRoutes {
    updates: Mutex<RouteUpdates>,
    wake: Notify,
}

/// The changes [`PendingRoutes`] holds, taken by the media loop in one piece.
#[derive(Debug, Default)]
pub struct RouteUpdates {
    /// Each changed call's members (empty: the call is gone).
    pub calls: HashMap<CallId, Vec<SessionId>>,
    /// Each changed video receive slot's source.
    pub video: HashMap<(SessionId, usize), Option<VideoSource>>,
    /// Echo bots started (`true`) or dropped.
    pub bots: HashMap<SessionId, bool>,
}

impl PendingRoutes {
    /// The call's media now flows between exactly these sessions (empty: the call is gone).
    pub fn set_route(&self, call_id: CallId, members: Vec<SessionId>) {
        self.lock().calls.insert(call_id, members);
        self.wake.notify_one();
    }

    /// Video receive slot `slot` of `to` now carries the stream `from` (`None`: nothing).
    pub fn set_video(&self, to: SessionId, slot: usize, from: Option<VideoSource>) {
        self.lock().video.insert((to, slot), from);
        self.wake.notify_one();
    }

    /// The echo bot `session` now exists (`present`) or is gone.
    pub fn set_bot(&self, session: SessionId, present: bool) {
        self.lock().bots.insert(session, present);
        self.wake.notify_one();
    }

    /// Takes every change made since the last call.
    pub fn take(&self) -> RouteUpdates {
        std::mem::take(&mut *self.lock())
    }

    /// Resolves once a change was made after the last wake-up.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouteUpdates> {
        self.updates.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_one_routes_each_to_the_other() {
        let mut r = Router::default();
        r.set_route(CallId("c".into()), vec![1, 2]);
        r.hear(1, None, Instant::now());
        r.hear(2, None, Instant::now());
        assert_eq!(r.audio_legs(1), vec![Leg { to: 2, slot: 0 }]);
        assert_eq!(r.audio_legs(2), vec![Leg { to: 1, slot: 1 }]);
        assert!(r.audio_legs(3).is_empty());
        r.set_route(CallId("c".into()), vec![]);
        assert!(r.audio_legs(1).is_empty());
    }

    #[test]
    fn only_dominant_speakers_go_out_each_on_its_slot_to_everyone_else() {
        let mut r = Router::default();
        let now = Instant::now();
        r.set_route(CallId("c".into()), (1..=6).collect());
        assert!(r.audio_legs(1).is_empty(), "nobody heard yet");
        for s in 1..=6 {
            r.hear(s, None, now);
        }
        assert_eq!(r.dominant(&CallId("c".into())), vec![1, 2, 3]);
        let legs = r.audio_legs(2);
        assert_eq!(legs.len(), 5);
        assert!(legs.iter().all(|l| l.slot == 1 && l.to != 2));
        // Session 6 is no dominant speaker: its audio goes nowhere.
        assert!(r.audio_legs(6).is_empty());
        // One leaves the call: its slot is free for the next sender.
        r.set_route(CallId("c".into()), vec![1, 3, 4, 5, 6]);
        assert_eq!(r.hear(6, None, now), Some(CallId("c".into())));
        assert_eq!(r.audio_legs(6).len(), 4);
        assert!(r.audio_legs(6).iter().all(|l| l.slot == 1));
    }

    #[test]
    fn video_goes_to_subscribed_slots_only() {
        let mut r = Router::default();
        r.set_route(CallId("c".into()), vec![1, 2, 4]);
        let camera = (1, MediaType::Video);
        let screen = (1, MediaType::ScreenSharing);
        assert!(r.video_legs(camera).is_empty());
        r.set_video(2, 3, Some(camera));
        r.set_video(4, 0, Some(camera));
        r.set_video(4, 1, Some(screen));
        let mut legs = r.video_legs(camera);
        legs.sort_by_key(|l| l.to);
        assert_eq!(legs, vec![Leg { to: 2, slot: 3 }, Leg { to: 4, slot: 0 }]);
        assert_eq!(r.video_legs(screen), vec![Leg { to: 4, slot: 1 }]);
        assert_eq!(r.video_source(2, 3), Some(camera));
        r.set_video(2, 3, None);
        assert_eq!(r.video_legs(camera), vec![Leg { to: 4, slot: 0 }]);
        // A slot out of range is ignored, not a panic.
        r.set_video(2, VIDEO_SLOTS, Some(camera));
    }

    #[test]
    fn a_forgotten_session_neither_receives_nor_sends_video() {
        let mut r = Router::default();
        r.set_route(CallId("c".into()), vec![1, 2, 3]);
        r.set_video(1, 0, Some((2, MediaType::Video)));
        r.set_video(1, 1, Some((3, MediaType::Video)));
        r.set_video(2, 0, Some((1, MediaType::Video)));
        r.set_video(3, 0, Some((2, MediaType::ScreenSharing)));
        r.forget(2);
        assert!(r.video_legs((2, MediaType::Video)).is_empty());
        assert!(r.video_legs((2, MediaType::ScreenSharing)).is_empty());
        assert!(r.video_legs((1, MediaType::Video)).is_empty());
        assert_eq!(r.video_source(1, 1), Some((3, MediaType::Video)));
        assert_eq!(r.video_source(1, 0), None);
        // Session 3 received only from 2, session 2 is gone: neither keeps an entry.
        assert_eq!(r.video.len(), 1);
        // A clear that arrives late does not bring the session back.
        r.set_video(2, 0, None);
        assert_eq!(r.video.len(), 1);
        // Audio follows the call's route, which signaling updates on its own.
        r.hear(1, None, Instant::now());
        assert_eq!(r.audio_legs(1).len(), 2);
    }

    #[test]
    fn a_session_out_of_the_route_neither_sends_nor_receives_video() {
        let mut r = Router::default();
        let call = || CallId("c".into());
        assert_eq!(r.set_route(call(), vec![1, 2, 3]), vec![1, 2, 3]);
        r.set_video(2, 0, Some((1, MediaType::Video)));
        r.set_video(1, 0, Some((2, MediaType::Video)));
        r.set_video(3, 0, Some((1, MediaType::Video)));
        // Session 1 holds: the others keep their route, 1 leaves it.
        assert!(r.set_route(call(), vec![2, 3]).is_empty());
        assert!(r.video_legs((1, MediaType::Video)).is_empty());
        assert!(r.video_legs((2, MediaType::Video)).is_empty());
        assert!(r.video_streams_of(1).is_empty());
        // It resumes: it is new to the route, and its streams flow again both ways.
        assert_eq!(r.set_route(call(), vec![1, 2, 3]), vec![1]);
        assert_eq!(r.video_legs((1, MediaType::Video)).len(), 2);
        let mut streams = r.video_streams_of(1);
        streams.sort_by_key(|s| s.0);
        assert_eq!(streams, vec![(1, MediaType::Video), (2, MediaType::Video)]);
    }

    #[test]
    fn pending_routes_keep_the_newest_change_per_key() {
        let pending = PendingRoutes::default();
        let camera = (1, MediaType::Video);
        for _ in 0..1000 {
            pending.set_video(2, 0, Some(camera));
            pending.set_video(2, 0, None);
            pending.set_route(CallId("c".into()), vec![1, 2]);
        }
        pending.set_route(CallId("c".into()), vec![]);
        let updates = pending.take();
        assert_eq!(updates.video.len(), 1);
        assert_eq!(updates.video[&(2, 0)], None);
        assert_eq!(updates.calls[&CallId("c".into())], Vec::<SessionId>::new());
        assert!(pending.take().calls.is_empty());
    }
}
