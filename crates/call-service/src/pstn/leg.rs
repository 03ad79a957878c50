//! A phone's media leg: one UDP socket of RTP with the phone (or the carrier's media relay),
//! G.711 both ways, on a task of its own. Every 20 ms it sends the call's mixed voices; each
//! packet from the phone goes to the call as Opus ([`MediaCommand::PhoneAudio`]). It sends from
//! the socket it receives on, so symmetric-RTP carriers (and sipp's echo) answer to it.
//!
//! Digits go both ways as RFC 4733 telephone events, when the phone's description takes
//! them: ours replace the audio for 100 ms each (then 60 ms of audio between digits); the
//! phone's are reported once each, at their end packet.

use std::net::SocketAddr;
use std::time::Duration;

use call_protocol::AUDIO_SLOTS;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::GatewayEvent;
use super::sdp::AudioLine;
use super::transcode::{FromPhone, PHONE_FRAME, ToPhone, WIDE_FRAME};
use crate::sfu::{MediaCommand, PHONE_QUEUE, PhoneFrame, SlotAudio};
use crate::switchboard::{PhoneProgress, SessionId};

/// The RTP header we send: version 2, no padding, extension or CSRCs.
const HEADER: usize = 12;

/// A running leg; dropping it stops the leg.
pub struct Leg {
    remote: watch::Sender<AudioLine>,
    digits: mpsc::Sender<String>,
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

    /// Plays `digits` to the phone after those already queued.
    pub fn dtmf(&self, digits: &str) {
        if self.digits.try_send(digits.to_owned()).is_err() {
            tracing::warn!("a phone leg is behind with its digits; `{digits}` is dropped");
        }
    }
}

/// Ticks (of 20 ms) one digit's events are sent for: 100 ms of tone.
const DIGIT_TICKS: u32 = 5;
/// End packets sent for each digit (RFC 4733 repeats the end three times).
const END_PACKETS: u32 = 3;
/// Ticks of audio between two digits: 60 ms.
const DIGIT_GAP: u32 = 3;

/// The RFC 4733 event code of a DTMF digit.
pub fn event_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The DTMF digit of an RFC 4733 event code.
pub fn event_digit(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// Our digits on their way out: those waiting, and the one being sent.
#[derive(Default)]
struct Digits {
    waiting: std::collections::VecDeque<u8>,
    /// The digit being sent: its code, its first timestamp, and ticks sent so far.
    sending: Option<(u8, u32, u32)>,
    /// Ticks of audio still owed before the next digit.
    gap: u32,
}

impl Digits {
    /// The event payload (and whether it is the event's first packet) to send this tick
    /// instead of audio at timestamp `ts`, if a digit is being sent.
    fn tick(&mut self, ts: u32) -> Option<(u32, [u8; 4], bool)> {
        if self.sending.is_none() {
            if self.gap > 0 {
                self.gap -= 1;
                return None;
            }
            let code = self.waiting.pop_front()?;
            self.sending = Some((code, ts, 0));
        }
        let (code, start, sent) = self.sending.as_mut()?;
        *sent += 1;
        let ticks = (*sent).min(DIGIT_TICKS);
        let duration = (ticks * PHONE_FRAME as u32) as u16;
        let end = *sent > DIGIT_TICKS;
        let payload = [
            *code,
            if end { 0x80 } else { 0 } | 10,
            (duration >> 8) as u8,
            duration as u8,
        ];
        let packet = (*start, payload, *sent == 1);
        if *sent == DIGIT_TICKS + END_PACKETS {
            self.sending = None;
            self.gap = DIGIT_GAP;
        }
        Some(packet)
    }
}

/// The payload type, timestamp and payload of an RTP packet, if it is one (version 2,
/// lengths that add up).
fn rtp_payload(packet: &[u8]) -> Option<(u8, u32, &[u8])> {
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
    let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    Some((packet[1] & 0x7f, ts, packet.get(start..end)?))
}

/// An RTP packet of ours.
fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(HEADER + payload.len());
    packet.extend([0x80, if marker { 0x80 } else { 0 } | (pt & 0x7f)]);
    packet.extend(seq.to_be_bytes());
    packet.extend(ts.to_be_bytes());
    packet.extend(ssrc.to_be_bytes());
    packet.extend(payload);
    packet
}

/// Starts the leg of phone `session` on `socket`, toward `remote`. Its voice goes to the media
/// loop on `media` and its digits to signaling on `events`; the call's voices come from the
/// returned receiver's sender, given to the loop with [`MediaCommand::AddPhone`].
pub fn start(
    session: SessionId,
    socket: UdpSocket,
    remote: AudioLine,
    media: mpsc::Sender<MediaCommand>,
    events: mpsc::Sender<GatewayEvent>,
) -> Result<(Leg, mpsc::Sender<SlotAudio>), String> {
    let (audio_tx, voices) = mpsc::channel(PHONE_QUEUE);
    let (remote_tx, remote_rx) = watch::channel(remote);
    let (digits_tx, digits) = mpsc::channel(DIGIT_QUEUE);
    let (stop_tx, stop) = oneshot::channel();
    let running = Running {
        session,
        socket,
        line: remote,
        to_phone: ToPhone::new(remote.law, AUDIO_SLOTS)?,
        from_phone: FromPhone::new(remote.law)?,
        remote: remote_rx,
        voices,
        digits,
        media,
        events,
    };
    tokio::spawn(running.run(stop));
    let leg = Leg {
        remote: remote_tx,
        digits: digits_tx,
        _stop: stop_tx,
    };
    Ok((leg, audio_tx))
}

/// How many digit requests may wait for a leg.
const DIGIT_QUEUE: usize = 16;

/// A leg's task.
struct Running {
    session: SessionId,
    socket: UdpSocket,
    line: AudioLine,
    to_phone: ToPhone,
    from_phone: FromPhone,
    remote: watch::Receiver<AudioLine>,
    voices: mpsc::Receiver<SlotAudio>,
    digits: mpsc::Receiver<String>,
    media: mpsc::Sender<MediaCommand>,
    events: mpsc::Sender<GatewayEvent>,
}

impl Running {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let ssrc: u32 = rand::random();
        let (mut seq, mut ts): (u16, u32) = (rand::random(), rand::random());
        let (mut wide_seq, mut wide_ts) = (0u64, 0u32);
        let mut outgoing = Digits::default();
        // The timestamp of the phone's last digit reported (its end packets repeat).
        let mut reported: Option<u32> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = &mut stop => break,
                changed = self.remote.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let next = *self.remote.borrow();
                    self.switch_to(next);
                }
                _ = tick.tick() => {
                    let event = self.line.events.and_then(|pt| Some((pt, outgoing.tick(ts)?)));
                    // The mix is taken every tick, so the voices' queues keep their pace.
                    let audio = self.to_phone.frame();
                    let packet = match event {
                        Some((pt, (start, payload, first))) => {
                            rtp_packet(pt, first, seq, start, ssrc, &payload)
                        }
                        None => rtp_packet(self.line.law.payload_type(), false, seq, ts, ssrc, &audio),
                    };
                    if let Err(e) = self.socket.send_to(&packet, self.line.addr).await {
                        tracing::debug!("phone {}'s RTP did not go out: {e}", self.session);
                    }
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(PHONE_FRAME as u32);
                }
                digits = self.digits.recv() => match digits {
                    Some(digits) if self.line.events.is_some() => {
                        outgoing.waiting.extend(digits.chars().filter_map(event_code));
                    }
                    Some(digits) => tracing::info!(
                        "phone {} takes no telephone events; `{digits}` is not sent",
                        self.session
                    ),
                    None => {}
                },
                voice = self.voices.recv() => match voice {
                    Some(v) => self.to_phone.push(v.slot, &v.payload),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = received else { continue };
                    if !from_the_phone(from, &self.line) {
                        continue;
                    }
                    let Some((pt, at, payload)) = rtp_payload(&buf[..n]) else { continue };
                    if pt == self.line.law.payload_type() {
                        for frame in self.from_phone.push(payload) {
                            let frame = PhoneFrame {
                                seq: wide_seq,
                                ts: wide_ts,
                                payload: frame.payload,
                                level: frame.level,
                            };
                            wide_seq += 1;
                            wide_ts = wide_ts.wrapping_add(WIDE_FRAME as u32);
                            // Dropped, not waited for, when the loop is behind: audio perishes.
                            let session = self.session;
                            let _ = self.media.try_send(MediaCommand::PhoneAudio { session, frame });
                        }
                    } else if Some(pt) == self.line.events
                        && let [code, flags, ..] = *payload
                        && flags & 0x80 != 0
                        && reported != Some(at)
                        && let Some(digit) = event_digit(code)
                    {
                        reported = Some(at);
                        let progress = PhoneProgress::Dtmf(digit.to_string());
                        let event = GatewayEvent::Progress(self.session, progress);
                        if self.events.try_send(event).is_err() {
                            tracing::warn!("phone {}'s digit {digit} is dropped", self.session);
                        }
                    }
                }
            }
        }
    }

    /// Sends to (and codes for) the phone's new description.
    fn switch_to(&mut self, next: AudioLine) {
        if next.law != self.line.law {
            match (
                ToPhone::new(next.law, AUDIO_SLOTS),
                FromPhone::new(next.law),
            ) {
                (Ok(to), Ok(from)) => (self.to_phone, self.from_phone) = (to, from),
                _ => tracing::warn!("phone {}'s new law has no coder", self.session),
            }
        }
        self.line = next;
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
        let packet = rtp_packet(8, false, 1, 2, 3, b"abc");
        assert_eq!(rtp_payload(&packet), Some((8, 2, &b"abc"[..])));
        // One CSRC, an extension of one word and two bytes of padding.
        let mut full = vec![0xb1, 0x80 | 101, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 9, 9];
        full.extend([0xbe, 0xde, 0, 1, 7, 7, 7, 7]);
        full.extend(b"xy\x00\x02");
        assert_eq!(rtp_payload(&full), Some((101, 2, &b"xy"[..])));
        assert_eq!(rtp_payload(b"short"), None);
        assert_eq!(rtp_payload(&[0x40; 20]), None, "version 1");
        let mut lying = rtp_packet(0, false, 1, 2, 3, b"");
        lying[0] |= 0x0f;
        assert_eq!(rtp_payload(&lying), None, "15 CSRCs in 12 bytes");
        let mut padded = rtp_packet(0, false, 1, 2, 3, b"\xff");
        padded[0] |= 0x20;
        assert_eq!(rtp_payload(&padded), None, "more padding than packet");
    }

    #[test]
    fn digits_go_out_as_rfc_4733_events_with_gaps_between_them() {
        assert_eq!(event_code('#'), Some(11));
        assert_eq!(event_code('x'), None);
        for code in 0..16 {
            assert_eq!(event_digit(code).and_then(event_code), Some(code));
        }
        let mut digits = Digits::default();
        digits.waiting.extend([1, 11]);
        let packets: Vec<_> = (0..20u32).map(|i| digits.tick(1000 + 160 * i)).collect();
        // Digit 1: five packets growing to 800, three end packets, all at its first timestamp.
        for (i, p) in packets[..8].iter().enumerate() {
            let (start, payload, first) = p.expect("an event packet");
            let duration = u16::from_be_bytes([payload[2], payload[3]]);
            assert_eq!((start, payload[0], first), (1000, 1, i == 0));
            assert_eq!(duration as usize, 160 * (i + 1).min(5));
            assert_eq!(payload[1] & 0x80 != 0, i >= 5, "end bit of packet {i}");
        }
        assert!(packets[8..11].iter().all(Option::is_none), "60 ms of audio");
        let (start, payload, first) = packets[11].expect("the next digit");
        assert_eq!((start, payload[0], first), (1000 + 160 * 11, 11, true));
        assert!(packets[19].is_none());
    }
}
