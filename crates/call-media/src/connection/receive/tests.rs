//! The video receive policy with synthetic packets and an injected clock: no decoder thread, no
//! sleeps. The test holds the decoder's end of the queue, so nothing raises `want_keyframe`
//! behind its back.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::video::{DECODE_QUEUE, Feedback, REPAIR_WAIT, TAIL_WAIT, VideoReceiver};

const MS: Duration = Duration::from_millis(1);

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

/// A receiver that already has its first keyframe (no PLI pending), and its decoder queue.
fn receiver() -> (VideoReceiver, crossbeam_channel::Receiver<Vec<u8>>) {
    let (decode, units) = crossbeam_channel::bounded(DECODE_QUEUE);
    (
        VideoReceiver::new(decode, Arc::new(AtomicBool::new(false))),
        units,
    )
}

/// Runs the receiver's timer as the receive loop does, with no packet arriving, until `until`:
/// what it asked for, and when (since `from`).
fn timers(
    receiver: &mut VideoReceiver,
    from: Instant,
    until: Instant,
) -> Vec<(Duration, Feedback)> {
    let mut asked = Vec::new();
    while let Some(at) = receiver.deadline().filter(|&at| at <= until) {
        asked.extend(receiver.poll(at).into_iter().map(|f| (at - from, f)));
    }
    asked
}

#[test]
fn reordered_packets_make_one_unit_and_malformed_ones_do_not_panic() {
    let (mut receiver, units) = receiver();
    let t = Instant::now();
    // A unit's packets arrive out of order: they are put back in order and nothing is lost.
    assert_eq!(receiver.packet(&slice(10, 90, false, 1), t), []);
    assert_eq!(
        receiver.packet(&slice(12, 90, true, 3), t),
        [Feedback::Nack(vec![11])]
    );
    assert_eq!(receiver.packet(&slice(11, 90, false, 2), t + MS), []);
    assert_eq!(
        units.try_recv(),
        Ok(unit(&[1, 2, 3])),
        "all three, in order"
    );
    // A STAP-A with a stray trailing byte, which webrtc-rs's parser indexes past.
    let broken = packet(13, 180, true, &[0x78, 0x00, 0x01, 0x41, 0x00]);
    assert_eq!(
        receiver.packet(&broken, t + 2 * MS),
        [Feedback::Pli],
        "a broken unit asks for a keyframe"
    );
    assert!(units.try_recv().is_err(), "and is not decoded");
}

#[test]
fn a_lost_last_packet_is_asked_for_then_replaced_by_a_keyframe_in_the_repair_wait() {
    let (mut receiver, units) = receiver();
    let t = Instant::now();
    assert_eq!(receiver.packet(&slice(10, 90, true, 1), t), []);
    assert_eq!(units.try_recv(), Ok(unit(&[1])));
    // The next unit's first packet comes; its last (12, with the marker) is lost, and then the
    // stream pauses: no later packet reveals the loss.
    let t1 = t + 33 * MS;
    assert_eq!(receiver.packet(&slice(11, 180, false, 2), t1), []);
    let asked = timers(&mut receiver, t1, t1 + REPAIR_WAIT);
    assert_eq!(
        asked.first(),
        Some(&(TAIL_WAIT, Feedback::Nack(vec![12]))),
        "the missing tail is NACKed once the unit's burst is over: {asked:?}"
    );
    assert_eq!(
        asked.last(),
        Some(&(REPAIR_WAIT, Feedback::Pli)),
        "and replaced by a keyframe when the repair wait ends: {asked:?}"
    );
    assert!(units.try_recv().is_err(), "the broken unit is not decoded");
    // The keyframe (SPS and PPS in a STAP-A, then the IDR) continues the stream at once:
    // nothing waits for the given-up packet, and the gap before it does not break it.
    let t2 = t1 + 120 * MS;
    let parameter_sets = [0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
    assert_eq!(
        receiver.packet(&packet(13, 270, false, &parameter_sets), t2),
        []
    );
    assert_eq!(
        receiver.packet(&packet(14, 270, true, &[0x65, 0x88, 3]), t2),
        []
    );
    let keyframe = [
        &[0, 0, 0, 1, 0x67, 0x42][..],
        &[0, 0, 0, 1, 0x68, 0xce],
        &[0, 0, 0, 1, 0x65, 0x88, 3],
    ];
    assert_eq!(units.try_recv(), Ok(keyframe.concat()));
    assert_eq!(receiver.deadline(), None, "nothing left to wait for");
}

#[test]
fn a_lost_retransmission_is_asked_for_again_then_a_keyframe_replaces_it() {
    let (mut receiver, units) = receiver();
    let t = Instant::now();
    assert_eq!(receiver.packet(&slice(10, 90, false, 1), t), []);
    // 11 is lost; 12 reveals it and it is NACKed at once.
    assert_eq!(
        receiver.packet(&slice(12, 90, true, 3), t + MS),
        [Feedback::Nack(vec![11])]
    );
    // Its retransmission is lost too: it is asked for again, then given up for a keyframe.
    let asked = timers(&mut receiver, t, t + 200 * MS);
    let nacks: Vec<Duration> = asked
        .iter()
        .filter(|(_, f)| *f == Feedback::Nack(vec![11]))
        .map(|(at, _)| *at)
        .collect();
    assert!(
        !nacks.is_empty() && nacks.iter().all(|&at| at < REPAIR_WAIT),
        "asked again before the repair wait ends: {asked:?}"
    );
    assert_eq!(
        asked.last(),
        Some(&(REPAIR_WAIT, Feedback::Pli)),
        "a keyframe once the wait is over: {asked:?}"
    );
    assert_eq!(asked.len(), nacks.len() + 1, "nothing else: {asked:?}");
    assert!(units.try_recv().is_err(), "the broken unit is not decoded");
}

#[test]
fn a_repaired_gap_asks_for_no_keyframe() {
    let (mut receiver, units) = receiver();
    let t = Instant::now();
    assert_eq!(receiver.packet(&slice(10, 90, false, 1), t), []);
    assert_eq!(
        receiver.packet(&slice(12, 90, true, 3), t + MS),
        [Feedback::Nack(vec![11])]
    );
    // The second ask is answered.
    let asked = timers(&mut receiver, t, t + 40 * MS);
    assert_eq!(asked, [(31 * MS, Feedback::Nack(vec![11]))]);
    assert_eq!(receiver.packet(&slice(11, 90, false, 2), t + 45 * MS), []);
    assert_eq!(units.try_recv(), Ok(unit(&[1, 2, 3])));
    // The stream then pauses after a whole unit: nothing is missing, nothing is asked.
    assert_eq!(receiver.deadline(), None);
    assert_eq!(timers(&mut receiver, t, t + Duration::from_secs(1)), []);
}

#[test]
fn after_a_dropped_unit_only_a_keyframe_is_decoded() {
    let (mut receiver, units) = receiver();
    let t = Instant::now();
    // The decoder falls behind: the queue fills and the next unit is dropped.
    let queued = DECODE_QUEUE as u8 + 1;
    for n in 0..queued {
        receiver.packet(&slice(u16::from(n), 90 * u32::from(n), true, n), t);
    }
    let decoded: Vec<_> = units.try_iter().collect();
    assert_eq!(decoded.len(), DECODE_QUEUE, "one unit was dropped");
    // The units after it reference the dropped picture: not decoded, however much room there is.
    for n in queued..queued + 3 {
        receiver.packet(&slice(u16::from(n), 90 * u32::from(n), true, n), t);
    }
    assert!(
        units.try_recv().is_err(),
        "a unit after the dropped one was decoded"
    );
    // A keyframe (it starts with its SPS) resumes decoding, and the units after it follow.
    let seq = u16::from(queued) + 3;
    let sps = [0x67, 0x42, 0];
    receiver.packet(&packet(seq, 9000, false, &sps), t);
    receiver.packet(&packet(seq + 1, 9000, true, &[0x65, 0x88, 3]), t);
    assert_eq!(
        units.try_recv(),
        Ok([
            &[0, 0, 0, 1, 0x67, 0x42, 0][..],
            &[0, 0, 0, 1, 0x65, 0x88, 3]
        ]
        .concat())
    );
    receiver.packet(&slice(seq + 2, 9090, true, 9), t);
    assert_eq!(units.try_recv(), Ok(unit(&[9])));
}
