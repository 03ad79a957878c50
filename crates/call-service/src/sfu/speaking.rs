//! Who speaks: each peer's speaking state from its packets' RFC 6464 levels, and each call's
//! dominant speakers as the router picks them ([`crate::speakers`]), both reported to signaling
//! as [`MediaFact`]s. A fact that finds the channel full is not lost: the state stays
//! unreported and is sent again on a later turn of the loop.

use std::time::{Duration, Instant};

use call_protocol::CallId;
use str0m::rtp::{ExtensionValues, RtpPacket};

use super::{MediaFact, Sfu};
use crate::speakers::Level;
use crate::switchboard::SessionId;

/// RFC 6464 levels are -dBov; a frame at or above -50 dBov with the voice bit counts as speech.
const SPEECH_LEVEL: u8 = 50;
/// How long after the last speech frame a sender still counts as speaking.
const SPEAKING_HOLD: Duration = Duration::from_millis(400);

/// The RFC 6464 level in a packet's header extensions, if it has one.
pub(super) fn level_of(ext: &ExtensionValues) -> Option<Level> {
    ext.audio_level.map(|l| Level {
        dbov: l.unsigned_abs(),
        voice: ext.voice_activity,
    })
}

impl Sfu {
    pub(super) fn note_level(&mut self, session: SessionId, packet: &RtpPacket) {
        let speech = level_of(&packet.header.ext_vals)
            .is_some_and(|l| l.voice != Some(false) && l.dbov <= SPEECH_LEVEL);
        if let Some(peer) = self.peers.get_mut(&session)
            && speech
        {
            peer.last_speech = Some(packet.timestamp);
        }
        self.update_speaking(session, packet.timestamp);
    }

    pub(super) fn update_speaking(&mut self, session: SessionId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&session) else {
            return;
        };
        let speaking = peer
            .last_speech
            .is_some_and(|t| now.saturating_duration_since(t) < SPEAKING_HOLD);
        // A full channel leaves the state unreported; the peer's next packet or timer (at most
        // 100 ms away) tries again. A closed one means signaling is shutting down.
        if speaking != peer.reported_speaking
            && self
                .facts
                .try_send(MediaFact::Speaking { session, speaking })
                .is_ok()
        {
            peer.reported_speaking = speaking;
        }
    }

    /// Tells signaling a call's dominant speakers and whose voice each slot carries, if either
    /// changed since it last heard them.
    pub(super) fn report_dominant(&mut self, call_id: CallId) {
        let router = self.forwarder.router();
        let now = (router.dominant(&call_id), router.voice_slots(&call_id));
        if self.dominant.get(&call_id) == Some(&now) {
            self.dominant_unreported.remove(&call_id);
            return;
        }
        let fact = MediaFact::DominantSpeakers {
            call_id: call_id.clone(),
            speakers: now.0.clone(),
            slots: now.1.clone(),
        };
        if self.facts.try_send(fact).is_ok() {
            self.dominant_unreported.remove(&call_id);
            if now.0.is_empty() {
                self.dominant.remove(&call_id);
            } else {
                self.dominant.insert(call_id, now);
            }
        } else {
            self.dominant_unreported.insert(call_id);
        }
    }

    /// Reports the dominant speakers a full channel held back.
    pub(super) fn report_unreported(&mut self) {
        if self.dominant_unreported.is_empty() {
            return;
        }
        let calls: Vec<CallId> = self.dominant_unreported.iter().cloned().collect();
        for call_id in calls {
            self.report_dominant(call_id);
        }
    }
}
