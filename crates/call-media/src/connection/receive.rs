//! Remote tracks: audio packets go to the playout's jitter buffers; video packets are put back in
//! order (waiting briefly for NACK/RTX repairs), reassembled into H.264 access units and decoded
//! on a thread per receive slot into that slot's [`FrameSlot`]. A gap that is not repaired in time,
//! or a decode error, asks the sender for a keyframe (PLI).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::audio::Playout;
use crate::seq::SeqUnwrapper;
use crate::video::{FrameSlot, VideoDecoder};

/// The least time between two PLIs for one stream.
const PLI_GAP: Duration = Duration::from_millis(250);
/// Access units waiting for the decoder; more means it is behind, and the newest are dropped.
const DECODE_QUEUE: usize = 4;
/// How long a gap may wait for its retransmission before the packets after it go on without it.
const REPAIR_WAIT: Duration = Duration::from_millis(80);
/// Packets held while waiting for a repair; beyond this the gap is given up at once.
const REORDER_LIMIT: usize = 512;

/// Which receive slot a remote track fills.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Audio(usize),
    Video(usize),
}

/// Reads one remote track until it ends.
pub(super) async fn run(
    track: Arc<dyn TrackRemote>,
    find_slot: impl Fn(usize) -> Option<Slot>,
    playout: Arc<Playout>,
    frames: Vec<FrameSlot>,
) {
    let mut video: Option<VideoReceiver> = None;
    let mut slot = None;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnOpen(init) => {
                slot = find_slot(init.receiver_id.into());
                if let Some(Slot::Video(k)) = slot {
                    video = frames
                        .get(k)
                        .map(|f| VideoReceiver::start(k, f.clone(), init.ssrc));
                }
            }
            TrackRemoteEvent::OnRtpPacket(packet) => match (slot, video.as_mut()) {
                (Some(Slot::Audio(k)), _) => {
                    playout.push(k, packet.header.sequence_number, packet.payload)
                }
                (Some(Slot::Video(_)), Some(receiver)) => {
                    if let Some(pli) = receiver.packet(&packet) {
                        let _ = track.write_rtcp(vec![Box::new(pli)]).await;
                    }
                }
                _ => {}
            },
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Reorders one video stream's packets, reassembles access units and feeds its decoder thread.
struct VideoReceiver {
    sequence: SeqUnwrapper,
    /// Packets after a gap, by extended sequence number, with their arrival time.
    pending: BTreeMap<u64, (Instant, rtc::rtp::Packet)>,
    next: Option<u64>,
    /// The packets just before the next one were given up: whichever unit they belonged to is
    /// broken.
    gap_before_next: bool,
    depacketizer: H264Packet,
    access_unit: Vec<u8>,
    timestamp: Option<u32>,
    intact: bool,
    decode: crossbeam_channel::Sender<Vec<u8>>,
    want_keyframe: Arc<AtomicBool>,
    last_pli: Option<Instant>,
    media_ssrc: u32,
}

impl VideoReceiver {
    /// A receiver whose access units a new decoder thread decodes into `frames`.
    fn start(slot: usize, frames: FrameSlot, media_ssrc: u32) -> Self {
        let (decode, units) = crossbeam_channel::bounded::<Vec<u8>>(DECODE_QUEUE);
        let want_keyframe = Arc::new(AtomicBool::new(true));
        let flag = want_keyframe.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("video-decode-{slot}"))
            .spawn(move || {
                let mut decoder = match VideoDecoder::new() {
                    Ok(d) => d,
                    Err(e) => return tracing::error!("no H.264 decoder: {e}"),
                };
                let mut writer = frames.writer();
                for unit in units {
                    if decoder.decode(&unit, &mut writer).is_err() {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("could not start a video decoder thread: {e}");
        }
        Self::new(media_ssrc, decode, want_keyframe)
    }

    /// A receiver that hands whole access units to `decode`; whoever decodes them raises
    /// `want_keyframe` when one fails.
    fn new(
        media_ssrc: u32,
        decode: crossbeam_channel::Sender<Vec<u8>>,
        want_keyframe: Arc<AtomicBool>,
    ) -> Self {
        Self {
            sequence: SeqUnwrapper::default(),
            pending: BTreeMap::new(),
            next: None,
            gap_before_next: false,
            depacketizer: H264Packet::default(),
            access_unit: Vec::new(),
            timestamp: None,
            intact: true,
            decode,
            want_keyframe,
            last_pli: None,
            media_ssrc,
        }
    }

    /// Takes one RTP packet; returns a PLI to send when a keyframe is needed.
    fn packet(&mut self, packet: &rtc::rtp::Packet) -> Option<PictureLossIndication> {
        let seq = self.sequence.unwrap(packet.header.sequence_number);
        if self.next.is_none_or(|next| seq >= next) {
            self.pending.insert(seq, (Instant::now(), packet.clone()));
            self.next.get_or_insert(seq);
            self.drain();
        }
        self.pli_if_wanted()
    }

    /// Assembles every packet that is next in order; gives up a gap once it waited too long.
    fn drain(&mut self) {
        while let Some(next) = self.next {
            if let Some((_, packet)) = self.pending.remove(&next) {
                self.next = Some(next + 1);
                self.assemble(&packet);
                continue;
            }
            let Some((&first, (arrived, _))) = self.pending.first_key_value() else {
                return;
            };
            if arrived.elapsed() < REPAIR_WAIT && self.pending.len() < REORDER_LIMIT {
                return;
            }
            self.next = Some(first);
            self.gap_before_next = true;
        }
    }

    fn assemble(&mut self, packet: &rtc::rtp::Packet) {
        let gap = std::mem::take(&mut self.gap_before_next);
        if gap {
            // The depacketizer may hold half a fragment.
            self.depacketizer = H264Packet::default();
            self.intact = false;
        }
        if self.timestamp != Some(packet.header.timestamp) {
            self.access_unit.clear();
            self.timestamp = Some(packet.header.timestamp);
            // A new unit is whole unless the lost packets may have been its first ones.
            self.intact = !gap;
        }
        // webrtc-rs's STAP-A parser can index past a malformed packet's end; a bad publisher
        // must cost its own picture, not this receiver's task.
        let depacketized = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.depacketizer.depacketize(&packet.payload)
        }));
        match depacketized {
            Ok(Ok(nal)) => self.access_unit.extend_from_slice(&nal),
            Ok(Err(_)) => self.intact = false,
            Err(_) => {
                self.depacketizer = H264Packet::default();
                self.intact = false;
            }
        }
        if packet.header.marker {
            if self.intact && !self.access_unit.is_empty() {
                // A full queue means the decoder is behind: drop this unit and ask for a
                // keyframe, since the next ones reference it.
                if self
                    .decode
                    .try_send(std::mem::take(&mut self.access_unit))
                    .is_err()
                {
                    self.want_keyframe.store(true, Ordering::Relaxed);
                }
            } else {
                self.want_keyframe.store(true, Ordering::Relaxed);
            }
            self.intact = true;
            self.access_unit.clear();
        }
    }

    fn pli_if_wanted(&mut self) -> Option<PictureLossIndication> {
        let now = Instant::now();
        if !self.want_keyframe.load(Ordering::Relaxed)
            || self
                .last_pli
                .is_some_and(|t| now.saturating_duration_since(t) < PLI_GAP)
        {
            return None;
        }
        self.want_keyframe.store(false, Ordering::Relaxed);
        self.last_pli = Some(now);
        Some(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.media_ssrc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> rtc::rtp::Packet {
        let mut p = rtc::rtp::Packet::default();
        p.header.sequence_number = seq;
        p.header.timestamp = timestamp;
        p.header.marker = marker;
        p.payload = bytes::Bytes::copy_from_slice(payload);
        p
    }

    /// A single-NAL packet carrying a non-IDR slice tagged `n` (webrtc-rs refuses NALs of fewer
    /// than three bytes).
    fn slice(seq: u16, timestamp: u32, marker: bool, n: u8) -> rtc::rtp::Packet {
        packet(seq, timestamp, marker, &[0x41, 0x9a, n])
    }

    /// The Annex-B access unit the depacketizer makes of the slices tagged `tags`.
    fn unit(tags: &[u8]) -> Vec<u8> {
        tags.iter()
            .flat_map(|&n| [0, 0, 0, 1, 0x41, 0x9a, n])
            .collect()
    }

    #[test]
    fn reordered_packets_make_one_unit_and_malformed_ones_do_not_panic() {
        // The test holds the decoder's end of the queue: no decoder thread can raise
        // `want_keyframe` behind its back.
        let (decode, units) = crossbeam_channel::bounded(DECODE_QUEUE);
        let mut receiver = VideoReceiver::new(1, decode, Arc::new(AtomicBool::new(false)));
        // A unit's packets arrive out of order: they are put back in order and nothing is lost.
        assert!(receiver.packet(&slice(10, 90, false, 1)).is_none());
        assert!(receiver.packet(&slice(12, 90, true, 3)).is_none());
        assert!(receiver.packet(&slice(11, 90, false, 2)).is_none());
        assert_eq!(
            units.try_recv(),
            Ok(unit(&[1, 2, 3])),
            "all three, in order"
        );
        // A STAP-A with a stray trailing byte, which webrtc-rs's parser indexes past.
        let pli = receiver.packet(&packet(13, 180, true, &[0x78, 0x00, 0x01, 0x41, 0x00]));
        assert_eq!(
            pli.map(|p| p.media_ssrc),
            Some(1),
            "a broken unit asks for a keyframe"
        );
        assert!(units.try_recv().is_err(), "and is not decoded");
    }
}
