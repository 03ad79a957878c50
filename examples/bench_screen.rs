//! Measures screen sharing's cost per frame: capture (X11 GetImage to I420) and encode (openh264's screen-content mode) for a 1080p screen and a 720p window.
//!
//! Run with `cargo run --release --example bench_screen` (needs Xvfb; it starts its own).
//!
//! A 1920x1080 Xvfb shows a 1280x720 window of detailed pixels (the tests' picture). Each source
//! is opened through the device manager, exactly as a share opens it, and 60 frames are taken
//! at its 15 fps. Capture: the `screen-capture` thread's CPU time (user+system from
//! /proc/self/task) over those frames, per frame. Encode: wall time of each frame through a
//! screen-content encoder on this thread: the first (a keyframe), and the median of the rest (a
//! still screen: what sharing slides or a document costs most of the time).

#[allow(dead_code)] // The tests' helpers; the benchmark uses the server and the window.
#[path = "../tests/common/x11.rs"]
mod x11;

use std::time::{Duration, Instant};

use call_media::device::{DeviceKind, DeviceManager};
use call_media::video::{Content, VideoEncoder};

const FRAMES: usize = 60;

fn main() {
    let server = x11::XServer::start(1920, 1080);
    let _window = x11::TestWindow::open(
        &server.display,
        "Bench window",
        "BcBench",
        (300, 200),
        (1280, 720),
        x11::known_pixel(9),
    );
    let devices = DeviceManager::synthetic_only();
    devices
        .add_display(&server.display)
        .expect("the benchmark's X server");
    println!(
        "| source | size | capture CPU per frame | encode, keyframe | encode, still frame p50 |"
    );
    println!("|---|---|---|---|---|");
    for name in ["Entire screen (1920x1080)", "Bench window"] {
        let source = devices
            .list(DeviceKind::Screen)
            .into_iter()
            .find(|d| d.name == name)
            .expect("the source is listed");
        let camera = devices.open_camera(&source.id).expect("the source opens");
        let before = capture_cpu();
        let frames: Vec<_> = (0..FRAMES)
            .map(|_| {
                camera
                    .frames
                    .recv_timeout(Duration::from_secs(5))
                    .expect("a frame")
            })
            .collect();
        let capture = (capture_cpu() - before) / FRAMES as f64;
        drop(camera);
        let (w, h) = (frames[0].width, frames[0].height);
        let mut encoder =
            VideoEncoder::for_content(w, h, call_media::device::SCREEN_FPS, Content::Screen)
                .expect("an encoder");
        let mut times: Vec<f64> = frames
            .iter()
            .map(|frame| {
                let start = Instant::now();
                encoder.encode(frame, false).expect("encoded");
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        let keyframe = times.remove(0);
        times.sort_by(f64::total_cmp);
        let still = times[times.len() / 2];
        println!("| {name} | {w}x{h} | {capture:.2} ms | {keyframe:.1} ms | {still:.2} ms |");
    }
}

/// CPU milliseconds the `screen-capture` threads of this process have used so far.
fn capture_cpu() -> f64 {
    let ticks_per_ms = 100.0 / 1000.0; // USER_HZ
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains("(screen-capture)"))
        .map(|stat| {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            // After the name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
            let ticks = |i: usize| {
                fields
                    .get(i - 3)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (ticks(14) + ticks(15)) / ticks_per_ms
        })
        .sum()
}
