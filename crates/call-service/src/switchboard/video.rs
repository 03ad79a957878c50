//! Video subscriptions: which publisher's stream each subscriber's receive slot carries.

use call_protocol::{
    CallId, CommunicationIdentifier, ErrorCode, MediaType, ServerMessage, VIDEO_SLOTS,
};

use super::{Outbound, Refusal, SessionId, Switchboard, VideoRoute};

impl Switchboard {
    pub(super) fn subscribe(
        &mut self,
        session: SessionId,
        call_id: CallId,
        participant: &CommunicationIdentifier,
        media_type: MediaType,
    ) -> Result<Vec<Outbound>, Refusal> {
        let call = self.call_of(&call_id, session)?;
        let publisher = call
            .members
            .iter()
            .find(|m| &m.info.id == participant && m.session != session && m.in_call())
            .map(|m| m.session)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::BadRequest,
                    format!("{participant} is not connected in call `{call_id}`"),
                )
            })?;
        let route = VideoRoute {
            call_id: call_id.clone(),
            publisher,
            media_type,
        };
        let slots = self.video.entry(session).or_default();
        let slot = match slots.iter().position(|r| r.as_ref() == Some(&route)) {
            Some(slot) => slot,
            None => {
                let free = slots.iter().position(Option::is_none).ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::BadRequest,
                        format!("all {VIDEO_SLOTS} video receive slots are in use"),
                    )
                })?;
                slots[free] = Some(route);
                free
            }
        };
        Ok(vec![
            Outbound::VideoRoute {
                to: session,
                slot,
                from: Some((publisher, media_type)),
            },
            Outbound::Send(
                session,
                ServerMessage::VideoRouted {
                    call_id,
                    participant: participant.clone(),
                    media_type,
                    slot: slot as u8,
                },
            ),
        ])
    }

    /// Clears `subscriber`'s slots whose route matches, telling it and the SFU.
    pub(super) fn unroute(
        &mut self,
        subscriber: SessionId,
        matches: impl Fn(&VideoRoute) -> bool,
    ) -> Vec<Outbound> {
        let mut out = Vec::new();
        let Some(slots) = self.video.get_mut(&subscriber) else {
            return out;
        };
        for (slot, entry) in slots.iter_mut().enumerate() {
            let Some(route) = entry.take_if(|r| matches(r)) else {
                continue;
            };
            out.push(Outbound::VideoRoute {
                to: subscriber,
                slot,
                from: None,
            });
            if let Some(publisher) = self.sessions.get(&route.publisher) {
                out.push(Outbound::Send(
                    subscriber,
                    ServerMessage::VideoUnrouted {
                        call_id: route.call_id,
                        participant: publisher.user.clone(),
                        media_type: route.media_type,
                    },
                ));
            }
        }
        out
    }
}
