//! A phone's media leg: one UDP socket of RTP with the phone (or the carrier's media relay),
//! G.711 both ways, on a task of its own. Every 20 ms it sends the call's mixed voices; each
//! packet from the phone goes to the call as Opus ([`MediaCommand::PhoneAudio`]). It sends from
//! the socket it receives on, so symmetric-RTP carriers (and sipp's echo) answer to it.

use std::net::SocketAddr;
use std::time::Duration;

use call_protocol::AUDIO_SLOTS;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::sdp::AudioLine;
use super::transcode::{FromPhone, PHONE_FRAME, ToPhone, WIDE_FRAME};
use crate::sfu::{MediaCommand, PHONE_QUEUE, PhoneFrame, SlotAudio};
use crate::switchboard::SessionId;

/// The RTP header we send: version 2, no padding, extension or CSRCs.
const HEADER: usize = 12;

/// A running leg; dropping it stops the leg.
pub struct Leg {
    remote: watch::Sender<AudioLine>,
    _stop: oneshot::Sender<()>,
}

impl Leg {
    /// Sends to (and codes for) the phone's new description, e.g. the 200 OK's after early
    /// media's.
    pub fn update(&self, remote: AudioLine) {
        self.remote.send_if_modified(|line| {
            let changed = *line != remote;
            *line = remote;
            changed
        });
    }
}

/// The payload of an RTP packet and its payload type, if it is one (version 2, lengths that
/// add up).
fn rtp_payload(packet: &[u8]) -> Option<(u8, &[u8])> {
    if packet.len() < HEADER || packet[0] >> 6 != 2 {
        return None;
    }
    let csrcs = usize::from(packet[0] & 0x0f);
    let mut start = HEADER + 4 * csrcs;
    if packet[0] & 0x10 != 0 {
        let words = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    Some((packet[1] & 0x7f, packet.get(start..end)?))
}

/// An RTP packet of ours.
fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(HEADER + payload.len());
    packet.extend([0x80, pt & 0x7f]);
    packet.extend(seq.to_be_bytes());
    packet.extend(ts.to_be_bytes());
    packet.extend(ssrc.to_be_bytes());
    packet.extend(payload);
    packet
}

/// Starts the leg of phone `session` on `socket`, toward `remote`. Its voice goes to the media
/// loop on `media`; the call's voices come from the returned receiver's sender, given to the
/// loop with [`MediaCommand::AddPhone`].
pub fn start(
    session: SessionId,
    socket: UdpSocket,
    remote: AudioLine,
    media: mpsc::Sender<MediaCommand>,
) -> Result<(Leg, mpsc::Sender<SlotAudio>), String> {
    let (audio_tx, audio_rx) = mpsc::channel(PHONE_QUEUE);
    let (remote_tx, remote_rx) = watch::channel(remote);
    let (stop_tx, stop_rx) = oneshot::channel();
    let coders = (
        ToPhone::new(remote.law, AUDIO_SLOTS)?,
        FromPhone::new(remote.law)?,
    );
    tokio::spawn(run(
        session, socket, remote_rx, audio_rx, media, coders, stop_rx,
    ));
    Ok((
        Leg {
            remote: remote_tx,
            _stop: stop_tx,
        },
        audio_tx,
    ))
}

async fn run(
    session: SessionId,
    socket: UdpSocket,
    mut remote: watch::Receiver<AudioLine>,
    mut voices: mpsc::Receiver<SlotAudio>,
    media: mpsc::Sender<MediaCommand>,
    (mut to_phone, mut from_phone): (ToPhone, FromPhone),
    mut stop: oneshot::Receiver<()>,
) {
    let ssrc: u32 = rand::random();
    let (mut seq, mut ts): (u16, u32) = (rand::random(), rand::random());
    let (mut wide_seq, mut wide_ts) = (0u64, 0u32);
    let mut line = *remote.borrow();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            changed = remote.changed() => {
                if changed.is_err() {
                    break;
                }
                let next = *remote.borrow();
                if next.law != line.law {
                    match (ToPhone::new(next.law, AUDIO_SLOTS), FromPhone::new(next.law)) {
                        (Ok(to), Ok(from)) => (to_phone, from_phone) = (to, from),
                        _ => tracing::warn!("phone {session}'s new law has no coder"),
                    }
                }
                line = next;
            }
            _ = tick.tick() => {
                let payload = to_phone.frame();
                let packet = rtp_packet(line.law.payload_type(), seq, ts, ssrc, &payload);
                if let Err(e) = socket.send_to(&packet, line.addr).await {
                    tracing::debug!("phone {session}'s RTP did not go out: {e}");
                }
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(PHONE_FRAME as u32);
            }
            voice = voices.recv() => match voice {
                Some(v) => to_phone.push(v.slot, &v.payload),
                None => break,
            },
            received = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                if !from_the_phone(from, &line) {
                    continue;
                }
                let Some((pt, payload)) = rtp_payload(&buf[..n]) else { continue };
                if pt != line.law.payload_type() {
                    continue;
                }
                for frame in from_phone.push(payload) {
                    let frame = PhoneFrame {
                        seq: wide_seq,
                        ts: wide_ts,
                        payload: frame.payload,
                        level: frame.level,
                    };
                    wide_seq += 1;
                    wide_ts = wide_ts.wrapping_add(WIDE_FRAME as u32);
                    // Dropped, not waited for, when the loop is behind: audio is perishable.
                    let _ = media.try_send(MediaCommand::PhoneAudio { session, frame });
                }
            }
        }
    }
}

/// Whether a datagram from `from` is the phone's: from the address its description names (a
/// port that differs is taken too, for carriers whose media leaves from another port).
fn from_the_phone(from: SocketAddr, line: &AudioLine) -> bool {
    from.ip() == line.addr.ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_packets_read_back_and_bad_ones_are_refused() {
        let packet = rtp_packet(8, 1, 2, 3, b"abc");
        assert_eq!(rtp_payload(&packet), Some((8, &b"abc"[..])));
        // One CSRC, an extension of one word and two bytes of padding.
        let mut full = vec![0xb1, 0x80 | 101, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 9, 9];
        full.extend([0xbe, 0xde, 0, 1, 7, 7, 7, 7]);
        full.extend(b"xy\x00\x02");
        assert_eq!(rtp_payload(&full), Some((101, &b"xy"[..])));
        assert_eq!(rtp_payload(b"short"), None);
        assert_eq!(rtp_payload(&[0x40; 20]), None, "version 1");
        let mut lying = rtp_packet(0, 1, 2, 3, b"");
        lying[0] |= 0x0f;
        assert_eq!(rtp_payload(&lying), None, "15 CSRCs in 12 bytes");
        let mut padded = rtp_packet(0, 1, 2, 3, b"\xff");
        padded[0] |= 0x20;
        assert_eq!(rtp_payload(&padded), None, "more padding than packet");
    }
}
