//! Two headless clients call each other through the embedded call service and print every state change.
//!
//! Alice's synthetic microphone plays a speech clip; Bob's recording speaker records what arrives.
//! Bob auto-accepts, they talk for three seconds, Alice mutes and unmutes, then hangs up.
//! Run it with `cargo run --example headless_demo`.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{AgentConnectionChanged, ParticipantLeft, ParticipantUpdated, Recording};
use call_service::{CallService, ServiceConfig};

/// Which side of the demo an app is.
#[derive(Resource, Clone, Copy, PartialEq, Eq)]
enum Side {
    Alice,
    Bob,
}

fn main() {
    let service =
        CallService::start(ServiceConfig::default()).expect("the embedded service starts");
    println!(
        "call service: {} (media on udp {})",
        service.ws_url(),
        service.media_addr()
    );
    let speech = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sounds/speech.wav");
    let (mut alice, _) = app(&service, Side::Alice, "alice", Some(speech));
    let (mut bob, recording) = app(&service, Side::Bob, "bob", None);

    let start = Instant::now();
    let mut step = 0;
    while start.elapsed() < Duration::from_secs(30) {
        alice.update();
        bob.update();
        let a_call = alice
            .world_mut()
            .query::<(Entity, &Call)>()
            .iter(alice.world())
            .map(|(e, c)| (e, c.state))
            .next();
        let agent_ready = |app: &mut App| {
            app.world_mut()
                .query::<&CallAgent>()
                .iter(app.world())
                .all(|a| a.is_connected())
        };
        step = match (step, a_call) {
            (0, None) if agent_ready(&mut alice) && agent_ready(&mut bob) => {
                let agent = alice
                    .world_mut()
                    .query_filtered::<Entity, With<CallAgent>>()
                    .iter(alice.world())
                    .next();
                alice.world_mut().start_call(StartCall {
                    agent: agent.expect("alice's agent"),
                    targets: vec![CommunicationIdentifier::user("bob").expect("valid")],
                    video: None,
                });
                1
            }
            (1, Some((call, CallState::Connected))) => {
                println!("[demo] talking for 3 s");
                talk(&mut alice, &mut bob, Duration::from_secs(3));
                alice.world_mut().trigger(Mute { call });
                println!("[demo] alice mutes for 1 s");
                talk(&mut alice, &mut bob, Duration::from_secs(1));
                alice.world_mut().trigger(Unmute { call });
                talk(&mut alice, &mut bob, Duration::from_secs(1));
                alice.world_mut().trigger(HangUp { call });
                2
            }
            (2, Some((_, CallState::Disconnected))) => {
                talk(&mut alice, &mut bob, Duration::from_millis(300));
                let samples = recording.samples();
                let rms = (samples.iter().map(|s| s * s).sum::<f32>()
                    / samples.len().max(1) as f32)
                    .sqrt();
                println!(
                    "[demo] bob's speaker played {:.1} s of audio, RMS {rms:.3}",
                    samples.len() as f32 / 48_000.0
                );
                return;
            }
            (s, _) => s,
        };
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("[demo] did not finish within 30 s");
    std::process::exit(1);
}

fn talk(alice: &mut App, bob: &mut App, time: Duration) {
    let until = Instant::now() + time;
    while Instant::now() < until {
        alice.update();
        bob.update();
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn app(
    service: &CallService,
    side: Side,
    name: &str,
    speech: Option<std::path::PathBuf>,
) -> (App, Recording) {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CallingPlugin::default()))
        .insert_resource(side)
        .add_systems(
            Update,
            (print_changes, auto_accept).after(CallSystems::Receive),
        );
    // Driven by hand with update(): finish the plugins first, as App::run would.
    app.finish();
    app.cleanup();
    let devices = app.world().resource::<Devices>().0.clone();
    let microphone = speech.map(|path| devices.add_wav_microphone("speech clip", path));
    let (speaker, recording) = devices.add_recording_speaker("recorder", None);
    let user = CommunicationIdentifier::user(name).expect("valid name");
    let token = service.issue_token(&user, Duration::from_secs(3600)).token;
    app.world_mut().spawn(CallAgent::new(AgentConfig {
        service_url: service.ws_url(),
        token,
        display_name: name.to_owned(),
        microphone,
        speaker: Some(speaker),
        ..Default::default()
    }));
    (app, recording)
}

fn print_changes(
    side: Res<Side>,
    mut agents: MessageReader<AgentConnectionChanged>,
    mut calls: MessageReader<CallStateChanged>,
    mut joined: MessageReader<ParticipantUpdated>,
    mut left: MessageReader<ParticipantLeft>,
    participants: Query<&RemoteParticipant>,
) {
    let who = match *side {
        Side::Alice => "alice",
        Side::Bob => "bob  ",
    };
    for m in agents.read() {
        println!("[{who}] agent: {:?}", m.connection);
    }
    for m in calls.read() {
        match m.reason {
            Some(reason) => println!("[{who}] call: {:?} ({reason})", m.state),
            None => println!("[{who}] call: {:?}", m.state),
        }
    }
    for m in joined.read() {
        if let Ok(p) = participants.get(m.participant) {
            println!(
                "[{who}] participant {} ({}): {:?}, muted {}, speaking {}",
                p.display_name, p.identifier, p.state, p.is_muted, p.is_speaking
            );
        }
    }
    for m in left.read() {
        println!("[{who}] participant left: {}", m.reason);
    }
}

fn auto_accept(side: Res<Side>, mut incoming: MessageReader<IncomingCall>, mut commands: Commands) {
    for call in incoming.read() {
        if *side == Side::Bob {
            println!("[bob  ] incoming call from {}: accepting", call.caller);
            commands.trigger(AcceptCall { call: call.call });
        }
    }
}
