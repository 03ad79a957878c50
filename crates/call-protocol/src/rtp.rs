//! What both ends and the SFU agree on inside RTP payloads.

/// Whether an H.264 RTP payload (RFC 6184) begins with an SPS, alone or first in a STAP-A: the
/// first packet of a keyframe, since our encoders put SPS and PPS ahead of every IDR. From such
/// a packet on, a decoder needs nothing that came before.
pub fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    let nal_type = |header: &u8| header & 0x1F;
    match payload.first().map(nal_type) {
        Some(SPS) => true,
        // The first aggregated NAL's header follows the STAP-A header and a 16-bit size.
        Some(STAP_A) => payload.get(3).map(nal_type) == Some(SPS),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sps_alone_or_first_in_a_stap_a_starts_a_keyframe() {
        assert!(h264_starts_keyframe(&[0x67, 0x42]));
        assert!(h264_starts_keyframe(&[0x78, 0x00, 0x0A, 0x67, 0x42]));
        // A PPS first, a fragment of an IDR, a slice, nothing.
        assert!(!h264_starts_keyframe(&[0x78, 0x00, 0x04, 0x68]));
        assert!(!h264_starts_keyframe(&[0x7C, 0x85]));
        assert!(!h264_starts_keyframe(&[0x41, 0x9A]));
        assert!(!h264_starts_keyframe(&[]));
    }
}
