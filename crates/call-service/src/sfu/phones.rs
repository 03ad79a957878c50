//! The SFU's part of phone participants ([`crate::pstn`]): like an echo bot, a phone is a
//! session with no peer. The voices forwarded to it go to its leg's channel as Opus, for the
//! gateway to mix and code for the phone; the phone's voice comes back as Opus frames
//! ([`MediaCommand::PhoneAudio`](super::MediaCommand::PhoneAudio)) and leaves through the same
//! forwarder as anyone's.

use std::time::Instant;

use bytes::Bytes;
use call_protocol::AUDIO_SLOTS;
use str0m::rtp::ExtensionValues;
use tokio::sync::mpsc;

use super::{Media, Sfu};
use crate::forward::Source;
use crate::switchboard::SessionId;

/// How many forwarded packets may wait for a phone's leg (200 ms of three voices); more are
/// dropped, never queued.
pub const PHONE_QUEUE: usize = 30;

/// One Opus packet forwarded to a phone: which of its audio slots, and the payload.
#[derive(Debug)]
pub struct SlotAudio {
    /// The receive slot (the voice) it belongs to.
    pub slot: usize,
    /// The Opus packet.
    pub payload: Bytes,
}

/// One Opus frame of a phone's voice, for the call.
#[derive(Debug)]
pub struct PhoneFrame {
    /// RTP sequence number (the leg's own count).
    pub seq: u64,
    /// RTP timestamp at 48 kHz.
    pub ts: u32,
    /// The Opus packet.
    pub payload: Bytes,
    /// Its RFC 6464 level, -dBov.
    pub level: u8,
}

/// RFC 6464 levels are -dBov; a frame at or above -50 dBov counts as voice.
const VOICE_LEVEL: u8 = 50;

impl Sfu {
    /// A phone joins the media loop: it hears every audio slot through `audio`.
    pub(super) fn add_phone(&mut self, session: SessionId, audio: mpsc::Sender<SlotAudio>) {
        self.phones.insert(session, audio);
        self.forwarder.open(session, AUDIO_SLOTS, 0);
    }

    /// Hands a packet forwarded to phone `to` to its leg; false if `to` is no phone.
    pub(super) fn to_phone(&self, to: SessionId, slot: usize, payload: &[u8]) -> bool {
        let Some(audio) = self.phones.get(&to) else {
            return false;
        };
        let packet = SlotAudio {
            slot,
            payload: Bytes::copy_from_slice(payload),
        };
        if audio.try_send(packet).is_err() {
            tracing::trace!("phone {to}'s leg is behind; a packet is dropped");
        }
        true
    }

    /// Sends a phone's frame to the call, as the other members' peers number Opus.
    pub(super) fn phone_audio(&mut self, session: SessionId, frame: PhoneFrame) {
        if !self.phones.contains_key(&session) {
            return;
        }
        let Some(params) = self.opus_params_near(session) else {
            return;
        };
        let level = frame.level.min(127);
        let media = Media {
            params,
            seq: frame.seq,
            ts: frame.ts,
            marker: false,
            ext: ExtensionValues {
                audio_level: Some(-(level as i8)),
                voice_activity: Some(level <= VOICE_LEVEL),
                ..Default::default()
            },
            payload: &frame.payload,
            at: Instant::now(),
        };
        self.send_copies(session, Source::Audio, &media);
    }
}
