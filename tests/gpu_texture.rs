//! A subscribed stream's texture on a real GPU pipeline: Bevy renders it in a window (Vulkan on
//! Mesa's lavapipe under Xvfb on machines without a GPU), and a screenshot of the window shows the
//! remote camera's pattern, stamp and all.
//!
//! winit needs the main thread, so this test has its own `main` (`harness = false`).

mod common;

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::view::Msaa;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::{PresentMode, WindowResolution};
use bevy_calling::pattern;
use bevy_calling::prelude::*;
use call_service::{CallService, ServiceConfig};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

/// The verdict, written by the app before it exits.
#[derive(Resource, Clone, Default)]
struct Verdict(Arc<Mutex<Option<Result<String, String>>>>);

#[derive(Resource)]
struct Scenario {
    alice: Entity,
    camera: bevy_calling::DeviceId,
    started: Instant,
    step: u32,
    frames_shown: u32,
}

/// An X server of this test's own, stopped when dropped (also when the test panics).
struct XServer(Child);

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an X server when there is no display, on a free display number, and waits until it
/// accepts connections.
fn display() -> Option<XServer> {
    if std::env::var_os("DISPLAY").is_some() {
        return None;
    }
    let number = (90..200)
        .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
        .expect("a free X display number");
    let server = XServer(
        Command::new("Xvfb")
            .args([
                format!(":{number}"),
                "-screen".into(),
                "0".into(),
                "1280x720x24".into(),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Xvfb is installed (./dev.sh test installs it)"),
    );
    let socket = format!("/tmp/.X11-unix/X{number}");
    let start = Instant::now();
    while !std::path::Path::new(&socket).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Xvfb did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("DISPLAY", format!(":{number}")) };
    Some(server)
}

/// How long the whole scenario may take, screenshot included.
const DEADLINE: Duration = Duration::from_secs(120);

/// Fails the test if the app never exits (a renderer that hangs never runs `drive` again).
fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(DEADLINE + Duration::from_secs(30));
        println!("gpu_texture: FAILED: the app did not exit within {DEADLINE:?}");
        println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        std::process::exit(1);
    });
}

fn main() {
    let server = display();
    let service = CallService::start(ServiceConfig::default()).expect("service");
    let token = |name: &str| {
        service
            .issue_token(
                &CommunicationIdentifier::user(name).expect("valid"),
                Duration::from_secs(600),
            )
            .token
    };
    let verdict = Verdict::default();
    watchdog();
    let mut app = App::new();
    // The calling plugin first: it must not care whether DefaultPlugins come before or after.
    app.add_plugins(CallingPlugin::default())
        .add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                resolution: WindowResolution::new(WIDTH, HEIGHT),
                present_mode: PresentMode::AutoNoVsync,
                ..default()
            }),
            ..default()
        }))
        .insert_resource(verdict.clone())
        .add_systems(Update, drive.after(CallSystems::Receive));
    let camera = app
        .world()
        .resource::<Devices>()
        .add_pattern_camera("pattern", WIDTH, HEIGHT, 30);
    let agent = |name: &str| {
        CallAgent::new(AgentConfig {
            service_url: service.ws_url(),
            token: token(name),
            display_name: name.to_owned(),
            microphone: None,
            speaker: None,
            ..Default::default()
        })
    };
    let alice = app.world_mut().spawn(agent("alice")).id();
    app.world_mut().spawn(agent("bob"));
    app.world_mut()
        .spawn((Camera2d, Tonemapping::None, Msaa::Off));
    app.insert_resource(Scenario {
        alice,
        camera,
        started: Instant::now(),
        step: 0,
        frames_shown: 0,
    });
    app.run();

    drop(server);
    let outcome = verdict.0.lock().unwrap().clone();
    match outcome {
        Some(Ok(what)) => {
            println!("gpu_texture: {what}");
            println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        }
        other => {
            println!("gpu_texture: FAILED: {other:?}");
            println!(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
            );
            std::process::exit(1);
        }
    }
}

#[allow(clippy::too_many_arguments)] // One parameter per thing the scenario touches.
fn drive(
    mut scenario: ResMut<Scenario>,
    agents: Query<(Entity, &CallAgent)>,
    mut incoming: MessageReader<IncomingCall>,
    streams: Query<(Entity, &RemoteVideoStream, Option<&VideoView>)>,
    sprites: Query<(), With<Sprite>>,
    mut commands: Commands,
    verdict: Res<Verdict>,
    mut exit: MessageWriter<AppExit>,
) {
    let finish = |result: Result<String, String>, exit: &mut MessageWriter<AppExit>| {
        // A screenshot that was judged already has the last word.
        verdict.0.lock().unwrap().get_or_insert(result);
        exit.write(AppExit::Success);
    };
    if scenario.started.elapsed() > DEADLINE {
        return finish(Err(format!("stuck at step {}", scenario.step)), &mut exit);
    }
    for call in incoming.read() {
        commands.trigger(AcceptCall { call: call.call });
    }
    match scenario.step {
        0 if agents.iter().count() == 2 && agents.iter().all(|(_, a)| a.is_connected()) => {
            commands.start_call(StartCall {
                agent: scenario.alice,
                targets: vec![CommunicationIdentifier::user("bob").expect("valid")],
                video: Some(scenario.camera.clone()),
            });
            scenario.step = 1;
        }
        1 => {
            if let Some((stream, _, _)) = streams.iter().find(|(_, s, _)| s.is_available) {
                commands.trigger(SubscribeVideo { stream });
                scenario.step = 2;
            }
        }
        2 => {
            if let Some(view) = streams.iter().find_map(|(_, _, v)| v) {
                commands.spawn(Sprite {
                    image: view.image.clone(),
                    custom_size: Some(Vec2::new(WIDTH as f32, HEIGHT as f32)),
                    ..default()
                });
                scenario.step = 3;
            }
        }
        3 if !sprites.is_empty() => {
            scenario.frames_shown += 1;
            if scenario.frames_shown == 20 {
                let verdict = verdict.clone();
                commands.spawn(Screenshot::primary_window()).observe(
                    move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                        *verdict.0.lock().unwrap() = Some(judge(&captured.image));
                        exit.write(AppExit::Success);
                    },
                );
                scenario.step = 4;
            }
        }
        _ => {}
    }
}

/// Reads the stamp from the screenshot and compares it with the regenerated source frame.
fn judge(image: &Image) -> Result<String, String> {
    let size = image.texture_descriptor.size;
    let mut pixels = image.data.clone().ok_or("no pixel data")?;
    let format = image.texture_descriptor.format;
    if format!("{format:?}").starts_with("Bgra") {
        for p in pixels.chunks_mut(4) {
            p.swap(0, 2);
        }
    }
    if (size.width, size.height) != (WIDTH, HEIGHT) {
        return Err(format!("a {}x{} screenshot", size.width, size.height));
    }
    let stamp = pattern::read_rgba(&pixels, WIDTH, HEIGHT)
        .ok_or("the screenshot shows no readable stamp: the texture did not reach the screen")?;
    let psnr = common::psnr_against_source(&pixels, WIDTH, HEIGHT, stamp);
    if psnr < 30.0 {
        return Err(format!(
            "frame {} on screen at only {psnr:.1} dB",
            stamp.counter
        ));
    }
    Ok(format!(
        "frame {} of source {} on screen ({format:?}), {psnr:.1} dB against its source",
        stamp.counter, stamp.source
    ))
}
