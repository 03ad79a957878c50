//! The SFU's part of the echo bots ([`crate::echo`]): a bot is a session with no peer. Its
//! receive legs end in the bot (audio recorded, video echoed at once in
//! [`Sfu::send_copies`]), and the audio it plays leaves through the same forwarder as anyone's.

use std::time::Instant;

use call_protocol::AUDIO_SLOTS;
use str0m::format::{Codec, PayloadParams};
use str0m::rtp::ExtensionValues;

use super::{Media, Sfu};
use crate::echo::EchoBot;
use crate::forward::Source;
use crate::switchboard::SessionId;

impl Sfu {
    /// Starts (`present`) or drops an echo bot.
    pub(super) fn set_bot(&mut self, session: SessionId, present: bool) {
        if present {
            let bot = EchoBot::new(self.prompt.clone(), Instant::now());
            self.bots.insert(session, bot);
            // It hears whoever speaks, on any audio slot, and receives the caller's camera.
            self.forwarder.open(session, AUDIO_SLOTS, 1);
        } else {
            self.forget(session);
        }
    }

    /// When the next bot has audio to send.
    pub(super) fn bots_wake(&self) -> Option<Instant> {
        self.bots.values().filter_map(EchoBot::next_wake).min()
    }

    /// Sends the audio every bot owes by now.
    pub(super) fn tick_bots(&mut self) {
        let now = Instant::now();
        let sessions: Vec<SessionId> = self.bots.keys().copied().collect();
        for session in sessions {
            let Some(bot) = self.bots.get_mut(&session) else {
                continue;
            };
            let due = bot.due(now);
            if due.is_empty() {
                continue;
            }
            // The bot speaks Opus as the other members' peers number it.
            let Some(params) = self.opus_params_near(session) else {
                continue;
            };
            for packet in due {
                let media = Media {
                    params,
                    seq: packet.seq,
                    ts: packet.ts,
                    marker: false,
                    ext: ExtensionValues::default(),
                    payload: &packet.payload,
                    at: now,
                };
                self.send_copies(session, Source::Audio, &media);
            }
        }
    }

    /// Opus as the peers of `session`'s fellow members number it: how a session without a peer
    /// of its own (a bot, a phone) sends audio. None while it shares a call with no peer.
    pub(super) fn opus_params_near(&self, session: SessionId) -> Option<PayloadParams> {
        self.forwarder
            .router()
            .members_with(session)
            .iter()
            .find_map(|s| self.peers.get(s))
            .and_then(|peer| {
                peer.rtc
                    .codec_config()
                    .find(|c| c.spec().codec == Codec::Opus)
                    .copied()
            })
    }
}
