//! Browser participants: headless Chromium on the web client the service serves, in calls with
//! the Rust client. Chromium's fake camera plays our stamped test pattern and its fake
//! microphone the speech clip, so both sides check what they received, not only states.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bevy::prelude::Entity;
use bevy_calling::prelude::*;
use common::browser::{Browser, pattern_y4m};
use common::*;
use serde_json::Value;

/// The pattern source id Chromium's camera stamps (the Rust clients' cameras stamp 1).
const BROWSER_SOURCE: u8 = 9;

/// One browser at a time: Chromium's encoder and decoders, four times over on two cores, scale
/// its camera down and starve the Rust clients beside it.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// A browser at the service's web client, its camera and microphone playing our files.
struct Page {
    browser: Browser,
    camera: std::path::PathBuf,
    _turn: MutexGuard<'static, ()>,
}

impl Page {
    /// Opens the web client with `query` (`""` for none) appended to its URL.
    fn open(service: &call_service::CallService, tag: &str, query: &str) -> Self {
        Self::open_at(&format!("{}{query}", service.web_url()), tag, &[])
    }

    /// Opens `url` in a browser with the command-line switches `extra`.
    fn open_at(url: &str, tag: &str, extra: &[String]) -> Self {
        let turn = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
        let camera = pattern_y4m(BROWSER_SOURCE, 60, tag);
        let browser = Browser::open(url, &camera, &speech_path(), extra);
        Self {
            browser,
            camera,
            _turn: turn,
        }
    }

    fn sign_in(&self, user: &str, name: &str) {
        self.browser
            .eval(&format!("return bc.signIn('{user}', '{name}')"));
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.camera);
    }
}

/// A number in the browser's JSON, 0 when absent.
fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

/// The PSNR the browser's camera must reach at the Rust client. Chromium starts its encoder at
/// a low bitrate (the SFU sends it no bandwidth feedback) and raises it as it goes, so the first
/// pictures may be softer; the bar is for the picture the call settles on.
const SHARP_DB: f64 = 28.0;

/// Waits until the Rust client shows the browser's stamped camera, past ten frames and at
/// [`SHARP_DB`] or better against the pattern frame it stamps (scaled to the size that arrived),
/// and returns that PSNR.
fn sees_the_browser_camera(
    clients: &mut [&mut Client],
    call: Entity,
    browser_user: &CommunicationIdentifier,
) -> f64 {
    let stream = available_camera_stream(clients, 0, call, browser_user);
    clients[0].trigger(SubscribeVideo { stream });
    let (mut first, mut last, mut best) = (None, None, 0.0);
    let mut quality = 0.0;
    run_until(
        clients,
        "the browser's camera in the Rust client's texture, sharp",
        |c| {
            let Some((rgba, w, h, stamp)) = shown(c[0], stream) else {
                return false;
            };
            assert_eq!(stamp.source, BROWSER_SOURCE, "the browser's pattern");
            let start = *first.get_or_insert(stamp.counter);
            if stamp.counter.wrapping_sub(start) <= 10 || last == Some(stamp.counter) {
                return false;
            }
            last = Some(stamp.counter);
            // Chromium scales its camera down when its encoder finds the CPU or the bandwidth
            // short (seen: 480x270): the picture is compared with the pattern scaled the same
            // way.
            assert!(
                w <= 640 && w * 9 == h * 16,
                "the browser sends its 640x360 camera, or that scaled: {w}x{h}"
            );
            let mut source = vec![0; 640 * 360 * 4];
            bevy_calling::pattern::draw(stamp, 640, 360).to_rgba(&mut source);
            quality = psnr(&rgba, &scaled(&source, 640, 360, w, h));
            if quality > best {
                best = quality;
                eprintln!("the browser's camera: {w}x{h} at {quality:.1} dB");
            }
            quality > SHARP_DB
        },
    );
    quality
}

/// An RGBA picture scaled to `w`x`h` (bilinear, pixel centres aligned), as a sender's scaler
/// would.
fn scaled(rgba: &[u8], sw: u32, sh: u32, w: u32, h: u32) -> Vec<u8> {
    if (sw, sh) == (w, h) {
        return rgba.to_vec();
    }
    let at = |x: usize, y: usize, c: usize| f32::from(rgba[(y * sw as usize + x) * 4 + c]);
    let mut out = vec![0; (w * h * 4) as usize];
    for y in 0..h as usize {
        let fy = ((y as f32 + 0.5) * sh as f32 / h as f32 - 0.5).clamp(0.0, sh as f32 - 1.0);
        let (y0, ty) = (fy as usize, fy.fract());
        let y1 = (y0 + 1).min(sh as usize - 1);
        for x in 0..w as usize {
            let fx = ((x as f32 + 0.5) * sw as f32 / w as f32 - 0.5).clamp(0.0, sw as f32 - 1.0);
            let (x0, tx) = (fx as usize, fx.fract());
            let x1 = (x0 + 1).min(sw as usize - 1);
            for c in 0..4 {
                let top = at(x0, y0, c) * (1.0 - tx) + at(x1, y0, c) * tx;
                let bottom = at(x0, y1, c) * (1.0 - tx) + at(x1, y1, c) * tx;
                out[(y * w as usize + x) * 4 + c] = (top * (1.0 - ty) + bottom * ty).round() as u8;
            }
        }
    }
    out
}

/// Checks media both ways between the Rust client `a`, in `call` with the browser's `bob`:
/// `a` shows the browser's stamped camera and hears its speech; the browser decodes `a`'s
/// camera and plays its voice. Returns a line of figures.
fn media_flows_both_ways(
    page: &Page,
    a: &mut Client,
    call: Entity,
    bob: &CommunicationIdentifier,
) -> String {
    let quality = sees_the_browser_camera(&mut [&mut *a], call, bob);

    // The browser's voice: the speech clip, through Chromium's audio processing.
    let heard_from = a.speaker.len();
    run_for(&mut [&mut *a], Duration::from_secs(3));
    let samples = a.speaker.samples_from(heard_from);
    let heard = energy(&samples);
    assert!(
        heard > 1e-4,
        "the Rust client hears the browser: energy {heard}"
    );
    // Chromium's echo canceller, noise suppressor and gain control reshape it (0.47-0.70 here);
    // its default fake microphone, a beep, would not follow the speech at all.
    let corr = looped_envelope_correlation(&samples, &speech_samples());
    assert!(
        corr > 0.3,
        "the browser's voice follows the speech clip: {corr}"
    );

    // The browser decodes the Rust client's camera and plays its voice.
    let before = page.browser.stats();
    run_for(&mut [&mut *a], Duration::from_secs(2));
    let after = page.browser.stats();
    let gained = |kind: &str, field: &str| {
        number(&after["inbound"][kind][field]) - number(&before["inbound"][kind][field])
    };
    let decoded = gained("video", "framesDecoded");
    assert!(
        decoded > 30.0,
        "the browser decoded {decoded} frames in 2 s: {after}"
    );
    let audio = gained("audio", "bytesReceived");
    assert!(
        audio > 4_000.0,
        "the browser received {audio} audio bytes in 2 s: {after}"
    );
    let played = gained("audio", "totalAudioEnergy");
    assert!(
        played > 1e-3,
        "the browser decoded silence: energy {played}: {after}"
    );
    format!(
        "browser camera at the Rust client {quality:.1} dB; voice energy {heard:.5} (speech \
         correlation {corr:.2}); the browser decoded {decoded} frames, got {audio} audio bytes \
         and played energy {played:.4} in 2 s"
    )
}

/// Updates `a` until the browser's state satisfies `done`.
fn until_browser(a: &mut Client, page: &Page, what: &str, done: impl Fn(&Value) -> bool) {
    run_until(&mut [a], what, |_| done(&page.browser.state()));
}

/// Whether the browser has a call in `state`.
fn has_call(state: &Value, wanted: &str) -> bool {
    state["calls"]
        .as_array()
        .is_some_and(|calls| calls.iter().any(|c| c["state"] == wanted))
}

fn user(name: &str) -> CommunicationIdentifier {
    CommunicationIdentifier::user(name).expect("a valid name")
}

/// A signed-in Rust client `alice` with the speech clip and a 640x360 pattern camera, and a
/// browser signed in as `bob`.
fn alice_and_a_browser(
    service: &call_service::CallService,
    tag: &str,
    query: &str,
) -> (Client, bevy_calling::DeviceId, Page) {
    let page = Page::open(service, tag, query);
    alice_beside(page, client(service, "alice", Mic::Speech))
}

/// Alice, the Rust client `a`, with a 640x360 pattern camera and signed in, beside `page`
/// signed in as `bob`.
fn alice_beside(page: Page, mut a: Client) -> (Client, bevy_calling::DeviceId, Page) {
    let camera = add_camera(&a, 640, 360, 30);
    run_until(&mut [&mut a], "signed in", |c| c[0].agent().is_connected());
    page.sign_in("bob", "Bob");
    (a, camera, page)
}

/// The browser (with its camera) and `a` (with `camera`) join a new group call; returns `a`'s
/// call.
fn both_join_a_group(page: &Page, a: &mut Client, camera: bevy_calling::DeviceId) -> Entity {
    let group = CallId::new_group();
    page.browser
        .eval(&format!("return bc.joinGroup('{group}', true)"));
    let agent = a.agent;
    a.app.world_mut().join_group_call(JoinGroupCall {
        agent,
        group_id: group,
        video: Some(camera),
    })
}

#[test]
fn a_browser_and_a_rust_client_in_a_group_call_see_and_hear_each_other() {
    let service = service();
    let (mut a, camera, page) = alice_and_a_browser(&service, "group", "");
    let call = both_join_a_group(&page, &mut a, camera);
    eprintln!(
        "{}",
        media_flows_both_ways(&page, &mut a, call, &user("bob"))
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

#[test]
fn a_browser_on_the_https_web_client_away_from_localhost_joins_with_camera_and_voice() {
    // Away from localhost a browser grants camera and microphone only to a secure origin: the
    // page is at https://calls.test (resolved to loopback by Chromium), with our certificate,
    // and Alice signs in over wss.
    let (identity, certificate) = self_signed(&["calls.test", "127.0.0.1"]);
    let service = tls_service(identity);
    let url = service.web_url().replace("127.0.0.1", "calls.test");
    let extra = [
        "--host-resolver-rules=MAP calls.test 127.0.0.1".to_owned(),
        "--ignore-certificate-errors".to_owned(),
    ];
    let page = Page::open_at(&url, "https", &extra);
    assert!(url.starts_with("https://calls.test:"), "{url}");
    assert_eq!(
        page.browser.eval("return window.isSecureContext"),
        Value::Bool(true),
        "the page at {url} is a secure context"
    );
    let alice = client_with(&service, "alice", Mic::Speech, |config| {
        config.trusted_certificates = certificate;
    });
    let (mut a, camera, page) = alice_beside(page, alice);
    let call = both_join_a_group(&page, &mut a, camera);
    eprintln!(
        "{}",
        media_flows_both_ways(&page, &mut a, call, &user("bob"))
    );
}

#[test]
fn a_rust_client_calls_the_browser_and_the_browser_s_mute_and_video_off_cross_over() {
    let service = service();
    let (mut a, camera, page) = alice_and_a_browser(&service, "callee", "");
    let bob = user("bob");
    let agent = a.agent;
    let call = a.start_call(StartCall {
        agent,
        targets: vec![bob.clone()],
        video: Some(camera),
    });
    until_browser(&mut a, &page, "the browser rings", |s| {
        has_call(s, "incoming")
    });
    page.browser.eval("return bc.acceptIncoming(true)");
    run_until(&mut [&mut a], "the call connects", |c| {
        c[0].call(call).state == CallState::Connected
    });
    eprintln!("{}", media_flows_both_ways(&page, &mut a, call, &bob));

    // States cross: the browser mutes and turns its video off; Alice sees both.
    page.browser.eval("return bc.setMuted(true)");
    run_until(&mut [&mut a], "Alice sees Bob muted", |c| {
        c[0].participant(call, &bob).is_some_and(|p| p.is_muted)
    });
    page.browser.eval("return bc.setVideo(false)");
    let stream = camera_stream(&mut a, call, &bob).expect("Bob's camera stream");
    run_until(&mut [&mut a], "Alice sees Bob's video off", |c| {
        c[0].app
            .world()
            .get::<RemoteVideoStream>(stream)
            .is_none_or(|s| !s.is_available)
    });
    page.browser.eval("return bc.setMuted(false)");
    run_until(&mut [&mut a], "Alice sees Bob unmuted", |c| {
        c[0].participant(call, &bob).is_some_and(|p| !p.is_muted)
    });
}

#[test]
fn the_browser_calls_a_rust_client_who_answers_with_camera_and_voice() {
    let service = service();
    let (mut a, camera, page) = alice_and_a_browser(&service, "caller", "");
    page.browser.eval("return bc.call('8:acs:alice', true)");
    let (call, _) = incoming(&mut [&mut a], 0);
    a.trigger(AcceptCall { call });
    run_until(&mut [&mut a], "the call connects", |c| {
        c[0].call(call).state == CallState::Connected
    });
    a.trigger(StartVideo { call, camera });
    until_browser(&mut a, &page, "the browser connected", |s| {
        has_call(s, "connected")
    });
    eprintln!(
        "{}",
        media_flows_both_ways(&page, &mut a, call, &user("bob"))
    );
}

#[test]
fn two_rust_clients_and_a_browser_in_a_group_each_receive_the_other_two() {
    let service = service();
    let (mut a, a_camera, page) = alice_and_a_browser(&service, "mixed", "");
    let mut c = client(&service, "carol", Mic::Speech);
    let c_camera = add_camera(&c, 640, 360, 30);
    let group = CallId::new_group();
    page.browser
        .eval(&format!("return bc.joinGroup('{group}', true)"));
    let mut calls = Vec::new();
    for (client, camera) in [(&mut a, a_camera), (&mut c, c_camera)] {
        let agent = client.agent;
        calls.push(client.app.world_mut().join_group_call(JoinGroupCall {
            agent,
            group_id: group.clone(),
            video: Some(camera),
        }));
    }
    let (bob, alice, carol) = (user("bob"), user("alice"), user("carol"));
    // Each Rust client shows the browser's camera and the other Rust client's.
    for (i, other) in [(0, &carol), (1, &alice)] {
        let mut both = [&mut a, &mut c];
        both.swap(0, i);
        sees_the_browser_camera(&mut both, calls[i], &bob);
        let stream = available_camera_stream(&mut both, 0, calls[i], other);
        both[0].trigger(SubscribeVideo { stream });
        run_until(&mut both, "the other Rust client's camera", |c| {
            shown(c[0], stream).is_some_and(|p| p.3.source == 1 && p.3.counter > 10)
        });
    }
    // The browser decodes both Rust cameras, each in its own slot.
    run_until(
        &mut [&mut a, &mut c],
        "the browser shows both cameras",
        |_| {
            let state = page.browser.state();
            let decoding = |who: &str| {
                state["remoteVideos"].as_array().is_some_and(|v| {
                    v.iter()
                        .any(|v| v["participant"] == who && number(&v["framesDecoded"]) > 30.0)
                })
            };
            decoding("8:acs:alice") && decoding("8:acs:carol")
        },
    );
}

#[test]
fn a_browser_offering_vp8_first_still_lands_on_h264() {
    let service = service();
    let (mut a, camera, page) = alice_and_a_browser(&service, "vp8", "?codecs=browser");
    let preferred = page
        .browser
        .eval("return RTCRtpReceiver.getCapabilities('video').codecs[0].mimeType");
    assert_eq!(
        preferred, "video/VP8",
        "Chromium's own order puts VP8 first"
    );
    let call = both_join_a_group(&page, &mut a, camera);
    // Our H.264 decoder shows the browser's camera, and the browser decodes ours as H.264.
    sees_the_browser_camera(&mut [&mut a], call, &user("bob"));
    until_browser_stats(&mut a, &page, "the browser decodes our camera", |s| {
        number(&s["inbound"]["video"]["framesDecoded"]) > 10.0
    });
    let stats = page.browser.stats();
    for direction in ["inbound", "outbound"] {
        assert_eq!(
            stats[direction]["video"]["codecs"],
            serde_json::json!(["video/H264"]),
            "{direction} video: {stats}"
        );
    }
}

/// Updates `a` until the browser's media counters satisfy `done`.
fn until_browser_stats(a: &mut Client, page: &Page, what: &str, done: impl Fn(&Value) -> bool) {
    run_until(&mut [a], what, |_| done(&page.browser.stats()));
}
