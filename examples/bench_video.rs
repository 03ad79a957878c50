//! Measures video: H.264 encode/decode per frame, texture upload per frame, glass-to-glass latency, and receive CPU for 1 and 9 streams.
//!
//! Run with `cargo run --release --example bench_video`.
//!
//! - Codec: 120 frames of the test pattern through openh264 at 640x360 and 1280x720; decode
//!   includes the I420→RGBA conversion into a latest-frame slot.
//! - Upload: copying a new RGBA picture from a slot into a Bevy `Image` (what the upload system
//!   does per new frame).
//! - Glass-to-glass: a 640x360@30 pattern camera at A, B subscribed; every new picture in B's
//!   texture carries its capture time in its pixels, compared with the clock when the texture
//!   changed (both apps in one process, one clock).
//! - Receive CPU: the senders and the service run in a child process (this binary with
//!   `BENCH_VIDEO_SENDERS=n`); this process is only the receiver, subscribed to every stream, and
//!   its CPU time (user+system from /proc/self/stat) over 10 s is divided by the streams.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::pattern::{self, FrameStamp};
use bevy_calling::prelude::*;
use call_media::video::{FrameSlot, VideoDecoder, VideoEncoder};
use call_service::{CallService, ServiceConfig};
use support::stamp;

fn main() {
    if let Ok(n) = std::env::var("BENCH_VIDEO_SENDERS") {
        return senders(n.parse().expect("a sender count"));
    }
    for (w, h) in [(640, 360), (1280, 720)] {
        codec(w, h);
    }
    for (w, h) in [(640, 360), (1280, 720)] {
        upload(w, h);
    }
    glass_to_glass();
    for streams in [1, 9] {
        receive_cpu(streams);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95))
}

fn codec(w: u32, h: u32) {
    let mut encoder = VideoEncoder::new(w, h, 30).expect("encoder");
    let mut decoder = VideoDecoder::new().expect("decoder");
    let slot = FrameSlot::new();
    let mut writer = slot.writer();
    let (mut enc, mut dec, mut bytes) = (Vec::new(), Vec::new(), 0usize);
    for counter in 0..120 {
        let frame = pattern::draw(
            FrameStamp {
                source: 1,
                counter,
                micros: 0,
            },
            w,
            h,
        );
        let t = Instant::now();
        let (unit, _) = encoder.encode(&frame, counter == 0).expect("encodes");
        enc.push(ms(t.elapsed()));
        bytes += unit.len();
        let t = Instant::now();
        decoder.decode(&unit, &mut writer).expect("decodes");
        dec.push(ms(t.elapsed()));
    }
    let (e50, e95) = percentiles(enc);
    let (d50, d95) = percentiles(dec);
    println!(
        "codec {w}x{h}: encode p50 {e50:.2} ms p95 {e95:.2} ms; decode+RGBA p50 {d50:.2} ms p95 {d95:.2} ms; {:.0} kbit/s at 30 fps",
        bytes as f64 * 8.0 / 4.0 / 1000.0
    );
}

fn upload(w: u32, h: u32) {
    let mut images = Assets::<Image>::default();
    let handle = images.add(Image::new_fill(
        wgpu_types::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        wgpu_types::TextureDimension::D2,
        &[0, 0, 0, 255],
        wgpu_types::TextureFormat::Rgba8UnormSrgb,
        bevy::asset::RenderAssetUsages::MAIN_WORLD | bevy::asset::RenderAssetUsages::RENDER_WORLD,
    ));
    let slot = FrameSlot::new();
    let mut writer = slot.writer();
    let mut times = Vec::new();
    let mut seen = 0;
    for i in 0..200u8 {
        writer.publish(w, h, None, |rgba| rgba.fill(i));
        let t = Instant::now();
        let mut image = images.get_mut(&handle).expect("image");
        seen = slot
            .read_if_new(seen, |f| {
                image.data.as_mut().expect("data").copy_from_slice(&f.rgba)
            })
            .expect("new");
        times.push(ms(t.elapsed()));
    }
    let (p50, p95) = percentiles(times);
    println!(
        "upload {w}x{h} (slot → Image copy): p50 {:.3} ms p95 {:.3} ms",
        p50, p95
    );
}

struct Side {
    app: App,
    agent: Entity,
}

fn side(url: &str, token: String, name: &str) -> Side {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CallingPlugin::default()))
        .add_systems(Update, accept_and_send.after(CallSystems::Receive));
    // Driven by hand with update(): finish the plugins first, as App::run would.
    app.finish();
    app.cleanup();
    let agent = app
        .world_mut()
        .spawn(CallAgent::new(AgentConfig {
            service_url: url.to_owned(),
            token,
            display_name: name.to_owned(),
            microphone: None,
            speaker: None,
            ..Default::default()
        }))
        .id();
    Side { app, agent }
}

/// Senders accept every call and start their pattern camera in it.
fn accept_and_send(
    mut incoming: MessageReader<IncomingCall>,
    mut commands: Commands,
    devices: Res<Devices>,
    camera: Local<Option<bevy_calling::DeviceId>>,
) {
    let mut camera = camera;
    for call in incoming.read() {
        let id = camera
            .get_or_insert_with(|| devices.add_pattern_camera("pattern", 640, 360, 30))
            .clone();
        commands.trigger(AcceptCall { call: call.call });
        commands.trigger(StartVideo {
            call: call.call,
            camera: id,
        });
    }
}

fn pump(sides: &mut [&mut Side], mut until: impl FnMut(&mut [&mut Side]) -> bool, what: &str) {
    let start = Instant::now();
    while !until(sides) {
        for s in sides.iter_mut() {
            s.app.update();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn connected(s: &Side) -> bool {
    s.app
        .world()
        .get::<CallAgent>(s.agent)
        .is_some_and(|a| a.is_connected())
}

/// Calls `targets`, subscribes to every camera stream, and returns the stream entities once
/// each shows a picture.
fn call_and_subscribe(
    receiver: &mut Side,
    others: &mut [&mut Side],
    targets: Vec<CommunicationIdentifier>,
) -> Vec<Entity> {
    let agent = receiver.agent;
    let count = targets.len();
    receiver.app.world_mut().start_call(StartCall {
        agent,
        targets,
        video: None,
    });
    let mut all: Vec<&mut Side> = std::iter::once(receiver)
        .chain(others.iter_mut().map(|o| &mut **o))
        .collect();
    let available = |app: &mut App| -> Vec<Entity> {
        let mut q = app.world_mut().query::<(Entity, &RemoteVideoStream)>();
        q.iter(app.world())
            .filter(|(_, s)| s.is_available)
            .map(|(e, _)| e)
            .collect()
    };
    pump(
        &mut all,
        |s| available(&mut s[0].app).len() == count,
        "streams to become available",
    );
    let streams = available(&mut all[0].app);
    for &stream in &streams {
        all[0].app.world_mut().trigger(SubscribeVideo { stream });
    }
    pump(
        &mut all,
        |s| streams.iter().all(|&st| stamp(&s[0].app, st).is_some()),
        "pictures to arrive",
    );
    streams
}

fn glass_to_glass() {
    let service = CallService::start(ServiceConfig::default()).expect("service");
    let token = |name: &str| {
        service
            .issue_token(
                &CommunicationIdentifier::user(name).expect("valid"),
                Duration::from_secs(600),
            )
            .token
    };
    let mut a = side(&service.ws_url(), token("sender1"), "sender1");
    let mut b = side(&service.ws_url(), token("receiver"), "receiver");
    pump(
        &mut [&mut a, &mut b],
        |s| s.iter().all(|s| connected(s)),
        "sign-in",
    );
    let streams = call_and_subscribe(
        &mut b,
        &mut [&mut a],
        vec![CommunicationIdentifier::user("sender1").expect("valid")],
    );
    let (mut latencies, mut last) = (Vec::new(), None);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        a.app.update();
        b.app.update();
        if let Some(s) = stamp(&b.app, streams[0])
            && last != Some(s.counter)
        {
            last = Some(s.counter);
            let now = pattern::stamp_micros(Instant::now());
            latencies.push(now.wrapping_sub(s.micros) as f64 / 1000.0);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let frames = latencies.len();
    let (p50, p95) = percentiles(latencies);
    println!(
        "glass-to-glass 640x360@30, one stream, {frames} frames in 10 s: p50 {p50:.1} ms p95 {p95:.1} ms"
    );

    // Camera switch: a second pattern camera (source 2) replaces the first on the same stream.
    let mut switches = Vec::new();
    for (from, to) in [(1u8, 2u8), (2, 3), (3, 4), (4, 5), (5, 6)] {
        let camera = a
            .app
            .world()
            .resource::<Devices>()
            .add_pattern_camera("pattern", 640, 360, 30);
        let call = {
            let mut q = a.app.world_mut().query_filtered::<Entity, With<Call>>();
            q.iter(a.app.world()).next().expect("a call")
        };
        assert_eq!(stamp(&b.app, streams[0]).map(|s| s.source), Some(from));
        let started = Instant::now();
        a.app.world_mut().trigger(StartVideo { call, camera });
        pump(
            &mut [&mut a, &mut b],
            |s| stamp(&s[1].app, streams[0]).is_some_and(|st| st.source == to),
            "the switch",
        );
        switches.push(ms(started.elapsed()));
    }
    let (p50, _) = percentiles(switches.clone());
    let max = switches.iter().copied().fold(0.0, f64::max);
    println!(
        "camera switch to the new source at the receiver, 5 switches: p50 {p50:.0} ms, max {max:.0} ms"
    );
}

fn receive_cpu(count: usize) {
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("BENCH_VIDEO_SENDERS", count.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sender process");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = lines.next().expect("url").expect("line");
    let token = lines.next().expect("token").expect("line");
    let mut receiver = side(&url, token, "receiver");
    pump(
        &mut [&mut receiver],
        |s| connected(s[0]),
        "receiver sign-in",
    );
    let targets = (1..=count)
        .map(|i| CommunicationIdentifier::user(&format!("sender{i}")).expect("valid"))
        .collect();
    let streams = call_and_subscribe(&mut receiver, &mut [], targets);
    // Warm up, then measure.
    let run = |receiver: &mut Side, time: Duration, counters: &mut Vec<Option<u32>>| {
        let mut shown = 0usize;
        let until = Instant::now() + time;
        while Instant::now() < until {
            receiver.app.update();
            for (i, &s) in streams.iter().enumerate() {
                let c = stamp(&receiver.app, s).map(|s| s.counter);
                if c != counters[i] {
                    counters[i] = c;
                    shown += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        shown
    };
    let mut counters = vec![None; streams.len()];
    run(&mut receiver, Duration::from_secs(2), &mut counters);
    let cpu0 = support::own_cpu_seconds();
    let shown = run(&mut receiver, Duration::from_secs(10), &mut counters);
    let cores = (support::own_cpu_seconds() - cpu0) / 10.0;
    println!(
        "receive CPU, {count} x 640x360@30 (decode + RGBA + upload + app loop): {cores:.3} cores total, {:.3} per stream; {:.1} frames/s shown per stream",
        cores / count as f64,
        shown as f64 / 10.0 / count as f64
    );
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"done\n");
    }
    let _ = child.wait();
}

/// Child process: the service and `n` senders that accept calls and send a 360p30 pattern.
fn senders(n: usize) {
    let service = CallService::start(ServiceConfig::default()).expect("service");
    let token = |name: &str| {
        service
            .issue_token(
                &CommunicationIdentifier::user(name).expect("valid"),
                Duration::from_secs(600),
            )
            .token
    };
    println!("{}", service.ws_url());
    println!("{}", token("receiver"));
    let mut sides: Vec<Side> = (1..=n)
        .map(|i| {
            side(
                &service.ws_url(),
                token(&format!("sender{i}")),
                &format!("sender{i}"),
            )
        })
        .collect();
    support::update_until_told(
        || sides.iter_mut().for_each(|s| s.app.update()),
        Duration::from_secs(120),
    );
}
