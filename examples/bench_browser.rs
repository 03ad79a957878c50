//! Side by side with Chromium: the same 640x360 30 fps H.264 senders received by our client and by headless Chromium in one run.
//!
//! Run with `cargo run --release --example bench_browser` (needs `chromium` and
//! `chromium-driver`, which `./dev.sh test` installs).
//!
//! A child process (this binary with `BENCH_BROWSER_SENDERS=n`) runs the service and `n` Rust
//! senders, each in one group call with a 640x360@30 pattern camera that stamps its capture
//! time (the wall clock) into its pixels. This process then receives them twice, one receiver at
//! a time so neither competes with the other: first our client (a headless Bevy app with the
//! plugin, no microphone or speaker, subscribed to every camera), then Chromium on the service's
//! web client (joined without camera, muted). For each:
//! - **set-up**: signing in (from opening the WebSocket to the media connection up: ICE + DTLS)
//!   and joining the group call (request to connected), five joins, once every sender is in;
//! - **receive CPU**: CPU time over 10 s after 2 s of warm-up, ours of this process, Chromium's
//!   of every process under its chromedriver (browser, renderer, GPU/compositor, network);
//! - **capture to decoded frame**: ours when a new picture reaches the stream's texture data,
//!   read from its stamp; Chromium's from `requestVideoFrameCallback` metadata (`receiveTime`
//!   plus `processingDuration`, and `expectedDisplayTime`), the stamp read from the frame drawn
//!   to a canvas in the same callback (a separate 5 s window, as reading pixels costs CPU).

#[path = "../tests/common/browser.rs"]
mod browser;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::pattern;
use bevy_calling::prelude::*;
use call_service::{CallService, ServiceConfig};
use serde_json::Value;
use support::stamp;

/// How long the harness waits for anything.
const DEADLINE: Duration = Duration::from_secs(30);
/// The measured window after warm-up.
const WINDOW: Duration = Duration::from_secs(10);
/// Joins timed per receiver.
const JOINS: usize = 5;

fn main() {
    if let Ok(n) = std::env::var("BENCH_BROWSER_SENDERS") {
        return senders(n.parse().expect("a sender count"));
    }
    for streams in [1, 4] {
        let mut child = Senders::start(streams);
        ours(&child, streams);
        chromium(&child, streams);
        child.stop();
    }
}

/// The child process: the service, and senders in the group call.
struct Senders {
    child: Child,
    ws_url: String,
    web_url: String,
    token: String,
    group: CallId,
}

impl Senders {
    fn start(n: usize) -> Self {
        let group = CallId::new_group();
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env("BENCH_BROWSER_SENDERS", n.to_string())
            .env("BENCH_BROWSER_GROUP", group.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sender process");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut line = || lines.next().expect("a line").expect("a line");
        let (ws_url, web_url, token) = (line(), line(), line());
        Self {
            child,
            ws_url,
            web_url,
            token,
            group,
        }
    }

    fn stop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

/// Child: the service and `n` senders that join the group call with their pattern camera.
fn senders(n: usize) {
    let group = CallId(std::env::var("BENCH_BROWSER_GROUP").expect("a group"));
    let service = CallService::start(ServiceConfig::default()).expect("service");
    let mut sides: Vec<App> = (1..=n)
        .map(|i| {
            let name = format!("sender{i}");
            let user = CommunicationIdentifier::user(&name).expect("valid");
            let token = service.issue_token(&user, Duration::from_secs(600)).token;
            let mut app = app(&service.ws_url(), token, &name);
            let agent = agent_of(&mut app);
            let camera = app
                .world()
                .resource::<Devices>()
                .add_pattern_camera("pattern", 640, 360, 30);
            app.world_mut().join_group_call(JoinGroupCall {
                agent,
                group_id: group.clone(),
                video: Some(camera),
            });
            app
        })
        .collect();
    // The receivers are told where to sign in only once every sender is in the call, so their
    // sign-in is timed against a settled service, not its start-up and the senders' sign-ins.
    let start = Instant::now();
    while !sides.iter_mut().all(in_a_connected_call) {
        sides.iter_mut().for_each(App::update);
        assert!(start.elapsed() < DEADLINE, "the senders never joined");
        std::thread::sleep(Duration::from_millis(2));
    }
    let user = CommunicationIdentifier::user("receiver").expect("valid");
    println!("{}", service.ws_url());
    println!("{}", service.web_url());
    println!(
        "{}",
        service.issue_token(&user, Duration::from_secs(600)).token
    );
    support::update_until_told(
        || sides.iter_mut().for_each(App::update),
        Duration::from_secs(300),
    );
}

/// A headless app with the plugin and one agent, no microphone or speaker.
fn app(url: &str, token: String, name: &str) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CallingPlugin::default()));
    app.finish();
    app.cleanup();
    app.world_mut().spawn(CallAgent::new(AgentConfig {
        service_url: url.to_owned(),
        token,
        display_name: name.to_owned(),
        ..Default::default()
    }));
    app
}

fn agent_of(app: &mut App) -> Entity {
    let mut q = app.world_mut().query_filtered::<Entity, With<CallAgent>>();
    q.iter(app.world()).next().expect("an agent")
}

/// Updates `app` until `done` holds; returns the time it took.
fn pump(app: &mut App, what: &str, mut done: impl FnMut(&mut App) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        app.update();
        if done(app) {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "timed out: {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn in_a_connected_call(app: &mut App) -> bool {
    let mut calls = app.world_mut().query::<&Call>();
    calls
        .iter(app.world())
        .any(|c| c.state == CallState::Connected)
}

fn call_state(app: &App, call: Entity) -> Option<CallState> {
    app.world().get::<Call>(call).map(|c| c.state)
}

/// Our client: set-up, receive CPU and capture-to-texture latency.
fn ours(senders: &Senders, count: usize) {
    let mut receiver = app(&senders.ws_url, senders.token.clone(), "receiver");
    let agent = agent_of(&mut receiver);
    let sign_in = pump(&mut receiver, "sign-in", |app| {
        app.world()
            .get::<CallAgent>(agent)
            .is_some_and(CallAgent::is_connected)
    });
    let mut joins = Vec::new();
    let mut call = Entity::PLACEHOLDER;
    for i in 0..JOINS {
        let start = Instant::now();
        call = receiver.world_mut().join_group_call(JoinGroupCall {
            agent,
            group_id: senders.group.clone(),
            video: None,
        });
        pump(&mut receiver, "joined", |app| {
            call_state(app, call) == Some(CallState::Connected)
        });
        joins.push(ms(start.elapsed()));
        if i + 1 < JOINS {
            receiver.world_mut().trigger(HangUp { call });
            pump(&mut receiver, "left", |app| {
                call_state(app, call).is_none_or(|s| s == CallState::Disconnected)
            });
        }
    }
    let streams = subscribe_all(&mut receiver, count);
    let mut last = vec![None; count];
    let mut latencies = Vec::new();
    let mut watch = |receiver: &mut App, time: Duration, latencies: &mut Vec<f64>| {
        let until = Instant::now() + time;
        while Instant::now() < until {
            receiver.update();
            for (i, &stream) in streams.iter().enumerate() {
                let Some(s) = stamp(receiver, stream) else {
                    continue;
                };
                if last[i] != Some(s.counter) {
                    last[i] = Some(s.counter);
                    let now = pattern::stamp_micros(Instant::now());
                    latencies.push(f64::from(now.wrapping_sub(s.micros)) / 1000.0);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    watch(&mut receiver, Duration::from_secs(2), &mut Vec::new());
    let cpu0 = support::own_cpu_seconds();
    watch(&mut receiver, WINDOW, &mut latencies);
    let cores = (support::own_cpu_seconds() - cpu0) / WINDOW.as_secs_f64();
    let fps = latencies.len() as f64 / WINDOW.as_secs_f64() / count as f64;
    println!(
        "ours     {count} stream(s): sign-in {:.1} ms; join p50 {}; receive CPU {cores:.3} core, {:.3} per stream, {fps:.1} frames/s each; capture → texture {}",
        ms(sign_in),
        summary(joins),
        cores / count as f64,
        summary(latencies)
    );
    receiver.world_mut().trigger(HangUp { call });
    pump(&mut receiver, "left", |app| {
        call_state(app, call).is_none_or(|s| s == CallState::Disconnected)
    });
}

/// Subscribes `receiver` to the `count` camera streams and waits for a picture on each.
fn subscribe_all(receiver: &mut App, count: usize) -> Vec<Entity> {
    let mut streams = Vec::new();
    pump(receiver, "the cameras to be available", |app| {
        let mut q = app.world_mut().query::<(Entity, &RemoteVideoStream)>();
        streams = q
            .iter(app.world())
            .filter(|(_, s)| s.is_available)
            .map(|(e, _)| e)
            .collect();
        streams.len() == count
    });
    for &stream in &streams {
        receiver.world_mut().trigger(SubscribeVideo { stream });
    }
    pump(receiver, "pictures", |app| {
        streams.iter().all(|&s| stamp(app, s).is_some())
    });
    streams
}

/// Chromium on the web client: the same figures.
fn chromium(senders: &Senders, count: usize) {
    let camera = browser::pattern_y4m(9, 30, "bench");
    let speech = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sounds/speech.wav");
    let page = browser::Browser::open(&senders.web_url, &camera, &speech, &[]);
    page.eval(TIMING_JS);
    let sign_in = number(&page.eval("return __timeSignIn()"));
    let group = &senders.group;
    let mut joins = Vec::new();
    for _ in 0..JOINS {
        joins.push(number(&page.eval(&format!("return __timeJoin('{group}')"))));
    }
    // A receiver: muted, and its camera (opened at sign-in for the preview) stopped, so
    // Chromium's CPU is not spent capturing and drawing it.
    page.eval("return bc.setMuted(true)");
    page.eval(
        "document.getElementById('local-video').srcObject?.getTracks().forEach((t) => t.stop())",
    );
    let decoding = |page: &browser::Browser| -> f64 {
        let state = page.state();
        let videos = state["remoteVideos"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(videos.len() <= count, "{state}");
        if videos.len() < count {
            return 0.0;
        }
        videos.iter().map(|v| number(&v["framesDecoded"])).sum()
    };
    let start = Instant::now();
    while decoding(&page) < 30.0 * count as f64 {
        assert!(
            start.elapsed() < DEADLINE,
            "Chromium never decoded {count} streams"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (frames0, cpu0) = (
        decoding(&page),
        support::descendants_cpu_seconds(page.driver_pid()),
    );
    std::thread::sleep(WINDOW);
    let (frames, cpu) = (
        decoding(&page) - frames0,
        support::descendants_cpu_seconds(page.driver_pid()) - cpu0,
    );
    let cores = cpu / WINDOW.as_secs_f64();
    let fps = frames / WINDOW.as_secs_f64() / count as f64;
    let codecs = &page.stats()["inbound"]["video"]["codecs"];
    assert_eq!(
        codecs,
        &serde_json::json!(["video/H264"]),
        "Chromium decodes H.264"
    );
    page.eval("return __watchFrames()");
    std::thread::sleep(Duration::from_secs(5));
    let seen = page.eval("return __frames");
    let column = |key: &str| -> Vec<f64> {
        seen.as_array()
            .map(|f| f.iter().filter_map(|f| f[key].as_f64()).collect())
            .unwrap_or_default()
    };
    let skew =
        number(&page.eval("return Date.now() - (performance.timeOrigin + performance.now())"));
    println!(
        "chromium {count} stream(s): sign-in {sign_in:.1} ms; join p50 {}; receive CPU {cores:.3} core, {:.3} per stream, {fps:.1} frames/s each; capture → decoded {}; capture → expected display {}; page clock vs Date {skew:+.1} ms",
        summary(joins),
        cores / count as f64,
        summary(column("decoded")),
        summary(column("display")),
    );
    drop(page);
    let _ = std::fs::remove_file(camera);
}

/// The page's timing helpers. `__timeSignIn` times from the WebSocket's creation (after the
/// dev token and the devices) to the media connection; `__timeJoin` a join to connected, then
/// leaves (but the last); `__watchFrames` reads the stamp of each new frame presented (a
/// callback may see the same frame again).
const TIMING_JS: &str = r#"
const tick = () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = r; c.port2.postMessage(0); });
window.__until = async (done) => { while (!done()) await tick(); return performance.now(); };
window.__timeSignIn = async () => {
  let opened = 0;
  const Ws = window.WebSocket;
  window.WebSocket = class extends Ws { constructor(...a) { super(...a); opened = performance.now(); } };
  await bc.signIn('8:acs:chromium', 'Chromium');
  const connected = await __until(() => bc.state().media === 'connected');
  window.WebSocket = Ws;
  return connected - opened;
};
window.__joins = 0;
window.__timeJoin = async (group) => {
  const live = () => bc.state().calls.filter((c) => c.state !== 'disconnected');
  if (live().length) { await bc.hangUp(); await __until(() => live().length === 0); }
  const start = performance.now();
  await bc.joinGroup(group, false);
  return (await __until(() => live().some((c) => c.state === 'connected'))) - start;
};
window.__frames = [];
window.__watchFrames = () => {
  const wall = (t) => (performance.timeOrigin + t) * 1000;
  const since = (t, micros) => ((((wall(t) - micros) % 2 ** 32) + 2 ** 32) % 2 ** 32) / 1000;
  for (const v of document.querySelectorAll('#videos video')) {
    if (!v.srcObject) continue;
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
    let last = -1;
    const seen = (now, m) => {
      const b = Math.max(2, Math.floor(m.width / 40)) & ~1;
      canvas.width = m.width; canvas.height = 2 * b;
      g.drawImage(v, 0, 0, m.width, m.height);
      const px = g.getImageData(0, 0, m.width, 2 * b).data;
      const bytes = new Uint8Array(10);
      for (let i = 0; i < 80; i++) {
        const x = (i % 40) * b + b / 2, y = Math.floor(i / 40) * b + b / 2, at = (y * m.width + x) * 4;
        if (0.299 * px[at] + 0.587 * px[at + 1] + 0.114 * px[at + 2] > 128) bytes[i >> 3] |= 0x80 >> (i & 7);
      }
      const counter = ((bytes[1] << 24) | (bytes[2] << 16) | (bytes[3] << 8) | bytes[4]) >>> 0;
      if (bytes.slice(0, 9).reduce((a, x) => a ^ x, 0x5a) === bytes[9] && counter !== last) {
        last = counter;
        const micros = ((bytes[5] << 24) | (bytes[6] << 16) | (bytes[7] << 8) | bytes[8]) >>> 0;
        const decoded = m.receiveTime !== undefined ? m.receiveTime + (m.processingDuration || 0) * 1000 : undefined;
        __frames.push({ decoded: decoded && since(decoded, micros), display: since(m.expectedDisplayTime, micros) });
      }
      v.requestVideoFrameCallback(seen);
    };
    v.requestVideoFrameCallback(seen);
  }
};
"#;

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "p50 / p95 (n)" of `v`, in milliseconds.
fn summary(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("{:.1} / {:.1} ms ({})", at(0.5), at(0.95), v.len())
}
