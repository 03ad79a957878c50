//! The shared harness: an in-process call service, headless client apps, a stepper that updates
//! every app until a condition holds, and audio measurements.
#![allow(dead_code)] // Each test file uses a different part of the harness.

pub mod browser;
pub mod pulse;
pub mod sipp;
pub mod x11;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{ParticipantState, Recording};
use call_service::{CallService, ServiceConfig};

/// A generous liveness deadline: tests fail on it only when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The speech clip the WAV microphone plays.
pub fn speech_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sounds/speech.wav")
}

/// The speech clip as 48 kHz mono samples.
pub fn speech_samples() -> Vec<f32> {
    wav_samples("speech.wav")
}

/// A clip under `assets/sounds/` (16-bit mono) as samples.
pub fn wav_samples(name: &str) -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets/sounds")
        .join(name);
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    reader
        .samples::<i16>()
        .map(|s| s.expect("sample") as f32 / i16::MAX as f32)
        .collect()
}

/// Writes `seconds` of `samples`, looped, to a 48 kHz mono WAV in the temp folder (for a
/// player outside the app); the caller removes it.
pub fn looped_wav(samples: &[f32], seconds: usize, tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("bc_{tag}_{}.wav", std::process::id()));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("a temp WAV");
    for s in samples.iter().cycle().take(seconds * 48_000) {
        writer
            .write_sample((s * i16::MAX as f32) as i16)
            .expect("a temp WAV");
    }
    writer.finalize().expect("a temp WAV");
    path
}

/// Starts the embedded service on 127.0.0.1 with free ports.
pub fn service() -> CallService {
    CallService::start(ServiceConfig::default()).expect("service starts")
}

/// A self-signed certificate for `names` (DNS names or IP addresses): the service's identity,
/// and the PEM a client trusts to reach it.
pub fn self_signed(names: &[&str]) -> (call_service::TlsIdentity, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let certificate = certified.cert.pem().into_bytes();
    let identity = call_service::TlsIdentity {
        certificate_chain_pem: certificate.clone(),
        private_key_pem: certified.signing_key.serialize_pem().into_bytes(),
    };
    (identity, certificate)
}

/// A service on loopback serving HTTPS and WSS with `identity`.
pub fn tls_service(identity: call_service::TlsIdentity) -> CallService {
    CallService::start(ServiceConfig {
        tls: Some(identity),
        ..ServiceConfig::default()
    })
    .expect("service starts")
}

/// What a client's microphone plays.
pub enum Mic {
    /// The speech clip, looped.
    Speech,
    /// A steady 440 Hz tone, for checking that audio never stops.
    Tone,
    /// A steady tone at this many Hz (amplitude 0.3), to tell voices apart in a mix.
    ToneAt(f32),
    /// No microphone.
    None,
}

/// One headless app with one agent and a recording speaker.
pub struct Client {
    pub app: App,
    pub agent: Entity,
    pub user: CommunicationIdentifier,
    pub speaker: Recording,
}

/// A client signed in as `8:acs:<name>` with a token from the service.
pub fn client(service: &CallService, name: &str, mic: Mic) -> Client {
    client_in(App::new(), service, name, mic)
}

/// A client whose device manager is `devices` (shared with other clients: pattern cameras added
/// to it get distinct source ids).
pub fn client_sharing_devices(
    service: &CallService,
    name: &str,
    devices: &bevy_calling::DeviceManager,
) -> Client {
    let user = CommunicationIdentifier::user(name).expect("valid name");
    let token = service.issue_token(&user, Duration::from_secs(3600)).token;
    let mut app = App::new();
    app.insert_resource(Devices(devices.clone()));
    build_client(app, service, name, Mic::None, token)
}

/// A client in `app`, which may come with its own plugins (the calling plugin among them).
pub fn client_in(app: App, service: &CallService, name: &str, mic: Mic) -> Client {
    let user = CommunicationIdentifier::user(name).expect("valid name");
    let token = service.issue_token(&user, Duration::from_secs(3600)).token;
    build_client(app, service, name, mic, token)
}

/// A client signed in as `8:acs:<name>` with a token that grants `role`.
pub fn client_with_role(service: &CallService, name: &str, mic: Mic, role: Role) -> Client {
    let user = CommunicationIdentifier::user(name).expect("valid name");
    let token = service
        .issue_token_with_role(&user, role, Duration::from_secs(3600))
        .token;
    build_client(App::new(), service, name, mic, token)
}

/// A client that signs in with the given token.
pub fn client_with_token(service: &CallService, name: &str, mic: Mic, token: String) -> Client {
    build_client(App::new(), service, name, mic, token)
}

fn build_client(app: App, service: &CallService, name: &str, mic: Mic, token: String) -> Client {
    client_at(app, &service.ws_url(), name, mic, token)
}

/// A client signed in as `8:acs:<name>` whose agent's config `tweak` changes first.
pub fn client_with(
    service: &CallService,
    name: &str,
    mic: Mic,
    tweak: impl FnOnce(&mut AgentConfig),
) -> Client {
    let user = CommunicationIdentifier::user(name).expect("valid name");
    let token = service.issue_token(&user, Duration::from_secs(3600)).token;
    client_configured(App::new(), &service.ws_url(), name, mic, token, tweak)
}

/// A client in `app` that signs in at the signaling URL `url` with `token`.
pub fn client_at(app: App, url: &str, name: &str, mic: Mic, token: String) -> Client {
    client_configured(app, url, name, mic, token, |_| {})
}

fn client_configured(
    mut app: App,
    url: &str,
    name: &str,
    mic: Mic,
    token: String,
    tweak: impl FnOnce(&mut AgentConfig),
) -> Client {
    if !app.is_plugin_added::<CallingPlugin>() {
        app.add_plugins((MinimalPlugins, CallingPlugin::default()));
    }
    app.finish();
    app.cleanup();
    let devices = app.world().resource::<Devices>().0.clone();
    let microphone = match mic {
        Mic::Speech => Some(devices.add_wav_microphone("speech", speech_path())),
        Mic::Tone => Some(devices.add_tone_microphone("tone", 440.0, 0.3)),
        Mic::ToneAt(hz) => Some(devices.add_tone_microphone("tone", hz, 0.3)),
        Mic::None => None,
    };
    let (speaker_id, speaker) = devices.add_recording_speaker("recorder", None);
    let mut config = AgentConfig {
        service_url: url.to_owned(),
        token,
        display_name: name.to_owned(),
        microphone,
        speaker: Some(speaker_id),
        ..Default::default()
    };
    tweak(&mut config);
    let agent = app.world_mut().spawn(CallAgent::new(config)).id();
    Client {
        app,
        agent,
        user: CommunicationIdentifier::user(name).expect("valid name"),
        speaker,
    }
}

impl Client {
    pub fn agent(&self) -> &CallAgent {
        self.app
            .world()
            .get::<CallAgent>(self.agent)
            .expect("agent")
    }

    /// Triggers a request event.
    pub fn trigger<'a, E: Event<Trigger<'a>: Default>>(&mut self, request: E) {
        self.app.world_mut().trigger(request);
    }

    /// Places a call and returns its entity.
    pub fn start_call(&mut self, request: StartCall) -> Entity {
        self.app.world_mut().start_call(request)
    }

    /// The agent's calls, newest last.
    pub fn calls(&mut self) -> Vec<(Entity, Call)> {
        let mut q = self.app.world_mut().query::<(Entity, &Call)>();
        let mut calls: Vec<_> = q
            .iter(self.app.world())
            .map(|(e, c)| (e, c.clone()))
            .collect();
        calls.sort_by_key(|(e, _)| *e);
        calls
    }

    /// A call of the agent's that rings (`Incoming`), if any.
    pub fn ringing(&mut self) -> Option<(Entity, Call)> {
        self.calls()
            .into_iter()
            .find(|(_, call)| call.state == CallState::Incoming)
    }

    pub fn call(&self, call: Entity) -> Call {
        self.app.world().get::<Call>(call).expect("call").clone()
    }

    /// The participants of `call`.
    pub fn participants(&mut self, call: Entity) -> Vec<RemoteParticipant> {
        let mut q = self
            .app
            .world_mut()
            .query::<(&RemoteParticipant, &bevy_calling::ParticipantOf)>();
        q.iter(self.app.world())
            .filter(|(_, of)| of.0 == call)
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn participant(
        &mut self,
        call: Entity,
        id: &CommunicationIdentifier,
    ) -> Option<RemoteParticipant> {
        self.participants(call)
            .into_iter()
            .find(|p| &p.identifier == id)
    }
}

/// Updates every client's app until `done` holds; panics with `what` after [`DEADLINE`].
pub fn run_until(
    clients: &mut [&mut Client],
    what: &str,
    mut done: impl FnMut(&mut [&mut Client]) -> bool,
) {
    let start = Instant::now();
    loop {
        for c in clients.iter_mut() {
            c.app.update();
        }
        if done(clients) {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Updates every client's app for `time`.
pub fn run_for(clients: &mut [&mut Client], time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        for c in clients.iter_mut() {
            c.app.update();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Updates both apps until `listener`'s speaker has played `total` more samples, and returns
/// them without the first `settle` (while playout settles after a change).
pub fn listen(talker: &mut Client, listener: &mut Client, total: usize, settle: usize) -> Vec<f32> {
    let from = listener.speaker.len();
    run_until(
        &mut [talker, listener],
        "audio to play at the listener",
        |c| c[1].speaker.len() >= from + total,
    );
    listener.speaker.samples_from(from + settle)
}

/// Signs both in, has `a` call `b`, `b` accept, and waits until both calls are connected.
/// Returns (a's call, b's call).
pub fn connected_call(a: &mut Client, b: &mut Client) -> (Entity, Entity) {
    run_until(&mut [a, b], "both agents connected", |c| {
        c[0].agent().is_connected() && c[1].agent().is_connected()
    });
    let (agent, target) = (a.agent, b.user.clone());
    let a_call = a.start_call(StartCall {
        agent,
        targets: vec![target],
        video: None,
    });
    let (b_call, _) = incoming(&mut [a, b], 1);
    b.trigger(AcceptCall { call: b_call });
    run_until(&mut [a, b], "both calls connected", |c| {
        c[0].call(a_call).state == CallState::Connected
            && c[1].call(b_call).state == CallState::Connected
    });
    (a_call, b_call)
}

/// Waits until `clients[which]` rings, and returns the ringing call.
pub fn incoming(clients: &mut [&mut Client], which: usize) -> (Entity, Call) {
    let mut found = None;
    run_until(clients, "an incoming call", |c| {
        found = c[which].ringing();
        found.is_some()
    });
    found.expect("found above")
}

/// Waits until `client`'s call has ended and returns its reason.
pub fn ended(clients: &mut [&mut Client], which: usize, call: Entity) -> CallEndReason {
    run_until(clients, "the call to end", |c| {
        c[which].call(call).state == CallState::Disconnected
    });
    clients[which]
        .call(call)
        .end_reason
        .expect("an ended call has a reason")
}

/// The mean square of samples.
pub fn energy(samples: &[f32]) -> f32 {
    samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32
}

/// RMS per 10 ms block.
pub fn envelope(samples: &[f32]) -> Vec<f32> {
    samples.chunks(480).map(|c| energy(c).sqrt()).collect()
}

/// The mean amplitude of the `hz` component of 48 kHz samples, over 100 ms blocks (a
/// Goertzel filter per block, so a phase jump between blocks costs nothing): 0.3 for a tone of
/// amplitude 0.3 alone, near 0 for a mix without it.
pub fn tone_amplitude(samples: &[f32], hz: f32) -> f32 {
    let w = std::f32::consts::TAU * hz / 48_000.0;
    let blocks: Vec<f32> = samples
        .chunks_exact(4_800)
        .map(|block| {
            let (re, im) = block
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(re, im), (i, s)| {
                    let phase = w * i as f32;
                    (re + s * phase.cos(), im - s * phase.sin())
                });
            2.0 * f32::hypot(re, im) / block.len() as f32
        })
        .collect();
    blocks.iter().sum::<f32>() / blocks.len().max(1) as f32
}

/// The best normalized correlation between the received envelope and the looped source
/// envelope, over every lag of the loop.
pub fn looped_envelope_correlation(received: &[f32], source: &[f32]) -> f32 {
    let r = envelope(received);
    let s = envelope(source);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let rm = mean(&r);
    let sm = mean(&s);
    (0..s.len())
        .map(|lag| {
            let (mut num, mut rr, mut ss) = (0.0f32, 0.0f32, 0.0f32);
            for (i, &rv) in r.iter().enumerate() {
                let sv = s[(i + lag) % s.len()];
                num += (rv - rm) * (sv - sm);
                rr += (rv - rm) * (rv - rm);
                ss += (sv - sm) * (sv - sm);
            }
            num / (rr.sqrt() * ss.sqrt()).max(1e-9)
        })
        .fold(f32::MIN, f32::max)
}

/// Whether `p` is a connected participant.
pub fn is_connected(p: &RemoteParticipant) -> bool {
    p.state == ParticipantState::Connected
}

/// Adds a synthetic test-pattern camera to a client's device manager.
pub fn add_camera(client: &Client, width: u32, height: u32, fps: u32) -> bevy_calling::DeviceId {
    let devices = client.app.world().resource::<Devices>().0.clone();
    devices.add_pattern_camera("pattern", width, height, fps)
}

/// The stream entity of `participant`'s camera as `client` sees it in `call`, once it exists.
pub fn camera_stream(
    client: &mut Client,
    call: Entity,
    participant: &CommunicationIdentifier,
) -> Option<Entity> {
    stream_of(client, call, participant, MediaType::Video)
}

/// The stream entity of `participant`'s camera or screen share as `client` sees it in `call`,
/// once it exists.
pub fn stream_of(
    client: &mut Client,
    call: Entity,
    participant: &CommunicationIdentifier,
    media_type: MediaType,
) -> Option<Entity> {
    let mut q = client
        .app
        .world_mut()
        .query::<(Entity, &RemoteVideoStream, &bevy_calling::StreamOf)>();
    let participants: Vec<(Entity, RemoteParticipant)> = {
        let mut pq =
            client
                .app
                .world_mut()
                .query::<(Entity, &RemoteParticipant, &bevy_calling::ParticipantOf)>();
        pq.iter(client.app.world())
            .filter(|(_, _, of)| of.0 == call)
            .map(|(e, p, _)| (e, p.clone()))
            .collect()
    };
    let owner = participants
        .iter()
        .find(|(_, p)| &p.identifier == participant)?
        .0;
    q.iter(client.app.world())
        .find(|(_, s, of)| of.0 == owner && s.media_type == media_type)
        .map(|(e, _, _)| e)
}

/// The RGBA pixels and size of a stream's view image, once it has a decoded picture.
pub fn view_pixels(client: &Client, stream: Entity) -> Option<(Vec<u8>, u32, u32)> {
    let view = client.app.world().get::<VideoView>(stream)?;
    let images = client.app.world().resource::<Assets<Image>>();
    let image = images.get(&view.image)?;
    let size = image.texture_descriptor.size;
    view.has_picture().then(|| {
        (
            image.data.clone().unwrap_or_default(),
            size.width,
            size.height,
        )
    })
}

/// PSNR in dB of an RGBA picture of the test pattern against the source frame its stamp names,
/// regenerated.
pub fn psnr_against_source(
    rgba: &[u8],
    width: u32,
    height: u32,
    stamp: bevy_calling::pattern::FrameStamp,
) -> f64 {
    let mut reference = vec![0; rgba.len()];
    bevy_calling::pattern::draw(stamp, width, height).to_rgba(&mut reference);
    psnr(rgba, &reference)
}

/// Waits until `watcher` sees `publisher`'s camera stream available in `call`, and returns it.
pub fn available_camera_stream(
    clients: &mut [&mut Client],
    watcher: usize,
    call: Entity,
    publisher: &CommunicationIdentifier,
) -> Entity {
    available_stream(clients, watcher, call, publisher, MediaType::Video)
}

/// Waits until `watcher` sees `publisher`'s stream of `media_type` available in `call`, and
/// returns it.
pub fn available_stream(
    clients: &mut [&mut Client],
    watcher: usize,
    call: Entity,
    publisher: &CommunicationIdentifier,
    media_type: MediaType,
) -> Entity {
    let mut stream = None;
    run_until(clients, "the stream to be available", |c| {
        stream = stream_of(c[watcher], call, publisher, media_type);
        stream.is_some_and(|s| {
            c[watcher]
                .app
                .world()
                .get::<RemoteVideoStream>(s)
                .is_some_and(|r| r.is_available)
        })
    });
    stream.expect("an available stream")
}

/// The decoded picture B shows, with the stamp it carries.
pub fn shown(
    b: &Client,
    stream: Entity,
) -> Option<(Vec<u8>, u32, u32, bevy_calling::pattern::FrameStamp)> {
    let (rgba, w, h) = view_pixels(b, stream)?;
    let stamp = bevy_calling::pattern::read_rgba(&rgba, w, h)?;
    Some((rgba, w, h, stamp))
}

/// A and B in a call, A sending video from `camera`, B subscribed and showing a decoded picture.
/// Returns (A's call, B's call, A's stream at B).
pub fn watching(
    a: &mut Client,
    b: &mut Client,
    camera: bevy_calling::DeviceId,
) -> (Entity, Entity, Entity) {
    let (a_call, b_call) = connected_call(a, b);
    a.trigger(StartVideo {
        call: a_call,
        camera,
    });
    let alice = a.user.clone();
    let stream = available_camera_stream(&mut [a, b], 1, b_call, &alice);
    b.trigger(SubscribeVideo { stream });
    run_until(&mut [a, b], "a stamped picture in B's texture", |c| {
        shown(c[1], stream).is_some()
    });
    (a_call, b_call, stream)
}

/// PSNR in dB over the RGB channels of two RGBA pictures of the same size.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (pa, pb) in a.chunks(4).zip(b.chunks(4)) {
        for c in 0..3 {
            let d = pa[c] as f64 - pb[c] as f64;
            sum += d * d;
            n += 1;
        }
    }
    let mse = sum / n.max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// An nftables table of this test's own, deleted when dropped.
pub struct Impairment {
    table: String,
}

impl Impairment {
    pub fn drop_one_in(n: u32, udp_port: u16) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = format!("bevy_calling_loss_{}_{seq}", std::process::id());
        let script = format!(
            "add table inet {table}\n\
             add chain inet {table} input {{ type filter hook input priority 0; }}\n\
             add rule inet {table} input udp dport {udp_port} numgen random mod {n} == 0 counter drop\n"
        );
        let status = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("piped")
                    .write_all(script.as_bytes())?;
                child.wait()
            })
            .expect("nft runs (./dev.sh test installs nftables)");
        assert!(status.success(), "nft refused the rule (root is needed)");
        Self { table }
    }

    /// Packets the rule dropped so far.
    pub fn dropped(&self) -> u64 {
        let out = Command::new("nft")
            .args(["list", "table", "inet", &self.table])
            .output()
            .expect("nft runs");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("counter packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Impairment {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}
