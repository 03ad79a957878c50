//! The two channels between signaling and the media loop, and what the loop reports outside.
//!
//! Both channels are bounded: signaling waits for room to send a [`MediaCommand`]; the loop
//! never waits, and retries a [`MediaFact`] that finds its channel full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use call_protocol::CallId;
use tokio::sync::{mpsc, oneshot};

use super::{PhoneFrame, SlotAudio};

use crate::forward::Kind;
use crate::switchboard::SessionId;

/// How many commands may wait for the media loop. Signaling waits for room rather than drop
/// one, so a client whose offers and candidates outrun the loop is simply read more slowly.
pub const MEDIA_COMMANDS: usize = 256;
/// How many facts may wait for signaling. The loop never waits: a fact that finds the channel
/// full is sent again on a later turn (each is a session's latest state), so none is lost.
pub const MEDIA_FACTS: usize = 256;

/// A request from signaling to the media loop.
#[derive(Debug)]
pub enum MediaCommand {
    /// A session's SDP offer: create its peer and reply with the answer SDP.
    AddPeer {
        /// The session the peer belongs to.
        session: SessionId,
        /// The client's offer.
        offer: String,
        /// Where the answer, or why there is none, goes.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// A trickled ICE candidate of a session's client.
    RemoteCandidate {
        /// Whose.
        session: SessionId,
        /// The `candidate:...` line.
        candidate: String,
    },
    /// A phone participant's leg ([`crate::pstn`]): the voices forwarded to `session` go to
    /// `audio`.
    AddPhone {
        /// The phone's session.
        session: SessionId,
        /// Where its forwarded voices go ([`super::PHONE_QUEUE`] at most waiting).
        audio: mpsc::Sender<SlotAudio>,
    },
    /// A frame of a phone's voice for its call. Sent with `try_send`: dropped, not waited
    /// for, when the loop is behind.
    PhoneAudio {
        /// The phone's session.
        session: SessionId,
        /// The frame.
        frame: PhoneFrame,
    },
    /// The session is gone: drop its peer (or its phone leg).
    RemovePeer {
        /// Whose.
        session: SessionId,
    },
}

/// Media the SFU sent to one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerTraffic {
    /// RTP packets of audio.
    pub audio_packets: u64,
    /// RTP payload bytes of audio.
    pub audio_bytes: u64,
    /// RTP payload bytes of video.
    pub video_bytes: u64,
}

/// What the SFU sent to each peer, readable from outside the media loop.
#[derive(Clone, Debug, Default)]
pub struct Traffic(Arc<Mutex<HashMap<SessionId, PeerTraffic>>>);

impl Traffic {
    /// What was sent to `session` so far.
    pub fn of(&self, session: SessionId) -> PeerTraffic {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .copied()
            .unwrap_or_default()
    }

    /// Drops the counters of a session that left.
    pub(super) fn forget(&self, session: SessionId) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session);
    }

    pub(super) fn add(&self, session: SessionId, kind: Kind, bytes: usize) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = all.entry(session).or_default();
        match kind {
            Kind::Audio => {
                entry.audio_packets += 1;
                entry.audio_bytes += bytes as u64;
            }
            Kind::Video => entry.video_bytes += bytes as u64,
        }
    }
}

/// Something the media loop observed that signaling tells clients about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaFact {
    /// A session started or stopped speaking, judged from its RFC 6464 audio levels.
    Speaking {
        /// Whose audio.
        session: SessionId,
        /// Whether it carries speech now.
        speaking: bool,
    },
    /// A call's dominant speakers changed: whose audio goes out in its receive slots now, the
    /// one who became the loudest most recently first.
    DominantSpeakers {
        /// Which call.
        call_id: CallId,
        /// Who, in that order.
        speakers: Vec<SessionId>,
        /// Whose voice each receive slot carries.
        slots: Vec<Option<SessionId>>,
    },
}
