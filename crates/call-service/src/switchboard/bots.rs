//! Echo bots: `8:echo123` is answered by a bot session made for that call alone, which joins,
//! subscribes to the caller's camera (to echo it) and is dropped when the call ends.

use call_protocol::{
    CallId, CommunicationIdentifier, MediaType, ParticipantState, Role, StreamInfo,
};
use std::collections::BTreeSet;

use super::{
    BOT_SESSIONS, Member, Outbound, Session, SessionId, Switchboard, VideoRoute, is_bot, is_phone,
};

/// The name callers see for the echo bot.
const BOT_NAME: &str = "Echo test service";

impl Switchboard {
    /// A new bot session, ringing in a call being placed.
    pub(super) fn new_bot(&mut self) -> Member {
        let session = BOT_SESSIONS + self.bots_made;
        self.bots_made += 1;
        self.sessions.insert(
            session,
            Session {
                user: CommunicationIdentifier::EchoBot,
                role: Role::Presenter,
                display_name: BOT_NAME.into(),
                calls: BTreeSet::new(),
            },
        );
        let mut info = self.info_of(session, ParticipantState::Connecting);
        // It echoes the caller's camera as its own.
        info.streams = vec![StreamInfo {
            media_type: MediaType::Video,
            is_available: true,
            stopped: None,
        }];
        Member { session, info }
    }

    /// Starts bots just invited into a call by `caller`: the SFU plays them, each answers at
    /// once and receives the caller's camera, which it sends back.
    pub(super) fn answer_bots(
        &mut self,
        call_id: &CallId,
        caller: SessionId,
        bots: &[SessionId],
    ) -> Vec<Outbound> {
        let mut out = Vec::new();
        for &bot in bots {
            out.push(Outbound::Bot {
                session: bot,
                present: true,
            });
            out.extend(self.accept(bot, call_id).unwrap_or_default());
            self.video.entry(bot).or_default()[0] = Some(VideoRoute {
                call_id: call_id.clone(),
                publisher: caller,
                media_type: MediaType::Video,
            });
            out.push(Outbound::VideoRoute {
                to: bot,
                slot: 0,
                from: Some((caller, MediaType::Video)),
            });
        }
        out
    }

    /// Drops bots and phones that are in no call any more (each is made for one call).
    pub(super) fn retire_bots_and_phones(&mut self, sessions: &[SessionId]) -> Vec<Outbound> {
        let mut out = Vec::new();
        for &made in sessions.iter().filter(|&&s| is_bot(s) || is_phone(s)) {
            if self.sessions.get(&made).is_some_and(|s| s.calls.is_empty()) {
                self.sessions.remove(&made);
                self.video.remove(&made);
                if is_bot(made) {
                    out.push(Outbound::Bot {
                        session: made,
                        present: false,
                    });
                }
            }
        }
        out
    }
}
