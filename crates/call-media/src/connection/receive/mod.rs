//! Remote tracks: audio packets go to the playout's jitter buffers; video packets go to a
//! [`VideoReceiver`] per track, which puts them back in order, NACKs lost ones (again, if the
//! retransmission is lost too), reassembles H.264 access units and decodes them on a thread per
//! receive slot into that slot's [`FrameSlot`]. A loss not repaired within the repair wait, a lost
//! unit tail, or a decode error asks the sender for a keyframe (PLI).
//!
//! The receive loop wakes for a packet or for the receiver's next deadline, whichever comes
//! first, so a loss is repaired or replaced by a keyframe on time even when the stream pauses.

mod losses;
#[cfg(test)]
mod tests;
mod video;

use std::sync::Arc;
use std::time::Instant;

use rtc::shared::marshal::MarshalSize;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::audio::Playout;
use crate::stats::ReceiveCounters;
use crate::video::FrameSlot;
use video::{Feedback, VideoReceiver};

/// Which receive slot a remote track fills.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Audio(usize),
    Video(usize),
}

/// RTP clock rates: Opus and H.264.
const AUDIO_CLOCK: u32 = 48_000;
const VIDEO_CLOCK: u32 = 90_000;

/// Reads one remote track until it ends, counting its packets in its slot's `counters`
/// (audio slots first, then video).
pub(super) async fn run(
    track: Arc<dyn TrackRemote>,
    find_slot: impl Fn(usize) -> Option<Slot>,
    playout: Arc<Playout>,
    frames: Vec<FrameSlot>,
    counters: Vec<ReceiveCounters>,
) {
    let mut video: Option<(VideoReceiver, u32)> = None;
    let mut slot = None;
    loop {
        let deadline = video.as_ref().and_then(|(v, _)| v.deadline());
        let timer = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // Packets first: a deadline must not give up a packet that is already queued, as on a
        // busy machine it can be. Both are cancel-safe (`poll` is a channel receive), and
        // `packet` handles deadlines too, so a steady stream cannot starve the timer's work.
        let event = tokio::select! {
            biased;
            event = track.poll() => event,
            () = timer => {
                if let Some((receiver, ssrc)) = video.as_mut() {
                    send(track.as_ref(), receiver.poll(Instant::now()), *ssrc).await;
                }
                continue;
            }
        };
        match event {
            Some(TrackRemoteEvent::OnOpen(init)) => {
                slot = find_slot(init.receiver_id.into());
                if let Some(Slot::Video(k)) = slot {
                    video = frames
                        .get(k)
                        .map(|f| (VideoReceiver::start(k, f.clone()), init.ssrc));
                }
            }
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                let (index, clock) = match slot {
                    Some(Slot::Audio(k)) => (k, AUDIO_CLOCK),
                    Some(Slot::Video(k)) => (call_protocol::AUDIO_SLOTS + k, VIDEO_CLOCK),
                    None => continue,
                };
                if let Some(c) = counters.get(index) {
                    let h = &packet.header;
                    let bytes = h.marshal_size() + packet.payload.len();
                    c.packet(
                        h.ssrc,
                        h.sequence_number,
                        h.timestamp,
                        clock,
                        bytes,
                        Instant::now(),
                    );
                }
                match (slot, video.as_mut()) {
                    (Some(Slot::Audio(k)), _) => {
                        playout.push(k, packet.header.sequence_number, packet.payload)
                    }
                    (Some(Slot::Video(_)), Some((receiver, ssrc))) => {
                        let feedback = receiver.packet(&packet, Instant::now());
                        send(track.as_ref(), feedback, *ssrc).await;
                    }
                    _ => {}
                }
            }
            Some(TrackRemoteEvent::OnEnded) | None => break,
            Some(_) => {}
        }
    }
}

/// Sends a receiver's feedback about the stream `media_ssrc` as RTCP.
async fn send(track: &dyn TrackRemote, feedback: Vec<Feedback>, media_ssrc: u32) {
    if feedback.is_empty() {
        return;
    }
    let packets = feedback
        .into_iter()
        .map(|f| -> Box<dyn rtc::rtcp::Packet> {
            match f {
                Feedback::Nack(seqs) => Box::new(TransportLayerNack {
                    sender_ssrc: 0,
                    media_ssrc,
                    nacks: nack_pairs_from_sequence_numbers(&seqs),
                }),
                Feedback::Pli => Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                }),
            }
        })
        .collect();
    // Fails only once the connection is gone, and then the track ends too.
    let _ = track.write_rtcp(packets).await;
}
