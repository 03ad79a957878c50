//! Without a display the app says so in one line, with the command that runs it under Xvfb, and
//! exits with code 2: it never panics.

use std::process::Command;

#[test]
fn without_a_display_the_app_explains_how_to_run_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_call-app"))
        .args(["--name", "Nobody"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("the app runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("No display"))
        .collect();
    assert_eq!(said.len(), 1, "one line says why: {stderr}");
    assert!(said[0].contains("xvfb-run"), "it says how: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
