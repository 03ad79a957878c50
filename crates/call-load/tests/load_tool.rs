//! The load tool against an embedded service: every bot joins, none drops, every listener gets
//! at least 99 % of the speakers' frames and every watcher 99 % of the cameras' frames, through
//! real ICE, DTLS and SRTP.

use std::process::Command;

#[test]
fn twenty_bots_join_and_every_listener_gets_the_speakers_and_every_watcher_the_cameras() {
    // Four seconds: 120 frames of the two cameras per watcher, so one frame in flight at an
    // edge of the window (counted sent, not yet received) stays above 99 %.
    let out = Command::new(env!("CARGO_BIN_EXE_call-load"))
        .args(["--embedded", "--bots", "20", "--duration", "4"])
        .args([
            "--warmup",
            "1",
            "--cameras",
            "2",
            "--watchers",
            "5",
            "--json",
        ])
        .output()
        .expect("the tool runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {stdout}"));
    assert!(out.status.success(), "the run passes: {report}");
    assert_eq!(report["joined"], 20, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    assert!(report["min_share"].as_f64() >= Some(0.99), "{report}");
    // Three speakers at 50 frames/s, each heard by the 19 others.
    let delivered = report["delivered_pps"].as_f64().unwrap_or_default();
    assert!(
        (2700.0..=3000.0).contains(&delivered),
        "{delivered} frames/s delivered: {report}"
    );
    // Two cameras at 15 frames/s, each watched by five.
    assert_eq!(report["watchers"], 5, "{report}");
    assert!(report["video_min_share"].as_f64() >= Some(0.99), "{report}");
    let video = report["video_delivered_fps"].as_f64().unwrap_or_default();
    assert!(
        (140.0..=160.0).contains(&video),
        "{video} video frames/s: {report}"
    );
    assert!(report["service_cores"].as_f64() > Some(0.0), "{report}");
}
