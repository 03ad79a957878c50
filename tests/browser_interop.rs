//! Browser participants: headless Chromium on the web client the service serves, in calls with
//! the Rust client. Chromium's fake camera plays our stamped test pattern and its fake
//! microphone the speech clip, so both sides check what they received, not only states.

mod common;

use std::time::Duration;

use bevy::prelude::Entity;
use bevy_calling::prelude::*;
use common::browser::{Browser, pattern_y4m};
use common::*;
use serde_json::Value;

/// The pattern source id Chromium's camera stamps (the Rust clients' cameras stamp 1).
const BROWSER_SOURCE: u8 = 9;

/// A browser at the service's web client, its camera and microphone playing our files.
struct Page {
    browser: Browser,
    files: [std::path::PathBuf; 2],
}

impl Page {
    fn open(service: &call_service::CallService, tag: &str) -> Self {
        let camera = pattern_y4m(BROWSER_SOURCE, 60, tag);
        let microphone = speech_path();
        let browser = Browser::open(&service.web_url(), &camera, &microphone);
        Self {
            browser,
            files: [camera, microphone],
        }
    }

    fn sign_in(&self, user: &str, name: &str) {
        self.browser
            .eval(&format!("return bc.signIn('{user}', '{name}')"));
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.files[0]);
    }
}

/// A number in the browser's JSON, 0 when absent.
fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

/// Waits until the Rust client shows the browser's stamped camera past ten frames, and returns
/// that picture's PSNR against the pattern it stamps.
fn sees_the_browser_camera(
    clients: &mut [&mut Client],
    call: Entity,
    browser_user: &CommunicationIdentifier,
) -> f64 {
    let stream = available_camera_stream(clients, 0, call, browser_user);
    clients[0].trigger(SubscribeVideo { stream });
    let mut first = None;
    let mut picture = None;
    run_until(
        clients,
        "the browser's camera in the Rust client's texture",
        |c| {
            picture = shown(c[0], stream);
            let Some((_, _, _, stamp)) = &picture else {
                return false;
            };
            assert_eq!(stamp.source, BROWSER_SOURCE, "the browser's pattern");
            let start = *first.get_or_insert(stamp.counter);
            stamp.counter.wrapping_sub(start) > 10
        },
    );
    let (rgba, w, h, stamp) = picture.expect("a picture");
    assert_eq!((w, h), (640, 360), "the browser sends its camera's size");
    psnr_against_source(&rgba, w, h, stamp)
}

#[test]
fn a_browser_and_a_rust_client_in_a_group_call_see_and_hear_each_other() {
    let service = service();
    let page = Page::open(&service, "group");
    let mut a = client(&service, "alice", Mic::Speech);
    let camera = add_camera(&a, 640, 360, 30);
    run_until(&mut [&mut a], "signed in", |c| c[0].agent().is_connected());
    page.sign_in("bob", "Bob");

    let group = CallId::new_group();
    page.browser
        .eval(&format!("return bc.joinGroup('{group}', true)"));
    let agent = a.agent;
    let call = a.app.world_mut().join_group_call(JoinGroupCall {
        agent,
        group_id: group.clone(),
        video: Some(camera),
    });
    let bob = CommunicationIdentifier::user("bob").expect("valid");
    let quality = sees_the_browser_camera(&mut [&mut a], call, &bob);
    assert!(quality > 28.0, "the browser's camera at {quality:.1} dB");

    // The browser's voice: the speech clip, through Chromium's audio processing.
    let heard_from = a.speaker.len();
    run_for(&mut [&mut a], Duration::from_secs(3));
    let samples = a.speaker.samples_from(heard_from);
    let heard = energy(&samples);
    assert!(
        heard > 1e-4,
        "the Rust client hears the browser: energy {heard}"
    );
    // Chromium's echo canceller, noise suppressor and gain control reshape it (0.47-0.53 here);
    // its default fake microphone, a beep, would not follow the speech at all.
    let corr = looped_envelope_correlation(&samples, &speech_samples());
    assert!(
        corr > 0.3,
        "the browser's voice follows the speech clip: {corr}"
    );

    // The browser decodes the Rust client's camera and receives its voice.
    let before = page.browser.stats();
    run_for(&mut [&mut a], Duration::from_secs(2));
    let after = page.browser.stats();
    let decoded = number(&after["inbound"]["video"]["framesDecoded"])
        - number(&before["inbound"]["video"]["framesDecoded"]);
    assert!(
        decoded > 30.0,
        "the browser decoded {decoded} frames in 2 s: {after}"
    );
    let audio = number(&after["inbound"]["audio"]["bytesReceived"])
        - number(&before["inbound"]["audio"]["bytesReceived"]);
    assert!(
        audio > 4_000.0,
        "the browser received {audio} audio bytes in 2 s: {after}"
    );
    let played = number(&after["inbound"]["audio"]["totalAudioEnergy"])
        - number(&before["inbound"]["audio"]["totalAudioEnergy"]);
    assert!(
        played > 1e-3,
        "the browser decoded silence: energy {played}: {after}"
    );
    eprintln!(
        "browser camera at the Rust client {quality:.1} dB; voice energy {heard:.5} (speech \
         correlation {corr:.2}); the browser \
         decoded {decoded} frames, got {audio} audio bytes and played energy {played:.4} in 2 s"
    );
    let state = page.browser.state();
    let roster = &state["calls"][0]["participants"];
    assert!(
        roster.as_array().is_some_and(|p| p
            .iter()
            .any(|p| p["id"] == "8:acs:alice" && p["state"] == "connected")),
        "the browser's roster shows Alice connected: {state}"
    );
}
