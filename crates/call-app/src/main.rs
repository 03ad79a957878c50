//! The bevy_calling conference app: egui controls over a spatial 3D view of the call, with the
//! call service embedded by default. `--bot` runs a windowless bot instead, and `--script`
//! performs a scenario and saves screenshots.

mod bots;
mod flat;
mod layout;
mod pace;
mod probe;
mod scene;
mod screens;
mod script;
mod session;
mod visible;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy::window::{ExitCondition, PresentMode, WindowResolution};
use bevy_calling::prelude::*;
use bevy_calling::{DeviceManager, Devices, Role};
use call_service::token::TokenIssuer;
use clap::Parser;

use bots::{BotPlugin, Goal};
use scene::{Focus, ScenePlugin};
use screens::{Screens, ScreensPlugin};
use session::{Connection, Service};

/// Voice and video calls in a spatial 3D view.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Your display name (your user id is made from it).
    #[arg(long, env = "USER", default_value = "me")]
    name: String,
    /// Join a shared call service (`ws://host:8470/ws`) instead of starting one in this process.
    #[arg(long)]
    server: Option<String>,
    /// The shared service's token secret: signs tokens for you and your bots.
    #[arg(long, env = "CALL_SERVICE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A token for you on the shared service, instead of the secret.
    #[arg(long)]
    token: Option<String>,
    /// Run a bot without a window: a synthetic camera and voice that joins `--join`, calls
    /// `--call`, or answers every call.
    #[arg(long)]
    bot: bool,
    /// The group call id the bot joins.
    #[arg(long, requires = "bot")]
    join: Option<String>,
    /// The user the bot calls.
    #[arg(long, requires = "bot", conflicts_with = "join")]
    call: Option<String>,
    /// How many bots this process runs, each with its own camera and voice (named `NAME 1`,
    /// `NAME 2`, ... when more than one).
    #[arg(long, requires = "bot", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    count: u32,
    /// The bot camera's frame rate (its pictures are 640x360).
    #[arg(long, requires = "bot", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    fps: u32,
    /// Perform the scenario in this file (see `script.rs`), then exit.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Use only synthetic devices (the speech clip, the pattern camera; no speaker), not the
    /// machine's: for machines whose sound devices have no clock (ALSA without a sound card).
    #[arg(long)]
    synthetic_devices: bool,
    /// The window's size in pixels.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("`{text}` is not WIDTHxHEIGHT"))?;
    let dimension = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|v| (160..=8192).contains(v))
            .ok_or_else(|| format!("`{v}` is not a size between 160 and 8192"))
    };
    Ok((dimension(w)?, dimension(h)?))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The embedded service's secret: given, or fresh (128 random bits, as hex).
    let embedded_secret = args.secret.clone().unwrap_or_else(|| CallId::random().0);
    let connection = match &args.server {
        Some(url) => Connection(Service::Shared {
            url: url.clone(),
            issuer: args
                .secret
                .as_deref()
                .map(|s| TokenIssuer::new(s.as_bytes())),
            token: args.token.clone(),
        }),
        None => match Connection::embedded(&embedded_secret) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if args.bot {
        return run_bot(&args, connection);
    }
    let script = match &args.script {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| script::parse(&text))
        {
            Ok(steps) => Some(script::Script::new(steps)),
            Err(e) => {
                eprintln!("the script cannot run: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if let Err(why) = display_available() {
        eprintln!(
            "No display ({why}): the conference app needs a window. Without one, run it under a \
             virtual display: xvfb-run -a -s \"-screen 0 1280x720x24\" ./dev.sh run (or run a \
             windowless bot with --bot)."
        );
        return ExitCode::from(2);
    }
    if let Service::Embedded(service) = &connection.0 {
        println!(
            "Call service: {url}. Another window or a bot joins it with: --server {url} \
             --secret {embedded_secret}",
            url = service.ws_url(),
        );
    }
    let mut app = match windowed(&args) {
        Ok(app) => app,
        Err(why) => {
            eprintln!(
                "The window could not be opened: {why}. Software rendering needs Mesa's Vulkan \
                 driver (apt install mesa-vulkan-drivers)."
            );
            return ExitCode::FAILURE;
        }
    };
    if args.synthetic_devices {
        app.insert_resource(Devices(DeviceManager::synthetic_only()));
    }
    app.add_plugins(bevy_egui::EguiPlugin::default())
        .insert_resource(bevy_egui::EguiGlobalSettings {
            auto_create_primary_context: false,
            ..default()
        })
        .add_plugins(CallingPlugin::default())
        .insert_resource(connection)
        .insert_resource(Screens::new(args.name.clone()))
        .add_plugins((ScenePlugin, ScreensPlugin, BotPlugin, pace::PacePlugin))
        .add_systems(Startup, sign_in_at_start);
    if let Some(script) = script {
        app.insert_resource(script)
            .add_plugins(script::ScriptPlugin);
    }
    exit_code(app.run())
}

fn exit_code(exit: AppExit) -> ExitCode {
    match exit {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    }
}

/// Whether winit can open a window here: it needs an X server (this build has X11 only).
fn display_available() -> Result<(), String> {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    if display.is_empty() {
        return Err("DISPLAY is not set".into());
    }
    // A local display ":N" has a socket; a remote "host:N" cannot be checked from here.
    if let Some(number) = display.strip_prefix(':') {
        let number = number.split('.').next().unwrap_or_default();
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        if !socket.exists() {
            return Err(format!(
                "DISPLAY={display} but no X server listens at {}",
                socket.display()
            ));
        }
    }
    Ok(())
}

/// The app with a window and a renderer. Building the renderer panics inside Bevy when there is
/// no GPU or software driver: caught here and returned as the reason, never a panic.
fn windowed(args: &Args) -> Result<App, String> {
    let (width, height) = args.size;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(|| {
        let mut app = App::new();
        app.add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: "bevy_calling".into(),
                resolution: WindowResolution::new(width, height),
                present_mode: PresentMode::AutoNoVsync,
                ..default()
            }),
            exit_condition: ExitCondition::OnPrimaryClosed,
            ..default()
        }));
        app
    });
    std::panic::set_hook(hook);
    built.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the renderer did not start".into())
    })
}

/// The person signs in as soon as the app starts, as an organizer of the calls they start.
fn sign_in_at_start(
    mut commands: Commands,
    connection: Res<Connection>,
    devices: Res<Devices>,
    mut focus: ResMut<Focus>,
    mut screens: ResMut<Screens>,
) {
    session::add_synthetic_devices(&devices.0);
    let name = screens.name.clone();
    match session::sign_in(
        &mut commands,
        &connection,
        &devices.0,
        &name,
        Role::Organizer,
        true,
    ) {
        Ok((agent, _)) => focus.agent = Some(agent),
        Err(e) => screens.status = e,
    }
}

/// Windowless bots, until Ctrl-C.
fn run_bot(args: &Args, connection: Connection) -> ExitCode {
    let goal = match (&args.join, &args.call) {
        (Some(group), _) => Goal::Join(CallId(group.clone())),
        (None, Some(user)) => match bevy_calling::ui::parse_target(user) {
            Some(target) => Goal::Call(target),
            None => {
                eprintln!("`{user}` is not a user id");
                return ExitCode::from(2);
            }
        },
        (None, None) => Goal::Answer,
    };
    if let Service::Embedded(service) = &connection.0 {
        println!("Call service: {}", service.ws_url());
    }
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(10))),
        bevy::log::LogPlugin::default(),
        CallingPlugin::default(),
        BotPlugin,
    ));
    app.finish();
    app.cleanup();
    let devices = app.world().resource::<Devices>().0.clone();
    let spawned = {
        let world = app.world_mut();
        let mut queue = bevy::ecs::world::CommandQueue::default();
        let mut commands = Commands::new(&mut queue, world);
        let result = (1..=args.count).try_for_each(|k| {
            let name = match args.count {
                1 => args.name.clone(),
                _ => format!("{} {k}", args.name),
            };
            bots::spawn_bot(
                &mut commands,
                &connection,
                &devices,
                &name,
                args.fps,
                goal.clone(),
            )
            .map(drop)
        });
        queue.apply(world);
        result
    };
    if let Err(e) = spawned {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    app.insert_resource(connection)
        .add_systems(Update, bots::report);
    exit_code(app.run())
}
