//! Benchmarks the conference app as a person uses it: frames drawn and the app's own CPU with
//! 1, 4, 9 and 16 bot cameras on its stage, rendered in software under Xvfb, and glass-to-glass
//! latency to the presented frame for one 360p30 camera.
//!
//! This binary starts a call service, then for each row starts the bots in one process
//! (`call-app --bot --count N`, 640x360 pattern cameras) in one group call, and the app
//! (`call-app --script`, sending no video) which joins, waits until every tile shows video, and
//! measures frames and its process's CPU for 10 s (and, with one camera, reads 40 latency
//! samples from captures of its window: `probe.rs`). The app draws on demand, so frames drawn
//! per second follow the pictures arriving until drawing cannot keep up. The app's CPU covers
//! receiving, decoding and rendering the streams; the bots' encoding runs in their own
//! process, on the same two cores. Run it with `cargo run -p call-app --example bench_app`
//! (after `cargo build -p call-app`), with `xvfb-run` installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use call_protocol::{CallId, VIDEO_SLOTS};
use call_service::{CallService, ServiceConfig};

const SECRET: &str = "bench-app-secret";
/// (cameras, frames per second): 30 fps like Chromium's reference stream; 15 for the big rows,
/// where two cores cannot also encode sixteen 30 fps cameras.
const ROWS: [(usize, u32); 4] = [(1, 30), (4, 30), (9, 15), (16, 15)];
const WINDOW: &str = "1280x720";

fn app_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    // target/<profile>/examples/bench_app -> target/<profile>/call-app
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("call-app"))
        .expect("the profile directory")
}

/// The bots' process, killed when dropped.
struct Bots(Child);

impl Drop for Bots {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let app = app_binary();
    assert!(app.exists(), "build the app first: cargo build -p call-app");
    let service = CallService::start(ServiceConfig {
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    })
    .expect("the service starts");
    let url = service.ws_url();
    let dir = std::env::temp_dir().join(format!("bench-app-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    println!(
        "| cameras on stage | bot fps | frames drawn per second | time between frames mean / p50 / p95 (ms) | app CPU (cores) | per stream |"
    );
    println!("|---|---|---|---|---|---|");
    let mut latency_row = None;
    for (cameras, fps) in ROWS {
        let group = CallId::new_group();
        let _bots = Bots(
            Command::new(&app)
                .args(["--bot", "--server", &url, "--secret", SECRET])
                .args(["--join", &group.0, "--fps", &fps.to_string()])
                .args(["--name", "Bot", "--count", &cameras.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the bots start"),
        );
        // The app shows as many cameras as its connection has receive slots; the rest show
        // their initials.
        let shown = cameras.min(VIDEO_SLOTS);
        let out = dir.join(format!("measure-{cameras}.json"));
        let latency = dir.join("latency.json");
        let probe = if cameras == 1 {
            format!("latency 40 {}\n", latency.display())
        } else {
            String::new()
        };
        let script = dir.join(format!("script-{cameras}.txt"));
        std::fs::write(
            &script,
            format!(
                "wait-for signed-in\nno-camera\nwait 1\njoin-group {}\nwait-for video {shown}\n\
                 wait 3\nmeasure 10 {}\n{probe}",
                group.0,
                out.display()
            ),
        )
        .expect("the script is written");
        let status = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(&app)
            .args(["--server", &url, "--secret", SECRET, "--name", "Bench"])
            .arg("--synthetic-devices")
            .args(["--size", WINDOW, "--script"])
            .arg(&script)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .status()
            .expect("xvfb-run runs");
        let Ok(text) = std::fs::read_to_string(&out) else {
            println!("| {cameras} ({shown} with video) | {fps} | failed ({status}) | | | |");
            continue;
        };
        let m: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {cameras} ({shown} with video) | {fps} | {:.1} | {:.0} / {:.0} / {:.0} | {:.2} | {:.3} |",
            f("frames_per_second"),
            f("frame_ms_mean"),
            f("frame_ms_p50"),
            f("frame_ms_p95"),
            f("cpu_cores"),
            f("cpu_cores") / shown as f64,
        );
        if let Ok(text) = std::fs::read_to_string(&latency) {
            latency_row = Some(text);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if let Some(text) = latency_row {
        let m: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "\nglass-to-glass to the presented frame, one 360p30 camera: {} samples, p50 {:.1} ms, \
             p95 {:.1} ms, mean {:.1} ms",
            m["samples"],
            f("glass_to_glass_ms_p50"),
            f("glass_to_glass_ms_p95"),
            f("glass_to_glass_ms_mean"),
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
