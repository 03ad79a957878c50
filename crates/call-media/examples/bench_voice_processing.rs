//! What the microphone path's echo cancellation, noise suppression and gain cost: the time to
//! process one 10 ms block at 48 kHz mono, far end included, over 20 s of speech with its echo.
//!
//! `cargo run -p call-media --example bench_voice_processing` (the processing crates are optimized in every
//! profile, see Cargo.toml).

use std::time::Instant;

use call_media::audio::VoiceProcessing;
use call_media::audio::VoiceProcessor;
use call_media::audio::processing::{BLOCK, REFERENCE_CAPACITY};

fn main() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sounds/speech.wav");
    let speech: Vec<f32> = hound::WavReader::open(path)
        .expect("speech.wav")
        .samples::<i16>()
        .map(|s| s.expect("sample") as f32 / i16::MAX as f32)
        .collect();
    let far: Vec<f32> = speech.iter().cycle().take(20 * 48_000).copied().collect();
    // The microphone: the far end 40 ms late and 6 dB down.
    let delay = 1920;
    let (mut producer, mut reference) = rtrb::RingBuffer::new(REFERENCE_CAPACITY);
    let mut processor = VoiceProcessor::new();
    assert!(VoiceProcessing::Auto.applies_to(false));
    let mut times = Vec::new();
    for (i, frame) in far.chunks_exact(2 * BLOCK).enumerate() {
        for &s in frame {
            let _ = producer.push(s);
        }
        let mut mic: Vec<f32> = (i * 2 * BLOCK..(i + 1) * 2 * BLOCK)
            .map(|t| {
                if t >= delay {
                    0.5 * far[t - delay]
                } else {
                    0.0
                }
            })
            .collect();
        let start = Instant::now();
        processor.process(&mut reference, &mut mic);
        times.push(start.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "voice processing (AEC3 + NS + AGC2, far end included), per 10 ms block: p50 {:.1} µs, p95 {:.1} µs, max {:.1} µs over {} blocks",
        p(0.5),
        p(0.95),
        times.last().copied().unwrap_or_default(),
        2 * times.len()
    );
}
