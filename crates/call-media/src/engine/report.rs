//! The engine's statistics: every [`STATS_INTERVAL`] while a call is connected, the connection's
//! counters and the frame slots become one [`MediaStats`] fact.

use std::collections::HashMap;
use std::time::Instant;

use call_protocol::{AUDIO_SLOTS, CallId, CommunicationIdentifier, MediaType, VIDEO_SLOTS};

use super::AgentEvent;
use super::session::Session;
use crate::connection::video_index;
use crate::stats::{IncomingVideoStats, MediaStats, Rate, StreamStats};

/// The previous readings the rates are computed against, and which stream each video receive
/// slot carries.
#[derive(Debug, Default)]
pub(super) struct StatsTracker {
    audio_in: [Rate; AUDIO_SLOTS],
    audio_out: Rate,
    video_out: [Rate; 2],
    video_in: [Rate; VIDEO_SLOTS],
    routed: HashMap<usize, (CallId, CommunicationIdentifier, MediaType)>,
}

impl StatsTracker {
    /// The video receive slot `slot` now carries this stream.
    pub(super) fn routed(
        &mut self,
        slot: usize,
        call_id: CallId,
        participant: CommunicationIdentifier,
        media_type: MediaType,
    ) {
        if let Some(rate) = self.video_in.get_mut(slot) {
            *rate = Rate::default();
            self.routed.insert(slot, (call_id, participant, media_type));
        }
    }

    /// The stream no longer arrives.
    pub(super) fn unrouted(
        &mut self,
        call_id: &CallId,
        participant: &CommunicationIdentifier,
        media_type: MediaType,
    ) {
        self.routed
            .retain(|_, (c, p, m)| (&*c, &*p, *m) != (call_id, participant, media_type));
    }

    /// Forgets a call's streams.
    pub(super) fn call_ended(&mut self, call_id: &CallId) {
        self.routed.retain(|_, (c, _, _)| c != call_id);
    }
}

/// Sums the voices of the audio slots: bitrates, packets and losses add up; the loss fraction
/// and the jitter are the worst slot's.
fn combine(slots: impl Iterator<Item = StreamStats>) -> StreamStats {
    slots.fold(StreamStats::default(), |all, s| StreamStats {
        bitrate: all.bitrate + s.bitrate,
        packets: all.packets + s.packets,
        packets_lost: all.packets_lost + s.packets_lost,
        loss_fraction: all.loss_fraction.max(s.loss_fraction),
        jitter: all.jitter.max(s.jitter),
        frame_size: None,
        frames_per_second: None,
    })
}

impl Session {
    /// Reports the media figures, if some call is connected.
    pub(super) async fn report_stats(&mut self) {
        if !self.media_up || !self.calls.values().any(|c| c.announced) {
            return;
        }
        let round_trip_time = self.connection.round_trip_time().await;
        let now = Instant::now();
        let tracker = &mut self.stats;
        let connection = &self.connection;
        let incoming_audio =
            combine(
                tracker
                    .audio_in
                    .iter_mut()
                    .enumerate()
                    .map(|(k, rate)| StreamStats {
                        frames_per_second: None,
                        ..rate.update(connection.audio_received(k), 0, now)
                    }),
            );
        let outgoing_audio = StreamStats {
            frames_per_second: None,
            ..tracker.audio_out.update(connection.sent(None), 0, now)
        };
        let mut outgoing_video = Vec::new();
        for media_type in [MediaType::Video, MediaType::ScreenSharing] {
            let index = video_index(media_type);
            let preview = self.senders[index].preview();
            let stats = tracker.video_out[index].update(
                connection.sent(Some(media_type)),
                preview.sequence(),
                now,
            );
            if self.sources[index].is_some() {
                let frame_size = preview.size();
                outgoing_video.push((
                    media_type,
                    StreamStats {
                        frame_size,
                        ..stats
                    },
                ));
            }
        }
        let mut incoming_video = Vec::new();
        for (slot, rate) in tracker.video_in.iter_mut().enumerate() {
            let Some(frames) = connection.video_frames(slot) else {
                continue;
            };
            let stats = rate.update(connection.video_received(slot), frames.sequence(), now);
            if let Some((call_id, participant, media_type)) = tracker.routed.get(&slot) {
                incoming_video.push(IncomingVideoStats {
                    call_id: call_id.clone(),
                    participant: participant.clone(),
                    media_type: *media_type,
                    stats: StreamStats {
                        frame_size: frames.size(),
                        ..stats
                    },
                });
            }
        }
        self.emit(AgentEvent::Stats(MediaStats {
            round_trip_time,
            outgoing_audio,
            incoming_audio,
            outgoing_video,
            incoming_video,
        }));
    }
}
