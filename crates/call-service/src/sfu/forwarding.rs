//! Forwarding: a received packet goes out on every leg the [`crate::forward::Forwarder`] names
//! for it (an RTP write into each receiver's `Rtc`, sent at once), and keyframe requests go
//! back to publishers.

use std::time::Instant;

use bytes::Bytes;
use call_protocol::{MediaType, h264_starts_keyframe};
use str0m::Input;
use str0m::format::PayloadParams;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo};

use super::{KEYFRAME_REQUEST_GAP, Sfu, VIDEO_SENDS, speaking};
use crate::forward::{Kind, Source};
use crate::router::VideoSource;
use crate::switchboard::SessionId;

impl Sfu {
    /// Sends what this turn of the loop wrote to receivers: one timeout input and one drive per
    /// receiver, however many packets it got. Driving one may forward more (its own received
    /// media), which is flushed too.
    pub(super) fn flush(&mut self) {
        while let Some(session) = self.written.pop() {
            self.current = Some(session);
            let Some(peer) = self.peers.get_mut(&session) else {
                continue;
            };
            peer.written = false;
            let _ = peer.rtc.handle_input(Input::Timeout(Instant::now()));
            self.drive(session);
        }
    }

    /// Asks a publisher for a keyframe of one stream, at most once per [`KEYFRAME_REQUEST_GAP`].
    pub(super) fn request_keyframe(&mut self, (from, media_type): VideoSource) {
        // A bot's video is its caller's camera: ask the caller.
        if self.bots.contains_key(&from) {
            if let Some(source) = self.forwarder.router().video_source(from, 0) {
                self.request_keyframe(source);
            }
            return;
        }
        let now = Instant::now();
        self.current = Some(from);
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let Some(i) = VIDEO_SENDS.iter().position(|t| *t == media_type) else {
            return;
        };
        if peer.last_keyframe_request[i]
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_GAP)
        {
            return;
        }
        let Some(&mid) = peer.video.send.get(i) else {
            return;
        };
        if let Some(rx) = peer.rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            peer.last_keyframe_request[i] = Some(now);
        }
    }

    /// Sends a packet received from `from` out on every leg the forwarder names for it.
    pub(super) fn forward(&mut self, from: SessionId, source: Source, packet: &RtpPacket) {
        // Payload types are per peer: map the publisher's onto each receiver's by codec.
        let Some(params) = self.peers.get(&from).and_then(|p| {
            p.rtc
                .codec_config()
                .find(|c| c.pt() == packet.header.payload_type)
                .copied()
        }) else {
            return;
        };
        let media = Media {
            params,
            seq: *packet.seq_no,
            ts: packet.header.timestamp,
            marker: packet.header.marker,
            ext: ExtensionValues {
                audio_level: packet.header.ext_vals.audio_level,
                voice_activity: packet.header.ext_vals.voice_activity,
                ..Default::default()
            },
            payload: &packet.payload,
            at: packet.timestamp,
        };
        self.send_copies(from, source, &media);
    }

    /// Writes a packet of `from` on every leg the forwarder names for it. Copies for an echo bot
    /// go to the bot: audio is recorded, video comes straight back as the bot's own stream.
    /// Audio for a phone goes to its leg.
    pub(super) fn send_copies(&mut self, from: SessionId, source: Source, media: &Media) {
        let now = Instant::now();
        if source == Source::Audio
            && let Some(call_id) =
                self.forwarder
                    .hear(from, speaking::level_of(&media.ext), media.at)
        {
            self.report_dominant(call_id);
        }
        let starts_keyframe = source != Source::Audio && h264_starts_keyframe(media.payload);
        let forwarded = self
            .forwarder
            .forward(from, source, media.seq, media.ts, starts_keyframe);
        if forwarded.wants_keyframe
            && let Source::Video(media_type) = source
        {
            self.request_keyframe((from, media_type));
        }
        let mut echoes = Vec::new();
        for out in forwarded.copies {
            if let Some(bot) = self.bots.get_mut(&out.to) {
                match out.kind {
                    Kind::Audio => bot.hear(Bytes::copy_from_slice(media.payload), now),
                    Kind::Video => echoes.push(out),
                }
                continue;
            }
            if out.kind == Kind::Audio && self.to_phone(out.to, out.slot, media.payload) {
                continue;
            }
            self.current = Some(out.to);
            let Some(peer) = self.peers.get_mut(&out.to) else {
                continue;
            };
            let lane = match out.kind {
                Kind::Audio => &peer.audio,
                Kind::Video => &peer.video,
            };
            let (Some(&mid), Some(pt)) = (
                lane.recv.get(out.slot),
                peer.rtc
                    .codec_config()
                    .match_params(media.params)
                    .map(|p| p.pt()),
            ) else {
                continue;
            };
            self.traffic.add(out.to, out.kind, media.payload.len());
            if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(mid, None) {
                tx.write_rtp(
                    RtpWrite::new(
                        pt,
                        SeqNo::from(out.seq),
                        out.ts,
                        media.at,
                        media.payload.to_vec(),
                    )
                    .marker(media.marker)
                    .ext_vals(media.ext.clone())
                    .nackable(out.kind == Kind::Video),
                );
            }
            // A written packet is only sent after the next timeout input (str0m's pacer
            // takes new packets in there): one per receiver per batch, in `flush`.
            if !peer.written {
                peer.written = true;
                self.written.push(out.to);
            }
        }
        for out in echoes {
            let echo = Media {
                seq: out.seq,
                ts: out.ts,
                ..media.clone()
            };
            self.send_copies(out.to, Source::Video(MediaType::Video), &echo);
        }
    }
}

/// A packet on its way out, whoever sent it: a peer, or an echo bot.
#[derive(Clone)]
pub(super) struct Media<'a> {
    /// The codec, as the sender's payload type means it.
    pub(super) params: PayloadParams,
    pub(super) seq: u64,
    pub(super) ts: u32,
    pub(super) marker: bool,
    pub(super) ext: ExtensionValues,
    pub(super) payload: &'a [u8],
    /// When it was received (or made).
    pub(super) at: Instant,
}
