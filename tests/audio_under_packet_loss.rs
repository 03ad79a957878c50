//! Speech survives 10% random packet loss on the way into the SFU: the jitter buffer conceals the
//! lost frames (Opus FEC or PLC), so the listener hears no holes of digital silence.
//!
//! The loss is real: an nftables rule on loopback drops one in ten UDP datagrams addressed to this
//! test's media port (needs root and nftables, which `./dev.sh test` installs).

mod common;

use bevy_calling::prelude::*;
use common::*;

/// The longest run of exactly-zero samples, in samples.
fn longest_digital_silence(samples: &[f32]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for &s in samples {
        run = if s == 0.0 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[test]
fn ten_percent_loss_is_concealed_without_holes() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let mut b = client(&service, "bob", Mic::None);
    let (_, b_call) = connected_call(&mut a, &mut b);

    let loss = Impairment::drop_one_in(10, service.media_addr().port());
    let received = listen(&mut a, &mut b, 6 * 48_000, 48_000);
    let dropped = loss.dropped();
    let stats = b.app.world().get::<CallStats>(b_call).cloned();
    drop(loss);

    assert!(
        dropped >= 10,
        "the impairment dropped only {dropped} packets"
    );
    // The statistics see the loss: one in ten of A's datagrams never reached the SFU.
    let audio = stats
        .expect("B's call has statistics")
        .incoming_audio
        .clone();
    assert!(
        audio.packets_lost >= 10 && (0.02..0.3).contains(&audio.loss_fraction),
        "B's received audio under 10% loss: {audio:?}"
    );
    let hole = longest_digital_silence(&received);
    assert!(
        hole < 480,
        "a hole of {hole} samples of digital silence: a lost frame was not concealed"
    );
    let corr = looped_envelope_correlation(&received, &speech_samples());
    assert!(
        corr > 0.8,
        "envelope correlation with the source under loss: {corr}"
    );
}
