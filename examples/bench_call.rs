//! Measures call set-up (StartCall to Connected, callee auto-accepts) and audio mouth-to-ear latency on loopback.
//!
//! Run with `cargo run --release --example bench_call`. Everything runs in one process: the
//! embedded service and two headless apps, updated in a tight loop.
//!
//! - Set-up: the time from writing `StartCall` in A's app to A's `Call` reaching `Connected`,
//!   with B accepting in the frame it sees `Incoming`; both agents are already signed in.
//! - Mouth-to-ear, with 20 ms and with 10 ms voice frames: A's synthetic microphone plays
//!   silence with a 5 ms click about every 500 ms. Its
//!   capture clock says when each click was "spoken"; B's recording speaker says when the click
//!   was "heard" (the instant the speaker played that sample).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{CaptureClock, Recording, VoiceFrame};
use call_service::{CallService, ServiceConfig};

const CALLS: usize = 20;
const CLICK_EVERY: usize = 24_000;
const CLICKS: usize = 30;

struct Side {
    app: App,
    agent: Entity,
    clock: Option<CaptureClock>,
    recording: Recording,
}

fn main() {
    let service = CallService::start(ServiceConfig::default()).expect("service starts");

    // Set-up: A and B already signed in; B accepts in the frame it sees the call.
    let sign_in = Instant::now();
    let mut a = side(&service, "alice", None, VoiceFrame::Standard);
    let mut b = side(&service, "bob", None, VoiceFrame::Standard);
    pump_until(&mut a, &mut b, |a, b| connected(a) && connected(b));
    println!(
        "sign-in of two agents (spawn to media connected): {:.1} ms",
        ms(sign_in.elapsed())
    );
    let mut setups = Vec::new();
    for _ in 0..CALLS {
        let started = Instant::now();
        let (agent, bob) = (
            a.agent,
            CommunicationIdentifier::user("bob").expect("valid"),
        );
        a.app.world_mut().start_call(StartCall {
            agent,
            targets: vec![bob],
            video: None,
        });
        let mut call = None;
        pump_until(&mut a, &mut b, |a, _| {
            call = last_call(a)
                .filter(|(_, s)| *s == CallState::Connected)
                .map(|(e, _)| e);
            call.is_some()
        });
        setups.push(ms(started.elapsed()));
        let call = call.expect("connected");
        a.app.world_mut().trigger(HangUp { call });
        pump_until(&mut a, &mut b, |a, b| {
            last_call(a).is_some_and(|(_, s)| s == CallState::Disconnected)
                && last_call(b).is_some_and(|(_, s)| s == CallState::Disconnected)
        });
        for s in [&mut a, &mut b] {
            let calls: Vec<Entity> = s
                .app
                .world_mut()
                .query_filtered::<Entity, With<Call>>()
                .iter(s.app.world())
                .collect();
            for c in calls {
                s.app.world_mut().despawn(c);
            }
        }
    }
    let first = setups[0];
    println!(
        "call set-up, {CALLS} calls: {} (first call {first:.1} ms)",
        summary(&mut setups)
    );
    drop((a, b));

    // Mouth-to-ear: clicks from A's microphone, detected in B's speaker, in both voice modes.
    for (mode, names) in [
        (VoiceFrame::Standard, ("carol", "dave")),
        (VoiceFrame::LowLatency, ("erin", "frank")),
    ] {
        let mut latencies = mouth_to_ear(&service, mode, names);
        println!(
            "audio mouth-to-ear, {mode:?} ({} ms frames), {} of {CLICKS} clicks: {}",
            mode.samples() / 48,
            latencies.len(),
            summary(&mut latencies)
        );
    }
}

/// The latency of each click from A's microphone to B's speaker, A sending `mode` frames.
fn mouth_to_ear(service: &CallService, mode: VoiceFrame, (from, to): (&str, &str)) -> Vec<f64> {
    let mut a = side(service, from, Some(click_track()), mode);
    let mut b = side(service, to, None, mode);
    pump_until(&mut a, &mut b, |a, b| connected(a) && connected(b));
    let (agent, callee) = (a.agent, CommunicationIdentifier::user(to).expect("valid"));
    a.app.world_mut().start_call(StartCall {
        agent,
        targets: vec![callee],
        video: None,
    });
    pump_until(&mut a, &mut b, |a, _| {
        last_call(a).is_some_and(|(_, s)| s == CallState::Connected)
    });
    let until = Instant::now() + Duration::from_millis((CLICKS as u64 + 2) * 500);
    while Instant::now() < until {
        a.app.update();
        b.app.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    let spoken_at = a
        .clock
        .as_ref()
        .and_then(CaptureClock::started_at)
        .expect("the microphone ran");
    let heard_at = b.recording.started_at().expect("the speaker ran");
    let spoken: Vec<Instant> = (1..=CLICKS)
        .map(|k| spoken_at + Duration::from_secs_f64(click_at(k) as f64 / 48_000.0))
        .collect();
    detect_clicks(&b.recording.samples())
        .into_iter()
        .map(|j| heard_at + Duration::from_secs_f64(j as f64 / 48_000.0))
        .filter_map(|heard| {
            spoken
                .iter()
                .rev()
                .find(|&&s| s <= heard)
                .map(|&s| ms(heard - s))
        })
        .filter(|&l| l < 400.0)
        .collect()
}

/// Sample indices where a click starts: above 0.05 after at least 200 ms below it.
fn detect_clicks(samples: &[f32]) -> Vec<usize> {
    let mut quiet = 0usize;
    let mut found = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if s.abs() > 0.05 {
            if quiet >= 9_600 {
                found.push(i);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    found
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.95),
        v[0],
        v[v.len() - 1]
    )
}

/// Where click `k` starts: every 500 ms, at a different offset within its 20 ms capture frame,
/// so the framing delay is sampled the way speech meets it, not at its worst case.
fn click_at(k: usize) -> usize {
    k * CLICK_EVERY + (k * 331) % 960
}

/// Silence with a 5 ms 1 kHz click about every 500 ms.
fn click_track() -> Arc<[f32]> {
    let mut samples = vec![0.0f32; CLICK_EVERY * (CLICKS + 2)];
    for k in 1..=CLICKS {
        for i in 0..240 {
            samples[click_at(k) + i] =
                0.8 * (std::f32::consts::TAU * 1000.0 * i as f32 / 48_000.0).sin();
        }
    }
    samples.into()
}

fn connected(s: &mut Side) -> bool {
    s.app
        .world()
        .get::<CallAgent>(s.agent)
        .is_some_and(|a| a.is_connected())
}

fn last_call(s: &mut Side) -> Option<(Entity, CallState)> {
    let mut q = s.app.world_mut().query::<(Entity, &Call)>();
    q.iter(s.app.world())
        .map(|(e, c)| (e, c.state))
        .max_by_key(|(e, _)| *e)
}

fn pump_until(a: &mut Side, b: &mut Side, mut done: impl FnMut(&mut Side, &mut Side) -> bool) {
    let start = Instant::now();
    loop {
        a.app.update();
        b.app.update();
        if done(a, b) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "benchmark step timed out"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A headless app with one agent, a recording speaker, and optionally a microphone playing `mic`.
fn side(
    service: &CallService,
    name: &str,
    mic: Option<Arc<[f32]>>,
    voice_frame: VoiceFrame,
) -> Side {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CallingPlugin::default()))
        .add_systems(Update, auto_accept.after(CallSystems::Receive));
    // Driven by hand with update(): finish the plugins first, as App::run would.
    app.finish();
    app.cleanup();
    let devices = app.world().resource::<Devices>().0.clone();
    let (microphone, clock) = match mic {
        Some(samples) => {
            let (id, clock) = devices.add_samples_microphone("clicks", samples);
            (Some(id), Some(clock))
        }
        None => (None, None),
    };
    let (speaker, recording) = devices.add_recording_speaker("recorder", None);
    let user = CommunicationIdentifier::user(name).expect("valid");
    let token = service.issue_token(&user, Duration::from_secs(3600)).token;
    let agent = app
        .world_mut()
        .spawn(CallAgent::new(AgentConfig {
            service_url: service.ws_url(),
            token,
            display_name: name.to_owned(),
            microphone,
            speaker: Some(speaker),
            voice_frame,
            ..Default::default()
        }))
        .id();
    Side {
        app,
        agent,
        clock,
        recording,
    }
}

fn auto_accept(mut incoming: MessageReader<IncomingCall>, mut commands: Commands) {
    for call in incoming.read() {
        commands.trigger(AcceptCall { call: call.call });
    }
}
